"""Building indexes and searching them: what each kind returns, and how the
parameters (seed, rotation, rerank factor) shape the results.

Scores are squared L2 distances. The kinds that keep the original vectors
(FlatF32Index, RabitqPlusIndex, RabitqAsymIndex with rerank_factor > 1)
return *exact* scores for the ids they return; the kinds that keep only
1-bit codes return estimates.
"""

from __future__ import annotations

import importlib.metadata
import platform
import re
from typing import TYPE_CHECKING, Any, Callable, List, Sequence, Tuple, cast

import numpy as np
import numpy.typing as npt
import pytest

import ruvector_common.errors as common_errors
import ruvector_rabitq as rr

if TYPE_CHECKING:
    from conftest import F32, BruteForce, Builder, Clustered, Data, Index, IndexClass, SeededIndexClass, SqDist

INDEX_CLASSES: List[IndexClass] = [
    rr.FlatF32Index,
    rr.RabitqIndex,
    rr.RabitqPlusIndex,
    rr.RabitqAsymIndex,
    rr.IvfRabitqIndex,
]


def hits_as_arrays(hits: Sequence[rr.SearchHit]) -> Tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    return np.array([h.id for h in hits], dtype=np.int64), np.array([h.score for h in hits], dtype=np.float32)


def recall(found: npt.NDArray[np.integer[Any]], truth: npt.NDArray[np.integer[Any]]) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found.tolist(), truth.tolist())]))


# ── the module surface ──────────────────────────────────────────────────────


def test_version_matches_the_installed_distribution() -> None:
    assert rr.__version__ == "0.1.0"
    assert importlib.metadata.version("ruvector-rabitq") == rr.__version__


def test_limits_are_exported_as_documented() -> None:
    assert (rr.MAX_DIM, rr.MAX_HAAR_DIM, rr.MAX_RERANK_FACTOR, rr.MAX_VECTORS, rr.MAX_NLIST) == (
        8192,
        2048,
        1024,
        100_000_000,
        65_536,
    )


def test_errors_are_the_shared_classes_of_ruvector_common() -> None:
    for name in [
        "RuVectorError",
        "InvalidArgument",
        "DimensionMismatch",
        "NotFound",
        "VectorIndexError",
        "EmptyIndex",
        "PersistError",
    ]:
        assert getattr(rr, name) is getattr(common_errors, name), name


def test_every_index_class_shares_the_private_base_and_the_protocol() -> None:
    base = rr._native._IndexBase  # pyright: ignore[reportPrivateUsage]  # the test checks the private base
    for cls in INDEX_CLASSES:
        assert issubclass(cls, base)
        assert isinstance(cls(4), rr.AnyIndex)


def test_cpu_features_names_the_architecture() -> None:
    features = rr.cpu_features()
    assert isinstance(features, dict)
    assert features["arch"] == platform.machine()
    assert all(isinstance(v, bool) for k, v in features.items() if k != "arch")


def test_runtime_info_describes_this_wheel() -> None:
    info = rr.runtime_info()
    assert info["component"] == "rabitq"
    assert isinstance(info["started"], bool)
    assert isinstance(info["worker_threads"], int)
    assert info["default_worker_threads"] >= 1


# ── construction and properties ─────────────────────────────────────────────


@pytest.mark.parametrize(
    "cls, seed, rotation, rerank_factor, keeps_vectors",
    [
        (rr.RabitqIndex, 42, "haar", 1, False),
        (rr.RabitqPlusIndex, 42, "haar", 20, True),
        (rr.RabitqAsymIndex, 42, "haar", 1, False),
    ],
)
def test_defaults_of_the_rabitq_kinds(
    cls: SeededIndexClass, seed: int, rotation: str, rerank_factor: int, keeps_vectors: bool, data: Data
) -> None:
    x, _ = data
    idx = cls.build(x)
    assert (idx.seed, idx.rotation, idx.rerank_factor, idx.keeps_vectors) == (
        seed,
        rotation,
        rerank_factor,
        keeps_vectors,
    )
    assert (len(idx), idx.dim) == x.shape
    assert idx.ids.dtype == np.int64
    np.testing.assert_array_equal(idx.ids, np.arange(len(x)))


