"""Hostile or broken model folders: every value of ``config.json``, the
sentence-transformers module files and the safetensors header is checked,
sizes are computed without overflow, and an embedder never returns
non-finite vectors (issue 10, items 1, 3 and 5).

Folders are built from the real all-MiniLM-L6-v2 files (symbolic links for
what is not changed) or from the deterministic MobileNet test weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

import mobilenet_weights as mw
import numpy as np
import pytest
from embed_helpers import json_bytes, limited_load, link_model, patch_tensor, read_safetensors, safetensors_file

import ruvector_embed as rve
from ruvector_common.errors import RuVectorError


def minilm_config(minilm_dir: Path) -> Dict[str, Any]:
    cfg: Dict[str, Any] = json.loads((minilm_dir / "config.json").read_text())
    return cfg


def load_error(folder: Path) -> str:
    """The EmbedError of loading ``folder`` and embedding a text with it
    (whichever step refuses it)."""
    with pytest.raises(rve.EmbedError) as info:
        emb = rve.Embedder.from_pretrained(folder)
        emb.embed_batch(["hello world", "a second text"])
    return str(info.value)


# -- item 1: config.json values are range-checked -------------------------------------

BIG = 2**62


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("layer_norm_eps", -1.0, "layer_norm_eps must be a number in (0, 1]"),
        ("layer_norm_eps", 0.0, "got 0.0"),
        ("layer_norm_eps", 1e-50, "a positive float32), got 9.99"),
        ("layer_norm_eps", 1e300, "got 1e+300"),
        ("layer_norm_eps", "1e-12", 'got "1e-12"'),
        ("num_attention_heads", 0, "num_attention_heads must be an integer between 1 and 256, got 0"),
        ("num_attention_heads", 7, "hidden_size 384 is not a multiple of num_attention_heads 7"),
        ("hidden_size", 10**9, "hidden_size must be an integer between 1 and 4096, got 1000000000"),
        ("num_hidden_layers", 0, "num_hidden_layers must be an integer between 1 and 128, got 0"),
        ("num_hidden_layers", 10**6, "got 1000000"),
        ("vocab_size", 0, "vocab_size must be an integer between 1 and 1048576, got 0"),
        ("vocab_size", BIG, f"got {BIG}"),
        ("intermediate_size", 10**7, "intermediate_size must be an integer between 1 and 6144"),
        ("max_position_embeddings", 1, "max_position_embeddings must be an integer between 2 and 8192, got 1"),
        ("max_position_embeddings", 10**6, "got 1000000"),
        ("type_vocab_size", 0, "type_vocab_size must be an integer between 1 and 1024, got 0"),
        ("type_vocab_size", BIG, f"got {BIG}"),
        ("type_vocab_size", 2.5, "got 2.5"),
        ("type_vocab_size", "2", 'got "2"'),
        ("hidden_act", "relu", 'hidden_act must be "gelu", got "relu"'),
        ("hidden_act", 5, "got 5"),
        (
            "model_type",
            5,
            'model_type must be one of "bert", "roberta", "xlm-roberta", "mpnet", "nomic_bert", got 5',
        ),
        ("position_embedding_type", "relative_key", 'position_embedding_type must be "absolute"'),
    ],
)
def test_config_values_are_range_checked(
    minilm_dir: Path, tmp_path: Path, key: str, value: object, expected: str
) -> None:
    cfg = minilm_config(minilm_dir)
    cfg[key] = value
    folder = link_model(minilm_dir, tmp_path / "m", {"config.json": json_bytes(cfg)})
    msg = load_error(folder)
    assert "config.json" in msg and expected in msg, msg


def test_layer_norm_eps_minus_one_is_refused_not_nan(minilm_dir: Path, tmp_path: Path) -> None:
    """The reported case: eps = -1 was accepted and every vector was NaN."""
    cfg = minilm_config(minilm_dir)
    cfg["layer_norm_eps"] = -1.0
    folder = link_model(minilm_dir, tmp_path / "m", {"config.json": json_bytes(cfg)})
    msg = load_error(folder)
    assert "layer_norm_eps" in msg and "(0, 1]" in msg and "-1.0" in msg


@pytest.mark.parametrize(
    ("rel", "content", "expected"),
    [
        ("sentence_bert_config.json", {"max_seq_length": "256"}, "max_seq_length must be an integer between 2 and"),
        ("sentence_bert_config.json", {"max_seq_length": -5}, "got -5"),
        ("sentence_bert_config.json", {"max_seq_length": 1}, "got 1"),
        ("sentence_bert_config.json", {"do_lower_case": "yes"}, 'do_lower_case must be true or false, got "yes"'),
        ("sentence_bert_config.json", [1, 2], "must hold a JSON object"),
        ("modules.json", {"a": 1}, "must hold a JSON list of modules"),
        ("modules.json", [5], "module 0 must be a JSON object"),
        (
            "modules.json",
            [{"type": "sentence_transformers.models.Pooling", "path": "../../../../etc"}],
            "must be a relative path inside the model folder",
        ),
        ("modules.json", [{"type": 7, "path": ""}], "module 0: type must be a string, got 7"),
        ("modules.json", [{"type": "x.WeightedLayerPooling", "path": "2"}], "is not supported"),
        ("modules.json", [{"type": "sentence_transformers.models.Dense", "path": "2"}], "got it before Pooling"),
        ("1_Pooling/config.json", {"pooling_mode_mean_tokens": "true"}, "pooling_mode_mean_tokens must be true or"),
        (
            "1_Pooling/config.json",
            {"pooling_mode_mean_tokens": True, "word_embedding_dimension": -384},
            "word_embedding_dimension must be an integer between 1 and 4096, got -384",
        ),
        ("1_Pooling/config.json", {"pooling_mode_max_tokens": True}, "is not supported"),
    ],
)
def test_sentence_transformers_files_are_checked(
    minilm_dir: Path, tmp_path: Path, rel: str, content: object, expected: str
) -> None:
    folder = link_model(minilm_dir, tmp_path / "m", {rel: json_bytes(content)})
    msg = load_error(folder)
    assert expected in msg, msg


def test_special_files_are_refused_before_reading(minilm_dir: Path, tmp_path: Path) -> None:
    """A configuration file that is a device (endless) or a huge file is
    refused without being read (in a child under a memory limit)."""
    folder = link_model(minilm_dir, tmp_path / "m")
    (folder / "config.json").unlink()
    (folder / "config.json").symlink_to("/dev/zero")
    out = limited_load(folder)
    assert out.startswith("REFUSED EmbedError") and "is not a regular file" in out, out
    (folder / "config.json").unlink()
    with open(folder / "config.json", "wb") as f:
        f.truncate(10 << 30)  # sparse: 10 GiB of zeros, no disk used
    out = limited_load(folder)
    assert "holds 10737418240 bytes, more than the 1048576 bytes accepted" in out, out


# -- item 3: sizes from the files are computed without overflow -------------------


def test_type_vocab_size_2_pow_62_with_empty_tensor_is_refused(minilm_dir: Path, tmp_path: Path) -> None:
    """The reported case: 2**62 x 384 wrapped to 0 bytes, the model loaded,
    and the first embed raised PanicException."""
    cfg = minilm_config(minilm_dir)
    cfg["type_vocab_size"] = BIG
    header, body = read_safetensors(minilm_dir / "model.safetensors")
    entry = header["embeddings.token_type_embeddings.weight"]
    entry["shape"] = [BIG, 384]
    entry["data_offsets"] = [entry["data_offsets"][0]] * 2
    folder = link_model(
        minilm_dir,
        tmp_path / "m",
        {"config.json": json_bytes(cfg), "model.safetensors": safetensors_file(header, body)},
    )
    msg = load_error(folder)
    assert "type_vocab_size" in msg and str(BIG) in msg


@pytest.mark.parametrize(
    ("shape", "dtype", "span", "expected"),
    [
        ([BIG, 384], "F32", 0, "overflows 64 bits"),
        ([BIG], "F32", 0, "needs more than 2^64 bytes"),
        ([2**32, 2**32], "U8", 0, "overflows 64 bits"),
        ([3], "F16", 8, "needs 6 bytes, but its data_offsets span 8 bytes"),
        ([-1], "F32", 4, "malformed shape"),
        ([1.5], "F32", 4, "malformed shape"),
    ],
)
def test_safetensors_sizes_are_checked(
    minilm_dir: Path, tmp_path: Path, shape: object, dtype: str, span: int, expected: str
) -> None:
    """An extra tensor whose size overflows or does not match its byte range
    makes the file invalid, whether or not the model reads that tensor."""
    header, body = read_safetensors(minilm_dir / "model.safetensors")
    header["pooler.extra.weight"] = {"dtype": dtype, "shape": shape, "data_offsets": [0, span]}
    folder = link_model(minilm_dir, tmp_path / "m", {"model.safetensors": safetensors_file(header, body)})
    msg = load_error(folder)
    assert "pooler.extra.weight" in msg and expected in msg, msg


def test_safetensors_offsets_and_header_length(minilm_dir: Path, tmp_path: Path) -> None:
    header, body = read_safetensors(minilm_dir / "model.safetensors")
    name = "embeddings.LayerNorm.bias"
    header[name]["data_offsets"] = [2**64 - 2, 2**64 - 1]
    folder = link_model(minilm_dir, tmp_path / "a", {"model.safetensors": safetensors_file(header, body)})
    assert "the file is truncated" in load_error(folder)
    raw = (minilm_dir / "model.safetensors").read_bytes()
    for n in (2**64 - 1, 2**64 - 8, 2**63):
        folder = link_model(minilm_dir, tmp_path / f"n{n}", {"model.safetensors": n.to_bytes(8, "little") + raw[8:]})
        assert "header length" in load_error(folder)


def test_oversized_weights_file_is_refused_before_reading(minilm_dir: Path, tmp_path: Path) -> None:
    folder = link_model(minilm_dir, tmp_path / "m")
    (folder / "model.safetensors").unlink()
    with open(folder / "model.safetensors", "wb") as f:
        f.truncate(1 << 40)  # sparse 1 TiB
    out = limited_load(folder)
    assert out.startswith("REFUSED EmbedError") and "holds 1099511627776 bytes, more than the" in out, out


def test_image_checkpoint_sizes_are_checked(tmp_path: Path) -> None:
    weights = mw.make_weights()
    data = mw.safetensors_bytes(weights)
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    header["classifier.0.weight"] = {"dtype": "F32", "shape": [BIG, 384], "data_offsets": [0, 0]}
    path = tmp_path / "model.safetensors"
    path.write_bytes(safetensors_file(header, data[8 + n :]))
    with pytest.raises(rve.EmbedError, match=r"classifier.0.weight has shape .* overflows 64 bits"):
        rve.ImageEmbedder.from_pretrained(weights=path)


# -- item 1: an embedder never returns non-finite vectors --------------------------


def test_non_finite_weights_are_refused_at_load(minilm_dir: Path, tmp_path: Path) -> None:
    header, body = read_safetensors(minilm_dir / "model.safetensors")
    name = "encoder.layer.3.output.dense.bias"
    bad = np.zeros(384, np.float32)
    bad[17] = np.nan
    body = patch_tensor(header, body, name, bad)
    folder = link_model(minilm_dir, tmp_path / "m", {"model.safetensors": safetensors_file(header, body)})
    msg = load_error(folder)
    assert f"tensor {name} holds a non-finite value (NaN) at flat index 17" in msg


def test_overflowing_activations_raise_instead_of_returning_nan(minilm_dir: Path, tmp_path: Path) -> None:
    """Finite weights whose activations overflow float32: the embedder
    raises EmbedError instead of returning NaN vectors."""
    header, body = read_safetensors(minilm_dir / "model.safetensors")
    huge = np.full(384, 3e38, np.float32)
    body = patch_tensor(header, body, "embeddings.LayerNorm.weight", huge)
    folder = link_model(minilm_dir, tmp_path / "m", {"model.safetensors": safetensors_file(header, body)})
    emb = rve.Embedder.from_pretrained(folder)
    with pytest.raises(rve.EmbedError, match=r"non-finite value .* of the embedding of the text"):
        emb.embed("hello world")
    with pytest.raises(rve.EmbedError, match=r"non-finite value .* of the embedding of texts\[\d\]"):
        emb.embed_batch(["hello", "world"])


def test_clean_errors_are_ruvector_errors(minilm_dir: Path, tmp_path: Path) -> None:
    """Everything above is catchable with ``except RuVectorError``."""
    cfg = minilm_config(minilm_dir)
    cfg["layer_norm_eps"] = -3
    folder = link_model(minilm_dir, tmp_path / "m", {"config.json": json_bytes(cfg)})
    with pytest.raises(RuVectorError):
        rve.Embedder.from_pretrained(folder)


def test_image_batchnorm_that_overflows_when_folded_is_refused(tmp_path: Path) -> None:
    weights = mw.make_weights()
    weights["features.0.1.weight"] = np.full(16, 3e38, np.float32)
    weights["features.0.1.running_var"] = np.zeros(16, np.float32)
    path = mw.write_safetensors(tmp_path / "model.safetensors", weights)
    with pytest.raises(rve.EmbedError, match=r"BatchNorm of features.0 .* overflows float32"):
        rve.ImageEmbedder.from_pretrained(weights=path)


def test_image_features_are_never_non_finite(tmp_path: Path) -> None:
    """Finite weights whose activations overflow: EmbedError, not NaN."""
    weights = mw.make_weights()
    # Channels of alternating sign near float32's largest value: one sign
    # overflows whatever the input.
    sign = np.where(np.arange(576) % 2 == 0, 1.0, -1.0).astype(np.float32)
    weights["features.12.0.weight"] = (sign[:, None, None, None] * np.full((576, 96, 1, 1), 1e38)).astype(np.float32)
    weights["features.12.1.weight"] = np.ones(576, np.float32)
    weights["features.12.1.bias"] = np.full(576, 3.4e38, np.float32)
    weights["features.12.1.running_mean"] = np.zeros(576, np.float32)
    weights["features.12.1.running_var"] = np.ones(576, np.float32)
    emb = rve.ImageEmbedder.from_pretrained(weights=mw.write_safetensors(tmp_path / "model.safetensors", weights))
    img = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    with pytest.raises(rve.EmbedError, match=r"non-finite value .* of the embedding of the image"):
        emb.embed_image(img)
    with pytest.raises(rve.EmbedError, match=r"non-finite value .* of the embedding of images\[\d\]"):
        emb.embed_images([img, img])
