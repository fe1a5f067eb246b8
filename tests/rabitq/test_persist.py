"""Saving and loading ``.rbpx`` files: the version 1 layout.

``save`` writes version 1 (below, the Rust crate's layout) only for a
RabitqPlusIndex with the Haar rotation, metric l2 and u32 ids; every other
index is written in version 2 (tested in ``test_serialise.py``). Version 1
files of every kind, as earlier releases wrote them, must still load: this
file builds them byte by byte with :func:`rbpx`.

The version 1 layout (all integers little-endian)::

    header   32 bytes  magic (8) | version u32 = 1 | dim u32 | seed u64 | rerank u32 | n u32
    rows     n * (u32 id, dim * f32)
    [ids64]  n * u64   only when flags bit 0 is set (FlatF32Index ids above u32)
    trailer  16 bytes  kind u8 | rotation u8 | flags u8 | reserved u8 = 0 | crc32 u32 | b"RVPYTRL1"

The magic is ``b"rbpx0001"`` (the Rust crate's own) for a RabitqPlusIndex
with the Haar rotation and ``b"rvpx0001"`` for everything else. The CRC-32
covers every byte before it. Without the trailer, a file is exactly the Rust
crate's layout, which loads as a RabitqPlusIndex. Every file has one reading:
a file ending with ``b"RVPYTRL1"`` is the SDK's and nothing else, and the
size must be exactly what the header says (no byte missing, none trailing).

Every malformed file must raise PersistError (an OSError) naming the path;
none may crash, hang or allocate what the header claims before checking it.
"""

from __future__ import annotations

import os
import random
import re
import signal
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt
import pytest

import ruvector_rabitq as rr

if TYPE_CHECKING:
    from conftest import Builder, Clustered, Data, Index, IndexClass

HEADER = struct.Struct("<8sIIQII")
TRAILER = struct.Struct("<BBBBI8s")
CRATE_MAGIC, SDK_MAGIC, TRAILER_MAGIC = b"rbpx0001", b"rvpx0001", b"RVPYTRL1"
KIND_CODE = {rr.RabitqPlusIndex: 0, rr.FlatF32Index: 1, rr.RabitqIndex: 2, rr.RabitqAsymIndex: 3, rr.IvfRabitqIndex: 4}
ROTATION_CODE = {"haar": 0, "hadamard": 1, None: 0}
SAVABLE_CLASSES = [rr.FlatF32Index, rr.RabitqPlusIndex, rr.RabitqAsymIndex, rr.IvfRabitqIndex]


def rbpx(
    *,
    dim: int,
    ids: Union[Sequence[int], npt.NDArray[np.integer[Any]]],
    vectors: npt.NDArray[np.float32],
    seed: int = 7,
    rerank: int = 3,
    kind: int = 0,
    rotation: int = 0,
    flags: Optional[int] = None,
    reserved: int = 0,
    magic: Optional[bytes] = None,
    version: int = 1,
    n: Optional[int] = None,
    trailer: bool = True,
    crc: Optional[int] = None,
) -> bytes:
    """The bytes of an ``.rbpx`` file, with every field overridable."""
    ids64 = any(i > 2**32 - 1 for i in ids)
    if magic is None:
        magic = CRATE_MAGIC if (kind, rotation, ids64) == (0, 0, False) else SDK_MAGIC
    body = bytearray(HEADER.pack(magic, version, dim, seed, rerank, len(ids) if n is None else n))
    for i, row in zip(ids, np.asarray(vectors, dtype="<f4").reshape(len(ids), dim)):
        body += struct.pack("<I", 0 if ids64 else i) + row.tobytes()
    if ids64:
        body += np.asarray(ids, dtype="<u8").tobytes()
    if not trailer:
        return bytes(body)
    body += bytes([kind, rotation, int(ids64) if flags is None else flags, reserved])
    body += struct.pack("<I", zlib.crc32(body) if crc is None else crc) + TRAILER_MAGIC
    return bytes(body)


def small(n: int = 3, dim: int = 4, seed: int = 0) -> npt.NDArray[np.float32]:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def assert_same_results(a: Any, b: Any, queries: npt.NDArray[np.float32], k: int = 10) -> None:
    for x, y in zip(a.search_batch(queries, k), b.search_batch(queries, k)):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)  # bit-identical, not merely close
    assert a.search(queries[0], k) == b.search(queries[0], k)


def load_error(cls: Any, path: Path) -> rr.PersistError:
    with pytest.raises(rr.PersistError) as err:
        cls.load(path)
    e = err.value
    assert isinstance(e, OSError)
    assert e.path == str(path)
    assert str(e).startswith(f"{path}: ")
    return e


# ── round trips ─────────────────────────────────────────────────────────────


