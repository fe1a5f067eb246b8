"""The where language: SQLite's answers equal a pure-Python reference
evaluator on random documents and random where trees (hypothesis)."""

from __future__ import annotations

import math
import pathlib
from typing import Any, Dict, List, Mapping, Tuple, cast

import numpy as np
import pytest
from front_helpers import needs_filter, random_vectors
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ruvector
from ruvector_common.errors import InvalidArgument

_MISSING = object()


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "num"
    if isinstance(value, str):
        return "str"
    return "other"


def _eq(stored: object, operand: object) -> bool:
    if stored is _MISSING or _kind(stored) == "other":
        return False
    return _kind(stored) == _kind(operand) and stored == operand


def _op(meta: Mapping[str, Any], key: str, op: str, operand: Any) -> bool:
    stored = meta.get(key, _MISSING)
    if op == "$eq":
        return _eq(stored, operand)
    if op == "$ne":
        return not _eq(stored, operand)
    if op == "$in":
        return any(_eq(stored, o) for o in operand)
    if op == "$nin":
        return not any(_eq(stored, o) for o in operand)
    if op == "$exists":
        return bool((stored is not _MISSING) == operand)
    if op == "$contains":
        items: List[object] = list(cast("List[object]", stored)) if isinstance(stored, list) else []
        return any(_kind(e) != "other" and _eq(e, operand) for e in items)
    if stored is _MISSING or _kind(stored) != _kind(operand):
        return False
    a: Any = stored
    if op == "$gt":
        return bool(a > operand)
    if op == "$gte":
        return bool(a >= operand)
    if op == "$lt":
        return bool(a < operand)
    return bool(a <= operand)


def reference(meta: Mapping[str, Any], where: Mapping[str, Any]) -> bool:
    """The documented semantics of a where, evaluated directly."""
    for key, cond in where.items():
        if key == "$and":
            ok = all(reference(meta, w) for w in cond)
        elif key == "$or":
            ok = any(reference(meta, w) for w in cond)
        elif key == "$not":
            ok = not reference(meta, cond)
        elif isinstance(cond, dict):
            ops: Dict[str, Any] = cast("Dict[str, Any]", cond)
            ok = all(_op(meta, key, op, v) for op, v in ops.items())
        else:
            ok = _op(meta, key, "$eq", cond)
        if not ok:
            return False
    return True


KEYS = ["a", "b", "c"]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.0, 1.0, 1.5, -2.5]),
    st.sampled_from(["", "x", "y", "xy", "é"]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3), st.just({"nested": 1}))
metadatas = st.dictionaries(st.sampled_from(KEYS), values, max_size=3)
orderable = st.one_of(st.integers(-3, 3), st.sampled_from([0.5, 1.0, -2.5]), st.sampled_from(["", "x", "xy", "y"]))
key_ops = st.one_of(
    st.tuples(st.sampled_from(["$eq", "$ne", "$contains"]), scalars),
    st.tuples(st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), orderable),
    st.tuples(st.sampled_from(["$in", "$nin"]), st.lists(scalars, max_size=3)),
    st.tuples(st.just("$exists"), st.booleans()),
)
Where = Dict[str, Any]


def _leaf(key: str, value: Any) -> Where:
    return {key: value}


def _leaf_ops(key: str, ops: List[Tuple[str, Any]]) -> Where:
    return {key: dict(ops)}


def _and(ws: List[Where]) -> Where:
    return {"$and": ws}


def _or(ws: List[Where]) -> Where:
    return {"$or": ws}


def _not(w: Where) -> Where:
    return {"$not": w}


def _merge(a: Where, b: Where) -> Where:
    return {**a, **b}


def _combine(inner: st.SearchStrategy[Where]) -> st.SearchStrategy[Where]:
    return st.one_of(
        st.builds(_and, st.lists(inner, min_size=1, max_size=3)),
        st.builds(_or, st.lists(inner, min_size=1, max_size=3)),
        st.builds(_not, inner),
        st.builds(_merge, inner, inner),
    )


leaf: st.SearchStrategy[Where] = st.one_of(
    st.builds(_leaf, st.sampled_from(KEYS), scalars),
    st.builds(_leaf_ops, st.sampled_from(KEYS), st.lists(key_ops, min_size=1, max_size=2)),
)
wheres: st.SearchStrategy[Where] = st.recursive(leaf, _combine, max_leaves=6)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    coll = ruvector.Collection.open(tmp_path_factory.mktemp("where") / "c", embedder=None, dim=4)
    yield coll
    coll.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=st.lists(metadatas, min_size=1, max_size=12), where=wheres)
def test_where_matches_the_reference(store: Any, docs: List[Dict[str, Any]], where: Dict[str, Any]) -> None:
    store.delete(where={})
    ids = store.add(vectors=random_vectors(len(docs), 4), metadata=docs)
    expected = [i for i, meta in zip(ids, docs) if reference(meta, where)]
    assert [r.id for r in store.get(where=where)] == expected
    assert store.count(where) == len(expected)


