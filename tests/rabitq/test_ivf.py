"""IvfRabitqIndex: k-means lists over 1-bit residual codes with exact rerank.

The shared protocol (views, persistence, bad input, threads, asyncio) is
covered for it by the parametrized suites (the ``ivf`` configuration of
``conftest.WITH_VECTORS``); this file checks what is particular to IVF:
recall, the nlist / nprobe settings, training, and that the lists survive a
save.
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Literal, cast

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ruvector_rabitq as rr

if TYPE_CHECKING:
    from conftest import Clustered


def exact_top(x: npt.NDArray[np.float32], q: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.int64]:
    d = ((x[None, :, :].astype(np.float64) - q[:, None, :].astype(np.float64)) ** 2).sum(axis=2)
    return np.argsort(d, axis=1, kind="stable")[:, :k].astype(np.int64)


def recall(found: npt.NDArray[np.int64], truth: npt.NDArray[np.int64]) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found.tolist(), truth.tolist())]))


def assert_brute_force(
    ids: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float32],
    x: npt.NDArray[np.float32],
    q: npt.NDArray[np.float32],
    truth: npt.NDArray[np.int64],
) -> None:
    """The hits are the exact top ``k`` with their exact squared L2 scores."""
    np.testing.assert_array_equal(ids, truth)
    want = ((x[truth] - q[:, None, :]).astype(np.float64) ** 2).sum(axis=2)
    np.testing.assert_allclose(scores, want, rtol=1e-5, atol=1e-4)


@pytest.fixture(scope="module")
def corpus(clustered: Clustered) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """4,000 rows in 64 dimensions around 40 overlapping clusters, and 60
    held-out queries (overlapping, so that one list rarely holds all the
    neighbours of a query)."""
    return clustered(4000, 64, seed=3, clusters=40, spread=1.5, queries=60)


def test_recall_rises_with_nprobe_and_probing_everything_is_exact(
    corpus: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]],
) -> None:
    x, q = corpus
    truth = exact_top(x, q, 10)
    idx = rr.IvfRabitqIndex.build(x, nlist=64, seed=1, spill=False)
    found = {p: idx.search_batch(q, 10, nprobe=p)[0] for p in [1, 4, 16, 64]}
    recalls = [recall(found[p], truth) for p in [1, 4, 16, 64]]
    # More lists find more true neighbours, until the k·rerank_factor best
    # estimates (a fixed budget) rather than the lists limit the recall.
    assert recalls[0] < recalls[1] < recalls[2], recalls
    assert recalls[0] < 0.9 < min(recalls[2:]), recalls
    # Every list probed and every vector reranked: exactly the brute force.
    ids, scores = idx.search_batch(q, 10, nprobe=64, rerank_factor=400)
    assert_brute_force(ids, scores, x, q, truth)


def test_spilled_lists_find_more_neighbours_in_as_many_lists(
    corpus: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]],
) -> None:
    x, q = corpus
    truth = exact_top(x, q, 10)
    one = rr.IvfRabitqIndex.build(x, nlist=64, seed=1, spill=False)
    two = rr.IvfRabitqIndex.build(x, nlist=64, seed=1)
    assert (one.spill, two.spill) == (False, True)
    # Every vector sits in its nearest list and in one other.
    assert int(one.list_sizes.sum()) == len(x)
    assert int(two.list_sizes.sum()) == 2 * len(x)
    # (Gains over six build seeds: 0.11-0.18, 0.015-0.028 and 0.002-0.012.)
    for nprobe, gain in [(1, 0.08), (2, 0.01), (4, 0.0)]:
        r1 = recall(one.search_batch(q, 10, nprobe=nprobe)[0], truth)
        r2 = recall(two.search_batch(q, 10, nprobe=nprobe)[0], truth)
        assert r2 > r1 + gain, (nprobe, r1, r2)
    # A vector seen in two lists is one hit; everything probed is exact.
    ids, scores = two.search_batch(q, 10, nprobe=64, rerank_factor=400)
    assert_brute_force(ids, scores, x, q, truth)
    for nprobe in [1, 3, 64]:
        ids, _ = two.search_batch(q, 10, nprobe=nprobe)
        assert all(len(set(row)) == 10 for row in ids.tolist())
        assert [[h.id for h in two.search(v, 10, nprobe=nprobe)] for v in q] == ids.tolist()


def test_spill_defaults_by_metric_and_takes_only_a_bool() -> None:
    x = np.random.default_rng(4).standard_normal((300, 16)).astype(np.float32)
    cases: List[tuple[Literal["l2", "ip", "cosine"], bool]] = [("l2", True), ("cosine", True), ("ip", False)]
    for metric, default in cases:
        assert rr.IvfRabitqIndex(16, metric=metric).spill is default
        assert rr.IvfRabitqIndex.build(x, metric=metric, spill=False).spill is False
    with pytest.raises(rr.InvalidArgument, match='spill=True needs metric "l2" or "cosine", got "ip"'):
        rr.IvfRabitqIndex(16, metric="ip", spill=True)
    bads: List[tuple[Any, str]] = [(1, "int"), ("yes", "str"), (np.bool_(True), "bool_?")]
    for bad, name in bads:
        with pytest.raises(rr.InvalidArgument, match=f"spill must be a bool, got {name}"):
            rr.IvfRabitqIndex.build(x, spill=bad)


@pytest.mark.parametrize("load", ["plain", "mmap", "lean", "bytes"])
def test_a_saved_spilled_index_keeps_both_lists_of_every_row(
    corpus: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]], load: str, tmp_path: Path
) -> None:
    x, q = corpus
    idx = rr.IvfRabitqIndex.build(x, nlist=24, nprobe=3, seed=2)
    idx.remove(list(range(0, 400, 3)))  # removals keep both entries of a row in step
    idx.add_batch(q[:10] + 0.01, ids=np.arange(9000, 9010))
    path = tmp_path / "spill.rbpx"
    idx.save(path)
    if load == "bytes":
        back = rr.IvfRabitqIndex.from_bytes(idx.to_bytes())
    else:
        back = rr.IvfRabitqIndex.load(path, mmap=load == "mmap", lean=load == "lean")
    assert back.spill and back == idx
    np.testing.assert_array_equal(back.list_sizes, idx.list_sizes)
    assert int(back.list_sizes.sum()) == 2 * len(idx)
    for a, b in zip(idx.search_batch(q, 10), back.search_batch(q, 10)):
        np.testing.assert_array_equal(a, b)
    # Saved without spilling, the flag stays off.
    plain = rr.IvfRabitqIndex.build(x, nlist=24, spill=False)
    plain.save(path)
    assert rr.IvfRabitqIndex.load(path).spill is False


def test_default_settings_give_high_recall(
    corpus: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]],
) -> None:
    x, q = corpus
    idx = rr.IvfRabitqIndex.build(x)
    assert idx.nlist == round(math.sqrt(len(x))) == 63
    assert idx.nprobe == 8  # 1/8 of the lists, at least 8
    assert idx.rerank_factor == 10
    assert recall(idx.search_batch(q, 10)[0], exact_top(x, q, 10)) >= 0.95


def test_nprobe_is_a_setting_and_a_per_call_override(
    corpus: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]],
) -> None:
    x, q = corpus
    idx = rr.IvfRabitqIndex.build(x, nlist=32, nprobe=2)
    assert idx.nprobe == 2
    narrow = idx.search_batch(q, 10)[0]
    idx.nprobe = 32
    wide = idx.search_batch(q, 10)[0]
    np.testing.assert_array_equal(idx.search_batch(q, 10, nprobe=2)[0], narrow)
    assert idx.nprobe == 32, "a per-call nprobe does not change the setting"
    truth = exact_top(x, q, 10)
    assert recall(wide, truth) > recall(narrow, truth)
    assert [h.id for h in idx.search(q[0], 10, nprobe=2)] == narrow[0].tolist()
    # Larger than the list count: all lists.
    idx.nprobe = 10_000
    assert idx.nprobe == 32
    assert "nlist=32, nprobe=32" in repr(idx)


@pytest.mark.parametrize("bad", [0, -1, rr.MAX_NLIST + 1, 2.5, "4", None])
def test_bad_nprobe_and_nlist_are_refused(bad: Any) -> None:
    x = np.eye(4, 8, dtype=np.float32)
    idx = rr.IvfRabitqIndex.build(x, nlist=2)
    if bad is not None:
        with pytest.raises(rr.InvalidArgument, match="nlist"):
            rr.IvfRabitqIndex.build(x, nlist=bad)
        with pytest.raises(rr.InvalidArgument, match="nprobe"):
            rr.IvfRabitqIndex(8, nprobe=bad)
        with pytest.raises(rr.InvalidArgument, match="nprobe"):
            idx.search(x[0], 1, nprobe=bad)
    with pytest.raises(rr.InvalidArgument, match="nprobe"):
        idx.nprobe = cast(Any, bad)  # None included: the setter takes no None


def test_only_ivf_takes_nprobe() -> None:
    x = np.eye(4, 8, dtype=np.float32)
    for idx in [rr.FlatF32Index.build(x), rr.RabitqPlusIndex.build(x), rr.RabitqIndex.build(x)]:
        with pytest.raises(rr.InvalidArgument, match="has no lists; nprobe applies to IvfRabitqIndex"):
            idx.search(x[0], 1, nprobe=2)
        with pytest.raises(rr.InvalidArgument, match="nprobe applies to IvfRabitqIndex"):
            idx.search_batch(x, 1, nprobe=2)


def test_an_empty_index_trains_on_its_first_batch_and_later_adds_join_the_lists(
    corpus: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]],
) -> None:
    x, _ = corpus
    idx = rr.IvfRabitqIndex(64, nlist=16)
    assert (idx.nlist, len(idx), idx.list_sizes.tolist()) == (16, 0, [])
    with pytest.raises(rr.EmptyIndex):
        idx.search(x[0], 1)
    idx.add_batch(x[:3000])
    # Spilled: every vector in two lists.
    assert idx.nlist == 16 and int(idx.list_sizes.sum()) == 2 * 3000
    idx.add(5000, x[3000])
    idx.add_batch(x[3001:], ids=np.arange(6000, 6999))
    assert idx.nlist == 16, "trained once"
    assert int(idx.list_sizes.sum()) == 2 * len(idx) == 2 * 4000
    assert idx.search(x[3000], 1)[0] == rr.SearchHit(5000, 0.0)
    assert idx.search(x[3500], 1)[0] == rr.SearchHit(6499, 0.0)
    assert rr.IvfRabitqIndex(8).nlist is None, "chosen from the first batch"


def test_nlist_is_clamped_to_the_rows_of_the_first_batch() -> None:
    x = np.random.default_rng(0).standard_normal((5, 16)).astype(np.float32)
    idx = rr.IvfRabitqIndex.build(x, nlist=100)
    assert idx.nlist == 5
    assert idx.search(x[2], 5, nprobe=1)[0].id == 2


def test_k_results_even_when_the_probed_lists_hold_fewer() -> None:
    # Two far-apart groups of 3: one list each. nprobe=1 reaches 3 vectors,
    # but k=5 must still give 5 results, taken from the next list.
    x = np.concatenate([np.zeros((3, 4)), np.full((3, 4), 100.0)]).astype(np.float32)
    x += np.arange(24, dtype=np.float32).reshape(6, 4) * 1e-3
    idx = rr.IvfRabitqIndex.build(x, nlist=2, nprobe=1, spill=False)
    assert sorted(idx.list_sizes.tolist()) == [3, 3]
    hits = idx.search(x[0], 5)
    assert len(hits) == 5 and [h.id for h in hits[:3]] == [0, 1, 2]
    ids, _ = idx.search_batch(x, 6)
    assert (ids >= 0).all()


def test_ids_up_to_i64_max_are_kept() -> None:
    x = np.random.default_rng(1).standard_normal((3, 8)).astype(np.float32)
    idx = rr.IvfRabitqIndex.build(x, ids=[0, 2**40, 2**63 - 1], nlist=1)
    assert idx.search(x[2], 1)[0].id == 2**63 - 1
    assert idx.search_batch(x, 1)[0].ravel().tolist() == [0, 2**40, 2**63 - 1]


@pytest.mark.parametrize("rotation", ["haar", "hadamard"])
def test_a_saved_index_keeps_its_lists_and_settings(
    corpus: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]], rotation: str, tmp_path: Path
) -> None:
    x, q = corpus
    idx = rr.IvfRabitqIndex.build(x, nlist=20, nprobe=3, rerank_factor=7, seed=5, rotation=rotation)
    idx.add_batch(q[:10] + 0.01)  # added after training: its lists must survive too
    path = tmp_path / "ivf.rbpx"
    idx.save(path)
    assert path.read_bytes()[:8] == b"rvpx0001", "SDK magic: the Rust crate refuses the file"
    back = rr.IvfRabitqIndex.load(path)
    assert back == idx
    assert (back.nlist, back.nprobe, back.rerank_factor, back.seed, back.rotation) == (20, 3, 7, 5, rotation)
    np.testing.assert_array_equal(back.list_sizes, idx.list_sizes)
    for a, b in zip(idx.search_batch(q, 10), back.search_batch(q, 10)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(rr.PersistError, match="holds a IvfRabitqIndex, not a RabitqPlusIndex"):
        rr.RabitqPlusIndex.load(path)


def _with_crc(raw: bytearray) -> bytes:
    """A version 2 file with its CRC-32 recomputed (so only the edit is wrong)."""
    raw[-16:-12] = zlib.crc32(bytes(raw[:-16])).to_bytes(4, "little")
    return bytes(raw)


def test_an_ivf_file_whose_lists_count_lies_is_refused(tmp_path: Path) -> None:
    x = np.random.default_rng(2).standard_normal((40, 8)).astype(np.float32)
    path = tmp_path / "lie.rbpx"
    rr.IvfRabitqIndex.build(x, nlist=4).save(path)
    good = bytearray(path.read_bytes())
    assert good[:12] == b"rvpx0001" + (2).to_bytes(4, "little")
    assert int.from_bytes(good[44:48], "little") == 4  # version 2: trained lists
    for lists in [0, 5, 41, 2**31]:  # a list count the sizes do not back
        bad = bytearray(good)
        bad[44:48] = lists.to_bytes(4, "little")
        path.write_bytes(_with_crc(bad))
        with pytest.raises(rr.PersistError):
            rr.IvfRabitqIndex.load(path)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(1, 120),
    dim=st.integers(1, 70),
    nlist=st.integers(1, 40),
    nprobe=st.integers(1, 40),
    k=st.integers(1, 15),
    seed=st.integers(0, 2**32),
    spill=st.booleans(),
)
def test_any_shape_gives_k_distinct_ids_with_exact_ascending_scores(
    n: int, dim: int, nlist: int, nprobe: int, k: int, seed: int, spill: bool
) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    idx = rr.IvfRabitqIndex.build(x, nlist=nlist, nprobe=nprobe, seed=seed, spill=spill)
    assert idx.nlist == min(nlist, n)
    # Spilling puts every vector in a second list once there are two.
    assert int(idx.list_sizes.sum()) == n * (2 if spill and min(nlist, n) >= 2 else 1)
    q = rng.standard_normal(dim).astype(np.float32)
    k = min(k, n)
    hits = idx.search(q, k)
    ids: List[int] = [h.id for h in hits]
    assert len(ids) == k == len(set(ids)) and set(ids) <= set(range(n))
    scores = np.array([h.score for h in hits], dtype=np.float64)
    want = ((x[ids].astype(np.float64) - q.astype(np.float64)) ** 2).sum(axis=1)
    np.testing.assert_allclose(scores, want, rtol=1e-4, atol=1e-4)
    assert np.all(np.diff(scores) >= 0)


def test_a_plain_file_claiming_the_ivf_kind_is_refused(tmp_path: Path) -> None:
    # The IVF kind code without lists: the kind and the contents disagree,
    # so the file is refused instead of rebuilt without its lists.
    x = np.random.default_rng(3).standard_normal((3, 4)).astype(np.float32)
    path = tmp_path / "plain.rbpx"
    rr.RabitqPlusIndex.build(x, rotation="hadamard").save(path)
    raw = bytearray(path.read_bytes())
    raw[32] = 4  # version 2: kind code of IvfRabitqIndex
    path.write_bytes(_with_crc(raw))
    with pytest.raises(rr.PersistError, match="do not fit a IvfRabitqIndex of 3 vectors"):
        rr.IvfRabitqIndex.load(path)


def test_the_default_rotation_is_the_exact_padded_hadamard() -> None:
    assert rr.IvfRabitqIndex(384).rotation == "hadamard"
    assert rr.IvfRabitqIndex(384, rotation="haar").rotation == "haar"
    # No O(dim³) construction and no dim cap below MAX_DIM.
    x = np.random.default_rng(4).standard_normal((20, 3000)).astype(np.float32)
    idx = rr.IvfRabitqIndex.build(x, nlist=2, nprobe=2)
    assert idx.search(x[7], 1)[0] == rr.SearchHit(7, 0.0)
    assert rr.IvfRabitqIndex(rr.MAX_DIM).dim == rr.MAX_DIM


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_a_large_batch_scanned_list_by_list_equals_single_searches(
    corpus: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]], metric: Literal["l2", "ip", "cosine"]
) -> None:
    # search_batch scans each probed list once for a group of up to 128
    # queries; 300 queries make several groups. Every row is stored twice
    # (ties in estimates and exact scores), and nprobe=1 over 64 lists
    # sometimes finds fewer than k candidates and must visit more lists.
    x, q = corpus
    twice = np.concatenate([x[:1500], x[:1500]])
    idx = rr.IvfRabitqIndex.build(twice, nlist=64, metric=metric)
    queries = np.concatenate([q, x[:240] + 0.01]).astype(np.float32)
    assert queries.shape[0] == 300
    for nprobe, rerank_factor in [(1, 1), (4, 5), (16, 20)]:
        ids, scores = idx.search_batch(queries, 10, nprobe=nprobe, rerank_factor=rerank_factor)
        for row, query in enumerate(queries):
            hits = idx.search(query, 10, nprobe=nprobe, rerank_factor=rerank_factor)
            assert ids[row].tolist() == [h.id for h in hits], (metric, nprobe, row)
            np.testing.assert_array_equal(scores[row], np.array([h.score for h in hits], np.float32))
    # Ties are listed by id, as everywhere.
    ids, _ = idx.search_batch(twice[:200], 2, nprobe=8)
    assert all(sorted(pair) == pair.tolist() for pair in ids)
