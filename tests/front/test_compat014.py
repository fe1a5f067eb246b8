"""Code written against ruvector 0.1.4's documented API keeps working, and
files saved by 0.1.4 load (they were written by 0.1.4 itself:
data/make_014_files.py)."""

from __future__ import annotations

import json
import pathlib
import pickle
import shutil
from typing import Any

import numpy as np
import pytest
from front_helpers import needs_filter

import ruvector
from ruvector.collection import CollectionStats, SearchHit

DATA = pathlib.Path(__file__).parent / "data"


def _copy(tmp_path: pathlib.Path, name: str) -> pathlib.Path:
    for f in DATA.glob(name + "*"):
        shutil.copy(f, tmp_path / f.name)
    return tmp_path / name


# -- 0.1.4's README, line by line ------------------------------------------------------


def test_the_014_readme_example(tmp_path: pathlib.Path) -> None:
    from ruvector import Collection

    vectors = np.random.default_rng(42).standard_normal((2_000, 128)).astype(np.float32)
    coll = Collection.from_vectors(vectors, rerank_factor=20)
    hits = coll.search(vectors[0], k=10)
    assert hits[0].id == 0 and hits[0].score == pytest.approx(0.0, abs=1e-5)
    for h in hits:
        assert isinstance(h.id, int) and isinstance(h.score, float)
    coll.save(tmp_path / "my.rbpx")  # writes my.rbpx + my.rbpx.meta.json
    assert (tmp_path / "my.rbpx.meta.json").is_file()
    coll2 = Collection.load(tmp_path / "my.rbpx")
    assert [h.id for h in coll2.search(vectors[0], k=10)] == [h.id for h in hits]

    coll = Collection.create(dim=128)
    assert coll.insert(vectors[0], metadata={"category": "news"}) == 0
    assert coll.insert_batch(vectors[1:100], metadatas=[{"category": "sports"}] * 99) == list(range(1, 100))
    hits = coll.search(vectors[0], k=5, filter={"category": "news"}) if _filters() else coll.search(vectors[0], k=5)
    assert hits[0].id == 0 and hits[0].metadata == {"category": "news"}
    coll.delete(hits[0].id)
    assert coll.vacuum() == 0
    assert len(coll) == 99
    stats = coll.stats()
    assert isinstance(stats, CollectionStats)
    assert (stats.count, stats.dim, stats.backend, stats.tombstoned) == (99, 128, "hnsw", 0)
    assert coll.get_metadata(1) == {"category": "sports"} and coll.get_metadata(0) is None
    assert coll.metric == "cosine"


def _filters() -> bool:
    from front_helpers import HAS_FILTER

    return HAS_FILTER


def test_search_hits_are_014_search_hits() -> None:
    coll = ruvector.Collection.create(dim=4)
    coll.insert_batch(np.eye(4, dtype=np.float32), metadatas=[{"a": 1}, None, None, None])
    hit = coll.search(np.array([1, 0, 0, 0], np.float32), 1)[0]
    assert isinstance(hit, SearchHit) and isinstance(hit, ruvector.SearchHit)
    hid, score = hit  # 0.1.4's two-tuple unpacking
    assert (hid, hit.metadata) == (0, {"a": 1}) and score == pytest.approx(0.0, abs=1e-6)
    assert pickle.loads(pickle.dumps(hit)).metadata == {"a": 1}
    assert "metadata={'a': 1}" in repr(hit)


def test_predicate_filters_select_before_the_search() -> None:
    coll = ruvector.Collection.create(dim=4, backend="rabitq", rerank_factor=20)
    vectors = np.random.default_rng(0).standard_normal((100, 4)).astype(np.float32)
    coll.insert_batch(vectors, metadatas=[{"i": i} for i in range(100)])
    if not _filters():
        with pytest.raises(ruvector.RuVectorError, match="filter="):
            coll.search(vectors[0], 5, filter=lambda m: m["i"] % 10 == 3)
        return
    hits = coll.search(vectors[0], 5, filter=lambda m: m["i"] % 10 == 3)
    assert len(hits) == 5 and all(
        h.metadata is not None and h.metadata["i"] % 10 == 3 for h in hits
    )  # never fewer: pre-filtered


