"""Pickling of :class:`Embedder` and :class:`ImageEmbedder` by reference.

A pickle holds no weights: it names the model's files (the folder of a text
model, the weights file of an image model), their sizes and SHA-256 digests,
and the settings (pooling, normalisation, sequence length, prompts). Unpickling checks
every file again, size first, then digest, and loads the model from the same
paths; a file that is missing or changed raises :class:`EmbedError` naming
the file, what the pickle expected and what was found. So a pickle moves to
worker processes (multiprocessing, joblib, Dask, Ray) that see the same
files, without copying the model into every message.

Digests of a file are computed once per process for a given size and
modification time, so pickling an embedder again (one task after another)
costs a ``stat`` per file.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ruvector_common.errors import EmbedError

#: Format of the pickled state (a different value is refused by name).
STATE_VERSION = 1

_DIGESTS: Dict[Tuple[str, int, int], str] = {}


def _digest(path: Path) -> Tuple[int, str]:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _DIGESTS[key] = h.hexdigest()
    return st.st_size, _DIGESTS[key]


def _files(root: Path) -> List[Path]:
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def fingerprint(root: Path) -> Dict[str, Tuple[int, str]]:
    """``{path relative to root: (size, sha256)}`` of the model's files."""
    out = {}
    for p in _files(root):
        rel = "." if p == root else p.relative_to(root).as_posix()
        out[rel] = _digest(p)
    return out


def verify(root: Path, files: Dict[str, Tuple[int, str]], what: str) -> None:
    """Raises :class:`EmbedError` unless every file is as fingerprinted."""
    for rel, (size, sha) in sorted(files.items()):
        p = root if rel == "." else root / rel
        if not p.is_file():
            raise EmbedError(f"cannot unpickle the {what}: its file {p} is missing (expected {size} bytes)")
        got_size, got_sha = _digest(p)
        if got_size != size:
            raise EmbedError(
                f"cannot unpickle the {what}: its file {p} changed since it was pickled: "
                f"expected {size} bytes, got {got_size}"
            )
        if got_sha != sha:
            raise EmbedError(
                f"cannot unpickle the {what}: its file {p} changed since it was pickled: "
                f"expected SHA-256 {sha}, got {got_sha}"
            )


def _check_state(state: Any, kind: str) -> Dict[str, Any]:
    if not isinstance(state, dict) or state.get("kind") != kind:
        got = state.get("kind") if isinstance(state, dict) else type(state).__name__
        raise EmbedError(f"cannot unpickle: expected the state of an {kind}, got {got!r}")
    if state.get("version") != STATE_VERSION:
        raise EmbedError(
            f"cannot unpickle the {kind}: expected pickle state version {STATE_VERSION}, "
            f"got {state.get('version')!r} (pickled by another ruvector-embed version)"
        )
    return state


def reduce_embedder(emb: Any) -> Tuple[Any, Tuple[Dict[str, Any]]]:
    root = Path(emb.path)
    state = {
        "kind": "Embedder",
        "version": STATE_VERSION,
        "path": os.fspath(root),
        "pooling": emb.pooling,
        "normalize": emb.normalize,
        "max_seq_length": emb.max_seq_length,
        "prompts": emb.prompts,
        "default_prompt_name": emb.default_prompt_name,
        "files": fingerprint(root),
    }
    return (restore_embedder, (state,))


def restore_embedder(state: Any) -> Any:
    from . import Embedder

    s = _check_state(state, "Embedder")
    verify(Path(s["path"]), s["files"], "Embedder")
    return Embedder.from_pretrained(
        s["path"],
        pooling=s["pooling"],
        normalize=s["normalize"],
        max_seq_length=s["max_seq_length"],
        # Absent from pickles made before prompts existed: the folder's.
        prompts=s.get("prompts"),
        default_prompt_name=s.get("default_prompt_name"),
        download=False,
    )


def reduce_image_embedder(emb: Any) -> Tuple[Any, Tuple[Dict[str, Any]]]:
    weights: Optional[str] = emb.weights_path
    state = {
        "kind": "ImageEmbedder",
        "version": STATE_VERSION,
        "name": emb.name,
        "weights": weights,
        "normalize": emb.normalize,
        "files": {} if weights is None else fingerprint(Path(weights)),
    }
    return (restore_image_embedder, (state,))


def restore_image_embedder(state: Any) -> Any:
    from . import ImageEmbedder

    s = _check_state(state, "ImageEmbedder")
    weights = s["weights"]
    if weights is not None:
        verify(Path(weights), s["files"], "ImageEmbedder")
    return ImageEmbedder.from_pretrained(
        s["name"], weights="untrained" if weights is None else weights, normalize=s["normalize"]
    )
