"""Serialisation: ``to_bytes``/``from_bytes``, pickle, copy, ``load(mmap=True)``,
the ``.rbpx`` version 2 layout, and the runtime thread count.

Every index kind must come back from bytes, a pickle (in this process and in
a ``spawn``ed one), a copy or a mapped file with identical search results;
damaged or foreign bytes must raise :class:`PersistError` naming what was
expected and what was found, never crash.
"""

from __future__ import annotations

import copy
import multiprocessing
import os
import pickle
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Literal, Tuple

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ruvector_rabitq as rr

if TYPE_CHECKING:
    from conftest import Builder, Data

V2_HEADER = struct.Struct("<8sIIQII4B4I12x")
ALL_CLASSES: List[Any] = [rr.FlatF32Index, rr.RabitqIndex, rr.RabitqPlusIndex, rr.RabitqAsymIndex, rr.IvfRabitqIndex]


def results(idx: Any, q: npt.NDArray[np.float32], k: int = 10) -> Tuple[List[List[int]], List[List[float]]]:
    ids, scores = idx.search_batch(q, k)
    return ids.tolist(), scores.tolist()


def sparse_ids(n: int) -> npt.NDArray[np.int64]:
    return np.arange(n, dtype=np.int64) * 7 + 3


# ── round trips ─────────────────────────────────────────────────────────────


@pytest.mark.parametrize("ids", ["dense", "sparse"])
def test_every_kind_round_trips_through_bytes_pickle_and_copy(build_any: Builder, data: Data, ids: str) -> None:
    x, q = data
    idx = build_any(x, None if ids == "dense" else sparse_ids(len(x)))
    want = results(idx, q)
    blob = idx.to_bytes()
    assert isinstance(blob, bytes) and blob[:8] == b"rvpx0001"
    assert struct.unpack_from("<I", blob, 8)[0] == 2
    copies = [
        type(idx).from_bytes(blob),
        type(idx).from_bytes(bytearray(blob)),
        type(idx).from_bytes(memoryview(blob)),
        rr._native._IndexBase.from_bytes(blob),  # pyright: ignore[reportPrivateUsage]  # any kind, the right class back
        copy.copy(idx),
        copy.deepcopy(idx),
    ]
    copies += [pickle.loads(pickle.dumps(idx, protocol=p)) for p in range(2, pickle.HIGHEST_PROTOCOL + 1)]
    for back in copies:
        assert type(back) is type(idx)
        assert back == idx
        assert back is not idx
        assert len(back) == len(idx) and back.ids.tolist() == idx.ids.tolist()
        assert results(back, q) == want
        assert back.to_bytes() == blob


def test_copies_are_independent(data: Data) -> None:
    x, _q = data
    idx = rr.RabitqPlusIndex.build(x[:200], seed=1)
    twin = copy.copy(idx)
    twin.add(10_000, x[300])
    assert len(idx) == 200 and len(twin) == 201
    assert 10_000 not in idx


def test_protocol_5_sends_the_index_out_of_band_once(data: Data) -> None:
    x, q = data
    idx = rr.IvfRabitqIndex.build(x, nlist=16, seed=3)
    buffers: List[pickle.PickleBuffer] = []
    stream = pickle.dumps(idx, protocol=5, buffer_callback=buffers.append)
    assert len(buffers) == 1
    raw = buffers[0].raw()
    assert raw.nbytes == len(idx.to_bytes())
    # The stream holds only the reference to the class and the buffer.
    assert len(stream) < 200
    back = pickle.loads(stream, buffers=buffers)
    assert results(back, q) == results(idx, q)


def _search_in_child(blob: bytes, q: npt.NDArray[np.float32]) -> Tuple[List[List[int]], List[List[float]]]:
    idx = pickle.loads(blob)
    return results(idx, q)


def test_a_pickle_searches_the_same_in_a_spawned_process(data: Data) -> None:
    x, q = data
    ctx = multiprocessing.get_context("spawn")
    for idx in [rr.RabitqPlusIndex.build(x, seed=5), rr.IvfRabitqIndex.build(x, nlist=8, seed=5)]:
        with ctx.Pool(1) as pool:
            got = pool.apply(_search_in_child, (pickle.dumps(idx, protocol=5), q[:20]))
        assert got == results(idx, q[:20])


