"""NomicBert (nomic-embed-text: rotary positions, fused query/key/value,
SwiGLU MLP) against transformers' native ``NomicBertModel`` (issue 15).

``data/arch-reference/nomic-bert`` holds a small random-weight model of
nomic-embed-text-v1.5's shape with the real BERT WordPiece tokenizer it
ships, in nomic's own file format, and the embeddings transformers computed
for texts of 3 to 1536 tokens (``make_nomic_reference.py`` there, which
needs PyTorch; these tests do not).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Dict, List, Sequence

import numpy as np
import numpy.typing as npt
import pytest

import ruvector_embed as rve
from ruvector_common.errors import EmbedError, InvalidArgument

DATA = Path(__file__).parent / "data" / "arch-reference" / "nomic-bert"
#: Largest absolute difference allowed against transformers' float32 output.
MAX_ABS = 1e-5

Array = npt.NDArray[np.float32]


def meta() -> Dict[str, Any]:
    out: Dict[str, Any] = json.loads((DATA / "reference.json").read_text(encoding="utf-8"))
    return out


def reference(pooling: str) -> Array:
    with np.load(DATA / "reference.npz") as z:
        out: Array = z[pooling].astype(np.float32)
    return out


def copy_with_config(tmp_path: Path, changes: Dict[str, Any], drop: Sequence[str] = ()) -> Path:
    dst = tmp_path / "nomic-changed"
    shutil.copytree(DATA, dst)
    cfg = json.loads((dst / "config.json").read_text())
    for k in drop:
        cfg.pop(k, None)
    cfg.update(changes)
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


def max_diff(folder: Path, pooling: str = "mean") -> float:
    texts: List[str] = meta()["texts"]
    got = rve.Embedder.from_pretrained(folder, pooling=pooling, normalize=False).embed_batch(texts)
    return float(np.abs(got - reference(pooling)).max())


def test_token_ids_and_lengths_match_the_reference() -> None:
    m = meta()
    emb = rve.Embedder.from_pretrained(DATA)
    assert emb.max_seq_length == m["max_seq_length"] == 1536
    got = [emb.tokenize(t) for t in m["texts"]]
    assert got == m["ids"]
    lengths = [len(i) for i in got]
    # Several texts past BERT's 512 positions; the longest is cut at 1536.
    assert sum(n > 512 for n in lengths) == 3 and lengths[-1] == 1536
    assert lengths[-2] < 1536


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_embeddings_match_transformers(pooling: str) -> None:
    texts: List[str] = meta()["texts"]
    want = reference(pooling)
    emb = rve.Embedder.from_pretrained(DATA, pooling=pooling, normalize=False)
    assert (emb.pooling, emb.dim, emb.num_layers) == (pooling, 32, 2)
    got = emb.embed_batch(texts)
    assert got.shape == want.shape == (len(texts), 32)
    diff = float(np.abs(got - want).max())
    assert diff <= MAX_ABS, f"{pooling}: max |diff| = {diff:.3g}"
    for i, t in enumerate(texts):
        np.testing.assert_allclose(emb.embed(t), want[i], rtol=0, atol=MAX_ABS)
    other = reference("cls" if pooling == "mean" else "mean")
    assert float(np.abs(other - want).max()) > 100 * MAX_ABS


def test_normalized_encode_follows_the_folder() -> None:
    texts: List[str] = meta()["texts"]
    emb = rve.Embedder.from_pretrained(DATA)
    assert emb.normalize and emb.pooling == "mean"
    want = reference("mean")
    want = want / np.linalg.norm(want, axis=1, keepdims=True)
    got = emb.encode(texts)
    np.testing.assert_allclose(got, want, rtol=0, atol=MAX_ABS)


def test_transformers_config_keys_give_the_same_model(tmp_path: Path) -> None:
    """The config as transformers writes it (``hidden_size``,
    ``rope_parameters`` …) describes the same model as nomic's keys."""
    nomic = json.loads((DATA / "config.json").read_text())
    hf = {
        "model_type": "nomic_bert",
        "vocab_size": nomic["vocab_size"],
        "hidden_size": nomic["n_embd"],
        "num_attention_heads": nomic["n_head"],
        "num_hidden_layers": nomic["n_layer"],
        "intermediate_size": nomic["n_inner"],
        "max_position_embeddings": nomic["n_positions"],
        "layer_norm_eps": nomic["layer_norm_epsilon"],
        "hidden_act": "silu",
        "head_dim": 8,
        "type_vocab_size": 2,
        "rope_parameters": {"rope_theta": 1000.0, "rope_type": "default"},
    }
    dst = tmp_path / "hf-keys"
    shutil.copytree(DATA, dst)
    (dst / "config.json").write_text(json.dumps(hf))
    assert max_diff(dst) <= MAX_ABS


def test_rotary_base_and_gate_order_matter(tmp_path: Path) -> None:
    # Another rotary base moves every text of more than one token.
    assert max_diff(copy_with_config(tmp_path, {"rotary_emb_base": 10000})) > 100 * MAX_ABS
    # fc11 is the linear branch and fc12 the SiLU gate: swapping them moves the output.
    dst = tmp_path / "swapped"
    shutil.copytree(DATA, dst)
    data = bytearray((dst / "model.safetensors").read_bytes())
    n = int.from_bytes(data[:8], "little")
    header = bytes(data[8 : 8 + n]).replace(b".fc11.", b".fcXX.").replace(b".fc12.", b".fc11.")
    data[8 : 8 + n] = header.replace(b".fcXX.", b".fc12.")
    (dst / "model.safetensors").write_bytes(bytes(data))
    assert max_diff(dst) > 100 * MAX_ABS


