"""The lake follows the indexes (issue 12): ``LocalBackend.remove``, and
``metric=`` / ``filter=`` on every lake search with the indexes' meaning.

References are NumPy brute force and ``ruvector_rabitq.FlatF32Index`` with
the same metric on the same data; backends are real ``LocalBackend`` /
``FsBackend`` objects.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Callable, List, Literal, Tuple

import numpy as np
import numpy.typing as npt
import pytest

import ruvector_lake as rl

from .conftest import clustered, run_threads, sparse_ids

rabitq = pytest.importorskip("ruvector_rabitq")

F32 = npt.NDArray[np.float32]
U64 = npt.NDArray[np.uint64]
DIM = 16
Metric = Literal["l2", "ip", "cosine"]
METRICS: List[Metric] = ["l2", "ip", "cosine"]


def scaled(n: int, *, seed: int) -> F32:
    """Clustered rows scaled to norms in [0.5, 3]: inner product, cosine and
    L2 rank them differently."""
    x = clustered(n, DIM, seed=seed).astype(np.float64)
    norms = np.random.default_rng(seed + 1).uniform(0.5, 3.0, size=n)
    x *= (norms / np.linalg.norm(x, axis=1))[:, None]
    return np.ascontiguousarray(x.astype(np.float32))


def exact(x: F32, ids: U64, q: F32, k: int, metric: str, allowed: Any = None) -> Tuple[List[int], List[float]]:
    """Exact top-``k`` ``(ids, scores)`` by ``metric`` among ``allowed`` ids."""
    x64, q64 = x.astype(np.float64), q.astype(np.float64)
    if metric == "l2":
        s = ((x64 - q64) ** 2).sum(axis=1)
    elif metric == "ip":
        s = -(x64 @ q64)
    else:
        s = -(x64 @ q64) / (np.linalg.norm(x64, axis=1) * np.linalg.norm(q64))
    if allowed is not None:
        s = np.where(np.isin(ids, np.asarray(allowed, dtype=np.uint64)), s, np.inf)
    order = [i for i in np.argsort(s, kind="stable")[:k] if np.isfinite(s[i])]
    sign = 1.0 if metric == "l2" else -1.0
    return [int(ids[i]) for i in order], [float(sign * s[i]) for i in order]


def lake_of(x: F32, ids: U64, **kw: Any) -> Tuple[rl.RuLake, rl.LocalBackend]:
    hot = rl.LocalBackend("hot")
    hot.upsert("docs", ids, x)
    lake = rl.RuLake(**kw)
    lake.register_backend(hot)
    return lake, hot


# ───────────────────────────── remove ─────────────────────────────


def test_remove_counts_and_a_fresh_lake_never_returns_removed_ids() -> None:
    x, ids = clustered(400, DIM, seed=1), sparse_ids(400, seed=1)
    lake, hot = lake_of(x, ids)
    q = x[7]
    assert lake.search_one("hot", "docs", q, 1)[0].id == int(ids[7])
    before = lake.witness("hot", "docs")
    gone = ids[:50]
    # Unknown ids are ignored and repeats count once.
    assert hot.remove("docs", np.concatenate([gone, gone[:5], np.array([12345], dtype=np.uint64)])) == 50
    assert hot.count("docs") == 350
    assert hot.remove("docs", gone) == 0
    hits = lake.search_one("hot", "docs", q, 40)
    assert lake.witness("hot", "docs") != before
    assert not {h.id for h in hits} & {int(i) for i in gone}
    assert [h.id for h in hits[:10]] == pytest.approx(exact(x[50:], ids[50:], q, 10, "l2")[0])
    bi, _ = lake.search_batch("hot", "docs", x[:20], 30)
    assert not set(bi.ravel().tolist()) & {int(i) for i in gone}
    # A plain list of Python ints works too; everything removed: no hits.
    assert hot.remove("docs", [int(i) for i in ids[50:]]) == 350
    assert lake.search_one("hot", "docs", q, 5) == []


def test_remove_of_nothing_keeps_the_generation() -> None:
    x, ids = clustered(50, DIM, seed=2), sparse_ids(50, seed=2)
    lake, hot = lake_of(x, ids)
    lake.search_one("hot", "docs", x[0], 1)
    w = lake.witness("hot", "docs")
    assert hot.remove("docs", np.array([1, 2, 3], dtype=np.uint64)) == 0
    lake.search_one("hot", "docs", x[0], 1)
    assert lake.witness("hot", "docs") == w
    assert lake.cache_stats().primes == 1


@pytest.mark.parametrize("mode", ["eventual", "frozen"])
def test_remove_under_eventual_and_frozen_keeps_their_staleness(mode: str) -> None:
    x, ids = clustered(100, DIM, seed=3), sparse_ids(100, seed=3)
    kw: Any = {"consistency": rl.Consistency.FROZEN}
    if mode == "eventual":
        kw = {"consistency": rl.Consistency.EVENTUAL, "ttl_ms": 3_600_000}
    lake, hot = lake_of(x, ids, **kw)
    assert lake.search_one("hot", "docs", x[9], 1)[0].id == int(ids[9])
    assert hot.remove("docs", ids[9:10]) == 1
    # The entry is trusted as documented: the removed row is still served...
    assert lake.search_one("hot", "docs", x[9], 1)[0].id == int(ids[9])
    # ...until the cache is dropped; then the backend's truth.
    lake.invalidate_cache("hot", "docs")
    assert lake.search_one("hot", "docs", x[9], 1)[0].id != int(ids[9])


def test_remove_bad_input() -> None:
    x, ids = clustered(20, DIM, seed=4), sparse_ids(20, seed=4)
    _, hot = lake_of(x, ids)
    with pytest.raises(rl.NotFound, match='backend "hot" has no collection "nope"'):
        hot.remove("nope", ids[:1])
    with pytest.raises(rl.InvalidArgument, match=r"ids must hold integers, got dtype float32"):
        hot.remove("docs", np.ones(3, dtype=np.float32))
    with pytest.raises(rl.InvalidArgument, match=r"ids\[1\] = -2 is negative"):
        hot.remove("docs", np.array([1, -2], dtype=np.int64))
    with pytest.raises(rl.InvalidArgument, match=r"1-D sequence of integer ids, got shape \(2, 2\)"):
        hot.remove("docs", np.ones((2, 2), dtype=np.uint64))
    with pytest.raises(rl.InvalidArgument, match="collection name"):
        hot.remove("", ids[:1])
    with pytest.raises(rl.InvalidArgument):
        hot.remove("docs", ["a", "b"])
    with pytest.raises(rl.InvalidArgument, match=r"ids\[0\]"):
        hot.remove("docs", [2**64])
    assert hot.count("docs") == 20
    assert hot.remove("docs", np.array([], dtype=np.uint64)) == 0


# ───────────────────────────── metric ─────────────────────────────


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_metric_equals_a_flat_index_with_that_metric(metric: Metric) -> None:
    x = scaled(500, seed=5)
    ids = np.arange(500, dtype=np.uint64) * 7 + 3
    lake, _ = lake_of(x, ids)
    flat = rabitq.FlatF32Index.build(x, ids=ids.astype(np.int64), metric=metric)
    qs = scaled(12, seed=55)
    # cosine is a 1-bit scan + exact rerank: rerank every row to be exact.
    rf = 50 if metric == "cosine" else None
    for q in qs:
        got = lake.search_one("hot", "docs", q, 10, metric=metric, rerank_factor=rf)
        want = flat.search(q, 10)
        assert [h.id for h in got] == [h.id for h in want]
        assert [h.score for h in got] == pytest.approx([h.score for h in want], rel=1e-5, abs=1e-5)
        if metric == "l2":
            # The l2 entry is untouched: exactly the default search.
            assert got == lake.search_one("hot", "docs", q, 10)
    bi, bs = lake.search_batch("hot", "docs", qs, 10, metric=metric, rerank_factor=rf)
    wi, ws = flat.search_batch(qs, 10)
    assert bi.dtype == np.uint64 and bi.shape == (12, 10)
    np.testing.assert_array_equal(bi.astype(np.int64), wi)
    np.testing.assert_allclose(bs, ws, rtol=1e-5, atol=1e-5)


def recall(got: Any, x: F32, ids: U64, qs: F32, metric: str) -> float:
    found = sum(len(set(map(int, row)) & set(exact(x, ids, q, 10, metric)[0])) for q, row in zip(qs, got))
    return found / (10 * len(qs))


def test_cosine_is_a_plus_index_with_metric_cosine() -> None:
    # The entry's cosine index is RabitqPlusIndex(seed=42, rerank_factor=20,
    # haar, metric="cosine") over the rows: identical results.
    x = scaled(2000, seed=6)
    ids = np.arange(2000, dtype=np.uint64)
    lake, _ = lake_of(x, ids)
    plus = rabitq.RabitqPlusIndex.build(x, seed=42, rerank_factor=20, rotation="haar", metric="cosine")
    qs = scaled(30, seed=66)
    bi, bs = lake.search_batch("hot", "docs", qs, 10, metric="cosine")
    wi, ws = plus.search_batch(qs, 10)
    np.testing.assert_array_equal(bi.astype(np.int64), wi)
    np.testing.assert_array_equal(bs, ws)
    assert np.all(np.diff(bs, axis=1) <= 0), "best first: descending"


def test_cosine_recall_at_a_real_dimension() -> None:
    x = clustered(3000, 128, seed=61)
    ids = sparse_ids(3000, seed=61)
    hot = rl.LocalBackend("hot")
    hot.upsert("docs", ids, x)
    lake = rl.RuLake()
    lake.register_backend(hot)
    # Queries near the data, as real ones are (l2 scores the same here).
    qs = x[:30] + np.random.default_rng(62).normal(0.0, 0.3, size=(30, 128)).astype(np.float32)
    both: List[Metric] = ["cosine", "l2"]
    for metric in both:
        bi, _ = lake.search_batch("hot", "docs", qs, 10, metric=metric)
        assert recall(bi, x, ids, qs, metric) >= 0.95


def test_ip_above_the_flat_limit_is_ivf_mips_with_recall() -> None:
    # 24k rows: above the 20k rows a FlatF32Index serves, so IVF lists;
    # recall at least that of an IvfRabitqIndex(metric="ip") with the
    # lake's seed and rerank factor on the same rows.
    x = scaled(24_000, seed=7)
    ids = np.arange(24_000, dtype=np.uint64)
    lake, _ = lake_of(x, ids)
    qs = scaled(40, seed=77)
    bi, bs = lake.search_batch("hot", "docs", qs, 10, metric="ip")
    for row, sc, q in zip(bi, bs, qs):
        assert np.all(np.diff(sc) <= 0), "best first: descending"
        np.testing.assert_allclose(sc, x[row.astype(np.int64)] @ q, rtol=1e-4, atol=1e-4)
    ivf = rabitq.IvfRabitqIndex.build(x, seed=42, rerank_factor=20, rotation="hadamard", metric="ip")
    wi, _ = ivf.search_batch(qs, 10)
    np.testing.assert_array_equal(bi.astype(np.int64), wi)
    assert recall(bi, x, ids, qs, "ip") >= 0.85


def test_federated_merges_by_the_metric() -> None:
    a, b = scaled(300, seed=8), scaled(300, seed=9)
    ids = np.arange(300, dtype=np.uint64)
    hot, cold = rl.LocalBackend("a"), rl.LocalBackend("b")
    hot.upsert("docs", ids, a)
    cold.upsert("docs", ids + 1000, b)
    lake = rl.RuLake()
    lake.register_backend(hot)
    lake.register_backend(cold)
    both = np.concatenate([a, b])
    all_ids = np.concatenate([ids, ids + 1000])
    for metric in METRICS:
        for q in scaled(5, seed=99):
            # Rerank every row (per shard the lake's rerank is 20 / 2 = 10):
            # exact for every metric.
            rf = 300
            got = lake.search_federated("docs", q, 10, metric=metric, rerank_factor=rf)
            assert [h.id for h in got] == exact(both, all_ids, q, 10, metric)[0]
            assert {h.backend for h in got} <= {"a", "b"}
            session = lake.session()
            with session:
                again = session.search_federated("docs", q, 10, metric=metric, rerank_factor=rf)
                assert again == got


def test_sessions_and_async_take_metric_and_filter() -> None:
    x = scaled(200, seed=10)
    ids = sparse_ids(200, seed=10)
    lake, _ = lake_of(x, ids)
    q = x[3]
    allowed = ids[::4]
    want = lake.search_one("hot", "docs", q, 5, metric="ip", filter=allowed)
    assert [h.id for h in want] == exact(x, ids, q, 5, "ip", allowed)[0]
    with lake.session() as s:
        assert s.search_one("hot", "docs", q, 5, metric="ip", filter=allowed) == want
        si, _ = s.search_batch("hot", "docs", q[None, :], 5, metric="ip", filter=allowed)
        assert si[0].tolist() == [h.id for h in want]

    async def go() -> None:
        assert await lake.search_one_async("hot", "docs", q, 5, metric="ip", filter=allowed) == want
        fed = await lake.search_federated_async([("hot", "docs")], q, 5, metric="ip", filter=allowed)
        assert [h.id for h in fed] == [h.id for h in want]
        bi, _ = await lake.search_batch_async("hot", "docs", q[None, :], 5, metric="ip", filter=allowed)
        assert bi[0].tolist() == [h.id for h in want]

    asyncio.run(go())


def test_concurrent_first_searches_build_the_metric_index_once() -> None:
    x = scaled(4000, seed=11)
    ids = sparse_ids(4000, seed=11)
    lake, _ = lake_of(x, ids)
    lake.search_one("hot", "docs", x[0], 1)
    results: List[Any] = []

    def one(i: int) -> Callable[[], None]:
        return lambda: results.append((i, lake.search_one("hot", "docs", x[i], 5, metric="cosine")))

    errors = run_threads([one(i) for i in range(8)])
    assert not errors, errors
    for i, hits in results:
        assert hits == lake.search_one("hot", "docs", x[i], 5, metric="cosine")
        assert hits[0].id == int(ids[i]) and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert lake.cache_stats().primes == 1


def test_metric_bad_input() -> None:
    x, ids = clustered(30, DIM, seed=12), sparse_ids(30, seed=12)
    lake, hot = lake_of(x, ids)
    msg = r'metric must be "l2", "ip" or "cosine", got '
    bads: List[Any] = ["L2", "dot", "", 2]
    for bad in bads:
        with pytest.raises(rl.InvalidArgument, match=msg):
            lake.search_one("hot", "docs", x[0], metric=bad)
        with pytest.raises(rl.InvalidArgument, match=msg):
            lake.search_batch("hot", "docs", x[:2], metric=bad)
        with pytest.raises(rl.InvalidArgument, match=msg):
            lake.search_federated("docs", x[0], metric=bad)
    with pytest.raises(rl.InvalidArgument, match="query row 0 is all zeros"):
        lake.search_one("hot", "docs", np.zeros(DIM, np.float32), metric="cosine")
    # A zero row in the collection: cosine refused naming the row, l2 and ip fine.
    hot.upsert("zero", np.arange(3, dtype=np.uint64), np.vstack([x[:2], np.zeros((1, DIM), np.float32)]))
    with pytest.raises(rl.InvalidArgument, match=r'metric "cosine".*row 2 is all zeros'):
        lake.search_one("hot", "zero", x[0], metric="cosine")
    assert len(lake.search_one("hot", "zero", x[0], metric="ip")) == 3


# ───────────────────────────── filter ─────────────────────────────


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
@pytest.mark.parametrize("share", [0.5, 0.1, 0.02])
def test_filter_equals_the_exact_filtered_top_k(metric: Metric, share: float) -> None:
    x = scaled(1000, seed=13)
    ids = sparse_ids(1000, seed=13)
    lake, _ = lake_of(x, ids)
    rng = np.random.default_rng(int(share * 100))
    allowed = rng.choice(ids, size=int(share * 1000), replace=False)
    qs = scaled(10, seed=131)
    for q in qs:
        got = lake.search_one("hot", "docs", q, 10, metric=metric, filter=allowed, rerank_factor=100)
        wi, ws = exact(x, ids, q, 10, metric, allowed)
        assert [h.id for h in got] == wi
        assert [h.score for h in got] == pytest.approx(ws, rel=1e-4, abs=1e-4)
    bi, _ = lake.search_batch("hot", "docs", qs, 10, metric=metric, filter=allowed, rerank_factor=100)
    assert bi.shape == (10, 10)
    assert set(bi.ravel().tolist()) <= {int(i) for i in allowed}


def test_filter_results_are_min_k_allowed_long_and_ignore_unknown_ids() -> None:
    x, ids = clustered(300, DIM, seed=14), sparse_ids(300, seed=14)
    lake, _ = lake_of(x, ids)
    allowed = np.concatenate([ids[:3], np.array([1, 2, 3], dtype=np.uint64)])
    allowed = np.setdiff1d(allowed, ids[3:])  # keep unknown ids that are not held
    hits = lake.search_one("hot", "docs", x[0], 10, filter=allowed)
    assert sorted(h.id for h in hits) == sorted(int(i) for i in ids[:3])
    bi, bs = lake.search_batch("hot", "docs", x[:4], 10, filter=allowed)
    assert bi.shape == (4, 3) and bs.shape == (4, 3)
    # Only ids the collection does not hold: nothing to return.
    none = np.setdiff1d(np.array([5, 6], dtype=np.uint64), ids)
    assert lake.search_one("hot", "docs", x[0], 10, filter=none) == []
    bi, _ = lake.search_batch("hot", "docs", x[:4], 10, filter=none)
    assert bi.shape == (4, 0)
    # A list of Python ints is a filter too.
    assert lake.search_one("hot", "docs", x[0], 2, filter=[int(ids[5])])[0].id == int(ids[5])


def test_federated_filter_uses_real_ids_on_each_backend() -> None:
    a, b = clustered(200, DIM, seed=15), clustered(200, DIM, seed=16)
    hot, cold = rl.LocalBackend("a"), rl.LocalBackend("b")
    hot.upsert("docs", np.arange(200, dtype=np.uint64), a)
    cold.upsert("docs", np.arange(200, dtype=np.uint64) + 500, b)
    lake = rl.RuLake()
    lake.register_backend(hot)
    lake.register_backend(cold)
    allowed = np.array([1, 2, 3, 501, 502], dtype=np.uint64)
    hits = lake.search_federated("docs", a[1], 10, filter=allowed)
    assert sorted(h.id for h in hits) == [1, 2, 3, 501, 502]
    assert hits[0].id == 1 and hits[0].backend == "a"


def test_filter_on_an_fs_backend(tmp_path: Path) -> None:
    x, ids = scaled(150, seed=17), sparse_ids(150, seed=17)
    fs = rl.FsBackend("fs", tmp_path)
    fs.write("docs", ids, x)
    lake = rl.RuLake()
    lake.register_backend(fs)
    allowed = ids[10:40]
    for metric in METRICS:
        got = lake.search_one("fs", "docs", x[20], 5, metric=metric, filter=allowed)
        assert [h.id for h in got] == exact(x, ids, x[20], 5, metric, allowed)[0]


def test_filter_bad_input() -> None:
    x, ids = clustered(30, DIM, seed=18), sparse_ids(30, seed=18)
    lake, _ = lake_of(x, ids)
    q = x[0]
    cases: List[Tuple[Any, str]] = [
        (np.array([], dtype=np.uint64), "filter must hold at least one allowed id, got an empty sequence"),
        ([], "filter must hold at least one allowed id"),
        (np.ones(2, dtype=np.float64), r"filter must hold integers, got dtype float64"),
        (np.array([3, -1]), r"filter\[1\] = -1 is negative"),
        (np.ones((2, 2), dtype=np.int64), r"filter must be a 1-D sequence of integer ids, got shape \(2, 2\)"),
        (np.int64(3), r"filter must be a 1-D sequence of integer ids, got shape \(\)"),
        ([2**64], r"filter\[0\]"),
    ]
    for bad, msg in cases:
        with pytest.raises(rl.InvalidArgument, match=msg):
            lake.search_one("hot", "docs", q, filter=bad)
        with pytest.raises(rl.InvalidArgument, match=msg):
            lake.search_batch("hot", "docs", x[:2], filter=bad)
        with pytest.raises(rl.InvalidArgument, match=msg):
            lake.search_federated("docs", q, filter=bad)