def test_flat_index_has_no_rotation_and_keeps_vectors(data: Data) -> None:
    x, _ = data
    idx = rr.FlatF32Index.build(x)
    assert idx.rotation is None
    assert idx.keeps_vectors is True
    assert (len(idx), idx.dim) == x.shape


def test_asym_keeps_vectors_only_when_it_reranks(data: Data) -> None:
    x, _ = data
    assert rr.RabitqAsymIndex.build(x, rerank_factor=1).keeps_vectors is False
    assert rr.RabitqAsymIndex.build(x, rerank_factor=2).keeps_vectors is True


def test_explicit_parameters_are_reported_back(data: Data) -> None:
    x, _ = data
    idx = rr.RabitqPlusIndex.build(x, seed=2**64 - 1, rerank_factor=1024, rotation="hadamard")
    assert (idx.seed, idx.rerank_factor, idx.rotation) == (2**64 - 1, 1024, "hadamard")
    idx = rr.RabitqPlusIndex(8, seed=0, rerank_factor=1, rotation="haar")
    assert (idx.dim, idx.seed, idx.rerank_factor, idx.rotation, len(idx)) == (8, 0, 1, "haar", 0)


@pytest.mark.parametrize("cls", INDEX_CLASSES)
def test_an_empty_index_fills_up_with_add(cls: IndexClass, data: Data) -> None:
    x, _ = data
    idx = cls(x.shape[1])
    assert len(idx) == 0
    assert idx.ids.shape == (0,)
    with pytest.raises(rr.EmptyIndex, match="empty"):
        idx.search(x[0], 1)
    idx.add(10, x[0])
    idx.add_batch(x[1:5])  # default ids continue from len(idx): 1, 2, 3, 4
    idx.add_batch(x[5:7], ids=[100, 200])
    np.testing.assert_array_equal(idx.ids, [10, 1, 2, 3, 4, 100, 200])
    assert len(idx) == 7
    assert all(i in idx for i in [10, 1, 4, 100, 200])
    assert 0 not in idx and 5 not in idx
    assert idx.search(x[6], 1)[0].id in set(idx.ids.tolist())


def test_build_with_an_empty_matrix_gives_an_empty_index() -> None:
    idx = rr.RabitqPlusIndex.build(np.zeros((0, 12), dtype=np.float32))
    assert (len(idx), idx.dim) == (0, 12)


def test_lists_of_lists_are_accepted_and_converted(data: Data) -> None:
    x, q = data
    from_array = rr.RabitqPlusIndex.build(x)
    from_list = rr.RabitqPlusIndex.build(x.tolist())
    assert from_list == from_array
    assert from_list.search(q[0].tolist(), 5) == from_array.search(q[0], 5)


def test_custom_ids_are_what_search_returns(data: Data, build_any: Builder) -> None:
    x, q = data
    ids = np.arange(len(x), dtype=np.int64) * 3 + 11
    idx = build_any(x, ids)
    np.testing.assert_array_equal(idx.ids, ids)
    assert all(int(i) in idx for i in ids[:20])
    assert 12 not in idx and 10 not in idx
    found, _ = idx.search_batch(q, 10)
    assert set(found.ravel().tolist()) <= set(ids.tolist())


def test_memory_bytes_counts_the_kept_vectors(data: Data) -> None:
    x, _ = data
    flat = rr.FlatF32Index.build(x)
    codes = rr.RabitqIndex.build(x)
    plus = rr.RabitqPlusIndex.build(x)
    assert flat.memory_bytes >= x.nbytes
    assert plus.memory_bytes >= codes.memory_bytes + x.nbytes
    assert codes.memory_bytes < x.nbytes + rr.RabitqIndex(x.shape[1]).memory_bytes
    bigger = rr.RabitqPlusIndex.build(np.concatenate([x, x + 10]))
    assert bigger.memory_bytes > plus.memory_bytes