def test_round_trip_gives_an_equal_index_with_bit_identical_results(
    data: Data, build_with_vectors: Builder, index_dir: Path
) -> None:
    x, q = data
    ids = np.arange(len(x), dtype=np.int64)[::-1] * 7 + 3  # not 0..n-1, not sorted
    idx = build_with_vectors(x, ids)
    path = index_dir / "index.rbpx"
    idx.save(path)
    back = type(idx).load(path)
    assert back == idx
    # The same repr but for memory_bytes: a loaded IVF index holds its list
    # codes exactly (installed as saved), a built one may hold growth slack.
    without_memory = re.compile(r", memory_bytes=\d+")
    assert without_memory.sub("", repr(back)) == without_memory.sub("", repr(idx))
    assert 0 < back.memory_bytes <= idx.memory_bytes
    assert (back.seed, back.rotation, back.rerank_factor, back.keeps_vectors) == (
        idx.seed,
        idx.rotation,
        idx.rerank_factor,
        idx.keeps_vectors,
    )
    np.testing.assert_array_equal(back.ids, ids)
    np.testing.assert_array_equal(np.asarray(back), x)
    assert_same_results(back, idx, q)


@pytest.mark.parametrize("rotation", ["haar", "hadamard"])
def test_plus_round_trip_at_20k_vectors_is_bit_identical(clustered: Clustered, rotation: str, index_dir: Path) -> None:
    x, q = clustered(20_000, 48, seed=3, queries=50)
    idx = rr.RabitqPlusIndex.build(x, seed=11, rerank_factor=8, rotation=rotation)
    idx.save(index_dir / "big.rbpx")
    back = rr.RabitqPlusIndex.load(index_dir / "big.rbpx")
    assert back == idx
    assert_same_results(back, idx, q)


def test_flat_ids_above_u32_survive_a_round_trip(index_dir: Path) -> None:
    x = small(4)
    ids = [0, 2**32, 2**40 + 5, 2**63 - 1]
    idx = rr.FlatF32Index.build(x, ids)
    path = index_dir / "flat.rbpx"
    idx.save(path)
    assert path.read_bytes()[35] & 1, "version 2: flags bit 0 marks the u64 id section"
    back = rr.FlatF32Index.load(path)
    assert back == idx and back.ids.tolist() == ids
    assert back.search(x[3], 1)[0].id == 2**63 - 1
    # A version 1 file (as earlier releases wrote it) still loads.
    raw = rbpx(dim=4, ids=ids, vectors=x, seed=42, rerank=1, kind=1)
    assert len(raw) == 32 + 4 * (4 + 4 * 4) + 8 * 4 + 16
    assert raw[-14] == 1, "flags bit 0 marks the u64 id block"
    path.write_bytes(raw)
    back = rr.FlatF32Index.load(path)
    assert back == idx and back.ids.tolist() == ids


def test_an_empty_index_round_trips(index_dir: Path) -> None:
    idx = rr.RabitqPlusIndex(6, seed=3, rerank_factor=2)
    idx.save(index_dir / "empty.rbpx")
    back = rr.RabitqPlusIndex.load(index_dir / "empty.rbpx")
    assert back == idx and len(back) == 0 and back.dim == 6


def test_a_loaded_index_keeps_growing_and_saves_again(data: Data, index_dir: Path) -> None:
    x, q = data
    rr.RabitqPlusIndex.build(x[:300], seed=4).save(index_dir / "a.rbpx")
    back = rr.RabitqPlusIndex.load(index_dir / "a.rbpx")
    back.add_batch(x[300:])
    assert back == rr.RabitqPlusIndex.build(x, seed=4)
    back.save(index_dir / "a.rbpx")
    assert_same_results(rr.RabitqPlusIndex.load(index_dir / "a.rbpx"), rr.RabitqPlusIndex.build(x, seed=4), q)


def path_like(p: Path) -> Any:
    """An object of a fresh class whose only path protocol is ``__fspath__``."""
    namespace: Dict[str, Callable[[object], str]] = {"__fspath__": lambda self: str(p)}
    return type("P", (), namespace)()


AS_PATH: List[Callable[[Path], Any]] = [str, Path, path_like]


@pytest.mark.parametrize(
    "as_path",
    AS_PATH,
    ids=["str", "Path", "PathLike"],
)
def test_paths_may_be_str_or_path_like(as_path: Callable[[Path], Any], index_dir: Path) -> None:
    idx = rr.RabitqPlusIndex.build(small())
    target = index_dir / "p.rbpx"
    idx.save(as_path(target))
    assert target.exists()
    assert rr.RabitqPlusIndex.load(as_path(target)) == idx


# ── the file layout ─────────────────────────────────────────────────────────


LAYOUT_MAKERS: List[Tuple[Callable[[npt.NDArray[np.float32], List[int]], Index], bytes]] = [
    (lambda x, ids: rr.RabitqPlusIndex.build(x, ids, seed=9, rerank_factor=3), CRATE_MAGIC),
    (lambda x, ids: rr.RabitqPlusIndex.build(x, ids, seed=9, rerank_factor=3, rotation="hadamard"), SDK_MAGIC),
    (lambda x, ids: rr.FlatF32Index.build(x, ids), SDK_MAGIC),
    (lambda x, ids: rr.RabitqAsymIndex.build(x, ids, seed=9, rerank_factor=3), SDK_MAGIC),
]