# ── what is refused ─────────────────────────────────────────────────────────


def test_bytes_of_another_kind_name_both() -> None:
    x = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    blob = rr.FlatF32Index.build(x).to_bytes()
    with pytest.raises(rr.PersistError) as err:
        rr.RabitqPlusIndex.from_bytes(blob)
    msg = str(err.value)
    assert "hold a FlatF32Index, not a RabitqPlusIndex" in msg and "FlatF32Index.from_bytes" in msg


def test_unknown_versions_and_garbage_name_what_was_expected() -> None:
    x = np.random.default_rng(0).standard_normal((20, 8)).astype(np.float32)
    blob = bytearray(rr.FlatF32Index.build(x).to_bytes())
    blob[8:12] = struct.pack("<I", 7)
    with pytest.raises(rr.PersistError, match="expected 1 or 2, got 7"):
        rr.FlatF32Index.from_bytes(bytes(blob))
    with pytest.raises(rr.PersistError, match='expected the magic bytes "rbpx0001" or "rvpx0001"'):
        rr.FlatF32Index.from_bytes(b"not an index at all, but long enough for a header")
    with pytest.raises(rr.PersistError):
        rr.FlatF32Index.from_bytes(b"")
    with pytest.raises(rr.InvalidArgument, match=r"bytes-like object.*got int"):
        rr.FlatF32Index.from_bytes(5)


class _Forged:
    """Pickles as ``cls.from_bytes(payload)``: a pickle whose bytes are of
    another kind than the class it names (as from another version or a
    tampered file)."""

    def __init__(self, cls: Any, payload: bytes) -> None:
        self.cls, self.payload = cls, payload

    def __reduce__(self) -> Tuple[Any, Tuple[bytes]]:
        return (self.cls.from_bytes, (self.payload,))


def test_a_pickle_from_another_kind_or_version_is_refused() -> None:
    x = np.random.default_rng(0).standard_normal((30, 8)).astype(np.float32)
    blob = rr.FlatF32Index.build(x).to_bytes()
    with pytest.raises(rr.PersistError, match="hold a FlatF32Index, not a IvfRabitqIndex"):
        pickle.loads(pickle.dumps(_Forged(rr.IvfRabitqIndex, blob)))
    future = bytearray(blob)
    future[8:12] = struct.pack("<I", 3)
    with pytest.raises(rr.PersistError, match="expected 1 or 2, got 3"):
        pickle.loads(pickle.dumps(_Forged(rr.FlatF32Index, bytes(future))))


_SMALL = np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32)
_BLOBS = {
    cls.__name__: cls.build(_SMALL, **({"nlist": 2} if cls is rr.IvfRabitqIndex else {})).to_bytes()
    for cls in ALL_CLASSES
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(_BLOBS)),
    at=st.integers(min_value=0),
    bit=st.integers(min_value=0, max_value=7),
    cut=st.integers(min_value=0),
    mode=st.sampled_from(["flip", "cut", "both"]),
)
def test_any_flip_or_truncation_is_a_persist_error(name: str, at: int, bit: int, cut: int, mode: str) -> None:
    good = _BLOBS[name]
    bad = bytearray(good)
    if mode in ("flip", "both"):
        bad[at % len(bad)] ^= 1 << bit
    if mode in ("cut", "both"):
        bad = bad[: cut % len(bad)]
    with pytest.raises(rr.PersistError):
        getattr(rr, name).from_bytes(bytes(bad))