def test_long_inputs_are_bounded_by_the_positions(tmp_path: Path) -> None:
    long_text = meta()["texts"][-1]
    emb = rve.Embedder.from_pretrained(DATA, max_seq_length=2048)
    assert len(emb.tokenize(long_text)) == 2048
    row = emb.embed(long_text)
    assert np.isfinite(row).all() and abs(float(np.linalg.norm(row)) - 1.0) < 1e-5
    # n_positions = 2048 bounds max_seq_length.
    with pytest.raises(InvalidArgument, match=r"between 2 and 2048 .*got 2049"):
        rve.Embedder.from_pretrained(DATA, max_seq_length=2049)
    # A folder asking for more than n_positions is cut to it.
    dst = tmp_path / "st-long"
    shutil.copytree(DATA, dst)
    (dst / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 8192}))
    assert rve.Embedder.from_pretrained(dst).max_seq_length == 2048


def test_prompts_come_from_the_folder() -> None:
    emb = rve.Embedder.from_pretrained(DATA)
    assert emb.prompts["query"] == "search_query: "
    assert emb.prompts["document"] == "search_document: "
    text = "What is a vector database?"
    np.testing.assert_allclose(
        emb.encode(text, prompt_name="query"), emb.embed("search_query: " + text), rtol=0, atol=1e-7
    )
    assert float(np.abs(emb.encode(text, prompt_name="query") - emb.encode(text)).max()) > 1e-3


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"rotary_scaling_factor": 2}, r"rotary_scaling_factor must be null .*got 2"),
        ({"rotary_emb_interleaved": True}, r"rotary_emb_interleaved must be false, got true"),
        ({"rotary_emb_fraction": 0.5}, r"rotary_emb_fraction must be 1\.0 .*got 0\.5"),
        ({"activation_function": "gelu"}, r"activation_function must be \"swiglu\", got \"gelu\""),
        ({"hidden_act": "gelu"}, r"hidden_act must be \"silu\", got \"gelu\""),
        ({"prenorm": True}, r"prenorm must be false, got true"),
        ({"hidden_size": 64}, r"n_embd = 32 and hidden_size = 64 disagree"),
        ({"n_head": 3}, r"width 32 is not a multiple of the 3 attention heads"),
        ({"n_head": 32}, r"head width 1 .* must be even"),
        ({"n_positions": 100000}, r"n_positions must be an integer between 2 and 8192, got 100000"),
        ({"n_embd": 1 << 40}, r"n_embd must be an integer between 1 and 4096"),
        ({"n_inner": 10**6}, r"n_inner must be an integer between 1 and 512, got 1000000"),
        ({"rotary_emb_base": -1}, r"rotary_emb_base must be a number in \(1, 1e9\], got -1"),
        ({"rotary_emb_base": "1000"}, r"rotary_emb_base must be a number .*got \"1000\""),
        (
            {"rope_parameters": {"rope_type": "dynamic", "factor": 2.0}},
            r"rope_type must be \"default\", got \"dynamic\"",
        ),
        (
            {"rope_parameters": {"rope_theta": 10000.0}},
            r"rotary_emb_base = 1000(\.0)? and rope_parameters\.rope_theta = 10000",
        ),
        ({"layer_norm_epsilon": 0}, r"layer_norm_epsilon must be a number in \(0, 1\]"),
        ({"head_dim": 16}, r"head_dim must be 8 .*got 16"),
        # Biases the checkpoint does not have.
        ({"qkv_proj_bias": True}, r"no tensor encoder\.layers\.0\.attn\.Wqkv\.bias"),
        ({"n_layer": 3}, r"no tensor encoder\.layers\.2\.attn\.Wqkv\.weight"),
        ({"n_layer": 1}, r"more encoder layers than num_hidden_layers = 1"),
        ({"vocab_size": 30000}, r"embeddings\.word_embeddings\.weight has shape \[30528, 32\]"),
    ],
)
def test_bad_configs_name_expected_and_got(tmp_path: Path, changes: Dict[str, Any], message: str) -> None:
    with pytest.raises(EmbedError, match=message):
        rve.Embedder.from_pretrained(copy_with_config(tmp_path, changes))


def test_missing_sizes_are_named(tmp_path: Path) -> None:
    with pytest.raises(EmbedError, match=r"n_embd must be an integer between 1 and 4096, got nothing"):
        rve.Embedder.from_pretrained(copy_with_config(tmp_path, {}, drop=["n_embd"]))


def test_registry_lists_nomic_embed_text() -> None:
    models = {m.name: m for m in rve.list_models()}
    for name in ("nomic-embed-text-v1.5", "nomic-embed-text-v1"):
        m = models[name]
        assert (m.architecture, m.dim, m.max_tokens, m.pooling) == ("nomic_bert", 768, 8192, "mean")
        assert m.repo == f"nomic-ai/{name}"
        assert not m.digests_pinned and "unverified" in m.note
