"""XLM-RoBERTa, RoBERTa (byte-level BPE) and MPNet encoders, and BERT with a
Unigram vocabulary (issue 15), against transformers.

The folders under ``data/arch-reference`` hold small random-weight models of
each architecture with a tokenizer trained for them, and the embeddings
transformers computed for them (``make_arch_reference.py`` there, which needs
PyTorch; these tests do not). Each model's ids, mean- and CLS-pooled and
normalised embeddings must match the reference.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import numpy.typing as npt
import pytest

import ruvector_embed as rve
from ruvector_common.errors import EmbedError

ARCH_DATA = Path(__file__).parent / "data" / "arch-reference"
#: ``bert-unigram``: BERT layers with a SentencePiece-style Unigram tokenizer,
#: the shape of paraphrase-multilingual-MiniLM-L12-v2 and multilingual-e5-small.
#: ``roberta``: config.json model_type "roberta" with a byte-level BPE
#: tokenizer (RobertaProcessing), the shape of all-distilroberta-v1.
ARCHS = ["xlm-roberta", "mpnet", "bert-unigram", "roberta"]
#: Largest absolute difference allowed against transformers' float32 output.
MAX_ABS = 1e-5

Array = npt.NDArray[np.float32]


def meta(arch: str) -> Dict[str, Any]:
    out: Dict[str, Any] = json.loads((ARCH_DATA / arch / "reference.json").read_text(encoding="utf-8"))
    return out


def reference(arch: str, pooling: str) -> Array:
    with np.load(ARCH_DATA / arch / "reference.npz") as z:
        out: Array = z[pooling].astype(np.float32)
    return out


def unit(rows: Array) -> Array:
    out: Array = (rows / np.linalg.norm(rows.astype(np.float64), axis=1, keepdims=True)).astype(np.float32)
    return out


@pytest.mark.parametrize("arch", ARCHS)
def test_token_ids_match_the_reference_tokenizer(arch: str) -> None:
    m = meta(arch)
    emb = rve.Embedder.from_pretrained(ARCH_DATA / arch)
    assert emb.max_seq_length == m["max_seq_length"]
    got: List[List[int]] = [emb.tokenize(t) for t in m["texts"]]
    assert got == m["ids"]
    # The long text is cut at max_seq_length (MPNet's reaches relative
    # distances past the last log bucket at 128).
    assert len(got[-1]) == m["max_seq_length"]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_embeddings_match_transformers(arch: str, pooling: str) -> None:
    texts: List[str] = meta(arch)["texts"]
    want = reference(arch, pooling)
    emb = rve.Embedder.from_pretrained(ARCH_DATA / arch, pooling=pooling, normalize=False)
    assert emb.pooling == pooling and emb.dim == 32 and emb.num_layers == 2
    got = emb.embed_batch(texts)
    assert got.shape == want.shape == (len(texts), 32)
    diff = float(np.abs(got - want).max())
    assert diff <= MAX_ABS, f"{arch}/{pooling}: max |diff| = {diff:.3g}"
    # One at a time gives the same rows as the packed batch.
    for i, t in enumerate(texts):
        np.testing.assert_allclose(emb.embed(t), want[i], rtol=0, atol=MAX_ABS)
    # Pooling matters: mean and CLS rows differ well beyond the tolerance.
    other = reference(arch, "cls" if pooling == "mean" else "mean")
    assert float(np.abs(other - want).max()) > 100 * MAX_ABS


@pytest.mark.parametrize("arch", ARCHS)
def test_normalized_embeddings_follow_the_folder(arch: str) -> None:
    texts: List[str] = meta(arch)["texts"]
    emb = rve.Embedder.from_pretrained(ARCH_DATA / arch)
    # modules.json lists Normalize; the pooling config says mean.
    assert emb.normalize and emb.pooling == "mean"
    got = emb.encode(texts)
    np.testing.assert_allclose(got, unit(reference(arch, "mean")), rtol=0, atol=MAX_ABS)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)


def test_mpnet_relative_bias_is_used(tmp_path: Path) -> None:
    """Zeroing MPNet's relative attention bias changes the output: the
    reference match above depends on it."""
    src = ARCH_DATA / "mpnet"
    dst = tmp_path / "mpnet"
    shutil.copytree(src, dst)
    data = bytearray((dst / "model.safetensors").read_bytes())
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    start, end = header["encoder.relative_attention_bias.weight"]["data_offsets"]
    data[8 + n + start : 8 + n + end] = bytes(end - start)
    (dst / "model.safetensors").write_bytes(bytes(data))
    texts: List[str] = meta("mpnet")["texts"]
    got = rve.Embedder.from_pretrained(dst, normalize=False).embed_batch(texts)
    assert float(np.abs(got - reference("mpnet", "mean")).max()) > 100 * MAX_ABS


def _with_config(tmp_path: Path, arch: str, **changes: Any) -> Path:
    dst = tmp_path / f"{arch}-changed"
    shutil.copytree(ARCH_DATA / arch, dst)
    cfg = json.loads((dst / "config.json").read_text())
    cfg.update(changes)
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


def test_unknown_model_type_names_the_supported_ones(tmp_path: Path) -> None:
    with pytest.raises(EmbedError) as e:
        rve.Embedder.from_pretrained(_with_config(tmp_path, "mpnet", model_type="jina_bert"))
    msg = str(e.value)
    assert "model_type" in msg and '"jina_bert"' in msg
    for name in ('"bert"', '"roberta"', '"xlm-roberta"', '"mpnet"', '"nomic_bert"'):
        assert name in msg, msg


def test_model_type_must_match_the_checkpoint(tmp_path: Path) -> None:
    # An MPNet checkpoint described as BERT lacks BERT's tensors, and the
    # reverse: the error names the missing tensor and points at model_type.
    with pytest.raises(EmbedError, match=r"no tensor embeddings\.token_type_embeddings\.weight.*model_type"):
        rve.Embedder.from_pretrained(_with_config(tmp_path, "mpnet", model_type="bert"))
    with pytest.raises(EmbedError, match=r"no tensor encoder\.relative_attention_bias\.weight.*model_type"):
        rve.Embedder.from_pretrained(_with_config(tmp_path, "xlm-roberta", model_type="mpnet"))


def test_roberta_reads_byte_level_bpe() -> None:
    """RoBERTa's tokenizer is byte-level BPE: no unknown token, any text
    (accents, CJK, emoji) becomes ids of its UTF-8 bytes' symbols, and the
    ids are the ones transformers' tokenizer gave (checked above)."""
    tok = json.loads((ARCH_DATA / "roberta" / "tokenizer.json").read_text(encoding="utf-8"))
    assert (tok["model"]["type"], tok["pre_tokenizer"]["type"], tok["post_processor"]["type"]) == (
        "BPE",
        "ByteLevel",
        "RobertaProcessing",
    )
    cfg = json.loads((ARCH_DATA / "roberta" / "config.json").read_text(encoding="utf-8"))
    assert cfg["model_type"] == "roberta"
    emb = rve.Embedder.from_pretrained(ARCH_DATA / "roberta")
    ids = emb.tokenize("naïve 🙂 测试")
    assert ids[0] == 0 and ids[-1] == 2 and 3 not in ids  # <s> ... </s>, never <unk>
    # An emoji is 4 UTF-8 bytes the small vocabulary has not merged: 4 ids at least.
    assert len(emb.tokenize("🙂")) >= 2 + 4
    assert emb.embed("naïve 🙂 测试").shape == (32,)


def test_roberta_positions_bound_the_sequence_length(tmp_path: Path) -> None:
    # 130 positions with padding index 1 leave room for 128 tokens.
    with pytest.raises(Exception, match=r"between 2 and 128"):
        rve.Embedder.from_pretrained(ARCH_DATA / "xlm-roberta", max_seq_length=129)
    emb = rve.Embedder.from_pretrained(ARCH_DATA / "xlm-roberta", max_seq_length=128)
    assert emb.max_seq_length == 128


def test_registry_lists_the_new_architectures() -> None:
    models = {m.name: m for m in rve.list_models()}
    # The multilingual MiniLMs are BERT encoders with XLM-RoBERTa's vocabulary.
    want = {
        "paraphrase-multilingual-MiniLM-L12-v2": ("bert", 384),
        "multilingual-e5-small": ("bert", 384),
        "multilingual-e5-base": ("xlm-roberta", 768),
        "paraphrase-multilingual-mpnet-base-v2": ("xlm-roberta", 768),
        "all-mpnet-base-v2": ("mpnet", 768),
    }
    for name, (arch, dim) in want.items():
        m = models[name]
        assert (m.architecture, m.dim) == (arch, dim), m
        assert not m.digests_pinned and "unverified" in m.note