@pytest.mark.parametrize(
    "make, magic",
    LAYOUT_MAKERS,
    ids=["plus-haar", "plus-hadamard", "flat", "asym"],
)
def test_the_file_layout_is_as_documented(
    make: Callable[[npt.NDArray[np.float32], List[int]], Index], magic: bytes, index_dir: Path
) -> None:
    x, ids = small(3, 5), [5, 9, 1]
    idx = make(x, ids)
    path = index_dir / "layout.rbpx"
    idx.save(path)
    raw = path.read_bytes()
    if magic != CRATE_MAGIC:
        # Saved as version 2 now; the version 1 bytes of earlier releases
        # (built here) still load as the same index.
        assert raw[:12] == SDK_MAGIC + struct.pack("<I", 2)
        file_seed = 42 if idx.seed is None else idx.seed
        v1 = rbpx(
            dim=5,
            ids=ids,
            vectors=x,
            seed=file_seed,
            rerank=idx.rerank_factor,
            kind=KIND_CODE[type(idx)],
            rotation=ROTATION_CODE[idx.rotation],
        )
        path.write_bytes(v1)
        assert type(idx).load(path) == idx
        return
    assert len(raw) == 32 + 3 * (4 + 4 * 5) + 16
    got_magic, version, dim, seed, rerank, n = HEADER.unpack_from(raw)
    # FlatF32Index has no seed; its header carries the unused default, 42.
    file_seed = 42 if idx.seed is None else idx.seed
    assert (got_magic, version, dim, seed, rerank, n) == (magic, 1, 5, file_seed, idx.rerank_factor, 3)
    for r in range(3):
        at = 32 + r * 24
        assert struct.unpack_from("<I", raw, at)[0] == ids[r]
        np.testing.assert_array_equal(np.frombuffer(raw, dtype="<f4", count=5, offset=at + 4), x[r])
    kind, rotation, flags, reserved, crc, tail = TRAILER.unpack_from(raw, len(raw) - 16)
    assert (kind, rotation, flags, reserved, tail) == (
        KIND_CODE[type(idx)],
        ROTATION_CODE[idx.rotation],
        0,
        0,
        TRAILER_MAGIC,
    )
    assert crc == zlib.crc32(raw[:-12])
    assert raw == rbpx(
        dim=5, ids=ids, vectors=x, seed=file_seed, rerank=idx.rerank_factor, kind=kind, rotation=rotation
    )


def test_a_handwritten_file_loads_as_the_index_it_describes(index_dir: Path) -> None:
    x = small(6, 8, seed=5)
    path = index_dir / "hand.rbpx"
    path.write_bytes(rbpx(dim=8, ids=[10, 11, 12, 13, 14, 15], vectors=x, seed=123, rerank=4, kind=3))
    assert rr.RabitqAsymIndex.load(path) == rr.RabitqAsymIndex.build(
        x, [10, 11, 12, 13, 14, 15], seed=123, rerank_factor=4
    )


def test_a_file_in_the_rust_crate_layout_loads_as_a_plus_index(data: Data, index_dir: Path) -> None:
    x, q = data
    path = index_dir / "crate.rbpx"
    path.write_bytes(rbpx(dim=32, ids=range(len(x)), vectors=x, seed=77, rerank=6, trailer=False))
    back = rr.RabitqPlusIndex.load(path)
    want = rr.RabitqPlusIndex.build(x, seed=77, rerank_factor=6)
    assert back == want
    assert_same_results(back, want, q)


# ── what save refuses, and how it writes ────────────────────────────────────


def test_save_replaces_the_file_by_rename_and_leaves_no_temporary_files(data: Data, index_dir: Path) -> None:
    x, _ = data
    path = index_dir / "index.rbpx"
    old = rr.RabitqPlusIndex.build(x[:100])
    new = rr.RabitqPlusIndex.build(x)
    old.save(path)
    os.link(path, index_dir / "old-link.rbpx")
    inode = path.stat().st_ino
    new.save(path)
    # A new file was renamed into place: the old inode, still reachable
    # through the hard link, was never written to.
    assert path.stat().st_ino != inode
    assert rr.RabitqPlusIndex.load(index_dir / "old-link.rbpx") == old
    assert rr.RabitqPlusIndex.load(path) == new
    assert sorted(p.name for p in index_dir.iterdir()) == ["index.rbpx", "old-link.rbpx"]


SAVE_FAILURES: List[Tuple[Callable[[Path], Path], str]] = [
    (lambda d: d / "missing-dir" / "x.rbpx", "cannot write"),
    (lambda d: d, "cannot write"),  # a directory
    (lambda d: d / "..", "the path names no file"),
]


@pytest.mark.parametrize(
    "target, fragment",
    SAVE_FAILURES,
    ids=["missing directory", "onto a directory", "no file name"],
)
def test_save_failures_raise_persist_error_and_leave_nothing_behind(
    target: Callable[[Path], Path], fragment: str, index_dir: Path
) -> None:
    (index_dir / "keep.txt").write_text("untouched")
    path = target(index_dir)
    with pytest.raises(rr.PersistError) as err:
        rr.RabitqPlusIndex.build(small()).save(path)
    assert isinstance(err.value, OSError)
    assert err.value.path == str(path)
    assert fragment in str(err.value)
    assert [p.name for p in index_dir.iterdir()] == ["keep.txt"]
    assert (index_dir / "keep.txt").read_text() == "untouched"