def test_examples(tmp_path: pathlib.Path) -> None:
    coll = ruvector.Collection.open(tmp_path / "c", embedder=None)
    docs: List[Dict[str, Any]] = [
        {"lang": "en", "year": 2020, "tags": ["faq", "intro"]},
        {"lang": "de", "year": 2023.5, "draft": True},
        {"lang": "en", "year": 2024, "draft": False, "big": 2**62},
        {"year": "2021"},
        {},
    ]
    ids = coll.add(vectors=random_vectors(len(docs)), metadata=docs, ids=["a", "b", "c", "d", "e"])
    assert ids == ["a", "b", "c", "d", "e"]

    def got(where: Dict[str, Any]) -> List[Any]:
        return [r.id for r in coll.get(where=where)]

    assert got({"lang": "en"}) == ["a", "c"]
    assert got({"lang": {"$ne": "en"}}) == ["b", "d", "e"]  # missing keys match $ne
    assert got({"year": {"$gte": 2021, "$lt": 2024}}) == ["b"]  # the string "2021" is no number
    assert got({"year": {"$gt": "2020"}}) == ["d"]
    assert got({"year": 2024.0}) == ["c"]  # 2024 == 2024.0
    assert got({"draft": False}) == ["c"]
    assert got({"draft": 0}) == []  # False is not 0
    assert got({"tags": {"$contains": "faq"}}) == ["a"]
    assert got({"tags": "faq"}) == []  # equality never matches a list
    assert got({"lang": {"$in": ["de", "fr"]}}) == ["b"]
    assert got({"lang": {"$nin": ["de", "fr"]}}) == ["a", "c", "d", "e"]
    assert got({"draft": {"$exists": True}}) == ["b", "c"]
    assert got({"$or": [{"lang": "de"}, {"year": {"$lt": 2021}}]}) == ["a", "b"]
    assert got({"$and": [{"lang": "en"}, {"$not": {"year": 2020}}]}) == ["c"]
    assert got({"big": 2**62}) == ["c"]  # 64-bit integers compare exactly
    assert got({"big": float(2**62) + 4096}) == []
    assert got({}) == ids
    assert coll.count({"lang": "en"}) == 2
    assert coll.delete(where={"lang": "en"}) == 2
    assert got({}) == ["b", "d", "e"]
    coll.close()


@pytest.mark.parametrize(
    "where, message",
    [
        ({"a": {"$gt": [1]}}, "takes a number or a string"),
        ({"a": {"$gt": True}}, "takes a number or a string"),
        ({"a": {"$in": "x"}}, "takes a list"),
        ({"a": {"$exists": 1}}, "True or False"),
        ({"a": {"$regex": "x"}}, "unknown operator"),
        ({"$xor": []}, "unknown where operator"),
        ({"$and": []}, "non-empty list"),
        ({"a": {"$eq": float("nan")}}, "finite"),
        ({"a": {"$eq": 2**64}}, "64 bits"),
        ({"a": {"x": 1}}, "a value or a dict of operators"),
        ([("a", 1)], "must be a dict"),
        ({1: 2}, "keys must be strings"),
    ],
)
def test_bad_where_is_invalid_argument(tmp_path: pathlib.Path, where: Any, message: str) -> None:
    coll = ruvector.Collection.open(tmp_path / "c", embedder=None, dim=4)
    with pytest.raises(InvalidArgument, match=message):
        coll.count(where)
    coll.close()


def test_deep_where_is_refused_not_a_crash(tmp_path: pathlib.Path) -> None:
    coll = ruvector.Collection.open(tmp_path / "c", embedder=None, dim=4)
    where: Dict[str, Any] = {"a": 1}
    for _ in range(100):
        where = {"$not": where}
    with pytest.raises(InvalidArgument, match="deeper"):
        coll.count(where)
    coll.close()


@needs_filter
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=st.lists(metadatas, min_size=1, max_size=12), where=wheres, k=st.integers(1, 15))
def test_filtered_query_is_exact_on_the_allowed_set(
    store: Any, docs: List[Dict[str, Any]], where: Dict[str, Any], k: int
) -> None:
    store.delete(where={})
    vectors = random_vectors(len(docs), 4, seed=len(docs))
    ids = store.add(vectors=vectors, metadata=docs)
    allowed = [row for row, meta in enumerate(docs) if reference(meta, where)]
    query = np.ones(4, np.float32)
    hits = store.query(query, k=k, where=where)
    assert len(hits) == min(k, len(allowed))
    norms = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    distances = 1 - norms @ (query / np.linalg.norm(query))
    expected = sorted(allowed, key=lambda row: (distances[row], row))[:k]
    assert sorted(h.id for h in hits) == sorted(ids[row] for row in expected) or all(
        math.isclose(h.score, float(distances[ids.index(h.id)]), abs_tol=1e-5) for h in hits
    )
    assert {h.id for h in hits} <= {ids[row] for row in allowed}