def test_rabitq_backend_scores_squared_l2() -> None:
    coll = ruvector.Collection.create(dim=8, backend="rabitq")
    vectors = np.random.default_rng(1).standard_normal((50, 8)).astype(np.float32)
    coll.insert_batch(vectors)
    hits = coll.search(vectors[3] + 0.5, 3)
    exact = ((vectors - (vectors[3] + 0.5)) ** 2).sum(axis=1)
    assert [h.id for h in hits] == list(np.argsort(exact)[:3])
    assert hits[0].score == pytest.approx(float(exact.min()), rel=1e-4)
    assert coll.metric == "squared_l2" and coll.stats().backend == "rabitq" and coll.stats().rerank_factor == 20


def test_014_errors_are_ruvector_errors() -> None:
    with pytest.raises(ruvector.CollectionError):
        ruvector.Collection.create(dim=0)
    with pytest.raises(ruvector.RuVectorError, match="backend"):
        ruvector.Collection.create(dim=4, backend="faiss")
    with pytest.raises(ruvector.CollectionError, match="manhattan"):
        ruvector.Collection.create(dim=4, metric="manhattan")
    coll = ruvector.Collection.create(dim=4)
    with pytest.raises(ValueError):
        coll.insert(np.ones(5, np.float32))
    assert ruvector.CollectionError is ruvector.RuVectorError


def test_dot_and_euclidean_metrics_map() -> None:
    coll = ruvector.Collection.create(dim=4, metric="euclidean")
    coll.insert_batch(np.eye(4, dtype=np.float32))
    assert coll.stats().metric == "l2"
    assert coll.search(np.array([0, 2, 0, 0], np.float32), 1)[0].score == pytest.approx(1.0)


# -- 0.1.4's files -----------------------------------------------------------------------------


def _exact_cosine(vectors: Any, query: Any, skip: set[int]) -> list[int]:
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    order = np.argsort(-(unit @ (query / np.linalg.norm(query))), kind="stable")
    return [int(i) for i in order if int(i) not in skip]


def test_files_saved_by_014_hnsw_backend_load(tmp_path: pathlib.Path) -> None:
    coll = ruvector.Collection.load(_copy(tmp_path, "v014_hnsw.bin"))
    expected = json.loads((DATA / "v014_expected.json").read_text())["hnsw"]
    queries = np.load(DATA / "v014_queries.npy")
    vectors = np.stack([v for _, v, _ in coll.export_live_items()])
    assert len(coll) == 39 and coll.get_metadata(4) == {"i": 4, "even": True, "tag": "t1"}
    assert coll.get_metadata(5) is None  # deleted in 0.1.4
    ids = [i for i, _, _ in coll.export_live_items()]
    for q, answer_014 in zip(queries, expected):
        got = [h.id for h in coll.search(q, 5)]
        truth = [ids[i] for i in _exact_cosine(vectors, q, set())][:5]
        assert got == truth  # exact now; 0.1.4's graph answered approximately
        assert got[0] == answer_014[0]
    assert coll.insert(np.ones(8, np.float32)) == 40  # 0.1.4's next_id continues


def test_files_saved_by_014_rabitq_backend_load(tmp_path: pathlib.Path) -> None:
    coll = ruvector.Collection.load(_copy(tmp_path, "v014_rabitq.rbpx"))
    expected = json.loads((DATA / "v014_expected.json").read_text())
    queries = np.load(DATA / "v014_queries.npy")
    assert len(coll) == 39 and 7 not in [i for i, _, _ in coll.export_live_items()]  # tombstone dropped
    for q, answer_014 in zip(queries, expected["rabitq"]):
        assert [h.id for h in coll.search(q, 5)] == answer_014  # same index, same answers
    if _filters():
        for q, answer_014 in zip(queries, expected["rabitq_filtered"]):
            assert [h.id for h in coll.search(q, 5, filter={"even": True})] == answer_014