REPR_CASES: List[Tuple[Callable[[F32], Index], str]] = [
    (
        lambda x: rr.RabitqPlusIndex.build(x, seed=3, rerank_factor=9),
        r"RabitqPlusIndex\(n=400, dim=32, seed=3, rotation='haar', rerank_factor=9, memory_bytes=(\d+)\)",
    ),
    (
        lambda x: rr.RabitqAsymIndex.build(x),
        r"RabitqAsymIndex\(n=400, dim=32, seed=42, rotation='haar', rerank_factor=1, memory_bytes=(\d+)\)",
    ),
    (
        lambda x: rr.RabitqIndex.build(x, rotation="hadamard"),
        r"RabitqIndex\(n=400, dim=32, seed=42, rotation='hadamard', memory_bytes=(\d+)\)",
    ),
    (lambda x: rr.FlatF32Index.build(x), r"FlatF32Index\(n=400, dim=32, memory_bytes=(\d+)\)"),
]


@pytest.mark.parametrize("index, expected", REPR_CASES)
def test_repr_shows_the_parameters(index: Callable[[F32], Index], expected: str, data: Data) -> None:
    idx = index(data[0])
    m = re.fullmatch(expected, repr(idx))
    assert m, repr(idx)
    assert int(m.group(1)) == idx.memory_bytes


# ── what search returns ─────────────────────────────────────────────────────


def test_search_returns_search_hits(data: Data, build_any: Builder) -> None:
    x, q = data
    hits = build_any(x).search(q[0], 7)
    assert len(hits) == 7
    for h in hits:
        assert isinstance(h, rr.SearchHit)
        assert type(h.id) is int and type(h.score) is float
        assert h == (h.id, h.score)
    ids = [h.id for h in hits]
    assert len(set(ids)) == 7
    assert all(0 <= i < len(x) for i in ids)
    scores = [h.score for h in hits]
    assert scores == sorted(scores)


def test_flat_index_finds_the_exact_nearest_neighbours(data: Data, brute_force: BruteForce) -> None:
    x, q = data
    idx = rr.FlatF32Index.build(x)
    for query in q:
        want_ids, want_scores = brute_force(x, query, 10)
        got_ids, got_scores = hits_as_arrays(idx.search(query, 10))
        np.testing.assert_array_equal(got_ids, want_ids)
        np.testing.assert_allclose(got_scores, want_scores, rtol=1e-5, atol=1e-5)


def test_kinds_with_vectors_return_exact_squared_distances(
    data: Data, build_with_vectors: Builder, sq_dist: SqDist
) -> None:
    x, q = data
    idx = build_with_vectors(x)
    ids, scores = idx.search_batch(q, 10)
    for query, row_ids, row_scores in zip(q, ids, scores):
        np.testing.assert_allclose(row_scores, sq_dist(x[row_ids], query), rtol=1e-5, atol=1e-5)


SELF_NEAREST_BUILDERS: List[Callable[[F32], Index]] = [
    rr.FlatF32Index.build,
    lambda x: rr.RabitqPlusIndex.build(x, rerank_factor=1),
    lambda x: rr.RabitqPlusIndex.build(x, rerank_factor=1, rotation="hadamard"),
]


@pytest.mark.parametrize(
    "build",
    SELF_NEAREST_BUILDERS,
    ids=["flat", "plus-haar", "plus-hadamard"],
)
def test_a_stored_vector_is_its_own_nearest_neighbour(data: Data, build: Callable[[F32], Index]) -> None:
    # Symmetric 1-bit codes of a vector and of itself are identical, so even
    # without rerank RabitqPlusIndex puts the vector among its candidates.
    # (The asymmetric estimator has no such guarantee.)
    x, _ = data
    idx = build(x)
    for i in [0, 17, 399]:
        best = idx.search(x[i], 1)[0]
        assert (best.id, best.score) == (i, 0.0)