def test_every_byte_flip_and_truncation_of_a_file_is_refused_plain_and_mapped(tmp_path: Path) -> None:
    good = _BLOBS["IvfRabitqIndex"]
    path = tmp_path / "x.rbpx"
    for at in range(len(good)):
        bad = bytearray(good)
        bad[at] ^= 0x41
        path.write_bytes(bytes(bad))
        for mmap in (False, True):
            with pytest.raises(rr.PersistError):
                rr.IvfRabitqIndex.load(path, mmap=mmap)
    for cut in range(0, len(good), 7):
        path.write_bytes(good[:cut])
        for mmap in (False, True):
            with pytest.raises(rr.PersistError):
                rr.IvfRabitqIndex.load(path, mmap=mmap)


# ── the version 2 file ──────────────────────────────────────────────────────


def test_version_2_header_and_alignment(tmp_path: Path) -> None:
    x = np.random.default_rng(2).standard_normal((100, 24)).astype(np.float32)
    idx = rr.RabitqPlusIndex.build(x, rotation="hadamard", seed=4)
    path = tmp_path / "v2.rbpx"
    idx.save(path)
    raw = path.read_bytes()
    magic, version, dim, seed, _rerank, n, kind, rotation, metric, flags, *_ = V2_HEADER.unpack_from(raw)
    assert (magic, version, dim, seed, n, kind, rotation, metric) == (b"rvpx0001", 2, 24, 4, 100, 0, 1, 0)
    assert flags == 2  # vectors, dense ids, no codes
    # The vectors start at byte 64, exactly as given.
    np.testing.assert_array_equal(np.frombuffer(raw, dtype="<f4", count=100 * 24, offset=64).reshape(100, 24), x)
    assert raw[-8:] == b"RVPYTRL2"
    assert struct.unpack_from("<I", raw, len(raw) - 16)[0] == zlib.crc32(raw[:-16])


def test_the_crate_layout_stays_the_default_for_plus_haar_l2(tmp_path: Path) -> None:
    x = np.random.default_rng(2).standard_normal((50, 16)).astype(np.float32)
    idx = rr.RabitqPlusIndex.build(x, seed=4)
    path = tmp_path / "crate.rbpx"
    idx.save(path)
    assert path.read_bytes()[:12] == b"rbpx0001" + struct.pack("<I", 1)
    with pytest.raises(rr.PersistError, match="crate_format=False"):
        rr.RabitqPlusIndex.load(path, mmap=True)
    idx.save(path, crate_format=False)
    assert path.read_bytes()[:12] == b"rvpx0001" + struct.pack("<I", 2)
    back = rr.RabitqPlusIndex.load(path, mmap=True)
    assert back.mapped and back == idx


def test_codes_only_kinds_save_and_load_now(data: Data, build_codes_only: Builder, index_dir: Path) -> None:
    x, q = data
    idx = build_codes_only(x)
    path = index_dir / "codes.rbpx"
    idx.save(path)
    back = type(idx).load(path)
    assert back == idx and results(back, q) == results(idx, q)


# ── compressed files (save(compress=True)) ──────────────────────────────────


def _compressed_flag(raw: bytes) -> bool:
    return bool(V2_HEADER.unpack_from(raw)[9] & 16)


@pytest.mark.parametrize("ids", ["dense", "sparse"])
def test_every_kind_round_trips_compressed(build_any: Builder, data: Data, index_dir: Path, ids: str) -> None:
    x, q = data
    idx = build_any(x, None if ids == "dense" else sparse_ids(len(x)))
    want = results(idx, q)
    path = index_dir / "c.rbpx"
    idx.save(path, compress=True)  # crate_format=True (the default) gives way
    raw = path.read_bytes()
    assert raw[:12] == b"rvpx0001" + struct.pack("<I", 2)
    assert struct.unpack_from("<I", raw, len(raw) - 16)[0] == zlib.crc32(raw[:-16])
    keeps = idx.keeps_vectors
    assert _compressed_flag(raw) == keeps
    if keeps:
        assert len(raw) < len(idx.to_bytes())
    else:  # nothing to compress: the plain layout
        assert raw == idx.to_bytes()
    for back in (type(idx).load(path), type(idx).from_bytes(raw), rr._native._IndexBase.from_bytes(raw)):  # pyright: ignore[reportPrivateUsage]
        assert type(back) is type(idx) and back == idx
        assert back.ids.tolist() == idx.ids.tolist()
        assert results(back, q) == want
        assert back.to_bytes() == idx.to_bytes()  # to_bytes stays uncompressed
        if keeps:
            np.testing.assert_array_equal(np.asarray(back), np.asarray(idx))


