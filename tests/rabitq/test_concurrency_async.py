"""Searching from many threads at once, and the asyncio forms of search.

Searches release the GIL and run together; an add waits for running
searches and excludes new ones, so every search sees the index either
before or after a whole ``add_batch``, never halfway.

``search_async`` and ``search_batch_async`` return real coroutines that run
the search on the wheel's runtime and resolve on the calling event loop.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from typing import TYPE_CHECKING, Any, Callable, List, Sequence, Tuple, Type, Union

import numpy as np
import numpy.typing as npt
import pytest

import ruvector_rabitq as rr

if TYPE_CHECKING:
    from conftest import Batch, Builder, Clustered, Data


def hits_as_arrays(hits: Sequence[rr.SearchHit]) -> Tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    return np.array([h.id for h in hits], dtype=np.int64), np.array([h.score for h in hits], dtype=np.float32)


def run_threads(targets: List[Callable[[], None]], timeout: float = 60.0) -> List[BaseException]:
    """Runs each target on its own thread; returns the exceptions they raised."""
    errors: List[BaseException] = []
    lock = threading.Lock()

    def guard(target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as e:
            with lock:
                errors.append(e)

    threads = [threading.Thread(target=guard, args=(t,), daemon=True) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        assert not t.is_alive(), "a thread hung"
    return errors


# ── threads ─────────────────────────────────────────────────────────────────


def test_concurrent_searches_agree_with_sequential_ones(data: Data, build_any: Builder) -> None:
    x, q = data
    idx = build_any(x)
    want = idx.search_batch(q, 10)
    want_single = [idx.search(query, 10) for query in q]
    barrier = threading.Barrier(6)

    def searcher() -> None:
        barrier.wait()
        for _ in range(20):
            got = idx.search_batch(q, 10)
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_array_equal(got[1], want[1])
            for query, hits in zip(q[:5], want_single):
                assert idx.search(query, 10) == hits

    assert run_threads([searcher] * 6) == []


def test_searches_during_add_batch_always_see_a_valid_index(clustered: Clustered) -> None:
    x, q = clustered(3000, 24, seed=8, queries=16)
    idx = rr.RabitqPlusIndex.build(x[:200], seed=3, rerank_factor=4)
    writing = threading.Event()
    writing.set()
    barrier = threading.Barrier(5)
    checked = [0]

    def check(ids: npt.NDArray[np.int64], scores: npt.NDArray[np.float32], query: npt.NDArray[np.float32]) -> None:
        assert np.all(ids >= 0) and np.all(ids < len(x))
        assert len(set(ids.tolist())) == len(ids)
        assert np.all(np.diff(scores) >= 0)
        exact = ((x[ids].astype(np.float64) - query) ** 2).sum(axis=1)
        np.testing.assert_allclose(scores, exact, rtol=1e-5, atol=1e-5)

    def writer() -> None:
        barrier.wait()
        try:
            for start in range(200, len(x), 100):
                idx.add_batch(x[start : start + 100])
        finally:
            writing.clear()

    def searcher(seed: int) -> Callable[[], None]:
        def run() -> None:
            rng = np.random.default_rng(seed)
            barrier.wait()
            rounds = 0
            while writing.is_set() or rounds < 5:
                rounds += 1
                k = int(rng.integers(1, 20))
                ids, scores = idx.search_batch(q, k)
                for row in range(len(q)):
                    check(ids[row], scores[row], q[row])
                query = q[rounds % len(q)]
                check(*hits_as_arrays(idx.search(query, k)), query)
                n = len(idx)
                assert 200 <= n <= len(x) and (n - 200) % 100 == 0, "an add_batch was seen halfway"
                view = np.asarray(idx)
                np.testing.assert_array_equal(view, x[: len(view)])
            checked[0] += rounds

        return run

    errors = run_threads([writer] + [searcher(s) for s in range(4)])
    assert errors == []
    assert checked[0] >= 20
    assert len(idx) == len(x)
    assert idx == rr.RabitqPlusIndex.build(x, seed=3, rerank_factor=4)


def test_failed_adds_from_many_threads_change_nothing(data: Data) -> None:
    x, q = data
    idx = rr.RabitqPlusIndex.build(x)
    want = idx.search_batch(q, 5)
    bad = x[:10].copy()
    bad[9, 3] = np.nan

    def adder() -> None:
        for _ in range(30):
            with pytest.raises(rr.InvalidArgument):
                idx.add_batch(bad, ids=np.arange(1000, 1010))
            with pytest.raises(rr.InvalidArgument):
                idx.add(0, x[0])

    assert run_threads([adder] * 4) == []
    assert len(idx) == len(x)
    for a, b in zip(idx.search_batch(q, 5), want):
        np.testing.assert_array_equal(a, b)


def test_distinct_adds_from_many_threads_all_land(data: Data) -> None:
    x, _ = data
    idx = rr.FlatF32Index(x.shape[1])

    def adder(part: int) -> Callable[[], None]:
        def run() -> None:
            for i in range(part, len(x), 4):
                idx.add(i, x[i])

        return run

    assert run_threads([adder(p) for p in range(4)]) == []
    assert sorted(idx.ids.tolist()) == list(range(len(x)))
    for i in [0, 123, 399]:
        np.testing.assert_array_equal(idx[i], x[i])


@pytest.mark.parametrize("cls", [rr.FlatF32Index, rr.RabitqPlusIndex])
def test_concurrent_add_batch_with_default_ids_never_collides(
    cls: Type[Union[rr.FlatF32Index, rr.RabitqPlusIndex]],
) -> None:
    # Default ids are len(idx) .. len(idx) + n - 1 at the moment the batch is
    # added; reading len and adding must be one step, or two threads pick the
    # same ids and one add fails. (A race: repeated to make it show.)
    batches = [np.random.default_rng(s).standard_normal((5, 16)).astype(np.float32) for s in range(4)]

    def adder(idx: rr.AnyIndex, barrier: threading.Barrier, batch: npt.NDArray[np.float32]) -> Callable[[], None]:
        def run() -> None:
            barrier.wait()
            for _ in range(150):
                idx.add_batch(batch)

        return run

    for _ in range(10):
        idx = cls(16)
        barrier = threading.Barrier(4)
        assert run_threads([adder(idx, barrier, b) for b in batches]) == []
        assert idx.ids.tolist() == list(range(4 * 150 * 5))
        rows = np.asarray(idx).reshape(-1, 5, 16)
        assert all(any(np.array_equal(r, b) for b in batches) for r in rows)


# ── asyncio ─────────────────────────────────────────────────────────────────


def test_search_async_returns_a_real_coroutine(data: Data) -> None:
    idx = rr.RabitqPlusIndex.build(data[0])
    coro = idx.search_async(data[1][0], 3)
    assert asyncio.iscoroutine(coro)
    assert asyncio.run(coro) == idx.search(data[1][0], 3)
    batch = idx.search_batch_async(data[1], 3)
    assert asyncio.iscoroutine(batch)
    asyncio.run(batch)
    info = rr.runtime_info()
    assert info["started"] is True and info["worker_threads"] >= 1


def test_gathered_async_searches_equal_sync_results(data: Data, build_any: Builder) -> None:
    x, q = data
    idx = build_any(x)

    async def main() -> List[Any]:
        return await asyncio.gather(*[idx.search_async(query, 7) for query in q], idx.search_batch_async(q, 7))

    *singles, (ids, scores) = asyncio.run(main())
    assert singles == [idx.search(query, 7) for query in q]
    want_ids, want_scores = idx.search_batch(q, 7)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(scores, want_scores)
    assert (ids.dtype, scores.dtype) == (np.int64, np.float32)


def test_async_rerank_factor_matches_sync(data: Data) -> None:
    x, q = data
    idx = rr.RabitqPlusIndex.build(x, rerank_factor=1)

    async def main() -> Tuple[List[rr.SearchHit], Batch]:
        return await idx.search_async(q[0], 10, rerank_factor=40), await idx.search_batch_async(q, 10, rerank_factor=40)

    single, (ids, _) = asyncio.run(main())
    assert single == idx.search(q[0], 10, rerank_factor=40)
    np.testing.assert_array_equal(ids, idx.search_batch(q, 10, rerank_factor=40)[0])


def test_search_batch_async_with_no_queries_has_k_columns(data: Data) -> None:
    x, _ = data
    idx = rr.RabitqPlusIndex.build(x)
    empty = np.zeros((0, x.shape[1]), dtype=np.float32)
    ids, scores = asyncio.run(idx.search_batch_async(empty, 4))
    assert (ids.shape, scores.shape) == ((0, 4), (0, 4))  # as search_batch gives
    assert (ids.dtype, scores.dtype) == (np.dtype(np.int64), np.dtype(np.float32))


def test_the_query_is_copied_when_search_async_is_called(data: Data) -> None:
    x, q = data
    idx = rr.RabitqPlusIndex.build(x)
    query = q[0].copy()
    batch = q.copy()

    async def main() -> Tuple[List[rr.SearchHit], Batch]:
        single = idx.search_async(query, 5)
        many = idx.search_batch_async(batch, 5)
        query[:] = 100.0  # the caller reuses its buffers at once
        batch[:] = -100.0
        return await single, await many

    single, (ids, _) = asyncio.run(main())
    assert single == idx.search(q[0], 5)
    np.testing.assert_array_equal(ids, idx.search_batch(q, 5)[0])


def test_a_pending_search_keeps_its_index_alive(data: Data) -> None:
    x, q = data
    idx = rr.RabitqPlusIndex.build(x)
    want = idx.search(q[0], 5)
    pending = idx.search_async(q[0], 5)
    del idx
    gc.collect()
    assert asyncio.run(pending) == want


def test_errors_inside_async_work_surface_at_await(data: Data) -> None:
    x, q = data
    idx = rr.RabitqPlusIndex.build(x[:10])

    async def main() -> None:
        # k above len is fine (min(k, len) hits); an empty index is an error
        # raised when awaited, not when the coroutine is created.
        assert len(await idx.search_async(q[0], 11)) == 10
        ids, _ = await idx.search_batch_async(q, 11)
        assert (ids[:, 10] == -1).all()
        with pytest.raises(rr.InvalidArgument, match="k must be between 1 and"):
            await idx.search_batch_async(q, 0)
        with pytest.raises(rr.EmptyIndex):
            await rr.RabitqPlusIndex(x.shape[1]).search_async(q[0], 1)
        # the loop and the index are still fine
        assert await idx.search_async(q[0], 3) == idx.search(q[0], 3)

    asyncio.run(main())


def test_cancelling_a_pending_search_raises_cancelled_error_and_the_loop_stays_healthy(clustered: Clustered) -> None:
    x, q = clustered(20_000, 32, seed=4, queries=200)
    idx = rr.RabitqPlusIndex.build(x, rerank_factor=50)
    want = idx.search(q[0], 5)

    async def main() -> int:
        cancelled = 0
        for _ in range(20):
            task = asyncio.ensure_future(idx.search_batch_async(q, 50))
            await asyncio.sleep(0)  # let it start
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                cancelled += 1
            assert task.cancelled() or task.done()
            assert await idx.search_async(q[0], 5) == want
            await asyncio.sleep(0)
        # A task cancelled before it ever ran is cancelled too.
        never_started = asyncio.ensure_future(idx.search_async(q[0], 5))
        never_started.cancel()
        with pytest.raises(asyncio.CancelledError):
            await never_started
        return cancelled

    assert asyncio.run(main()) == 20
    assert idx.search(q[0], 5) == want


def test_async_searches_from_many_event_loops_in_threads(data: Data) -> None:
    x, q = data
    idx = rr.RabitqPlusIndex.build(x)
    want = [idx.search(query, 5) for query in q]

    def loop_in_thread() -> None:
        async def main() -> List[List[rr.SearchHit]]:
            return await asyncio.gather(*[idx.search_async(query, 5) for query in q])

        for _ in range(5):
            assert asyncio.run(main()) == want

    assert run_threads([loop_in_thread] * 4) == []


def test_async_search_works_under_uvloop(data: Data) -> None:
    uvloop = pytest.importorskip("uvloop")
    x, q = data
    idx = rr.RabitqPlusIndex.build(x)

    async def main() -> Tuple[List[List[rr.SearchHit]], Batch]:
        singles = await asyncio.gather(*[idx.search_async(query, 5) for query in q])
        batch = await idx.search_batch_async(q, 5)
        task = asyncio.ensure_future(idx.search_batch_async(q, 5))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(rr.InvalidArgument):
            await idx.search_async(q[0], 0)
        return singles, batch

    loop = uvloop.new_event_loop()
    try:
        singles, (ids, scores) = loop.run_until_complete(main())
    finally:
        loop.close()
    assert singles == [idx.search(query, 5) for query in q]
    np.testing.assert_array_equal(ids, idx.search_batch(q, 5)[0])
    np.testing.assert_array_equal(scores, idx.search_batch(q, 5)[1])
