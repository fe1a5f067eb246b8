"""``metric="l2" | "ip" | "cosine"`` on every index kind.

The reference is NumPy in float64: exact top-k by inner product or cosine
similarity. ``FlatF32Index`` must match it exactly; ``IvfRabitqIndex`` must
reach high recall on unnormalised vectors (real MIPS: norms spread over
[0.5, 2], where ranking by L2 or by cosine gives other answers); the 1-bit
kinds take ``cosine`` and refuse ``ip`` naming the kinds that can.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Literal, Type, Union, cast

import numpy as np
import numpy.typing as npt
import pytest

import ruvector_rabitq as rr

if TYPE_CHECKING:
    from conftest import Clustered

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
OneBitClass = Type[Union[rr.RabitqIndex, rr.RabitqPlusIndex, rr.RabitqAsymIndex]]
#: The metric names an index takes.
MetricName = Literal["l2", "ip", "cosine"]
ONE_BIT: List[OneBitClass] = [rr.RabitqIndex, rr.RabitqPlusIndex, rr.RabitqAsymIndex]


@pytest.fixture(scope="module")
def scaled(clustered: Clustered) -> tuple[F32, F32]:
    """3,000 clustered rows in 48 dimensions rescaled to norms spread over
    [0.5, 2] (as unnormalised embeddings are), and 40 held-out unit queries."""
    x, q = clustered(3000, 48, seed=11, clusters=30, spread=1.5, queries=40)
    rng = np.random.default_rng(5)
    norms = rng.uniform(0.5, 2.0, size=(len(x), 1))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True) * norms).astype(np.float32)
    return x, (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def exact(x: F32, q: F32, k: int, metric: str) -> tuple[I64, npt.NDArray[np.float64]]:
    """Best-first ids and scores by inner product or cosine, in float64."""
    x64, q64 = x.astype(np.float64), q.astype(np.float64)
    if metric == "cosine":
        x64 = x64 / np.linalg.norm(x64, axis=1, keepdims=True)
        q64 = q64 / np.linalg.norm(q64, axis=1, keepdims=True)
    sims = q64 @ x64.T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return order.astype(np.int64), np.take_along_axis(sims, order, axis=1)


def recall(found: I64, truth: I64) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found.tolist(), truth.tolist())]))


def test_l2_is_the_default_and_the_metric_is_reported(scaled: tuple[F32, F32]) -> None:
    x, _ = scaled
    assert rr.FlatF32Index(8).metric == "l2"
    assert rr.IvfRabitqIndex.build(x[:500], metric="ip").metric == "ip"
    plus = rr.RabitqPlusIndex.build(x[:200], metric="cosine", seed=1)
    assert plus.metric == "cosine"
    assert "metric='cosine'" in repr(plus)
    assert "metric" not in repr(rr.FlatF32Index(8))


@pytest.mark.parametrize("metric", ["ip", "cosine"])
def test_flat_ranks_exactly_like_numpy(scaled: tuple[F32, F32], metric: MetricName) -> None:
    x, q = scaled
    index = rr.FlatF32Index.build(x, metric=metric)
    want_ids, want_scores = exact(x, q, 10, metric)
    ids, scores = index.search_batch(q, 10)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-5)
    assert np.all(np.diff(scores, axis=1) <= 0), "best first: descending similarities"
    hits = index.search(q[0], 10)
    assert [h.id for h in hits] == want_ids[0].tolist()
    assert [h.score for h in hits] == scores[0].tolist()


@pytest.mark.parametrize("metric", ["ip", "cosine"])
def test_ivf_reaches_high_recall_on_unnormalised_vectors(scaled: tuple[F32, F32], metric: MetricName) -> None:
    x, q = scaled
    index = rr.IvfRabitqIndex.build(x, nlist=40, metric=metric, seed=3)
    want_ids, _ = exact(x, q, 10, metric)
    ids, scores = index.search_batch(q, 10)
    assert recall(ids, want_ids) >= 0.95
    # Every score is exact (reranked), whatever was found.
    found = x[ids] if metric == "ip" else x[ids] / np.linalg.norm(x[ids], axis=2, keepdims=True)
    qq = q if metric == "ip" else q / np.linalg.norm(q, axis=1, keepdims=True)
    np.testing.assert_allclose(scores, np.einsum("qkd,qd->qk", found, qq), rtol=1e-4, atol=1e-4)
    # Probing every list with a full rerank is exact.
    everything, _ = index.search_batch(q, 10, nprobe=40, rerank_factor=300)
    np.testing.assert_array_equal(everything, want_ids)


def test_ip_is_not_cosine_nor_l2(scaled: tuple[F32, F32]) -> None:
    """On unnormalised vectors the three metrics disagree, so a test of one
    cannot pass by computing another."""
    x, q = scaled
    by = {m: rr.FlatF32Index.build(x, metric=m).search_batch(q, 10)[0] for m in ("l2", "ip", "cosine")}
    assert recall(by["ip"], by["l2"]) < 0.9
    assert recall(by["ip"], by["cosine"]) < 0.9


@pytest.mark.parametrize(
    "cls,rerank,floor",
    [
        # Estimates only (no rerank): the 1-bit kinds' usual low recall.
        (rr.RabitqIndex, None, 0.2),
        (rr.RabitqAsymIndex, None, 0.3),
        (rr.RabitqAsymIndex, 8, 0.8),
        (rr.RabitqPlusIndex, None, 0.8),
    ],
    ids=["rabitq", "asym", "asym-rerank", "plus"],
)
def test_one_bit_kinds_take_cosine(scaled: tuple[F32, F32], cls: OneBitClass, rerank: Any, floor: float) -> None:
    x, q = scaled
    index: Any = cls.build(x, metric="cosine")
    if rerank:
        index = rr.RabitqAsymIndex.build(x, metric="cosine", seed=2, rerank_factor=rerank)
    want_ids, _ = exact(x, q, 10, "cosine")
    ids, scores = index.search_batch(q, 10)
    assert np.all(np.diff(scores, axis=1) <= 1e-6), "best first"
    assert np.all(scores <= 1.0 + 1e-3)
    assert recall(ids, want_ids) >= floor


@pytest.mark.parametrize("cls", ONE_BIT, ids=lambda c: c.__name__)
def test_one_bit_kinds_refuse_ip_naming_the_kinds_that_can(cls: OneBitClass) -> None:
    with pytest.raises(rr.InvalidArgument, match="FlatF32Index or IvfRabitqIndex") as err:
        cls(16, metric="ip")
    assert cls.__name__ in str(err.value)
    with pytest.raises(rr.InvalidArgument, match="ip"):
        cls.build(np.ones((4, 16), np.float32), metric="ip")


@pytest.mark.parametrize("bad", ["L2", "euclidean", "", "cos", 2, b"ip", ["l2"]])
def test_metric_typos_name_the_choices_and_what_was_given(bad: Any) -> None:
    with pytest.raises(rr.InvalidArgument, match=r'"l2", "ip" or "cosine", got') as err:
        rr.IvfRabitqIndex(8, metric=bad)
    assert (f'"{bad}"' if isinstance(bad, str) else repr(bad)) in str(err.value)
    with pytest.raises(rr.InvalidArgument):
        rr.FlatF32Index.build(np.ones((3, 8), np.float32), metric=cast(Any, bad))


def test_cosine_stores_unit_vectors_and_refuses_rows_without_direction() -> None:
    x = np.array([[3.0, 4.0], [0.0, 2.0]], np.float32)
    index = rr.FlatF32Index.build(x, metric="cosine")
    np.testing.assert_allclose(index[0], [0.6, 0.8], rtol=1e-6)
    with pytest.raises(rr.InvalidArgument, match="row 1 is all zeros"):
        index.add_batch(np.array([[1.0, 1.0], [0.0, 0.0]], np.float32), ids=[5, 6])
    assert len(index) == 2 and 5 not in index, "a refused batch changes nothing"
    with pytest.raises(rr.InvalidArgument, match="all zeros"):
        index.search(np.zeros(2, np.float32), 1)
    hits = index.search(np.array([1.0, 0.0], np.float32), 2)
    assert [h.id for h in hits] == [0, 1]
    assert hits[0].score == pytest.approx(0.6) and hits[1].score == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("metric", ["ip", "cosine"])
def test_search_and_batch_and_async_agree(scaled: tuple[F32, F32], metric: MetricName) -> None:
    import asyncio

    x, q = scaled
    index = rr.IvfRabitqIndex.build(x[:1500], metric=metric, seed=4)
    ids, scores = index.search_batch(q[:5], 7)
    for i in range(5):
        hits = index.search(q[i], 7)
        assert [h.id for h in hits] == ids[i].tolist()
        assert [h.score for h in hits] == scores[i].tolist()
        assert asyncio.run(index.search_async(q[i], 7)) == hits


@pytest.mark.parametrize(
    "cls,metric",
    [
        (rr.FlatF32Index, "ip"),
        (rr.FlatF32Index, "cosine"),
        (rr.IvfRabitqIndex, "ip"),
        (rr.RabitqPlusIndex, "cosine"),
        (rr.RabitqAsymIndex, "cosine"),
    ],
)
def test_a_saved_index_keeps_its_metric(scaled: tuple[F32, F32], tmp_path: Path, cls: Any, metric: MetricName) -> None:
    x, q = scaled
    index = cls.build(x[:800], metric=metric)
    if cls is rr.RabitqAsymIndex:
        index = cls.build(x[:800], metric=metric, rerank_factor=4)
    path = tmp_path / "index.rbpx"
    index.save(path)
    loaded = cls.load(path)
    assert loaded.metric == metric
    assert loaded == index
    np.testing.assert_array_equal(loaded.search_batch(q, 5)[0], index.search_batch(q, 5)[0])
