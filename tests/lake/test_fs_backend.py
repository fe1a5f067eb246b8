"""FsBackend: the crate's ruvec1 files, with same-second rewrites seen,
sizes checked before reading, and names that cannot escape the root."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

import ruvector_lake as rl

from .conftest import clustered, exact_top, sparse_ids


def test_write_register_search(tmp_path: Path) -> None:
    x, ids = clustered(500, 24, seed=2), sparse_ids(500, seed=2)
    fs = rl.FsBackend("fs", tmp_path / "root")
    path = fs.write("docs", ids, x)
    assert Path(path) == tmp_path / "root" / "docs.ruvec"
    assert Path(path).stat().st_size == 24 + 500 * (8 + 4 * 24)
    assert fs.collections() == ["docs"] and fs.name == "fs" and Path(fs.root) == tmp_path / "root"
    lake = rl.RuLake()
    lake.register_backend(fs)
    assert [h.id for h in lake.search_one("fs", "docs", x[9], k=5)] == exact_top(x, ids, x[9], 5)
    # A second backend over the same directory reads the same file.
    other = rl.FsBackend("other", tmp_path / "root")
    other.register("docs", "docs.ruvec")
    lake.register_backend(other)
    assert lake.search_one("other", "docs", x[9], k=1)[0].id == int(ids[9])


def test_a_rewrite_within_the_same_second_is_seen(tmp_path: Path) -> None:
    """Upstream defect: the generation was the mtime in whole seconds, so a
    rewrite within the same second was served stale under FRESH."""
    fs = rl.FsBackend("fs", tmp_path)
    q = np.full(4, 9.0, dtype=np.float32)
    lake = rl.RuLake(consistency=rl.Consistency.FRESH)
    lake.register_backend(fs)
    for gen in range(5):  # five rewrites in well under a second
        fs.write("c", [gen], q[None, :] + gen)
        assert lake.search_one("fs", "c", q + gen, k=1)[0].id == gen
    assert lake.cache_stats().primes == 5


def test_external_rewrite_of_the_same_size_is_seen(tmp_path: Path) -> None:
    fs = rl.FsBackend("fs", tmp_path)
    fs.write("c", [1, 2], np.eye(2, dtype=np.float32))
    lake = rl.RuLake()
    lake.register_backend(fs)
    assert lake.search_one("fs", "c", np.array([1, 0], dtype=np.float32), k=1)[0].id == 1
    other = rl.FsBackend("writer", tmp_path)
    other.write("c", [7, 8], np.eye(2, dtype=np.float32), filename="c.ruvec")
    assert lake.search_one("fs", "c", np.array([1, 0], dtype=np.float32), k=1)[0].id == 7


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ".", "", "c:evil", "a\\b", "bad\x00", "\n"])
def test_path_traversal_in_names_is_refused(tmp_path: Path, name: str) -> None:
    fs = rl.FsBackend("fs", tmp_path / "root")
    one = np.ones((1, 2), dtype=np.float32)
    with pytest.raises(rl.InvalidArgument, match="not allowed"):
        fs.register("c", name)
    with pytest.raises(rl.InvalidArgument, match="not allowed"):
        fs.write("c", [1], one, filename=name)
    with pytest.raises(rl.InvalidArgument, match="not allowed"):
        fs.write(name, [1], one, filename="ok.ruvec")
    with pytest.raises(rl.InvalidArgument, match="not allowed"):
        rl.FsBackend(name, tmp_path)
    with pytest.raises(rl.InvalidArgument, match="not allowed"):
        rl.LocalBackend(name)
    assert not (tmp_path / "x").exists() and list((tmp_path / "root").iterdir()) == []


def _file(tmp_path: Path, count: int, dim: int, body: bytes, reserved: int = 0) -> rl.RuLake:
    (tmp_path / "h.ruvec").write_bytes(b"ruvec1\0\0" + struct.pack("<QII", count, dim, reserved) + body)
    fs = rl.FsBackend("fs", tmp_path)
    fs.register("h", "h.ruvec")
    lake = rl.RuLake()
    lake.register_backend(fs)
    return lake


def test_hostile_header_is_refused_before_allocating(tmp_path: Path) -> None:
    """Upstream defect: a header claiming 100M vectors reserved gigabytes
    before any payload was read."""
    lake = _file(tmp_path, 100_000_000, 2048, b"")
    with pytest.raises(rl.BackendError, match="but the file has 24 bytes") as info:
        lake.search_one("fs", "h", np.ones(2048, dtype=np.float32))
    assert info.value.backend == "fs"


@pytest.mark.parametrize(
    ("count", "dim", "extra", "reserved", "needle"),
    [
        (2, 3, 10, 0, "claims"),
        (2, 3, -1, 0, "claims"),
        (1, 0, 0, 0, "dimension 0"),
        (1, 4096, 0, 0, "dimension 4096"),
        (1, 3, 0, 7, "reserved"),
    ],
)
def test_corrupted_files_are_backend_errors(
    tmp_path: Path, count: int, dim: int, extra: int, reserved: int, needle: str
) -> None:
    body = b"\0" * max(0, count * (8 + 4 * dim) + extra)
    lake = _file(tmp_path, count, dim, body, reserved)
    with pytest.raises(rl.BackendError, match=needle):
        lake.search_one("fs", "h", np.ones(3, dtype=np.float32))


def test_bad_magic_missing_file_and_nan(tmp_path: Path) -> None:
    (tmp_path / "m.ruvec").write_bytes(b"notruvec" + b"\0" * 40)
    fs = rl.FsBackend("fs", tmp_path)
    fs.register("m", "m.ruvec")
    fs.register("gone", "gone.ruvec")
    lake = rl.RuLake()
    lake.register_backend(fs)
    with pytest.raises(rl.BackendError, match="bad magic"):
        lake.search_one("fs", "m", np.ones(3, dtype=np.float32))
    with pytest.raises(rl.BackendError, match=r"gone\.ruvec"):
        lake.search_one("fs", "gone", np.ones(3, dtype=np.float32))
    with pytest.raises(rl.LakeError, match="no collection"):
        lake.search_one("fs", "unregistered", np.ones(3, dtype=np.float32))
    nan = struct.pack("<Q", 1) + struct.pack("<3f", 1.0, float("nan"), 0.0)
    (tmp_path / "n.ruvec").write_bytes(b"ruvec1\0\0" + struct.pack("<QII", 1, 3, 0) + nan)
    fs.register("n", "n.ruvec")
    with pytest.raises(rl.BackendError, match="finite"):
        lake.search_one("fs", "n", np.ones(3, dtype=np.float32))
