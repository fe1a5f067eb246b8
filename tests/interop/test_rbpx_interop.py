"""`.rbpx` files move both ways between the Python SDK and the Rust crate
`ruvector-rabitq`, with bit-identical search results.

The Rust side is the test tool `tools/rbpx-interop` (built by the nox
`tests` session, which points ``RUVECTOR_INTEROP_BIN`` at it).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Callable, List, Tuple, Union

import numpy as np
import numpy.typing as npt
import pytest

import ruvector_rabitq as rr

BIN = os.environ.get("RUVECTOR_INTEROP_BIN", "")

pytestmark = pytest.mark.skipif(not BIN, reason="RUVECTOR_INTEROP_BIN is not set (the nox tests session sets it)")

Hits = List[List[Tuple[int, float]]]


def clustered(n: int, dim: int, seed: int) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-2, 2, size=(16, dim)).astype(np.float32)
    rows = centres[rng.integers(0, 16, size=n)]
    return (rows + rng.normal(0, 0.3, size=(n, dim))).astype(np.float32)


def rust(*args: str) -> str:
    done = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def rust_search(path: Path, queries: npt.NDArray[np.float32], k: int, tmp: Path) -> Hits:
    qfile = tmp / "queries.f32"
    queries.astype("<f4").tofile(qfile)
    out: Hits = []
    for line in rust("search", str(path), str(qfile), str(k)).splitlines():
        row: List[Tuple[int, float]] = []
        for pair in line.split():
            id_, bits = pair.split(":")
            row.append((int(id_), float(np.array(int(bits), dtype=np.uint32).view(np.float32))))
        out.append(row)
    return out


def py_search(idx: rr.RabitqPlusIndex, queries: npt.NDArray[np.float32], k: int) -> Hits:
    return [[(h.id, h.score) for h in idx.search(q, k)] for q in queries]


@pytest.mark.parametrize("dim", [64, 100])
def test_rust_writes_python_reads_identically(tmp_path: Path, dim: int) -> None:
    x = clustered(1500, dim, seed=dim)
    ids = (np.arange(1500, dtype=np.uint32) * 7 + 3).astype("<u4")
    vfile, idfile, index_file = tmp_path / "v.f32", tmp_path / "ids.u32", tmp_path / "rust.rbpx"
    x.astype("<f4").tofile(vfile)
    ids.tofile(idfile)
    rust("write", str(index_file), str(vfile), str(dim), "1234", "8", str(idfile))

    idx = rr.RabitqPlusIndex.load(index_file)
    assert (len(idx), idx.dim, idx.seed, idx.rerank_factor) == (1500, dim, 1234, 8)
    assert np.array_equal(idx.ids, ids.astype(np.int64))
    assert np.array_equal(np.asarray(idx), x)
    queries = x[::97]
    assert py_search(idx, queries, 10) == rust_search(index_file, queries, 10, tmp_path)


def test_python_writes_rust_reads_identically(tmp_path: Path) -> None:
    x = clustered(2000, 128, seed=5)
    ids = np.arange(2000, dtype=np.int64)[::-1] + 10_000
    idx = rr.RabitqPlusIndex.build(x, ids, seed=77, rerank_factor=12)
    path = tmp_path / "py.rbpx"
    idx.save(path)
    assert path.read_bytes()[:8] == b"rbpx0001"
    queries = x[5::113]
    assert rust_search(path, queries, 10, tmp_path) == py_search(idx, queries, 10)


MakeIndex = Callable[[npt.NDArray[np.float32]], Union[rr.RabitqPlusIndex, rr.FlatF32Index, rr.RabitqAsymIndex]]
MISREAD_MAKERS: List[MakeIndex] = [
    lambda x: rr.RabitqPlusIndex.build(x, rotation="hadamard"),
    lambda x: rr.FlatF32Index.build(x),
    lambda x: rr.RabitqAsymIndex.build(x, rerank_factor=4),
]


@pytest.mark.parametrize(
    "make",
    MISREAD_MAKERS,
    ids=["plus-hadamard", "flat", "asym"],
)
def test_rust_refuses_files_it_would_misread(tmp_path: Path, make: MakeIndex) -> None:
    """Only a Haar RabitqPlusIndex means the same thing to the crate; other
    kinds get a magic the crate refuses instead of loading a different index."""
    x = clustered(200, 32, seed=1)
    idx = make(x)
    path = tmp_path / "other.rbpx"
    idx.save(path)
    qfile = tmp_path / "q.f32"
    x[:1].astype("<f4").tofile(qfile)
    done = subprocess.run([BIN, "search", str(path), str(qfile), "5"], capture_output=True, text=True)
    assert done.returncode == 3
    assert "bad magic" in done.stderr
