"""``recommend(n, dim, recall_target)``: which index to build, and how.

Up to 5 000 vectors an exact ``FlatF32Index`` is recommended; above that an
``IvfRabitqIndex`` whose ``nprobe`` grows with the recall target (with a
floor that small collections need to reach it), and that reaches the target
faster than the flat scan it replaces; a target
above what it reaches gets the exact index again, and a very low one gets
the codes-only ``RabitqIndex``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, List

import numpy as np
import pytest

import ruvector_rabitq as rr

if TYPE_CHECKING:
    from conftest import Clustered, Data

BIG = 1_000_000


def test_a_recommendation_is_a_named_tuple() -> None:
    rec = rr.recommend(5_000, 64)
    assert isinstance(rec, rr.Recommendation) and isinstance(rec, tuple)
    index, params, memory_bytes, reason = rec
    assert (index, params, memory_bytes, reason) == (rec.index, rec.params, rec.memory_bytes, rec.reason)
    assert isinstance(reason, str) and reason


@pytest.mark.parametrize("n", [1, 100, 4_999, 5_000])
@pytest.mark.parametrize("target", [0.1, 0.5, 0.95, 1.0])
def test_small_collections_get_the_exact_flat_index(n: int, target: float) -> None:
    rec = rr.recommend(n, 128, target)
    assert (rec.index, rec.params) == ("FlatF32Index", {})
    assert str(n) in rec.reason


def test_large_collections_get_ivf_with_an_nprobe_that_grows_with_the_target() -> None:
    targets = [0.4, 0.6, 0.85, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995]
    recs = [rr.recommend(BIG, 384, t) for t in targets]
    assert {r.index for r in recs} == {"IvfRabitqIndex"}
    assert {r.params["nlist"] for r in recs} == {1000}  # sqrt(n)
    probes = [r.params["nprobe"] for r in recs]
    assert probes == sorted(probes) and probes[0] < probes[-1] <= 1000
    assert rr.recommend(BIG, 384, 0.95).params == {"nlist": 1000, "nprobe": 40, "rerank_factor": 10}
    assert rr.recommend(5_001, 384).index == "IvfRabitqIndex"


@pytest.mark.parametrize(
    "n, target, metric, nprobe",
    [
        # Spilled lists (l2, cosine).
        (5_001, 0.95, "l2", 20),  # 71 lists: the floor, not 4 % of them (3)
        (20_000, 0.95, "cosine", 20),
        (20_000, 0.98, "l2", 40),
        (20_000, 0.99, "l2", 60),
        (5_001, 0.995, "l2", 71),  # capped at nlist
        (BIG, 0.95, "l2", 40),  # 1,000 lists: the share takes over
        (BIG, 0.85, "l2", 20),
        # One copy (ip): more lists for the same target.
        (5_001, 0.95, "ip", 24),
        (20_000, 0.99, "ip", 80),
        (100_000, 0.95, "ip", 32),
        (BIG, 0.85, "ip", 40),
    ],
)
def test_nprobe_has_a_floor_for_small_collections(n: int, target: float, metric: str, nprobe: int) -> None:
    rec = rr.recommend(n, 384, target, metric=metric)
    assert (rec.index, rec.params["nlist"], rec.params["nprobe"]) == ("IvfRabitqIndex", round(math.sqrt(n)), nprobe)
    assert rec.params.get("metric", "l2") == metric


def test_the_metric_is_checked_and_passed_to_build(clustered: Clustered) -> None:
    for bad in ["euclidean", "L2", "", 2, None]:
        with pytest.raises(rr.InvalidArgument, match="metric must be one of l2, cosine, ip"):
            rr.recommend(BIG, 384, metric=bad)  # type: ignore[arg-type]
    # ip keeps one copy a vector: a smaller estimate, and no codes-only
    # index (RabitqIndex ranks by L2 only).
    assert rr.recommend(BIG, 384, metric="ip").memory_bytes < rr.recommend(BIG, 384).memory_bytes
    assert rr.recommend(BIG, 384, 0.2, metric="ip").index == "IvfRabitqIndex"
    assert rr.recommend(10, 8, metric="cosine").params == {"metric": "cosine"}
    x = clustered(6_000, 32, seed=4)
    for metric in ["l2", "cosine", "ip"]:
        index = rr.recommend(len(x), 32, metric=metric).build(x)
        assert isinstance(index, rr.IvfRabitqIndex)
        assert (index.metric, index.spill) == (metric, metric != "ip")


def test_the_switch_to_ivf_keeps_recall_and_is_faster_than_the_flat_scan(clustered: Clustered) -> None:
    # Just above the threshold and at 4x it, the recommended IVF index finds
    # >= 0.95 of the exact top 10 and answers single queries faster than the
    # exact scan it replaces. (The thresholds themselves come from real
    # 384-d MiniLM embeddings, see _recommend.py: there IVF is 8x faster at
    # 5k and 25x at 20k, at recall@10 0.96-0.97; synthetic data like this
    # only guards the direction of the decision.)
    import time

    for n in (5_001, 20_000):
        x, q = clustered(n, 128, seed=11, queries=60, clusters=256, spread=0.5)
        rec = rr.recommend(n, 128)
        assert rec.index == "IvfRabitqIndex"
        ivf = rr.IvfRabitqIndex.build(x, metric="cosine", **rec.params)
        flat = rr.FlatF32Index.build(x, metric="cosine")
        truth = [{h.id for h in flat.search(row, 10)} for row in q]
        recall = np.mean([len({h.id for h in ivf.search(row, 10)} & t) / 10 for row, t in zip(q, truth)])
        assert recall >= 0.95, (n, recall)

        def p50(index: Any, queries: Any) -> float:
            times: List[float] = []
            for row in queries:
                start = time.perf_counter()
                index.search(row, 10)
                times.append(time.perf_counter() - start)
            return float(np.median(times))

        assert p50(ivf, q) < p50(flat, q), n


def test_the_default_target_is_0_95() -> None:
    assert rr.recommend(BIG, 256) == rr.recommend(BIG, 256, 0.95)


def test_targets_beyond_what_rerank_reaches_get_the_exact_index() -> None:
    for target in [0.996, 0.999, 1.0, 1]:
        rec = rr.recommend(BIG, 128, target)
        assert (rec.index, rec.params) == ("FlatF32Index", {}), target
        assert "exact" in rec.reason


def test_very_low_targets_get_codes_only() -> None:
    rec = rr.recommend(BIG, 128, 0.2)
    assert rec.index == "RabitqIndex"
    assert "rerank_factor" not in rec.params
    assert rec.memory_bytes < rr.recommend(BIG, 128, 0.9).memory_bytes / 4


def test_the_recommended_ivf_index_has_no_dimension_limit() -> None:
    # The IVF default rotation (padded Hadamard) has no O(dim³) set-up.
    for dim in [64, 1025, 8192]:
        assert "rotation" not in rr.recommend(BIG, dim).params
        assert rr.recommend(BIG, dim).index == "IvfRabitqIndex"


def test_memory_estimate_grows_with_n_and_dim() -> None:
    assert rr.recommend(2 * BIG, 128).memory_bytes > rr.recommend(BIG, 128).memory_bytes
    assert rr.recommend(BIG, 256).memory_bytes > rr.recommend(BIG, 128).memory_bytes
    assert rr.recommend(BIG, 128).memory_bytes >= BIG * 128 * 4  # IVF keeps the float vectors
    assert rr.recommend(1000, 16).memory_bytes >= 1000 * 16 * 4


@pytest.mark.parametrize("n, dim", [(5_000, 32), (30_000, 32)])
def test_memory_estimate_is_close_to_the_built_index(clustered: Clustered, n: int, dim: int) -> None:
    x = clustered(n, dim, seed=6)
    rec = rr.recommend(n, dim)
    idx = rec.build(x)
    assert 0.5 <= idx.memory_bytes / rec.memory_bytes <= 2.0


def test_build_makes_the_recommended_index_with_its_parameters(data: Data) -> None:
    x, _ = data
    small = rr.recommend(len(x), x.shape[1]).build(x)
    assert type(small) is rr.FlatF32Index and len(small) == len(x)
    rec = rr.recommend(BIG, x.shape[1], 0.99)
    big = rec.build(x, ids=np.arange(len(x)) + 100)
    assert type(big) is rr.IvfRabitqIndex
    # nlist is clamped to the rows this small set has; the other settings hold.
    assert (big.nlist, big.nprobe, big.rerank_factor) == (len(x), rec.params["nprobe"], rec.params["rerank_factor"])
    assert big.ids[0] == 100
    assert big == rr.IvfRabitqIndex.build(x, np.arange(len(x)) + 100, **rec.params)
    codes = rr.recommend(BIG, x.shape[1], 0.1).build(x)
    assert type(codes) is rr.RabitqIndex


def test_numpy_integers_and_floats_are_accepted() -> None:
    # recommend() is annotated int/int/float but, as tested here, takes NumPy
    # integers and floats at run time: the Any-typed names bridge that stub gap.
    n: Any = np.int64(BIG)
    dim: Any = np.int32(128)
    assert rr.recommend(n, dim, np.float64(0.9)) == rr.recommend(BIG, 128, 0.9)
    target: Any
    for target in [np.float32(0.9), np.float16(0.9)]:
        rec = rr.recommend(BIG, 128, target)
        assert (rec.index, rec.params) == ("IvfRabitqIndex", {"nlist": 1000, "nprobe": 40, "rerank_factor": 10})


@pytest.mark.parametrize(
    "n, dim, target, fragment",
    [
        (0, 128, 0.9, "n must be between 1 and 100000000, got 0"),
        (-5, 128, 0.9, "n must be between 1 and 100000000, got -5"),
        (100_000_001, 128, 0.9, "n must be between 1 and 100000000, got 100000001"),
        (1.5, 128, 0.9, "n must be an integer, got float"),
        (True, 128, 0.9, "n must be an integer, got bool"),
        ("10", 128, 0.9, "n must be an integer, got str"),
        (1000, 0, 0.9, "dim must be between 1 and 8192, got 0"),
        (1000, 8193, 0.9, "dim must be between 1 and 8192, got 8193"),
        (1000, 128.0, 0.9, "dim must be an integer, got float"),
        (1000, 128, 0, "recall_target must be in (0, 1], got 0"),
        (1000, 128, -0.5, "recall_target must be in (0, 1], got -0.5"),
        (1000, 128, 1.01, "recall_target must be in (0, 1], got 1.01"),
        (1000, 128, math.nan, "recall_target must be in (0, 1], got nan"),
        (1000, 128, math.inf, "recall_target must be in (0, 1], got inf"),
        (1000, 128, "0.9", "recall_target must be a number, got str"),
        (1000, 128, True, "recall_target must be a number, got bool"),
        (1000, 128, None, "recall_target must be a number, got NoneType"),
    ],
)
def test_invalid_arguments_are_refused(n: Any, dim: Any, target: Any, fragment: str) -> None:
    with pytest.raises(rr.InvalidArgument) as err:
        rr.recommend(n, dim, target)
    assert str(err.value) == fragment
