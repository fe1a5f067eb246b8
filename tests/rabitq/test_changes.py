"""Indexes for changing data (issue 12): ``remove``, ``upsert``, ``del idx[id]``,
``compact``, filtered search (``filter=`` with an id array or an ``IdSet``) and
the one k rule, on every index kind, against NumPy references."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Set

import numpy as np
import numpy.typing as npt
import pytest
from conftest import F32, Builder, Index, make_clustered
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import ruvector_rabitq as rr

DIM = 16


def exact_filtered(x: F32, ids: npt.NDArray[np.int64], q: F32, k: int, allowed: Set[int]) -> List[int]:
    """Ids of the exact filtered top-``k`` (float64 distances, ties by id)."""
    mask = np.array([int(i) in allowed for i in ids], dtype=bool)
    xs, ids_ok = x[mask].astype(np.float64), ids[mask]
    d = ((xs - q.astype(np.float64)) ** 2).sum(axis=1)
    order = np.lexsort((ids_ok, d))[:k]
    return [int(i) for i in ids_ok[order]]


# ── bad input ───────────────────────────────────────────────────────────────


def small() -> rr.RabitqPlusIndex:
    return rr.RabitqPlusIndex.build(make_clustered(50, DIM, seed=3), seed=1, rerank_factor=4)


@pytest.mark.parametrize(
    "bad, message",
    [
        ([-1, 2], "ids[0] = -1 is negative: ids must be >= 0"),
        (np.array([1.5]), "ids must hold integers, got dtype float64"),
        (np.array([[1, 2]]), "ids must be a 1-D sequence of ids, got an array of shape (1, 2)"),
        ("abc", "ids must hold integers"),
        (5, "ids must be a 1-D sequence of ids, got int"),
    ],
)
def test_remove_refuses_bad_ids(bad: Any, message: str) -> None:
    idx = small()
    with pytest.raises(rr.InvalidArgument) as err:
        idx.remove(bad)
    assert message in str(err.value)
    assert len(idx) == 50


@pytest.mark.parametrize(
    "bad, message",
    [
        ([-3], "filter[0] = -3 is negative: ids must be >= 0"),
        (np.array([0.5, 1.0]), "filter must hold integers, got dtype float64"),
        (np.array([[1], [2]]), "filter must be a 1-D sequence of ids, got an array of shape (2, 1)"),
        ([2**32], "filter[0] = 4294967296 cannot be an id of RabitqPlusIndex: ids are between 0 and 4294967295"),
        ("x", "filter must hold integers"),
        (3, "filter must be a 1-D sequence of ids, got int"),
    ],
)
def test_filter_refuses_bad_ids(bad: Any, message: str) -> None:
    idx = small()
    q = make_clustered(1, DIM, seed=9)[0]
    calls: List[Callable[[], object]] = [
        lambda: idx.search(q, 3, filter=bad),
        lambda: idx.search_batch(q[None, :], 3, filter=bad),
        lambda: asyncio.run(idx.search_async(q, 3, filter=bad)),
        lambda: asyncio.run(idx.search_batch_async(q[None, :], 3, filter=bad)),
    ]
    for call in calls:
        with pytest.raises(rr.InvalidArgument) as err:
            call()
        assert message in str(err.value)


def test_idset_refuses_bad_ids_and_answers_len_and_in() -> None:
    with pytest.raises(rr.InvalidArgument, match=r"ids\[1\] = -2 is negative"):
        rr.IdSet([1, -2])
    with pytest.raises(rr.InvalidArgument, match="ids must hold integers, got dtype float32"):
        rr.IdSet(np.ones(3, dtype=np.float32))
    with pytest.raises(rr.InvalidArgument, match=r"ids\[0\] = 9223372036854775808 is not an id"):
        rr.IdSet(np.array([2**63], dtype=np.uint64))
    s = rr.IdSet(np.array([5, 3, 5, 9], dtype=np.uint64))
    assert len(s) == 3 and 5 in s and 4 not in s and -1 not in s and "5" not in s
    assert s.ids.tolist() == [3, 5, 9] and repr(s) == "IdSet(len=3)"
    assert len(rr.IdSet([])) == 0


def test_upsert_refuses_bad_input_and_changes_nothing() -> None:
    idx = small()
    before = np.asarray(idx).copy()
    good = make_clustered(2, DIM, seed=4)
    nan = good.copy()
    nan[1, 3] = np.nan
    cases: Dict[str, Any] = {
        "NaN": (lambda: idx.upsert([0, 100], nan), "vectors must hold only finite values, got NaN at vectors[1, 3]"),
        "repeat": (lambda: idx.upsert([7, 7], good), "ids[1] = 7 appears more than once"),
        "count": (lambda: idx.upsert([1, 2, 3], good), "ids must be a 1-D sequence of 2 ids"),
        "negative": (lambda: idx.upsert([-1, 2], good), "ids[0] = -1 is negative"),
        "too big": (lambda: idx.upsert([0, 2**32], good), "ids[1] = 4294967296 does not fit this index"),
    }
    for name, (call, message) in cases.items():
        with pytest.raises(rr.InvalidArgument) as err:
            call()
        assert message in str(err.value), name
    with pytest.raises(rr.DimensionMismatch):
        idx.upsert([0], np.ones((1, DIM + 1), dtype=np.float32))
    np.testing.assert_array_equal(np.asarray(idx), before)
    assert idx.ids.tolist() == list(range(50))


def test_delitem_is_keyerror_compatible() -> None:
    idx = small()
    del idx[7]
    assert 7 not in idx and len(idx) == 49
    for missing in [7, 1000, -1]:
        with pytest.raises(rr.NotFound) as err:
            del idx[missing]
        assert f"id {missing} is not in the index" in str(err.value)
        assert isinstance(err.value, LookupError)  # KeyError's base, as for idx[id]
    with pytest.raises(rr.InvalidArgument, match="id must be an integer, got str"):
        del idx["3"]  # type: ignore[arg-type]


# ── remove / upsert on every kind ───────────────────────────────────────────


def test_removed_ids_are_never_returned_and_views_agree(build_any: Builder) -> None:
    x, q = make_clustered(600, DIM, seed=11, queries=20)
    ids = np.arange(600, dtype=np.int64) * 3 + 5
    idx = build_any(x, ids)
    gone = ids[::4]
    assert idx.remove(np.concatenate([gone, gone[:5], [10**12 if idx.rotation is None else 2**31]])) == len(gone)
    assert idx.remove(gone) == 0
    kept = np.setdiff1d(ids, gone)
    assert len(idx) == len(kept)
    np.testing.assert_array_equal(idx.ids, kept)  # insertion order kept
    assert all(int(g) not in idx for g in gone)
    ids_b, _ = idx.search_batch(q, 50)
    assert not np.isin(ids_b, gone).any()
    for h in idx.search(q[0], 50):
        assert h.id not in set(gone.tolist())
    if idx.keeps_vectors:
        np.testing.assert_array_equal(np.asarray(idx), x[np.isin(ids, kept)])
        assert [i for i, _ in idx] == kept.tolist()
    idx.compact()
    # Removing everything leaves an empty index that searches raise on.
    assert idx.remove(kept) == len(kept) and len(idx) == 0
    with pytest.raises(rr.EmptyIndex):
        idx.search(q[0], 1)
    idx.add_batch(x[:3])
    assert idx.ids.tolist() == [0, 1, 2]


def test_upsert_replaces_and_adds(build_with_vectors: Builder) -> None:
    x, _ = make_clustered(300, DIM, seed=12, queries=1)
    idx = build_with_vectors(x)
    new = make_clustered(6, DIM, seed=13)
    idx.upsert([1, 2, 3, 1000, 1001, 1002], new)
    assert len(idx) == 303
    assert idx.ids[-6:].tolist() == [1, 2, 3, 1000, 1001, 1002]
    for i, id_ in enumerate([1, 2, 3, 1000, 1001, 1002]):
        np.testing.assert_array_equal(idx[id_], new[i])
        assert idx.search(new[i], 1, rerank_factor=None)[0].id == id_ or isinstance(idx, rr.RabitqAsymIndex)
    # Default ids continue from len while free, and never collide.
    idx.remove([0, 5])
    idx.add_batch(x[:2])
    assert idx.ids[-2:].tolist() == [301, 302]


def test_default_ids_skip_held_ids_after_removals(build_any: Builder) -> None:
    x = make_clustered(12, DIM, seed=19)
    idx = build_any(x[:10])
    idx.remove([3])
    idx.add_batch(x[10:12])  # 9 is held: from max + 1
    assert idx.ids.tolist() == [0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11]


def test_a_saved_file_after_removals_loads_without_them(build_with_vectors: Builder, tmp_path: Path) -> None:
    x, q = make_clustered(400, DIM, seed=14, queries=10)
    idx = build_with_vectors(x, np.arange(400) + 2**33 * isinstance(build_with_vectors(x[:1]), rr.FlatF32Index))
    held = idx.ids
    idx.remove(held[::3])
    idx.upsert(held[1:4], x[:3] + 0.5)
    path = tmp_path / "i.rbpx"
    idx.save(path)
    back = type(idx).load(path)
    assert back == idx
    np.testing.assert_array_equal(back.ids, idx.ids)
    assert not np.isin(np.setdiff1d(held[::3], held[1:4]), back.ids).any()
    a, sa = idx.search_batch(q, 10)
    b, sb = back.search_batch(q, 10)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(sa, sb)


# ── filtered search ─────────────────────────────────────────────────────────


def test_flat_filtered_search_is_the_exact_filtered_top_k() -> None:
    x, q = make_clustered(2000, DIM, seed=15, queries=15)
    ids = np.arange(2000, dtype=np.int64) * 2
    idx = rr.FlatF32Index.build(x, ids)
    rng = np.random.default_rng(0)
    for sel in [0.5, 0.1, 0.01, 0.001]:
        allowed = rng.choice(ids, size=max(1, int(2000 * sel)), replace=False)
        allowed_set = set(int(a) for a in allowed)
        pre = rr.IdSet(allowed)
        got_b, scores_b = idx.search_batch(q, 10, filter=allowed)
        for i, qi in enumerate(q):
            want = exact_filtered(x, ids, qi, 10, allowed_set)
            assert [h.id for h in idx.search(qi, 10, filter=allowed)] == want
            assert [h.id for h in idx.search(qi, 10, filter=pre)] == want
            assert [h.id for h in asyncio.run(idx.search_async(qi, 10, filter=pre))] == want
            n = len(want)
            assert got_b[i, :n].tolist() == want
            assert (got_b[i, n:] == -1).all() and (scores_b[i, n:] == np.inf).all()


def test_an_empty_filter_gives_no_hits(build_any: Builder) -> None:
    x, q = make_clustered(100, DIM, seed=16, queries=3)
    idx = build_any(x)
    filters: List[Any] = [[], np.array([], dtype=np.int64), rr.IdSet([]), [10**6 if idx.rotation is None else 10**9]]
    for f in filters:
        assert idx.search(q[0], 5, filter=f) == []
        ids, scores = idx.search_batch(q, 5, filter=f)
        assert (ids == -1).all() and (scores == np.inf).all()


def test_every_kind_returns_only_allowed_ids(build_any: Builder) -> None:
    x, q = make_clustered(1500, DIM, seed=17, queries=10)
    idx = build_any(x)
    for allowed in [np.arange(0, 1500, 2), np.arange(0, 1500, 50), np.array([3, 700])]:
        ids, _ = idx.search_batch(q, 10, filter=allowed)
        want = min(10, len(allowed))
        assert (ids[:, :want] >= 0).all() and (ids[:, want:] == -1).all()
        assert np.isin(ids[:, :want], allowed).all()


@pytest.mark.parametrize("kind", ["random", "cluster"])
def test_ivf_filtered_recall_at_every_selectivity(kind: str) -> None:
    n = 20_000
    x, q = make_clustered(n, 32, seed=18, queries=40, clusters=32)
    idx = rr.IvfRabitqIndex.build(x, seed=3, rerank_factor=10)
    ids = np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(1)
    # One cluster: the rows nearest to one stored row.
    d0 = ((x - x[0]) ** 2).sum(axis=1)
    by_distance = np.argsort(d0)
    for sel in [0.5, 0.1, 0.01, 0.001]:
        m = max(1, int(n * sel))
        allowed = rng.choice(ids, size=m, replace=False) if kind == "random" else by_distance[:m]
        allowed_set = set(int(a) for a in allowed)
        got, _ = idx.search_batch(q, 10, filter=rr.IdSet(allowed))
        hits = total = 0
        for i, qi in enumerate(q):
            want = exact_filtered(x, ids, qi, 10, allowed_set)
            hits += len(set(got[i].tolist()) & set(want))
            total += len(want)
        assert hits / total >= 0.95, f"{kind} selectivity {sel}: recall {hits / total}"


# ── a reference model ───────────────────────────────────────────────────────


class ChangesMachine(RuleBasedStateMachine):
    """add / upsert / remove / search (with and without filter) / save / load
    against a dict of id → vector. Exact on FlatF32Index; for the other kinds
    the ids, lengths and the allowed/removed invariants."""

    def __init__(self) -> None:
        super().__init__()
        self.model: Dict[int, F32] = {}
        self.idx: Optional[Index] = None
        self.rng = np.random.default_rng(0)
        self.tmp = Path(tempfile.mkdtemp())

    @initialize(kind=st.sampled_from(["flat", "plus", "ivf", "rabitq", "asym"]))
    def start(self, kind: str) -> None:
        self.kind = kind
        makers: Dict[str, Callable[[], Index]] = {
            "flat": lambda: rr.FlatF32Index(DIM),
            "plus": lambda: rr.RabitqPlusIndex(DIM, seed=2, rerank_factor=4),
            "ivf": lambda: rr.IvfRabitqIndex(DIM, seed=2, nlist=4, rerank_factor=4),
            "rabitq": lambda: rr.RabitqIndex(DIM, seed=2),
            "asym": lambda: rr.RabitqAsymIndex(DIM, seed=2, rerank_factor=2),
        }
        self.idx = makers[kind]()

    def vectors(self, n: int) -> F32:
        return self.rng.standard_normal((n, DIM)).astype(np.float32)

    @rule(ids=st.lists(st.integers(0, 60), min_size=1, max_size=12, unique=True))
    def add(self, ids: List[int]) -> None:
        assert self.idx is not None
        new = [i for i in ids if i not in self.model]
        v = self.vectors(len(new))
        if new:
            self.idx.add_batch(v, ids=new)
            self.model.update({i: v[j] for j, i in enumerate(new)})

    @rule(ids=st.lists(st.integers(0, 60), min_size=1, max_size=12, unique=True))
    def upsert(self, ids: List[int]) -> None:
        assert self.idx is not None
        v = self.vectors(len(ids))
        self.idx.upsert(ids, v)
        for i in ids:
            self.model.pop(i, None)
        self.model.update({i: v[j] for j, i in enumerate(ids)})

    @rule(ids=st.lists(st.integers(0, 70), max_size=15))
    def remove(self, ids: List[int]) -> None:
        assert self.idx is not None
        want = len(set(ids) & set(self.model))
        assert self.idx.remove(ids) == want
        for i in ids:
            self.model.pop(i, None)

    @rule(k=st.integers(1, 30), allowed=st.none() | st.lists(st.integers(0, 70), max_size=20))
    def search(self, k: int, allowed: Optional[List[int]]) -> None:
        assert self.idx is not None
        q = self.vectors(1)[0]
        if not self.model:
            with pytest.raises(rr.EmptyIndex):
                self.idx.search(q, k, filter=allowed)
            return
        hits = [h.id for h in self.idx.search(q, k, filter=allowed)]
        pool = set(self.model) if allowed is None else set(self.model) & set(allowed)
        assert len(hits) == min(k, len(pool))
        assert set(hits) <= pool and len(set(hits)) == len(hits)
        ids, _ = self.idx.search_batch(q[None, :], k, filter=allowed)
        if self.kind in ("flat", "plus", "asym") or len(pool) <= k:
            assert ids[0, : len(hits)].tolist() == hits
        if self.kind == "flat":
            keys = np.array(list(self.model), dtype=np.int64)
            x = np.stack([self.model[int(i)] for i in keys])
            assert hits == exact_filtered(x, keys, q, k, pool)

    @rule()
    def save_and_load(self) -> None:
        assert self.idx is not None
        if self.kind in ("rabitq",):
            return  # keeps no vectors to save
        path = self.tmp / "m.rbpx"
        self.idx.save(path)
        back = type(self.idx).load(path)
        assert back == self.idx
        self.idx = back

    @invariant()
    def agrees(self) -> None:
        if self.idx is None:
            return
        assert len(self.idx) == len(self.model)
        assert sorted(self.idx.ids.tolist()) == sorted(self.model)
        if self.idx.keeps_vectors:
            for i, v in self.idx:
                np.testing.assert_array_equal(v, self.model[i])


TestChanges = ChangesMachine.TestCase
TestChanges.settings = settings(
    max_examples=60,
    stateful_step_count=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck.__members__.values()),
)