# ── what load refuses ───────────────────────────────────────────────────────


@pytest.mark.parametrize("saved", SAVABLE_CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("loader", [*SAVABLE_CLASSES, rr.RabitqIndex], ids=lambda c: c.__name__)
def test_loading_with_the_wrong_class_names_the_right_one(
    saved: IndexClass, loader: IndexClass, index_dir: Path
) -> None:
    kwargs: Dict[str, Any] = {"rerank_factor": 2} if saved is rr.RabitqAsymIndex else {}
    idx = saved.build(small(), **kwargs)
    path = index_dir / "kind.rbpx"
    idx.save(path)
    if loader is saved:
        assert loader.load(path) == idx
        return
    e = load_error(loader, path)
    assert f"this file holds a {saved.__name__}, not a {loader.__name__}; load it with {saved.__name__}.load" in str(e)


@pytest.mark.parametrize(
    "make",
    [
        lambda: rr.RabitqPlusIndex.build(small(), [5, 9, 1], seed=9, rerank_factor=3),
        lambda: rr.RabitqPlusIndex.build(small(), [5, 9, 1], rotation="hadamard"),
        lambda: rr.FlatF32Index.build(small(), [5, 2**40, 1]),
        lambda: rr.RabitqAsymIndex.build(small(), [5, 9, 1], rerank_factor=3),
        lambda: rr.IvfRabitqIndex.build(small(), [5, 2**40, 1], nlist=2),
        lambda: rr.RabitqPlusIndex.build(small(dim=3), [5, 9, 1], seed=9, rerank_factor=3),
        lambda: rr.RabitqPlusIndex.build(small(n=4, dim=1), [5, 9, 1, 2], seed=9, rerank_factor=3),
    ],
    ids=["plus-haar", "plus-hadamard", "flat-ids64", "asym", "ivf-ids64", "plus-haar-dim3", "plus-haar-dim1"],
)
def test_every_truncation_is_refused(make: Callable[[], Index], index_dir: Path) -> None:
    idx = make()
    path = index_dir / "t.rbpx"
    idx.save(path)
    good = path.read_bytes()
    crate_layout = idx.rotation == "haar" and isinstance(idx, rr.RabitqPlusIndex)
    for cut in range(len(good)):
        path.write_bytes(good[:cut])
        if crate_layout and cut == len(good) - 16:
            # Exactly the Rust crate's layout: the same index, without a CRC.
            assert type(idx).load(path) == idx
            continue
        load_error(type(idx), path)


@pytest.mark.parametrize(
    "make",
    [
        lambda: rr.RabitqPlusIndex.build(small(), [5, 9, 1], seed=9, rerank_factor=3),
        lambda: rr.FlatF32Index.build(small(), [5, 2**40, 1]),
        lambda: rr.RabitqAsymIndex.build(small(), [5, 9, 1], rerank_factor=3),
        lambda: rr.IvfRabitqIndex.build(small(), [5, 9, 1], nlist=2, nprobe=1),
        # A row of dim 3 is 16 bytes, the trailer's size; dim 1: two rows of 8.
        # (n = 4: then n + 1 and n + 2 are one-bit changes.)
        lambda: rr.RabitqPlusIndex.build(small(n=4, dim=3), [5, 9, 1, 2], seed=9, rerank_factor=3),
        lambda: rr.RabitqPlusIndex.build(small(n=4, dim=1), [5, 9, 1, 2], seed=9, rerank_factor=3),
        lambda: rr.FlatF32Index.build(small(dim=3), [5, 9, 1]),
        lambda: rr.IvfRabitqIndex.build(small(dim=1), [5, 9, 1], nlist=2),
    ],
    ids=["plus-haar", "flat-ids64", "asym", "ivf", "plus-haar-dim3", "plus-haar-dim1", "flat-dim3", "ivf-dim1"],
)
def test_every_single_bit_flip_is_refused(make: Callable[[], Index], index_dir: Path) -> None:
    idx = make()
    path = index_dir / "f.rbpx"
    idx.save(path)
    good = path.read_bytes()
    for at in range(len(good)):
        for bit in range(8):
            bad = bytearray(good)
            bad[at] ^= 1 << bit
            path.write_bytes(bytes(bad))
            load_error(type(idx), path)


def test_a_wrong_crc_is_reported_as_a_checksum_mismatch(index_dir: Path) -> None:
    x = small()
    path = index_dir / "crc.rbpx"
    right = zlib.crc32(rbpx(dim=4, ids=[0, 1, 2], vectors=x)[:-12])
    path.write_bytes(rbpx(dim=4, ids=[0, 1, 2], vectors=x, crc=right ^ 1))
    e = load_error(rr.RabitqPlusIndex, path)
    assert "checksum mismatch" in str(e) and f"{right ^ 1:08x}" in str(e) and f"{right:08x}" in str(e)


@pytest.mark.parametrize(("dim", "extra"), [(3, 1), (1, 2)])
def test_a_count_one_bit_too_high_never_reads_the_trailer_as_rows(dim: int, extra: int, index_dir: Path) -> None:
    """Issue 10: a row of dim 3 is 16 bytes, the size of the SDK trailer (two
    rows of dim 1 likewise), so ``n + 1`` (``n + 2``) in the header of a
    crate-magic file loaded the trailer as an extra row of garbage."""
    n = 4
    idx = rr.RabitqPlusIndex.build(small(n=n, dim=dim), list(range(10, 10 + n)), seed=9, rerank_factor=3)
    path = index_dir / "grown.rbpx"
    idx.save(path)
    good = path.read_bytes()
    assert good[:8] == CRATE_MAGIC and good[-8:] == TRAILER_MAGIC
    bad = bytearray(good)
    bad[28:32] = struct.pack("<I", n + extra)  # n is the last header field
    assert bin(n ^ (n + extra)).count("1") == 1, "a one-bit change"
    path.write_bytes(bytes(bad))
    e = load_error(rr.RabitqPlusIndex, path)
    want = 32 + (n + extra) * (4 + 4 * dim) + 16
    assert f"file is {len(good)} bytes" in str(e) and f"exactly {want} bytes" in str(e), str(e)
    assert "with the SDK trailer" in str(e)
    # Without the trailer the same rows are the crate's own layout.
    path.write_bytes(good[:-16])
    assert rr.RabitqPlusIndex.load(path) == idx


TRAILING: Dict[str, Tuple[Callable[[bytes], bytes], str]] = {
    "a byte after a crate-layout file": (lambda good: good[:-16] + b"\0", "a crate-format rbpx0001 file"),
    "16 bytes after a crate-layout file": (lambda good: good[:-16] + bytes(16), "a crate-format rbpx0001 file"),
    "a byte after the trailer": (lambda good: good + b"\0", "a crate-format rbpx0001 file"),
    "a file twice": (lambda good: good[:-16] + good, "an rbpx0001 file with the SDK trailer"),
}


@pytest.mark.parametrize("case", list(TRAILING))
def test_trailing_bytes_are_refused_naming_both_sizes(case: str, index_dir: Path) -> None:
    make, layout = TRAILING[case]
    idx = rr.RabitqPlusIndex.build(small(), [5, 9, 1], seed=9, rerank_factor=3)
    path = index_dir / "trailing.rbpx"
    idx.save(path)
    good = path.read_bytes()
    bad = make(good)
    path.write_bytes(bad)
    msg = str(load_error(rr.RabitqPlusIndex, path))
    expected = len(good) if "SDK trailer" in layout else len(good) - 16
    assert f"file is {len(bad)} bytes, but {layout}" in msg, msg
    assert f"is exactly {expected} bytes ({len(bad) - expected} trailing bytes)" in msg, msg


def test_trailing_bytes_before_the_sdk_trailer_are_refused(index_dir: Path) -> None:
    path = index_dir / "flat.rbpx"
    good = rbpx(dim=4, ids=[5, 9, 1], vectors=small(), seed=42, rerank=1, kind=1)
    path.write_bytes(good[:-16] + b"\0\0" + good[-16:])
    msg = str(load_error(rr.FlatF32Index, path))
    assert f"file is {len(good) + 2} bytes, but an rvpx0001 file" in msg and "2 trailing bytes" in msg, msg


def test_a_large_haar_header_without_rows_loads_at_once(index_dir: Path) -> None:
    """Issue 10: 32 bytes claiming dim 2048, Haar, no rows took 12-16 s of
    CPU (the O(dim³) rotation was built for an index that never uses it).
    The rotation is now built with the first rows."""
    path = index_dir / "empty-2048.rbpx"
    path.write_bytes(HEADER.pack(CRATE_MAGIC, 1, 2048, 0, 20, 0))
    started = time.monotonic()
    idx = rr.RabitqPlusIndex.load(path)
    elapsed = time.monotonic() - started
    assert (len(idx), idx.dim) == (0, 2048)
    assert idx.memory_bytes < 1 << 20, idx.memory_bytes  # a 2048² rotation is 16 MiB per copy
    assert elapsed < 5.0, f"did not hang, but took {elapsed:.1f} s"
    # The same for an empty IVF file with the Haar rotation.
    rr.IvfRabitqIndex(2048, rotation="haar").save(path)
    assert rr.IvfRabitqIndex.load(path).memory_bytes < 1 << 20


# Each file below has a correct size and CRC, so only the named field is wrong.
X3 = small()
CORRUPT_HEADERS: Dict[str, Tuple[Dict[str, Any], str]] = {
    "magic": (dict(magic=b"RBPX0001"), 'expected the magic bytes "rbpx0001" or "rvpx0001"'),
    "version 0": (dict(version=0), "unsupported format version: expected 1 or 2, got 0"),
    "version 3": (dict(version=3), "unsupported format version: expected 1 or 2, got 3"),
    "dim 0": (dict(dim=0), "dim must be between 1 and 8192, got 0"),
    "dim 9000": (dict(dim=9000), "dim must be between 1 and 8192, got 9000"),
    "rerank 0": (dict(rerank=0), "rerank_factor must be between 1 and 1024, got 0"),
    "rerank 1025": (dict(rerank=1025), "rerank_factor must be between 1 and 1024, got 1025"),
    "n above the limit": (dict(n=2**32 - 1), "n must be at most 100000000, got 4294967295"),
    "n larger than the file": (dict(n=4), "truncated or corrupt"),
    "n smaller than the file": (dict(n=2), "truncated or corrupt"),
}


@pytest.mark.parametrize("field", list(CORRUPT_HEADERS))
def test_a_corrupt_header_is_refused(field: str, index_dir: Path) -> None:
    overrides, fragment = CORRUPT_HEADERS[field]
    fields: Dict[str, Any] = dict(dim=4, ids=[0, 1, 2], vectors=X3)
    fields.update(overrides)
    if fields["dim"] != 4:
        fields["vectors"] = np.zeros((3, fields["dim"]), dtype=np.float32)
    path = index_dir / "h.rbpx"
    path.write_bytes(rbpx(**fields))
    assert fragment in str(load_error(rr.RabitqPlusIndex, path))


def with_value(at: int, value: float) -> npt.NDArray[np.float32]:
    bad: npt.NDArray[np.float32] = X3.copy()
    bad.reshape(-1)[at] = value
    return bad


# (fields that differ from a good 3-row Plus file, class it claims, message)
CORRUPT_CONTENTS: Dict[str, Tuple[Dict[str, Any], IndexClass, str]] = {
    "NaN in a vector": (dict(vectors=with_value(6, np.nan)), rr.RabitqPlusIndex, "got NaN at"),
    "inf in a vector": (dict(vectors=with_value(0, np.inf)), rr.RabitqPlusIndex, "got inf at"),
    "overflowing norm": (dict(vectors=with_value(5, 1e19)), rr.RabitqPlusIndex, "squared L2 norm"),
    "duplicate ids": (dict(ids=[4, 8, 4]), rr.RabitqPlusIndex, "ids[2] = 4 appears more than once"),
    "unknown kind": (dict(kind=9, magic=SDK_MAGIC), rr.RabitqPlusIndex, "unknown index kind code 9"),
    "unknown rotation": (dict(rotation=2, magic=SDK_MAGIC), rr.RabitqPlusIndex, "unknown rotation code 2"),
    "unknown flag": (dict(flags=2), rr.RabitqPlusIndex, "corrupt trailer flags"),
    "id block flag without the block": (dict(flags=1), rr.RabitqPlusIndex, "corrupt trailer flags"),
    "reserved byte": (dict(reserved=1), rr.RabitqPlusIndex, "corrupt trailer flags"),
    "crate magic on a flat file": (dict(kind=1, magic=CRATE_MAGIC), rr.FlatF32Index, "magic and trailer disagree"),
    "sdk magic on a plus/haar file": (dict(kind=0, magic=SDK_MAGIC), rr.RabitqPlusIndex, "magic and trailer disagree"),
    "asym with hadamard": (dict(kind=3, rotation=1), rr.RabitqAsymIndex, 'supports only rotation="haar"'),
    "sdk magic without a trailer": (
        dict(magic=SDK_MAGIC, trailer=False),
        rr.RabitqPlusIndex,
        "the SDK trailer is missing",
    ),
}


@pytest.mark.parametrize("case", list(CORRUPT_CONTENTS))
def test_valid_looking_files_with_invalid_contents_are_refused(case: str, index_dir: Path) -> None:
    overrides, cls, fragment = CORRUPT_CONTENTS[case]
    fields: Dict[str, Any] = dict(dim=4, ids=[0, 1, 2], vectors=X3)
    fields.update(overrides)
    path = index_dir / "c.rbpx"
    path.write_bytes(rbpx(**fields))
    assert fragment in str(load_error(cls, path))
    for other in SAVABLE_CLASSES:
        load_error(other, path)


def test_rabitq_ids_above_u32_in_a_file_are_refused(index_dir: Path) -> None:
    path = index_dir / "big-ids.rbpx"
    path.write_bytes(rbpx(dim=4, ids=[0, 1, 2**32], vectors=X3, kind=0))  # u64 id block on a Plus file
    assert "does not fit this index" in str(load_error(rr.RabitqPlusIndex, path))


@pytest.mark.parametrize(
    "content",
    [b"", b"rbpx", b"x" * 31, bytes(32), bytes(range(256)) * 4, CRATE_MAGIC + bytes(24), b"PK\x03\x04" + bytes(100)],
    ids=["empty", "4 bytes", "31 bytes", "32 zero bytes", "1 KiB garbage", "magic then zeros", "zip header"],
)
def test_garbage_files_are_refused(content: bytes, index_dir: Path) -> None:
    path = index_dir / "garbage.rbpx"
    path.write_bytes(content)
    for cls in SAVABLE_CLASSES:
        load_error(cls, path)


def test_missing_paths_and_directories_are_refused(index_dir: Path) -> None:
    assert "cannot open" in str(load_error(rr.RabitqPlusIndex, index_dir / "nope.rbpx"))
    load_error(rr.FlatF32Index, index_dir)


def test_a_header_claiming_a_huge_index_fails_without_allocating(index_dir: Path) -> None:
    # 100 million rows of dim 8192 would be 3.3 TB. The loader must compare the
    # header with the file size first; in a child limited to 2 GiB of address
    # space, an attempt to allocate it would abort the process.
    path = index_dir / "huge.rbpx"
    path.write_bytes(HEADER.pack(CRATE_MAGIC, 1, 8192, 0, 20, 100_000_000) + bytes(64))
    script = textwrap.dedent(
        f"""
        import resource, sys
        import ruvector_rabitq as rr
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
        for cls in (rr.RabitqPlusIndex, rr.FlatF32Index):
            try:
                cls.load({str(path)!r})
            except rr.PersistError as e:
                print(e)
            else:
                sys.exit("loaded")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and all("truncated or corrupt" in line for line in lines), done.stdout


# ── path arguments ──────────────────────────────────────────────────────────


@pytest.mark.parametrize("bad", [b"index.rbpx", 5, None, 1.5], ids=["bytes", "int", "None", "float"])
def test_a_path_that_is_not_str_or_path_like_is_a_type_error(bad: Any, index_dir: Path) -> None:
    idx = rr.RabitqPlusIndex.build(small())
    with pytest.raises(TypeError, match=r"path must be a str or an os\.PathLike\[str\]"):
        idx.save(bad)
    with pytest.raises(TypeError, match=r"path must be a str or an os\.PathLike\[str\]"):
        rr.RabitqPlusIndex.load(bad)
    assert list(index_dir.iterdir()) == []


@pytest.mark.parametrize("cls", [rr.RabitqPlusIndex, rr.IvfRabitqIndex])
def test_a_path_with_a_lone_surrogate_is_an_invalid_argument(cls: Any, index_dir: Path) -> None:
    bad = str(index_dir / "x\ud800.rbpx")
    with pytest.raises(rr.InvalidArgument, match="path cannot be represented in the file system encoding"):
        cls.build(small()).save(bad)
    with pytest.raises(rr.InvalidArgument, match="path cannot be represented"):
        cls.load(bad)
    with pytest.raises(rr.InvalidArgument, match="path cannot be represented"):
        cls.load(path_like(Path(bad)))
    assert list(index_dir.iterdir()) == []


# ── killed saves ────────────────────────────────────────────────────────────

SAVE_LOOP = """
import sys
import numpy as np
import ruvector_rabitq as rr
idx = rr.FlatF32Index.build(np.random.default_rng(0).standard_normal((200_000, 64), dtype=np.float32))
print("ready", flush=True)
while True:
    idx.save(sys.argv[1])
"""


def temporaries(directory: Path, name: str) -> List[Path]:
    return sorted(p for p in directory.iterdir() if p.name.startswith(f".{name}.tmp."))


def age(paths: Sequence[Path], seconds: float = 30.0) -> None:
    """Moves the modification times back, as if the files were left long ago."""
    then = time.time() - seconds
    for p in paths:
        os.utime(p, (then, then))


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="the pid check needs Linux /proc")
def test_temporaries_of_killed_saves_are_removed_by_the_next_save(index_dir: Path) -> None:
    """Issue 10: ``kill -9`` during ``save`` left ``.x.rbpx.tmp.*`` files
    (39 files, 2.6 GB after 50 kills) that later saves never removed."""
    path = index_dir / "x.rbpx"
    cut_short = 0
    for attempt in range(4):
        child = subprocess.Popen([sys.executable, "-c", SAVE_LOOP, str(path)], stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
            time.sleep(0.3 + 0.1 * attempt)  # the loop spends its time inside save
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(30)
            if child.stdout is not None:
                child.stdout.close()
        # (Each new child's first save removes its predecessors' leftovers.)
        cut_short += len(temporaries(index_dir, "x.rbpx")) > 0
    assert cut_short > 0, "no save was cut short"
    left = temporaries(index_dir, "x.rbpx")
    (index_dir / "unrelated.txt").write_text("keep")
    # A leftover younger than a second is left alone (its writer could be
    # between creating and locking it); these are old enough.
    age(left)
    idx = rr.FlatF32Index.build(small(n=10))
    idx.save(path)
    assert temporaries(index_dir, "x.rbpx") == []
    assert sorted(p.name for p in index_dir.iterdir()) == ["unrelated.txt", "x.rbpx"]
    assert rr.FlatF32Index.load(path) == idx


HOLD_TEMP = """
import fcntl, os, sys, time
path = sys.argv[1]
f = open(path, "wb")
f.write(b"half a save")
f.flush()
fcntl.flock(f, fcntl.LOCK_EX)
then = time.time() - 60
os.utime(path, (then, then))
print("holding", flush=True)
sys.stdin.readline()
"""


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="the pid check needs Linux /proc")
def test_a_live_writers_temporary_is_never_removed(index_dir: Path) -> None:
    path = index_dir / "x.rbpx"
    # The writer is alive (its pid runs), though its file is old.
    sleeper = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.readline()"], stdin=subprocess.PIPE)
    live = index_dir / f".x.rbpx.tmp.{sleeper.pid}.0.1"
    live.write_bytes(b"half a save")
    age([live])
    # The pid named is gone, but a process holds the writer's lock: a writer
    # in another pid namespace (another container on the same volume).
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    locked = index_dir / f".x.rbpx.tmp.{int(gone.stdout)}.0.2"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_TEMP, str(locked)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        # Another target's leftover, and names that only look alike.
        others = [
            index_dir / f".y.rbpx.tmp.{int(gone.stdout)}.0.3",
            index_dir / ".x.rbpx.tmp.1.2",
            index_dir / "x.rbpx.tmp.1.2.3",
        ]
        for p in others:
            p.write_bytes(b"not ours")
        age(others)
        rr.FlatF32Index.build(small()).save(path)
        for p in [live, locked, *others]:
            assert p.exists(), f"{p.name} was removed"
        # Once the writers are gone, the next save cleans up their files.
        assert holder.stdin is not None and sleeper.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(30)
        sleeper.stdin.write(b"\n")
        sleeper.stdin.flush()
        sleeper.wait(30)
        rr.FlatF32Index.build(small()).save(path)
        assert not live.exists() and not locked.exists()
        assert all(p.exists() for p in others)
    finally:
        for proc in (holder, sleeper):
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)


# ── damaged files, sampled ──────────────────────────────────────────────────

SWEEP_FORMATS: Dict[str, Tuple[Callable[[], Index], bool]] = {
    "rbpx0001 + SDK trailer (plus, haar)": (
        lambda: rr.RabitqPlusIndex.build(small(40, 8), seed=3, rerank_factor=4),
        False,
    ),
    "rbpx0001, the crate's layout": (lambda: rr.RabitqPlusIndex.build(small(40, 8), seed=3, rerank_factor=4), True),
    "rvpx0001 (plus, hadamard)": (lambda: rr.RabitqPlusIndex.build(small(40, 8), rotation="hadamard"), False),
    "rvpx0001 (flat, u64 ids)": (lambda: rr.FlatF32Index.build(small(40, 8), np.arange(40) + 2**40), False),
    "rvpx0001 (asym)": (lambda: rr.RabitqAsymIndex.build(small(40, 8), rerank_factor=3), False),
    "rvpx0001 (ivf)": (lambda: rr.IvfRabitqIndex.build(small(40, 8), nlist=4, nprobe=2), False),
}


def mutate(good: bytes, rng: random.Random) -> Tuple[bytes, Optional[int]]:
    """A damaged copy of ``good`` and the offset of a changed byte (``None``
    when the size changed)."""
    how = rng.random()
    if how < 0.6:
        at = rng.randrange(len(good))
        flip = 1 << rng.randrange(8) if rng.random() < 0.7 else rng.randrange(1, 256)
        return good[:at] + bytes([good[at] ^ flip]) + good[at + 1 :], at
    if how < 0.85:
        return good[: rng.randrange(len(good))], None
    return good + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))), None


@pytest.mark.parametrize("fmt", list(SWEEP_FORMATS))
def test_a_sampled_sweep_of_damaged_files_gives_a_clean_error_or_the_same_results(fmt: str, index_dir: Path) -> None:
    """Seeded flips, truncations and appended bytes: every damaged file is
    refused with a ruvector error, or loads with the original's results. A
    file in the crate's layout has no checksum, so a changed value inside a
    row loads as that one changed value (never as a different shape)."""
    make, crate_layout = SWEEP_FORMATS[fmt]
    idx = make()
    cls = type(idx)
    path = index_dir / "s.rbpx"
    idx.save(path)
    good = path.read_bytes()[:-16] if crate_layout else path.read_bytes()
    queries = small(5, 8, seed=1)
    want = [a.tolist() for a in idx.search_batch(queries, 5)]
    rng = random.Random(f"sweep {fmt}")
    outcomes = {"refused": 0, "same": 0, "one value": 0}
    for _ in range(400):
        bad, at = mutate(good, rng)
        path.write_bytes(bad)
        try:
            back = cls.load(path)
        except rr.RuVectorError:
            outcomes["refused"] += 1
            continue
        if [a.tolist() for a in back.search_batch(queries, 5)] == want:
            outcomes["same"] += 1
            continue
        # Only the crate's layout, which has no checksum, may load one value
        # changed: the seed, the rerank factor, one id or one vector.
        assert crate_layout and at is not None and at >= 16, f"{fmt}: a damaged file loaded differently (byte {at})"
        assert (len(back), back.dim) == (len(idx), idx.dim)
        ids_changed = np.flatnonzero(back.ids != idx.ids).tolist()
        rows_changed = np.flatnonzero((np.asarray(back) != np.asarray(idx)).any(axis=1)).tolist()
        changes = [
            back.seed != idx.seed,
            back.rerank_factor != idx.rerank_factor,
            ids_changed != [],
            rows_changed != [],
        ]
        assert sum(changes) == 1 and len(ids_changed) <= 1 and len(rows_changed) <= 1, (at, changes)
        if at >= 32:
            row = (at - 32) // (4 + 4 * idx.dim)
            assert ids_changed + rows_changed == [row], (at, ids_changed, rows_changed)
        outcomes["one value"] += 1
    assert outcomes["refused"] > 0, outcomes
