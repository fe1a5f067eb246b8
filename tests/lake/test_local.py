"""Local backends, search, the builder, consistency, stats, eviction, sessions."""

from __future__ import annotations

from typing import Tuple

import numpy as np
import pytest

import ruvector_lake as rl
import ruvector_rabitq as rr

from .conftest import F32, U64, clustered, exact_top, sparse_ids


def test_register_search_local_equals_a_direct_index() -> None:
    """M2 acceptance 1: 50,000 x 128 in a LocalBackend; search_one gives what
    a direct RabitqPlusIndex (same seed, same rerank factor) gives."""
    x = clustered(50_000, 128, seed=11)
    hot = rl.LocalBackend("hot")
    hot.upsert("docs", np.arange(50_000, dtype=np.uint64), x)
    lake = rl.RuLake.builder().rerank_factor(20).rotation_seed(42).build()
    lake.register_backend(hot)
    direct = rr.RabitqPlusIndex.build(x, seed=42, rerank_factor=20)
    for i in range(0, 50_000, 2_500):
        got = lake.search_one("hot", "docs", x[i], k=10)
        want = direct.search(x[i], k=10)
        assert [(h.id, h.score) for h in got] == [(w.id, w.score) for w in want]
        assert all(h.backend == "hot" and h.collection == "docs" for h in got)
    ids, scores = lake.search_batch("hot", "docs", x[:64], k=10)
    want_ids, want_scores = direct.search_batch(x[:64], k=10)
    assert ids.dtype == np.uint64 and scores.dtype == np.float32
    np.testing.assert_array_equal(ids.astype(np.int64), want_ids)
    np.testing.assert_array_equal(scores, want_scores)


def test_hits_are_named_tuples_with_full_u64_ids(
    lake_with_local: Tuple[rl.RuLake, rl.LocalBackend], small: Tuple[F32, U64]
) -> None:
    lake, _ = lake_with_local
    x, ids = small
    hits = lake.search_one("hot", "docs", x[5], k=5)
    assert isinstance(hits[0], rl.LakeHit)
    assert hits[0].id == int(ids[5]) and hits[0].score == 0.0
    assert [h.id for h in hits] == exact_top(x, ids, x[5], 5)
    assert hits == sorted(hits, key=lambda h: h.score)
    top = rl.LocalBackend("top")
    top.upsert("c", np.array([rl.MAX_ID, 0], dtype=np.uint64), np.eye(2, dtype=np.float32))
    lake.register_backend(top)
    assert lake.search_one("top", "c", np.array([1, 0], dtype=np.float32), k=1)[0].id == 2**64 - 2
    # Python ints above 2**63 work too.
    top.upsert("d", [2**64 - 2], np.ones((1, 2), dtype=np.float32))
    assert lake.search_one("top", "d", np.ones(2, dtype=np.float32), k=3)[0].id == 2**64 - 2


def test_k_larger_than_the_collection_returns_all(
    lake_with_local: Tuple[rl.RuLake, rl.LocalBackend], small: Tuple[F32, U64]
) -> None:
    lake, _ = lake_with_local
    x, _ = small
    assert len(lake.search_one("hot", "docs", x[0], k=10_000)) == 300
    ids, _ = lake.search_batch("hot", "docs", x[:3], k=10_000)
    assert ids.shape == (3, 300)


def test_upsert_replaces_existing_ids_and_bumps_freshness(
    lake_with_local: Tuple[rl.RuLake, rl.LocalBackend], small: Tuple[F32, U64]
) -> None:
    lake, hot = lake_with_local
    _, ids = small
    far = np.full(16, 50.0, dtype=np.float32)
    assert lake.search_one("hot", "docs", far, k=1)[0].id != int(ids[7])
    hot.upsert("docs", ids[7:8], np.stack([far]))
    assert hot.count("docs") == 300
    assert lake.search_one("hot", "docs", far, k=1)[0].id == int(ids[7])