def test_codes_only_kinds_return_estimates_that_track_the_true_distance(
    data: Data, build_codes_only: Builder, sq_dist: SqDist
) -> None:
    x, q = data
    idx = build_codes_only(x)
    for query in q[:5]:
        ids, estimates = hits_as_arrays(idx.search(query, len(x)))
        assert sorted(ids.tolist()) == list(range(len(x)))
        assert np.all(np.isfinite(estimates))
        assert np.all(np.diff(estimates) >= 0)
        true = sq_dist(x[ids], query)
        assert np.corrcoef(estimates, true)[0, 1] > 0.6
        assert np.median(np.abs(estimates - true) / true) < 0.25


def test_plus_with_a_full_rerank_equals_the_flat_index_bit_for_bit(data: Data) -> None:
    x, q = data
    flat = rr.FlatF32Index.build(x)
    for rotation in ["haar", "hadamard"]:
        plus = rr.RabitqPlusIndex.build(x, seed=5, rotation=rotation, rerank_factor=40)  # 10 * 40 >= 400
        for a, b in zip(plus.search_batch(q, 10), flat.search_batch(q, 10)):
            np.testing.assert_array_equal(a, b)


def test_raising_the_rerank_factor_never_worsens_any_rank(data: Data) -> None:
    x, q = data
    idx = rr.RabitqPlusIndex.build(x, seed=5)
    previous = None
    for rf in [1, 2, 4, 8, 16, 40]:
        _, scores = idx.search_batch(q, 10, rerank_factor=rf)
        if previous is not None:
            assert np.all(scores <= previous), f"rerank_factor {rf}"
        previous = scores
    exact = rr.FlatF32Index.build(x).search_batch(q, 10)[1]
    np.testing.assert_array_equal(previous, exact)


def test_plus_with_a_big_rerank_reaches_high_recall_at_20k(clustered: Clustered, brute_force: BruteForce) -> None:
    x, q = clustered(20_000, 64, seed=2, spread=0.5, queries=100)
    idx = rr.RabitqPlusIndex.build(x, seed=1, rerank_factor=100)
    found, _ = idx.search_batch(q, 10)
    truth = np.stack([brute_force(x, query, 10)[0] for query in q])
    assert recall(found, truth) >= 0.95
    # The 1-bit scan alone is far from exact on this data: the rerank does the work.
    found_1bit, _ = rr.RabitqIndex.build(x, seed=1).search_batch(q, 10)
    assert recall(found_1bit, truth) < 0.95


def test_search_batch_rows_equal_single_searches_exactly(data: Data, build_any: Builder) -> None:
    x, q = data
    idx = build_any(x)
    ids, scores = idx.search_batch(q, 8)
    assert (ids.dtype, scores.dtype, ids.shape, scores.shape) == (
        np.dtype(np.int64),
        np.dtype(np.float32),
        (25, 8),
        (25, 8),
    )
    for query, row_ids, row_scores in zip(q, ids, scores):
        single_ids, single_scores = hits_as_arrays(idx.search(query, 8))
        np.testing.assert_array_equal(row_ids, single_ids)
        np.testing.assert_array_equal(row_scores, single_scores)


def test_equal_scores_are_listed_by_id_in_every_search_path(build_any: Builder) -> None:
    # Eight copies of each of two vectors, ids shuffled against row order:
    # every hit of a query ties with seven others, and search, search_batch
    # and filtered search must all list ties by ascending id.
    rng = np.random.default_rng(5)
    base = rng.standard_normal((2, 32)).astype(np.float32)
    x = np.repeat(base, 8, axis=0)
    ids = rng.permutation(np.arange(100, 116)).astype(np.int64)
    idx = build_any(x, ids)
    single = [hit.id for hit in idx.search(base[0], 8)]
    batch_ids, _ = idx.search_batch(base[:1], 8)
    assert single == sorted(single)
    assert batch_ids[0].tolist() == single
    assert sorted(single) == sorted(ids[:8].tolist())
    allowed = np.asarray(sorted(ids[:8].tolist())[::2], dtype=np.int64)
    assert [hit.id for hit in idx.search(base[0], 8, filter=allowed)] == allowed.tolist()


