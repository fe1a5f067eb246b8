"""Incremental refresh: a backend's ``changes_since`` delta applied to the
cached entry instead of a full pull.

The reference model is :class:`LoggedStore`, an in-memory store with a
change log. Every refreshed entry is compared with a fresh prime of the same
data in a second lake (same witness, same hits and scores) and with a brute
force search of the model.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ruvector_lake as rl

from .conftest import F32, U64, exact_top

DIM = 12


def vector_of(rid: int, version: int) -> F32:
    """The vector of ``rid`` after its ``version``-th write (distinct rows)."""
    rng = np.random.default_rng(rid * 1_000_003 + version)
    return rng.standard_normal(DIM).astype(np.float32)


class LoggedStore(rl.BackendAdapter):
    """A store with a change log: ``(generation, id)`` per write."""

    def __init__(self, name: str = "ref", *, deltas: bool = True) -> None:
        super().__init__(name)
        self.rows: Dict[int, F32] = {}
        self.gen = 0
        self.log: List[Tuple[int, int]] = []
        self.floor = 0
        self.deltas = deltas
        self.pulls = 0
        self.asked: List[Union[int, str]] = []

    def upsert(self, ids: Sequence[int], version: int) -> None:
        self.gen += 1
        for rid in ids:
            self.rows[rid] = vector_of(rid, version)
            self.log.append((self.gen, rid))

    def remove(self, ids: Sequence[int]) -> None:
        self.gen += 1
        for rid in ids:
            self.rows.pop(rid, None)
            self.log.append((self.gen, rid))

    def trim(self) -> None:
        """Forget the log: older generations can no longer be answered."""
        self.log.clear()
        self.floor = self.gen

    def arrays(self) -> Tuple[U64, F32]:
        ids = np.array(list(self.rows), dtype=np.uint64)
        x = np.stack(list(self.rows.values())) if self.rows else np.empty((0, DIM), np.float32)
        return ids, x

    def pull(self, collection: str) -> Tuple[U64, F32]:
        self.pulls += 1
        return self.arrays()

    def generation(self, collection: str) -> int:
        return self.gen

    def changes_since(self, collection: str, generation: Union[int, str]) -> Optional[rl.Changes]:
        self.asked.append(generation)
        if not self.deltas or not isinstance(generation, int) or not self.floor <= generation <= self.gen:
            return None
        changed = sorted({rid for g, rid in self.log if g > generation})
        up = [rid for rid in changed if rid in self.rows]
        gone = [rid for rid in changed if rid not in self.rows]
        x = np.stack([self.rows[r] for r in up]) if up else np.empty((0, DIM), np.float32)
        return rl.Changes(np.array(up, dtype=np.uint64), x, gone, self.gen)


class Snapshot(rl.BackendAdapter):
    """Fixed data, pulled in full (the fresh prime to compare with)."""

    def __init__(self, name: str, ids: U64, x: F32, gen: int) -> None:
        super().__init__(name)
        self.ids, self.x, self.gen = ids, x, gen

    def pull(self, collection: str) -> Tuple[U64, F32]:
        return self.ids, self.x

    def generation(self, collection: str) -> int:
        return self.gen


def assert_equals_a_fresh_prime(lake: rl.RuLake, store: LoggedStore, queries: F32, k: int) -> None:
    """The refreshed entry of ``lake`` against a fresh lake primed from the
    same data, and against brute force over the model."""
    ids, x = store.arrays()
    fresh = rl.RuLake(rerank_factor=lake.rerank_factor)
    fresh.register_backend(Snapshot(store.name, ids, x, store.gen))
    for q in queries:
        got = [(h.id, h.score) for h in lake.search_one(store.name, "c", q, k)]
        want = [(h.id, h.score) for h in fresh.search_one(store.name, "c", q, k)]
        assert got == want
        assert [h[0] for h in got] == exact_top(x, ids, q, min(k, len(ids)))
    assert lake.witness(store.name, "c") == fresh.witness(store.name, "c")
    assert lake.cached_bundle(store.name, "c") == fresh.cached_bundle(store.name, "c")


def test_a_delta_refresh_encodes_only_the_change() -> None:
    store = LoggedStore()
    store.upsert(range(200), 0)
    lake = rl.RuLake(rerank_factor=20)
    lake.register_backend(store)
    queries = np.stack([vector_of(i, 0) for i in range(5)])
    assert lake.search_one("ref", "c", queries[0], 1)[0].id == 0
    assert (store.pulls, lake.cache_stats().primes) == (1, 1)
    # Replace 3 rows, add 2, remove 4: one delta, no pull.
    store.upsert([0, 1, 2, 500, 501], 1)
    store.remove([10, 11, 12, 999])
    hits = lake.search_one("ref", "c", vector_of(500, 1), 1)
    assert hits[0].id == 500 and hits[0].score == pytest.approx(0.0, abs=1e-5)
    stats = lake.cache_stats()
    assert (store.pulls, stats.primes, stats.refreshes, stats.entries) == (1, 1, 1, 1)
    assert stats.last_refresh_ms > 0 and stats.total_refresh_ms == stats.last_refresh_ms
    assert store.asked == [1]
    assert 10 not in {h.id for h in lake.search_one("ref", "c", vector_of(10, 0), 10)}
    assert_equals_a_fresh_prime(lake, store, queries, 10)
    # Unchanged generation: a hit, no question asked.
    lake.search_one("ref", "c", queries[0], 1)
    assert store.asked == [1] and lake.cache_stats().refreshes == 1


def test_no_delta_falls_back_to_a_full_pull() -> None:
    store = LoggedStore()
    store.upsert(range(50), 0)
    lake = rl.RuLake()
    lake.register_backend(store)
    lake.search_one("ref", "c", vector_of(0, 0), 1)
    store.upsert([3], 1)
    store.trim()
    assert lake.search_one("ref", "c", vector_of(3, 1), 1)[0].id == 3
    stats = lake.cache_stats()
    assert (store.pulls, stats.primes, stats.refreshes) == (2, 2, 0)
    assert_equals_a_fresh_prime(lake, store, np.stack([vector_of(3, 1)]), 5)


def test_an_adapter_without_changes_since_is_never_asked() -> None:
    class Plain(LoggedStore):
        changes_since = rl.BackendAdapter.changes_since

    store = Plain()
    store.upsert(range(30), 0)
    lake = rl.RuLake()
    lake.register_backend(store)
    lake.search_one("ref", "c", vector_of(0, 0), 1)
    store.upsert([1], 1)
    lake.search_one("ref", "c", vector_of(0, 0), 1)
    assert store.asked == [] and store.pulls == 2 and lake.cache_stats().refreshes == 0


def test_a_dimension_change_without_a_delta_reprimes_with_the_new_dimension() -> None:
    class Reshaped(LoggedStore):
        def pull(self, collection: str) -> Tuple[U64, F32]:
            ids, x = super().pull(collection)
            return ids, (x if self.gen == 1 else np.hstack([x, x]))

    store = Reshaped(deltas=False)
    store.upsert(range(20), 0)
    lake = rl.RuLake()
    lake.register_backend(store)
    lake.search_one("ref", "c", vector_of(0, 0), 1)
    store.upsert([1], 1)
    q = np.hstack([vector_of(1, 1), vector_of(1, 1)])
    assert lake.search_one("ref", "c", q, 1)[0].id == 1
    bundle = lake.cached_bundle("ref", "c")
    assert bundle is not None and bundle.dim == 2 * DIM
    # The next check is a hit on the re-primed entry.
    lake.search_one("ref", "c", q, 1)
    assert lake.cache_stats().primes == 2 and store.pulls == 2


def test_refresh_with_sessions_and_shared_entries() -> None:
    """A session keeps the entry it saw; a refresh builds a new one."""
    store = LoggedStore()
    store.upsert(range(100), 0)
    lake = rl.RuLake()
    lake.register_backend(store)
    with lake.session() as s:
        before = s.search_one("ref", "c", vector_of(7, 0), 1)
        store.upsert([7], 5)
        assert lake.search_one("ref", "c", vector_of(7, 5), 1)[0].id == 7
        assert s.search_one("ref", "c", vector_of(7, 0), 1) == before
        assert s.witness("ref", "c") != lake.witness("ref", "c")
    assert lake.cache_stats().refreshes == 1


def test_refreshed_entry_saves_and_warms_like_a_fresh_one(tmp_path: Any) -> None:
    store = LoggedStore()
    store.upsert(range(300), 0)
    lake = rl.RuLake()
    lake.register_backend(store)
    lake.search_one("ref", "c", vector_of(0, 0), 1)
    store.upsert(range(0, 300, 7), 3)
    store.remove([5, 6])
    lake.search_one("ref", "c", vector_of(0, 0), 1)
    assert lake.cache_stats().refreshes == 1
    lake.save_cache_to_dir("ref", "c", tmp_path)
    warm = rl.RuLake()
    warm.register_backend(store)
    warm.warm_from_dir("ref", "c", tmp_path)
    assert warm.cache_stats().warm_installs == 1
    queries = np.stack([vector_of(i, 3) for i in range(0, 60, 7)])
    for q in queries:
        assert warm.search_one("ref", "c", q, 5) == lake.search_one("ref", "c", q, 5)
    assert warm.cache_stats().primes == 0
    assert_equals_a_fresh_prime(lake, store, queries, 5)


Step = Tuple[str, Any]
steps = st.lists(
    st.one_of(
        st.tuples(st.just("upsert"), st.lists(st.integers(0, 40), min_size=1, max_size=12)),
        st.tuples(st.just("remove"), st.lists(st.integers(0, 45), min_size=1, max_size=8)),
        st.tuples(st.just("refresh"), st.integers(1, 8)),
        st.tuples(st.just("trim"), st.none()),
    ),
    min_size=1,
    max_size=14,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(initial=st.lists(st.integers(0, 40), min_size=1, max_size=30), script=steps)
def test_refresh_sequences_match_the_reference_model(initial: List[int], script: List[Step]) -> None:
    """Any sequence of upserts, removes, trims and refreshes: after each
    refresh the lake answers exactly as a fresh prime of the model does
    (rerank factor 20 times k covers all rows: every row is reranked, so hits are exact)."""
    store = LoggedStore()
    store.upsert(initial, 0)
    lake = rl.RuLake(rerank_factor=20)
    lake.register_backend(store)
    lake.search_one("ref", "c", vector_of(0, 0), 1)
    pulls, refreshes = 1, 0
    version = 1
    for op, arg in script:
        if op == "upsert":
            store.upsert(arg, version)
            version += 1
        elif op == "remove":
            store.remove(arg)
        elif op == "trim":
            store.trim()
        else:
            bundle = lake.cached_bundle("ref", "c")
            assert bundle is not None
            cached_gen = bundle.generation
            delta = store.floor <= int(cached_gen) and store.gen != int(cached_gen)
            queries = np.stack([vector_of(i, 0) for i in range(arg)])
            assert_equals_a_fresh_prime(lake, store, queries, 3)
            if delta:
                refreshes += 1
            elif store.gen != int(cached_gen):
                pulls += 1
            assert (store.pulls, lake.cache_stats().refreshes) == (pulls, refreshes)


class BadDelta(LoggedStore):
    """Answers ``changes_since`` with ``self.answer``."""

    answer: Any = None

    def changes_since(self, collection: str, generation: Union[int, str]) -> Any:
        return self.answer


ONE = np.ones((1, DIM), np.float32)
NONE: List[int] = []
BAD_DELTAS: List[Tuple[Any, str]] = [
    ((np.array([1], np.uint64), np.ones((1, DIM + 1), np.float32), NONE, 2), "cached dimension 12, got 13"),
    ((np.array([1, 1], np.uint64), np.ones((2, DIM), np.float32), NONE, 2), "appears more than once"),
    ((np.array([1], np.uint64), np.full((1, DIM), np.nan, np.float32), NONE, 2), "finite"),
    ((np.array([1], np.uint64), ONE, [1], 2), "id 1 is both upserted and removed"),
    ((np.array([1, 2], np.uint64), ONE, NONE, 2), "got 2 upserted ids for 1 upserted vectors"),
    ((NONE, ONE, NONE, 2), "upserted_vectors must be empty"),
    ((np.array([2**64 - 1], np.uint64), ONE, NONE, 2), "ids must be between 0 and"),
    ((NONE, NONE, [-1], 2), "removed_ids"),
    ((NONE, NONE, NONE, True), "generation of changes_since must be an int or a str, got bool"),
    ((NONE, NONE, NONE, -3), "generation of changes_since must be an int in 0..2**64 or a str"),
    ((NONE, NONE, NONE), "must return None or a Changes"),
    ("nope", "must return None or a Changes"),
]


@pytest.mark.parametrize("answer, message", BAD_DELTAS)
def test_a_bad_delta_is_a_backend_error_naming_the_backend(answer: Any, message: str) -> None:
    store = BadDelta("bad")
    store.upsert(range(10), 0)
    lake = rl.RuLake()
    lake.register_backend(store)
    lake.search_one("bad", "c", vector_of(0, 0), 1)
    store.upsert([1], 1)
    store.answer = answer
    with pytest.raises(rl.BackendError, match="bad") as info:
        lake.search_one("bad", "c", vector_of(0, 0), 1)
    assert message in str(info.value)
    assert info.value.backend == "bad"
    # The old entry still serves nobody stale: the next good answer refreshes.
    store.answer = None
    assert lake.search_one("bad", "c", vector_of(1, 1), 1)[0].id == 1


def test_an_exception_in_changes_since_is_chained() -> None:
    class Raising(LoggedStore):
        def changes_since(self, collection: str, generation: Union[int, str]) -> Optional[rl.Changes]:
            raise RuntimeError("log unavailable")

    store = Raising("r")
    store.upsert(range(10), 0)
    lake = rl.RuLake()
    lake.register_backend(store)
    lake.search_one("r", "c", vector_of(0, 0), 1)
    store.upsert([1], 1)
    with pytest.raises(rl.BackendError, match=r'changes_since\("c"\): raised RuntimeError: log unavailable') as info:
        lake.search_one("r", "c", vector_of(0, 0), 1)
    assert isinstance(info.value.__cause__, RuntimeError)


def test_async_pulls_leave_the_loop_free_and_prime_within_the_bound() -> None:
    """Eight collections primed at once through ``search_one_async``: the
    event loop keeps ticking while adapters pull (on the runtime's blocking
    threads), and no more pulls run at once than the runtime allows."""
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}

    class Slow(LoggedStore):
        def pull(self, collection: str) -> Tuple[U64, F32]:
            with lock:
                state["now"] += 1
                state["peak"] = max(state["peak"], state["now"])
            time.sleep(0.2)
            with lock:
                state["now"] -= 1
            return super().pull(collection)

    store = Slow("slow")
    store.upsert(range(40), 0)
    lake = rl.RuLake()
    lake.register_backend(store)
    names = [f"c{i}" for i in range(8)]

    async def main() -> Tuple[List[List[rl.LakeHit]], float]:
        gaps: List[float] = []
        done = asyncio.Event()

        async def heartbeat() -> None:
            last = time.perf_counter()
            while not done.is_set():
                await asyncio.sleep(0.01)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        beat = asyncio.ensure_future(heartbeat())
        hits = await asyncio.gather(*(lake.search_one_async("slow", c, vector_of(3, 0), 1) for c in names))
        done.set()
        await beat
        return list(hits), max(gaps)

    hits, worst_gap = asyncio.run(main())
    assert all(h[0].id == 3 for h in hits)
    assert store.pulls == 8
    info = rl.runtime_info()
    bound = int(info["max_blocking_threads"])
    assert 2 <= state["peak"] <= bound, (state, info)
    # Blocking pulls on the loop would stall it for 8 x 0.2 s in a row.
    assert worst_gap < 0.5, worst_gap


def test_searches_during_refreshes_see_whole_generations() -> None:
    """Searches in several threads while a writer moves the store on:
    generation g holds ids 0..120 (g even) or 20..120 (g odd), every vector
    all g, so each answer (every row reranked: exact) must be one whole
    generation: its ids, all with score DIM * g**2. Refreshes run both in
    place (nothing else holds the entry) and by copy (a search holds it);
    odd generations remove rows, so in-place refreshes move rows."""
    n = 120
    lock = threading.Lock()

    class Generations(LoggedStore):
        def write(self, g: int) -> None:
            with lock:
                self.gen += 1
                for rid in range(n):
                    if g % 2 == 1 and rid < 20:
                        self.rows.pop(rid, None)
                    else:
                        self.rows[rid] = np.full(DIM, g, np.float32)
                    self.log.append((self.gen, rid))

        def arrays(self) -> Tuple[U64, F32]:
            with lock:
                return super().arrays()

        def changes_since(self, collection: str, generation: Union[int, str]) -> Optional[rl.Changes]:
            with lock:
                return super().changes_since(collection, generation)

    store = Generations()
    store.write(0)
    lake = rl.RuLake(rerank_factor=n)
    lake.register_backend(store)
    zero = np.zeros(DIM, np.float32)
    assert len(lake.search_one("ref", "c", zero, n)) == n
    stop = threading.Event()
    seen: List[int] = []

    def reader() -> None:
        while not stop.is_set():
            hits = lake.search_one("ref", "c", zero, n)
            g = round(float(np.sqrt(hits[0].score / DIM)))
            assert all(h.score == hits[0].score for h in hits), hits
            assert sorted(h.id for h in hits) == list(range(20 if g % 2 else 0, n)), g
            seen.append(g)

    def writer() -> None:
        try:
            for g in range(1, 40):
                store.write(g)
                time.sleep(0.002)
        finally:
            stop.set()

    from .conftest import run_threads

    assert run_threads([reader, reader, writer]) == []
    assert len(seen) > 0
    assert lake.search_one("ref", "c", zero, 1)[0].score == DIM * 39**2
    stats = lake.cache_stats()
    assert stats.refreshes > 0 and store.pulls == 1