def test_014_rabitq_index_file_and_api(tmp_path: pathlib.Path) -> None:
    from ruvector import RabitqIndex

    idx = RabitqIndex.load(str(DATA / "v014_index.rbpx"))
    queries = np.load(DATA / "v014_queries.npy")
    assert len(idx) == 40 and idx.dim == 8 and idx.rerank_factor == 20
    for q in queries:
        for i, score in idx.search(q, 3):  # (id, score) tuples
            assert isinstance(i, int) and isinstance(score, float)
    vectors = np.random.default_rng(2).standard_normal((300, 16)).astype(np.float32)
    built = RabitqIndex.build(vectors, rerank_factor=20, seed=42)
    assert [i for i, _ in built.search(vectors[9], 1)] == [9]
    built.add(300, vectors[0] + 5)
    built.add_batch(np.array([301, 302], np.uint64), vectors[1:3] + 5)  # 0.1.4's (ids, vectors)
    built.add_batch(vectors[3:4] + 5, np.array([303]))  # the SDK's (vectors, ids)
    assert len(built) == 304 and built.export_items()[-1][0] == 303
    built.save(str(tmp_path / "x.rbpx"))
    assert RabitqIndex.load(str(tmp_path / "x.rbpx")).search(vectors[9], 1)[0].id == 9


def test_014_files_round_trip_and_move_to_a_directory(tmp_path: pathlib.Path) -> None:
    coll = ruvector.Collection.load(_copy(tmp_path, "v014_rabitq.rbpx"))
    coll.save(tmp_path / "again.rbpx")
    again = ruvector.Collection.load(tmp_path / "again.rbpx")
    assert again.export_live_items()[3][0] == coll.export_live_items()[3][0] and len(again) == 39
    moved = coll.copy_to(tmp_path / "dir")
    assert moved.count() == 39 and moved.get([4])[0].metadata == {"i": 4, "even": True, "tag": "t1"}
    moved.close()
    with pytest.raises(ruvector.InvalidArgument, match=r"0\.1\.4 collection file"):
        ruvector.Collection.open(tmp_path / "again.rbpx")
    with pytest.raises(ruvector.NotFound):
        ruvector.Collection.load(tmp_path / "nothing")
    (tmp_path / "bad.meta.json").write_text("{not json")
    with pytest.raises(ruvector.PersistError):
        ruvector.Collection.load(tmp_path / "bad")


@needs_filter
def test_filtered_014_search_is_never_short() -> None:
    coll = ruvector.Collection.create(dim=8, backend="rabitq")
    vectors = np.random.default_rng(3).standard_normal((500, 8)).astype(np.float32)
    coll.insert_batch(vectors, metadatas=[{"rare": i % 100 == 0} for i in range(500)])
    assert len(coll.search(vectors[1], 5, filter={"rare": True})) == 5


# -- names 0.2 does not carry ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["HnswIndex", "GraphDB", "GnnLayer", "AttentionReranker", "SonaEngine", "KVCache"])
def test_removed_classes_raise_naming_the_replacement(name: str) -> None:
    cls = getattr(ruvector, name)
    with pytest.raises(ruvector.RuVectorError, match=f"ruvector.{name} .* not available in ruvector 0.2"):
        cls()
    if name == "HnswIndex":
        with pytest.raises(ruvector.RuVectorError, match="IvfRabitqIndex") as info:
            cls.create(dim=128)
        assert "Collection" in str(info.value)


def test_removed_names_import_and_raise_on_use() -> None:
    from ruvector import HnswIndex, kmeans  # type: ignore[attr-defined]

    with pytest.raises(ruvector.RuVectorError, match=r"migrating-from-0\.1\.4"):
        kmeans(np.ones((4, 2)), 2)
    with pytest.raises(ruvector.RuVectorError):
        HnswIndex.create(dim=4, metric="cosine")  # pyright: ignore[reportUnknownMemberType]
