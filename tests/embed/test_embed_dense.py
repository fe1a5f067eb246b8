"""sentence-transformers' ``Dense`` modules and last-token pooling (issue 15),
against ``SentenceTransformer.encode``.

The folders under ``data/dense-reference`` are small random-weight BERT
models assembled from sentence-transformers' own modules and saved by it
(``make_dense_reference.py`` there, which needs PyTorch; these tests do not):
last-token pooling, two Dense modules (Tanh with a bias, Identity without)
and Normalize; and mean pooling with one Dense module, no Normalize.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import numpy.typing as npt
import pytest

import ruvector_embed as rve
from ruvector_common.errors import EmbedError

DATA = Path(__file__).parent / "data" / "dense-reference"
FOLDERS = ["lasttoken-dense", "mean-dense"]
#: Largest absolute difference allowed against sentence-transformers' output.
MAX_ABS = 1e-5

Array = npt.NDArray[np.float32]


def meta(name: str) -> Dict[str, Any]:
    out: Dict[str, Any] = json.loads((DATA / name / "reference.json").read_text(encoding="utf-8"))
    return out


def reference(name: str) -> Array:
    with np.load(DATA / name / "reference.npz") as z:
        out: Array = z["embeddings"].astype(np.float32)
    return out


def copy(tmp_path: Path, name: str = "lasttoken-dense") -> Path:
    dst = tmp_path / name
    shutil.copytree(DATA / name, dst)
    return dst


def edit_json(path: Path, **changes: Any) -> None:
    cfg = json.loads(path.read_text())
    cfg.update(changes)
    path.write_text(json.dumps(cfg))


def load_error(folder: Path) -> str:
    with pytest.raises(EmbedError) as e:
        rve.Embedder.from_pretrained(folder)
    return str(e.value)


@pytest.mark.parametrize("name", FOLDERS)
def test_matches_sentence_transformers(name: str) -> None:
    m = meta(name)
    texts: List[str] = m["texts"]
    want = reference(name)
    emb = rve.Embedder.from_pretrained(DATA / name)
    assert emb.dim == m["dim"] == want.shape[1]
    assert emb.max_seq_length == m["max_seq_length"]
    assert [emb.tokenize(t) for t in texts] == m["ids"]
    got = emb.encode(texts)
    assert got.shape == want.shape == (len(texts), m["dim"])
    diff = float(np.abs(got - want).max())
    assert diff <= MAX_ABS, f"{name}: max |diff| = {diff:.3g}"
    # One at a time gives the same rows as the packed batch.
    for i, t in enumerate(texts):
        np.testing.assert_allclose(emb.embed(t), want[i], rtol=0, atol=MAX_ABS)


def test_folder_settings_are_read() -> None:
    last = rve.Embedder.from_pretrained(DATA / "lasttoken-dense")
    assert last.pooling == "lasttoken" and last.normalize and last.dim == 16
    np.testing.assert_allclose(np.linalg.norm(last.encode(meta("lasttoken-dense")["texts"]), axis=1), 1.0, atol=1e-6)
    mean = rve.Embedder.from_pretrained(DATA / "mean-dense")
    assert mean.pooling == "mean" and not mean.normalize and mean.dim == 48
    # Tanh bounds every value; the reference is not already unit length.
    got = mean.encode(meta("mean-dense")["texts"])
    assert float(np.abs(got).max()) < 1.0
    assert float(np.abs(np.linalg.norm(got, axis=1) - 1.0).max()) > 0.1


def test_last_token_of_the_truncated_text_is_pooled() -> None:
    """The long text is cut at max_seq_length; its embedding is that of the
    last kept token (the reference agrees only if truncation comes first)."""
    m = meta("lasttoken-dense")
    emb = rve.Embedder.from_pretrained(DATA / "lasttoken-dense")
    assert len(m["ids"][-1]) == m["max_seq_length"]
    np.testing.assert_allclose(emb.embed(m["texts"][-1]), reference("lasttoken-dense")[-1], rtol=0, atol=MAX_ABS)


def test_pooling_and_dense_matter(tmp_path: Path) -> None:
    texts: List[str] = meta("lasttoken-dense")["texts"]
    want = reference("lasttoken-dense")
    mean = rve.Embedder.from_pretrained(DATA / "lasttoken-dense", pooling="mean").encode(texts)
    assert mean.shape == want.shape
    assert float(np.abs(mean - want).max()) > 100 * MAX_ABS
    # Without its Dense modules the model gives the encoder's pooled width.
    folder = copy(tmp_path)
    modules = json.loads((folder / "modules.json").read_text())
    (folder / "modules.json").write_text(json.dumps([m for m in modules if not m["type"].endswith(".Dense")]))
    bare = rve.Embedder.from_pretrained(folder)
    assert bare.dim == 32 and bare.encode(texts).shape == (len(texts), 32)


def test_last_token_pooling_can_be_asked_for() -> None:
    texts: List[str] = meta("mean-dense")["texts"]
    emb = rve.Embedder.from_pretrained(DATA / "mean-dense", pooling="lasttoken")
    assert emb.pooling == "lasttoken"
    got = emb.encode(texts)
    assert float(np.abs(got - reference("mean-dense")).max()) > 100 * MAX_ABS
    with pytest.raises(ValueError, match='"lasttoken", got "max"'):
        rve.Embedder.from_pretrained(DATA / "mean-dense", pooling="max")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"in_features": 31}, "in_features must be the width of the embedding that reaches this module (32), got 31"),
        ({"out_features": 0}, "out_features must be an integer between 1 and 16384, got 0"),
        ({"out_features": 1 << 20}, "out_features must be an integer between 1 and 16384, got 1048576"),
        (
            {"activation_function": "torch.nn.modules.activation.ReLU"},
            'activation_function must be "torch.nn.modules.activation.Tanh" or '
            '"torch.nn.modules.linear.Identity", got "torch.nn.modules.activation.ReLU"',
        ),
        ({"activation_function": 3}, "activation_function must be"),
        ({"bias": "yes"}, 'bias must be true or false, got "yes"'),
        ({"bias": False}, "says bias: false"),
        ({"use_residual": True}, "use_residual must be false"),
        ({"module_input_name": "token_embeddings"}, 'module_input_name must be "sentence_embedding"'),
    ],
)
def test_bad_dense_config_is_refused(tmp_path: Path, changes: Dict[str, Any], expected: str) -> None:
    folder = copy(tmp_path)
    edit_json(folder / "2_Dense" / "config.json", **changes)
    msg = load_error(folder)
    assert expected in msg, msg


def test_second_dense_must_take_the_first_ones_output(tmp_path: Path) -> None:
    folder = copy(tmp_path)
    edit_json(folder / "3_Dense" / "config.json", in_features=32)
    msg = load_error(folder)
    assert "(24), got 32" in msg and "3_Dense" in msg, msg


def test_weight_shape_must_match_the_config(tmp_path: Path) -> None:
    folder = copy(tmp_path, "mean-dense")
    edit_json(folder / "2_Dense" / "config.json", out_features=40)
    msg = load_error(folder)
    assert "2_Dense" in msg and "linear.weight" in msg and "40" in msg and "48" in msg, msg


def test_bias_missing_from_the_weights_is_refused(tmp_path: Path) -> None:
    folder = copy(tmp_path)
    edit_json(folder / "3_Dense" / "config.json", bias=True)
    msg = load_error(folder)
    assert "linear.bias" in msg and "3_Dense" in msg, msg


def test_missing_dense_weights_are_named(tmp_path: Path) -> None:
    folder = copy(tmp_path)
    (folder / "2_Dense" / "model.safetensors").rename(folder / "2_Dense" / "pytorch_model.bin")
    msg = load_error(folder)
    assert "2_Dense" in msg and "is missing" in msg and "pytorch_model.bin" in msg, msg


def test_dense_weight_file_size_is_bounded(tmp_path: Path) -> None:
    folder = copy(tmp_path)
    with (folder / "2_Dense" / "model.safetensors").open("ab") as f:
        f.write(bytes(2 << 20))
    msg = load_error(folder)
    assert "2_Dense/model.safetensors" in msg and "more than the" in msg, msg


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ([0, 2, 1, 3, 4], "must come after the Pooling module and before any Normalize module, got it before Pooling"),
        ([0, 1, 2, 4, 3], "got it after Normalize"),
    ],
)
def test_dense_module_order_is_checked(tmp_path: Path, order: List[int], expected: str) -> None:
    folder = copy(tmp_path)
    modules = json.loads((folder / "modules.json").read_text())
    (folder / "modules.json").write_text(json.dumps([modules[i] for i in order]))
    msg = load_error(folder)
    assert expected in msg, msg


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("max", 'pooling_mode must be one of "mean", "cls", "lasttoken", got "max"'),
        (["mean", "cls"], 'got ["mean","cls"]'),
        (7, "got 7"),
    ],
)
def test_pooling_mode_is_checked(tmp_path: Path, mode: object, expected: str) -> None:
    folder = copy(tmp_path)
    edit_json(folder / "1_Pooling" / "config.json", pooling_mode=mode)
    msg = load_error(folder)
    assert expected in msg, msg


def test_legacy_last_token_flag_is_read(tmp_path: Path) -> None:
    """Pooling configs written before sentence-transformers 5.2 use one
    boolean per mode."""
    folder = copy(tmp_path)
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 32, "pooling_mode_lasttoken": True, "pooling_mode_mean_tokens": False})
    )
    emb = rve.Embedder.from_pretrained(folder)
    assert emb.pooling == "lasttoken"
    got = emb.encode(meta("lasttoken-dense")["texts"])
    np.testing.assert_allclose(got, reference("lasttoken-dense"), rtol=0, atol=MAX_ABS)


def test_pickle_checks_the_dense_weights_too(tmp_path: Path) -> None:
    folder = copy(tmp_path)
    emb = rve.Embedder.from_pretrained(folder)
    texts: List[str] = meta("lasttoken-dense")["texts"]
    again = pickle.loads(pickle.dumps(emb))
    assert again.dim == 16 and again.pooling == "lasttoken"
    np.testing.assert_allclose(again.encode(texts), reference("lasttoken-dense"), rtol=0, atol=MAX_ABS)
    state = pickle.dumps(emb)
    data = bytearray((folder / "3_Dense" / "model.safetensors").read_bytes())
    data[-1] ^= 0x40
    (folder / "3_Dense" / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(EmbedError, match=r"3_Dense/model\.safetensors"):
        pickle.loads(state)