def test_search_batch_with_no_queries_returns_empty_arrays(data: Data, build_any: Builder) -> None:
    x, _ = data
    ids, scores = build_any(x).search_batch(np.zeros((0, x.shape[1]), dtype=np.float32), 4)
    assert (ids.shape, scores.shape) == ((0, 4), (0, 4))
    assert (ids.dtype, scores.dtype) == (np.dtype(np.int64), np.dtype(np.float32))


def test_k_may_be_any_numpy_integer(data: Data) -> None:
    x, q = data
    idx = rr.RabitqPlusIndex.build(x)
    want = idx.search(q[0], 3)
    for k in cast(List[np.integer[Any]], [np.int8(3), np.uint16(3), np.int64(3), np.uint64(3)]):
        assert idx.search(q[0], k) == want
        np.testing.assert_array_equal(idx.search_batch(q, k)[0], idx.search_batch(q, 3)[0])


def test_k_equal_to_len_returns_every_id(data: Data, build_any: Builder) -> None:
    x, q = data
    idx = build_any(x[:50])
    assert sorted(h.id for h in idx.search(q[0], 50)) == list(range(50))


def test_edge_cases_give_finite_scores_and_distinct_ids(build_any: Builder) -> None:
    zeros_and_ties = np.concatenate([np.zeros((3, 8)), np.ones((6, 8)), np.arange(8 * 8).reshape(8, 8) / 10]).astype(
        np.float32
    )
    idx = build_any(zeros_and_ties)
    for query in [np.zeros(8, np.float32), np.ones(8, np.float32), zeros_and_ties[-1]]:
        ids, scores = hits_as_arrays(idx.search(query, 9))
        assert len(set(ids.tolist())) == 9
        assert np.all(np.isfinite(scores)) and np.all(np.diff(scores) >= 0)
    one_d = build_any(np.arange(10, dtype=np.float32).reshape(10, 1))
    assert one_d.dim == 1
    assert {h.id for h in one_d.search(np.array([3.2], np.float32), 3)} <= set(range(10))


def test_ties_are_all_returned_with_equal_exact_scores(build_with_vectors: Builder) -> None:
    idx = build_with_vectors(np.ones((10, 8), dtype=np.float32))
    hits = idx.search(np.ones(8, dtype=np.float32), 4)
    assert [h.score for h in hits] == [0.0] * 4
    assert len({h.id for h in hits}) == 4


# ── rerank factor ───────────────────────────────────────────────────────────


def test_a_per_call_rerank_factor_overrides_without_changing_the_index(data: Data) -> None:
    x, q = data
    idx = rr.RabitqPlusIndex.build(x, rerank_factor=1)
    exact = rr.FlatF32Index.build(x).search(q[0], 10)
    assert idx.search(q[0], 10, rerank_factor=40) == exact
    assert idx.rerank_factor == 1
    assert idx.search(q[0], 10) == idx.search(q[0], 10, rerank_factor=1)


def test_setting_rerank_factor_changes_later_searches(data: Data) -> None:
    x, q = data
    idx = rr.RabitqPlusIndex.build(x, rerank_factor=1)
    idx.rerank_factor = 40
    assert idx.rerank_factor == 40
    np.testing.assert_array_equal(idx.search_batch(q, 10)[0], rr.FlatF32Index.build(x).search_batch(q, 10)[0])
    assert idx == rr.RabitqPlusIndex.build(x, rerank_factor=40)


def test_asym_rerank_factor_can_change_only_while_keeping_vectors(data: Data) -> None:
    x, _ = data
    reranking = rr.RabitqAsymIndex.build(x, rerank_factor=3)
    reranking.rerank_factor = 5
    assert reranking.rerank_factor == 5
    with pytest.raises(rr.InvalidArgument, match=r"rerank_factor 5 cannot switch to 1"):
        reranking.rerank_factor = 1
    codes_only = rr.RabitqAsymIndex.build(x)
    with pytest.raises(rr.InvalidArgument, match=r"rerank_factor 1 cannot switch to 2"):
        codes_only.rerank_factor = 2
    assert (reranking.rerank_factor, codes_only.rerank_factor) == (5, 1)