def test_builder_and_constructor_settings() -> None:
    lake = (
        rl.RuLake.builder()
        .rerank_factor(7)
        .rotation_seed(2**64 - 1)
        .max_cache_entries(3)
        .consistency(rl.Consistency.EVENTUAL, ttl_ms=250)
        .build()
    )
    assert (lake.rerank_factor, lake.rotation_seed, lake.max_cache_entries) == (7, 2**64 - 1, 3)
    assert lake.consistency is rl.Consistency.EVENTUAL and lake.ttl_ms == 250
    d = rl.RuLake()
    assert (d.rerank_factor, d.rotation_seed, d.max_cache_entries, d.consistency, d.ttl_ms) == (
        20,
        42,
        None,
        rl.Consistency.FRESH,
        None,
    )
    assert rl.RuLake(consistency=rl.Consistency.FROZEN).consistency is rl.Consistency.FROZEN


@pytest.mark.parametrize(
    ("mode", "ttl", "sees_update"),
    [
        (rl.Consistency.FRESH, None, True),
        (rl.Consistency.EVENTUAL, 60_000, False),
        (rl.Consistency.FROZEN, None, False),
    ],
)
def test_consistency_modes(mode: rl.Consistency, ttl: int | None, sees_update: bool) -> None:
    hot = rl.LocalBackend("hot")
    hot.upsert("c", [1], np.zeros((1, 4), dtype=np.float32))
    lake = rl.RuLake(consistency=mode, ttl_ms=ttl)
    lake.register_backend(hot)
    q = np.full(4, 3.0, dtype=np.float32)
    assert lake.search_one("hot", "c", q, k=1)[0].id == 1
    hot.upsert("c", [2], np.stack([q]))
    assert (lake.search_one("hot", "c", q, k=1)[0].id == 2) is sees_update
    lake.invalidate_cache("hot", "c")
    assert lake.search_one("hot", "c", q, k=1)[0].id == 2


def test_eventual_ttl_expires() -> None:
    import time

    hot = rl.LocalBackend("hot")
    hot.upsert("c", [1], np.zeros((1, 4), dtype=np.float32))
    lake = rl.RuLake(consistency=rl.Consistency.EVENTUAL, ttl_ms=50)
    lake.register_backend(hot)
    q = np.full(4, 3.0, dtype=np.float32)
    lake.search_one("hot", "c", q, k=1)
    hot.upsert("c", [2], np.stack([q]))
    time.sleep(0.2)
    assert lake.search_one("hot", "c", q, k=1)[0].id == 2


def test_contains_witness_invalidate_and_stats(
    lake_with_local: Tuple[rl.RuLake, rl.LocalBackend], small: Tuple[F32, U64]
) -> None:
    lake, _ = lake_with_local
    x, _ = small
    assert ("hot", "docs") not in lake and lake.witness("hot", "docs") is None
    assert lake.cache_stats().hit_rate is None
    lake.search_one("hot", "docs", x[0])
    lake.search_one("hot", "docs", x[1])
    assert ("hot", "docs") in lake and ("hot", "nope") not in lake and "x" not in lake
    w = lake.witness("hot", "docs")
    assert w is not None and len(w) == 64
    cached = lake.cached_bundle("hot", "docs")
    assert cached is not None and cached.witness == w == lake.current_bundle("hot", "docs").witness
    s = lake.cache_stats()
    assert (s.hits, s.misses, s.primes, s.entries) == (1, 1, 1, 1)
    assert s.hit_rate == 0.5 and s.total_prime_ms > 0
    per = lake.cache_stats_by_backend()
    assert per["hot"] == rl.BackendStats(1, 1, 1, 0, 0) and per["hot"].hit_rate == 0.5
    assert lake.cache_stats_by_collection()[("hot", "docs")] == per["hot"]
    assert lake.invalidate_cache("hot", "docs") is True
    assert lake.invalidate_cache("hot", "docs") is False
    assert ("hot", "docs") not in lake and lake.cache_entry_count == 0


