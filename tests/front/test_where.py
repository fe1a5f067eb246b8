"""The where language: SQLite's answers equal a pure-Python reference
evaluator on random documents and random where trees (hypothesis)."""

from __future__ import annotations

import math
import pathlib
from typing import Any, Dict, Iterable, List, Mapping, Tuple, cast

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


def _fields_table(path: pathlib.Path) -> List[Tuple[Any, ...]]:
    import sqlite3

    conn = sqlite3.connect(path / "ruvector.sqlite")
    try:
        return sorted(conn.execute("SELECT key, elem, kind, val, doc FROM fields").fetchall(), key=repr)
    finally:
        conn.close()


def _expected_fields(metas: Dict[int, Dict[str, Any]]) -> List[Tuple[Any, ...]]:
    """The rows the docs own: one per scalar value and per distinct scalar
    list element (kinds 0 null, 1 bool, 2 number, 3 string, 4 list/dict;
    val 0 for null and list/dict rows)."""

    def kind_val(v: Any) -> Tuple[int, Any]:
        if v is None:
            return 0, 0
        if isinstance(v, bool):
            return 1, int(v)
        if isinstance(v, (int, float)):
            return 2, v
        return 3, v

    rows: set[Tuple[Any, ...]] = set()
    for doc, meta in metas.items():
        for key, value in meta.items():
            if isinstance(value, (list, dict)):
                rows.add((key, 0, 4, 0, doc))
                elements = cast("Iterable[Any]", value) if isinstance(value, list) else ()
                for element in elements:
                    rows.add((key, 1, *kind_val(element), doc))
            else:
                rows.add((key, 0, *kind_val(value), doc))
    return sorted(rows, key=repr)


@settings(max_examples=40, deadline=None)
@given(
    first=st.lists(metadatas, min_size=1, max_size=8),
    second=st.lists(metadatas, min_size=1, max_size=8),
    drop=st.lists(st.integers(0, 7), max_size=4),
)
def test_fields_rows_follow_upserts_and_deletes(
    first: List[Dict[str, Any]], second: List[Dict[str, Any]], drop: List[int]
) -> None:
    # The fields table has no index by doc: an upsert or delete removes a
    # document's rows by their keys, derived from its stored metadata. After
    # any sequence, the table holds exactly the live documents' rows.
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "c"
        coll = ruvector.Collection.open(path, embedder=None, dim=4)
        coll.add(vectors=random_vectors(len(first), 4), metadata=first, ids=list(range(len(first))))
        coll.upsert(vectors=random_vectors(len(second), 4, seed=1), metadata=second, ids=list(range(len(second))))
        coll.delete(ids=drop)
        live = {int(r.id): r.metadata for r in coll.get()}
        coll.close()
        # docs are 0..len(first)-1 for ids 0..; upserts keep the doc of a present id
        doc_of = {i: i for i in range(len(first))}
        doc_of.update({i: len(first) + n for n, i in enumerate(range(len(first), len(second)))})
        assert _fields_table(path) == _expected_fields({doc_of[i]: m for i, m in live.items()})


def test_a_format_2_store_is_migrated_and_answers_the_same(tmp_path: pathlib.Path) -> None:
    import sqlite3

    path = tmp_path / "c"
    metas: List[Dict[str, Any]] = [
        {"a": i % 3, "b": None if i % 2 else "x", "c": [i % 2, "t", None]} for i in range(30)
    ]
    coll = ruvector.Collection.open(path, embedder=None, dim=4)
    coll.add(vectors=random_vectors(30, 4), metadata=metas)
    wheres: List[Where] = [
        {"a": 1},
        {"b": None},
        {"c": {"$contains": None}},
        {"b": {"$exists": True}},
        {"a": {"$gt": 0}},
    ]
    before = [[r.id for r in coll.get(where=w)] for w in wheres]
    coll.close()
    # Back to the format-2 layout: a rowid fields table with NULL vals and its two indexes.
    conn = sqlite3.connect(path / "ruvector.sqlite")
    conn.executescript(
        """
        CREATE TABLE f2(doc INTEGER NOT NULL, key TEXT NOT NULL, elem INTEGER NOT NULL, kind INTEGER NOT NULL, val);
        INSERT INTO f2 SELECT doc, key, elem, kind, CASE WHEN kind IN (0, 4) THEN NULL ELSE val END FROM fields;
        DROP TABLE fields;
        ALTER TABLE f2 RENAME TO fields;
        CREATE INDEX fields_lookup ON fields(key, elem, kind, val);
        CREATE INDEX fields_doc ON fields(doc);
        UPDATE meta SET value = '2' WHERE key = 'format';
        """
    )
    conn.close()
    reader = ruvector.Collection.open(path, embedder=None, read_only=True)  # read as it is
    assert [[r.id for r in reader.get(where=w)] for w in wheres] == before
    reader.close()
    coll = ruvector.Collection.open(path, embedder=None)  # migrated
    assert [[r.id for r in coll.get(where=w)] for w in wheres] == before
    coll.delete(where={"a": 1})
    assert coll.count({"a": 1}) == 0 and coll.count() == 20
    coll.close()
    conn = sqlite3.connect(path / "ruvector.sqlite")
    try:
        assert conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone() == ("3",)
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema")}
        assert "fields_doc" not in names and "fields_lookup" not in names
        assert conn.execute("SELECT count(*) FROM fields WHERE val IS NULL").fetchone() == (0,)
    finally:
        conn.close()
    live = {i: m for i, m in enumerate(metas) if i % 3 != 1}
    assert _fields_table(path) == _expected_fields(live)