def test_a_per_call_rerank_on_an_asym_index_without_vectors_is_refused(data: Data) -> None:
    # Built with rerank_factor=1, the index keeps no vectors to rerank with
    # (the setter refuses the switch); a per-call rerank_factor > 1 must not be
    # silently ignored either.
    x, q = data
    idx = rr.RabitqAsymIndex.build(x)
    assert idx.search(q[0], 5, rerank_factor=1) == idx.search(q[0], 5)
    with pytest.raises(rr.InvalidArgument, match="rerank_factor"):
        idx.search(q[0], 5, rerank_factor=5)
    with pytest.raises(rr.InvalidArgument, match="rerank_factor"):
        idx.search_batch(q, 5, rerank_factor=5)


def test_asym_with_rerank_returns_exact_scores_and_without_it_estimates(data: Data, sq_dist: SqDist) -> None:
    x, q = data
    idx = rr.RabitqAsymIndex.build(x, rerank_factor=4)
    ids, scores = hits_as_arrays(idx.search(q[0], 10))
    np.testing.assert_allclose(scores, sq_dist(x[ids], q[0]), rtol=1e-5)
    ids, scores = hits_as_arrays(rr.RabitqAsymIndex.build(x).search(q[0], 10))
    assert not np.allclose(scores, sq_dist(x[ids], q[0]), rtol=1e-5)


# ── determinism and equality ────────────────────────────────────────────────


def test_same_data_and_seed_give_equal_indexes_and_identical_results(data: Data, build_any: Builder) -> None:
    x, q = data
    a, b = build_any(x), build_any(x)
    assert a == b and not (a != b)
    for ra, rb in zip(a.search_batch(q, 10), b.search_batch(q, 10)):
        np.testing.assert_array_equal(ra, rb)


@pytest.mark.parametrize("cls", [rr.RabitqIndex, rr.RabitqPlusIndex, rr.RabitqAsymIndex])
def test_a_different_seed_gives_a_different_index(cls: SeededIndexClass, data: Data) -> None:
    x, q = data
    a, b = cls.build(x, seed=1), cls.build(x, seed=2)
    assert a != b and not (a == b)
    if cls is not rr.RabitqPlusIndex:  # Plus reranks exactly; the 1-bit estimates differ
        assert not np.array_equal(a.search_batch(q, 10)[1], b.search_batch(q, 10)[1])


def test_equality_is_structural(data: Data) -> None:
    x, _ = data
    base = rr.RabitqPlusIndex.build(x)
    assert base == base
    grown = rr.RabitqPlusIndex.build(x[:200])
    grown.add_batch(x[200:])
    assert grown == base
    assert rr.RabitqPlusIndex.build(x, ids=np.arange(len(x))[::-1].copy()) != base
    assert rr.RabitqPlusIndex.build(x, rerank_factor=7) != base
    assert rr.RabitqPlusIndex.build(x, rotation="hadamard") != base
    assert rr.FlatF32Index.build(x) != base
    assert rr.RabitqPlusIndex.build(x[:-1]) != base
    changed = x.copy()
    changed[5, 5] += 1.0
    assert rr.RabitqPlusIndex.build(changed) != base
    assert (base == "not an index") is False
    assert (base != 42) is True


def test_indexes_built_from_different_vectors_are_not_equal(data: Data, build_any: Builder) -> None:
    x, q = data
    a, b = build_any(x), build_any(-3 * x)  # same ids and parameters
    assert not np.array_equal(a.search_batch(q, 5)[0], b.search_batch(q, 5)[0])
    assert a != b and not (a == b)


def test_indexes_are_unhashable(data: Data) -> None:
    idx = rr.RabitqPlusIndex.build(data[0])
    with pytest.raises(TypeError, match="unhashable"):
        hash(idx)
    with pytest.raises(TypeError):
        set[object]().add(idx)