def test_compressed_vectors_come_back_bit_for_bit(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((700, 37)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    bits = x.view(np.uint32)
    bits[0, :4] = [0x80000000, 0x00000001, 0x807FFFFF, 0x00400000]  # -0.0 and denormals
    path = tmp_path / "bits.rbpx"
    idx = rr.FlatF32Index.build(x)
    idx.save(path, compress=True)
    plain = len(idx.to_bytes())
    assert path.stat().st_size < 0.9 * plain
    back = rr.FlatF32Index.load(path)
    np.testing.assert_array_equal(np.asarray(back).view(np.uint32), bits)


def test_a_compressed_file_cannot_be_mapped(data: Data, tmp_path: Path) -> None:
    x, q = data
    for idx in (rr.FlatF32Index.build(x), rr.IvfRabitqIndex.build(x, nlist=8)):
        path = tmp_path / f"{type(idx).__name__}.rbpx"
        idx.save(path, compress=True)
        kind: Any = type(idx)
        with pytest.raises(rr.PersistError, match=r"saved with compress=True.*load it without mmap=True"):
            kind.load(path, mmap=True)
        back = kind.load(path)
        assert not back.mapped and results(back, q) == results(idx, q)


_COMPRESSED_CLASSES: List[Any] = [rr.FlatF32Index, rr.RabitqPlusIndex, rr.IvfRabitqIndex]
_COMPRESSED = {
    cls.__name__: cls.build(
        np.random.default_rng(3).standard_normal((40, 12)).astype(np.float32),
        **({"nlist": 3} if cls is rr.IvfRabitqIndex else {}),
    )
    for cls in _COMPRESSED_CLASSES
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(_COMPRESSED)),
    at=st.integers(min_value=0),
    value=st.integers(min_value=1, max_value=255),
    cut=st.integers(min_value=0),
    mode=st.sampled_from(["change", "cut", "both"]),
)
def test_any_change_or_truncation_of_a_compressed_file_is_a_persist_error(
    tmp_path_factory: pytest.TempPathFactory, name: str, at: int, value: int, cut: int, mode: str
) -> None:
    path = tmp_path_factory.mktemp("vzip") / "c.rbpx"
    _COMPRESSED[name].save(path, compress=True)
    good = path.read_bytes()
    assert _compressed_flag(good)
    bad = bytearray(good)
    if mode in ("change", "both"):
        bad[at % len(bad)] ^= value
    if mode in ("cut", "both"):
        bad = bad[: cut % len(bad)]
    path.write_bytes(bytes(bad))
    with pytest.raises(rr.PersistError):
        getattr(rr, name).load(path)
    with pytest.raises(rr.PersistError):
        getattr(rr, name).from_bytes(bytes(bad))


# ── memory-mapped loading ───────────────────────────────────────────────────


def test_mapped_index_searches_the_same_and_copies_before_a_change(data: Data, tmp_path: Path) -> None:
    x, q = data
    indexes: List[Any] = [
        rr.FlatF32Index.build(x),
        rr.RabitqPlusIndex.build(x, rotation="hadamard"),
        rr.RabitqAsymIndex.build(x, rerank_factor=4),
        rr.IvfRabitqIndex.build(x, nlist=8),
    ]
    for idx in indexes:
        path = tmp_path / f"{type(idx).__name__}.rbpx"
        idx.save(path, crate_format=False)
        before = path.read_bytes()
        kind: Any = idx.__class__
        mapped: Any = kind.load(path, mmap=True)
        assert mapped.mapped and not idx.mapped
        assert results(mapped, q) == results(idx, q)
        view = np.asarray(mapped)
        assert not view.flags.writeable
        np.testing.assert_array_equal(view, x)
        # Copy first: the add copies the vectors into memory, the file and
        # the view taken before stay as they were.
        mapped.add(10**6, x[0])
        assert not mapped.mapped and len(mapped) == len(x) + 1
        assert path.read_bytes() == before
        np.testing.assert_array_equal(view, x)
        assert mapped[10**6].tolist() == x[0].tolist()


def _rss_file_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    raise AssertionError("no RssFile in /proc/self/status")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def assert_damage_refused(path: Path, load: Callable[[], object]) -> None:
    """Flips a bit near the start, in the middle and near the end of the
    file at ``path``: ``load()`` must refuse each damaged copy with a
    ``PersistError`` naming a checksum or corruption."""
    raw = path.read_bytes()
    for at in (100, len(raw) // 2, len(raw) - 40):
        bad = bytearray(raw)
        bad[at] ^= 0x10
        path.write_bytes(bytes(bad))
        with pytest.raises(rr.PersistError, match=r"checksum|corrupt"):
            load()


def test_a_mapped_load_checks_the_file_without_keeping_it_resident(tmp_path: Path) -> None:
    n, dim = 50_000, 128  # a 26 MB file: vectors, and list codes in the scan layout
    rng = np.random.default_rng(12)
    centres = rng.standard_normal((64, dim)).astype(np.float32) * 3
    x = (centres[rng.integers(0, 64, n)] + rng.standard_normal((n, dim))).astype(np.float32)
    q = x[rng.choice(n, 50, replace=False)] + 0.1
    path = tmp_path / "lean.rbpx"
    rr.IvfRabitqIndex.build(x, nlist=200, nprobe=16).save(path)
    file_kb = path.stat().st_size // 1024
    assert file_kb > 25_000
    plain = rr.IvfRabitqIndex.load(path)
    before = _rss_file_kb()
    mapped = rr.IvfRabitqIndex.load(path, mmap=True)
    grown = _rss_file_kb() - before
    # The load read every byte (CRC, every value checked), then let go of the
    # pages: the file stays in the shared page cache, not in this process.
    assert mapped.mapped and grown < file_kb * 0.05, (grown, file_kb)
    assert results(mapped, q) == results(plain, q)
    assert mapped == plain
    # A search touches the probed lists' codes and the reranked rows only.
    touched = _rss_file_kb() - before
    assert touched < file_kb, (touched, file_kb)
    # Damaged after the save: refused before use, mapped or not.
    assert_damage_refused(path, lambda: rr.IvfRabitqIndex.load(path, mmap=True))


def test_a_mapped_index_survives_the_file_being_replaced(data: Data, tmp_path: Path) -> None:
    x, q = data
    path = tmp_path / "x.rbpx"
    rr.FlatF32Index.build(x).save(path)
    mapped = rr.FlatF32Index.load(path, mmap=True)
    want = results(rr.FlatF32Index.build(x), q)
    rr.FlatF32Index.build(x[:10]).save(path)  # atomic rename: the mapped inode stays
    assert results(mapped, q) == want


# ── memory-lean loading (load(path, lean=True)) ─────────────────────────────


def _clustered(n: int, dim: int, seed: int) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((64, dim)).astype(np.float32) * 3
    return (centres[rng.integers(0, 64, n)] + rng.standard_normal((n, dim))).astype(np.float32)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_a_lean_index_ranks_like_the_mapped_one_with_exact_scores_and_never_maps_the_vectors_in(
    metric: Literal["l2", "ip", "cosine"], tmp_path: Path
) -> None:
    n, dim = 40_000, 128  # 20 MB of vectors
    x = _clustered(n, dim, 21)
    q = x[np.random.default_rng(5).choice(n, 300, replace=False)] + 0.05
    path = tmp_path / "lean.rbpx"
    rr.IvfRabitqIndex.build(x, nlist=160, nprobe=12, metric=metric).save(path)
    vectors_kb = x.nbytes // 1024
    plain = rr.IvfRabitqIndex.load(path)
    before = _rss_file_kb()
    lean = rr.IvfRabitqIndex.load(path, lean=True)
    assert lean.lean and lean.mapped and not plain.lean
    # The same candidates, read exactly in the order of their 8-bit rows
    # until the error bound proves the top k: the plain index's hits, with
    # the same exact scores to the bit.
    assert results(lean, q) == results(plain, q)
    assert results(lean, q, k=1) == results(plain, q, k=1)
    assert results(lean, q[:50], k=100) == results(plain, q[:50], k=100)
    # Single queries and filters too (the exact filtered top-k below 2,048
    # allowed rows, proven from the 8-bit rows and read from the file).
    allowed = np.arange(0, n, 37)
    for v in q[:40]:
        a = [(h.id, h.score) for h in lean.search(v, k=5, filter=allowed)]
        b = [(h.id, h.score) for h in plain.search(v, k=5, filter=allowed)]
        assert [h[0] for h in a] == [h[0] for h in b] and a == b
    # Thousands of searches later the float32 rows were read, never mapped
    # in: only the probed lists' codes are file pages in this process.
    for _ in range(5):
        lean.search_batch(q, 10)
    touched = _rss_file_kb() - before
    assert touched < 0.15 * vectors_kb, (touched, vectors_kb)
    assert lean == plain  # (compares every vector: maps them all in)
    # The first change makes it an ordinary index, with the change in it.
    lean.add(10**9, x[1])
    plain.add(10**9, x[1])
    assert (lean.lean, lean.mapped) == (False, False) and lean == plain
    assert results(lean, q[:20]) == results(plain, q[:20])


def test_a_lean_index_reads_the_file_it_loaded_and_needs_one_it_can_map(data: Data, tmp_path: Path) -> None:
    x, q = data
    path = tmp_path / "x.rbpx"
    idx = rr.IvfRabitqIndex.build(x, nlist=8)
    idx.save(path)
    lean = rr.IvfRabitqIndex.load(path, lean=True, mmap=False)  # lean implies mmap
    assert lean.lean and lean.mapped
    want = results(lean, q)
    rr.IvfRabitqIndex.build(x[::-1].copy(), nlist=8).save(path)  # replaced by rename
    assert results(lean, q) == want
    # The other kinds keep their load(path, mmap=...) only.
    with pytest.raises(TypeError, match="lean"):
        rr.FlatF32Index.load(path, lean=True)  # type: ignore[call-arg]
    # Compressed vectors cannot be mapped, so not read by row either.
    idx.save(path, compress=True)
    with pytest.raises(rr.PersistError, match=r"cannot be mapped: it was saved with compress=True"):
        rr.IvfRabitqIndex.load(path, lean=True)
    copied = copy.deepcopy(lean)
    assert not copied.lean and results(copied, q) == want


def test_a_damaged_file_is_refused_by_a_lean_load(data: Data, tmp_path: Path) -> None:
    x, _ = data
    path = tmp_path / "x.rbpx"
    rr.IvfRabitqIndex.build(x, nlist=8).save(path)
    raw = path.read_bytes()
    assert_damage_refused(path, lambda: rr.IvfRabitqIndex.load(path, lean=True))
    path.write_bytes(raw[: len(raw) // 3])
    with pytest.raises(rr.PersistError):
        rr.IvfRabitqIndex.load(path, lean=True)
    with pytest.raises(TypeError):
        rr.IvfRabitqIndex.load(path, lean="yes")  # type: ignore[arg-type]


@pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="needs Linux smaps_rollup")
def test_two_processes_share_one_mapped_copy(tmp_path: Path) -> None:
    n, dim = 40_000, 256  # 41 MB of vectors
    x = np.random.default_rng(3).standard_normal((n, dim)).astype(np.float32)
    path = tmp_path / "big.rbpx"
    rr.FlatF32Index.build(x).save(path)
    vector_kb = n * dim * 4 // 1024
    script = textwrap.dedent(
        f"""
        import sys, numpy as np, ruvector_rabitq as rr
        idx = rr.FlatF32Index.load({str(path)!r}, mmap={{mmap}})
        q = np.asarray(idx)[:20].copy()
        idx.search_batch(q, 5)
        def anonymous_kb():
            f = {{}}
            for line in open('/proc/self/smaps_rollup').read().splitlines()[1:]:
                k, v = line.split(':', 1)
                f[k.strip()] = int(v.split()[0])
            # Anonymous: memory of this process's own (a copy of the
            # vectors); mapped file pages never count, whether or not the
            # other process has touched them yet (Private_* would race).
            return f['Anonymous'], f['Rss']
        print(*anonymous_kb())
        sys.stdout.flush()
        sys.stdin.read()
        """
    )

    def start(mmap: bool) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-c", script.replace("{mmap}", str(mmap))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    first, second = start(True), start(True)
    plain = start(False)
    try:
        readings: Dict[str, Tuple[int, int]] = {}
        for name, proc in [("first", first), ("second", second), ("plain", plain)]:
            assert proc.stdout is not None
            fields: List[str] = proc.stdout.readline().split()
            private, rss = int(fields[0]), int(fields[1])
            readings[name] = (private, rss)
        # Both mapped processes touched every vector (the CRC and the scan),
        # yet hold them as shared file pages, not private memory.
        for name in ("first", "second"):
            private, rss = readings[name]
            assert rss > vector_kb, readings
            assert private < readings["plain"][0] - vector_kb * 0.9, readings
        assert readings["plain"][0] > vector_kb, readings
    finally:
        for proc in (first, second, plain):
            proc.communicate("")


# ── loading without the 2x peak ─────────────────────────────────────────────


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("cls", [rr.FlatF32Index, rr.RabitqPlusIndex, rr.IvfRabitqIndex])
def test_load_peaks_at_about_the_index_size(cls: Any, tmp_path: Path) -> None:
    n, dim = 60_000, 384  # 92 MB of vectors
    rng = np.random.default_rng(4)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    path = tmp_path / "peak.rbpx"
    kwargs: Dict[str, Any] = {"rotation": "hadamard"} if cls is rr.RabitqPlusIndex else {}
    cls.build(x, **kwargs).save(path)
    small = tmp_path / "small.rbpx"
    cls.build(x[:2000], **kwargs).save(small)
    del x
    script = textwrap.dedent(
        f"""
        import numpy, ruvector_rabitq as rr
        def hwm():
            for line in open('/proc/self/status'):
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) * 1024
        # Warm up first (code pages, the thread pool, malloc arenas): the
        # measure is what the load of this index adds.
        rr.{cls.__name__}.load({str(small)!r}).search_batch(numpy.ones((4, {dim}), numpy.float32), 3)
        base = hwm()
        idx = rr.{cls.__name__}.load({str(path)!r})
        print(base, hwm(), idx.memory_bytes)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    base, peak, size = map(int, out.split())
    growth = peak - base
    assert growth <= 1.1 * size, (growth / size, growth, size)


# ── threads ─────────────────────────────────────────────────────────────────


def test_thread_count_is_set_at_runtime_and_checked(data: Data) -> None:
    x, q = data
    before = rr.get_num_threads()
    idx = rr.RabitqPlusIndex.build(x)
    want = results(idx, q)
    try:
        for n in (1, 3):
            rr.set_num_threads(n)
            assert rr.get_num_threads() == n
            assert results(idx, q) == want
            assert rr.runtime_info()["pool_threads"] == n
        for bad in (0, -1, 1025, 10**30):
            with pytest.raises(rr.InvalidArgument, match=f"between 1 and 1024, got {bad}"):
                rr.set_num_threads(bad)
        with pytest.raises(rr.InvalidArgument, match="must be an integer, got float"):
            rr.set_num_threads(2.0)  # type: ignore[arg-type]
        assert rr.get_num_threads() == 3
    finally:
        rr.set_num_threads(before)


def test_thread_count_from_the_environment_until_set() -> None:
    env = dict(os.environ, RUVECTOR_NUM_THREADS="2")
    script = (
        "import ruvector_rabitq as rr; a = rr.get_num_threads(); rr.set_num_threads(5); print(a, rr.get_num_threads())"
    )
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["2", "5"]