def test_max_cache_entries_evicts_least_recently_used() -> None:
    """Upstream defect: with_max_cache_entries never evicted (cap 1, three
    collections -> three entries). Here the cap holds."""
    hot = rl.LocalBackend("hot")
    for c in ("a", "b", "c"):
        hot.upsert(c, [1, 2], np.eye(2, dtype=np.float32))
    lake = rl.RuLake(max_cache_entries=2)
    lake.register_backend(hot)
    q = np.array([1, 0], dtype=np.float32)
    lake.search_one("hot", "a", q)
    lake.search_one("hot", "b", q)
    lake.search_one("hot", "a", q)  # b is now the least recently used
    lake.search_one("hot", "c", q)
    assert lake.cache_entry_count == 2
    assert ("hot", "a") in lake and ("hot", "c") in lake and ("hot", "b") not in lake
    assert lake.cache_stats().evictions == 1
    assert lake.search_one("hot", "b", q, k=1)[0].id == 1  # re-primes transparently


def test_federated_merges_backends_by_score() -> None:
    x = clustered(600, 16, seed=5)
    ids = sparse_ids(600, seed=5)
    a, b = rl.LocalBackend("a"), rl.LocalBackend("b")
    a.upsert("docs", ids[:300], x[:300])
    b.upsert("docs", ids[300:], x[300:])
    lake = rl.RuLake()
    lake.register_backend(a)
    lake.register_backend(b)
    for i in (3, 450):
        hits = lake.search_federated([("a", "docs"), ("b", "docs")], x[i], k=10)
        assert hits[0].id == int(ids[i]) and hits[0].backend == ("a" if i < 300 else "b")
        assert [h.id for h in hits] == exact_top(x, ids, x[i], 10)
        assert lake.search_federated("docs", x[i], k=10) == hits
    exact = lake.search_federated("docs", x[3], k=10, rerank_factor=20)
    assert [h.id for h in exact] == exact_top(x, ids, x[3], 10)


def test_session_gives_repeatable_reads(
    lake_with_local: Tuple[rl.RuLake, rl.LocalBackend], small: Tuple[F32, U64]
) -> None:
    lake, hot = lake_with_local
    far = np.full(16, 40.0, dtype=np.float32)
    assert len(small[0]) == 300
    with lake.session() as s:
        before = s.search_one("hot", "docs", far, k=1)
        hot.upsert("docs", [123], np.stack([far]))
        assert s.search_one("hot", "docs", far, k=1) == before
        assert s.search_federated([("hot", "docs")], far, k=1) == before
        b_ids, _ = s.search_batch("hot", "docs", far[None, :], k=1)
        assert int(b_ids[0, 0]) == before[0].id
        assert s.witness("hot", "docs") is not None
        assert lake.search_one("hot", "docs", far, k=1)[0].id == 123  # the lake itself moved on
    assert s.closed
    with pytest.raises(rl.LakeError, match="closed"):
        s.search_one("hot", "docs", far)


def test_empty_collection_has_no_hits() -> None:
    hot = rl.LocalBackend("hot")
    hot.upsert("c", np.zeros(0, dtype=np.uint64), np.zeros((0, 8), dtype=np.float32))
    lake = rl.RuLake()
    lake.register_backend(hot)
    assert lake.search_one("hot", "c", np.ones(8, dtype=np.float32)) == []
    ids, scores = lake.search_batch("hot", "c", np.ones((2, 8), dtype=np.float32))
    assert ids.shape == scores.shape == (2, 0)


def test_two_lakes_share_one_backend(small: Tuple[F32, U64]) -> None:
    x, ids = small
    hot = rl.LocalBackend("hot")
    hot.upsert("docs", ids, x)
    lakes = [rl.RuLake(), rl.RuLake(rerank_factor=5)]
    for lake in lakes:
        lake.register_backend(hot)
    assert all(lake.search_one("hot", "docs", x[9], k=1)[0].id == int(ids[9]) for lake in lakes)
    assert repr(hot) == "LocalBackend('hot')" and "hot" in repr(lakes[0])
