"""ruvector.Collection through the installed wheels: documents, ids,
metadata, queries, persistence, index kinds, async."""

from __future__ import annotations

import asyncio
import pathlib
from typing import Any, Callable, List, Tuple

import numpy as np
import pytest
from front_helpers import (
    DIM,
    HAS_CHANGES,
    HashEmbedder,
    ids_of,
    needs_changes,
    needs_filter,
    needs_minilm,
    random_vectors,
)

import ruvector
from ruvector.collection import Collection, single_hits
from ruvector_common.errors import DimensionMismatch, InvalidArgument, NotFound, PersistError


@pytest.fixture()
def docs(tmp_path: pathlib.Path) -> Any:
    coll = ruvector.Collection.open(tmp_path / "docs", embedder=HashEmbedder())
    yield coll
    coll.close()


TEXTS = [
    "the cat sat on the mat",
    "stock markets fell sharply today",
    "a recipe for sourdough bread",
    "cats and kittens purr",
]


def test_add_query_get_roundtrip(docs: Any) -> None:
    ids = docs.add(TEXTS, metadata=[{"lang": "en", "n": i} for i in range(4)])
    assert ids == [0, 1, 2, 3]
    hits = docs.query("cat on a mat", k=2)
    assert [type(h).__name__ for h in hits] == ["QueryHit", "QueryHit"]
    assert hits[0].id == 0 and hits[0].text == TEXTS[0] and hits[0].metadata == {"lang": "en", "n": 0}
    assert hits[0].score <= hits[1].score
    assert 0.0 <= hits[0].score <= 2.0
    record = docs.get([2])[0]
    assert (record.id, record.text, record.metadata, record.vector) == (2, TEXTS[2], {"lang": "en", "n": 2}, None)
    with_vec = docs.get([2], include_vectors=True)[0]
    np.testing.assert_array_equal(with_vec.vector, HashEmbedder().embed_batch([TEXTS[2]])[0])
    assert docs.count() == 4 and len(docs) == 4 and 3 in docs and 9 not in docs


def test_query_scores_are_cosine_distances(docs: Any) -> None:
    vectors = random_vectors(50)
    docs.add(vectors=vectors)
    q = random_vectors(1, seed=9)[0]
    hits = docs.query(q, k=50)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    expected = 1 - unit @ (q / np.linalg.norm(q))
    assert ids_of(hits) == list(np.argsort(expected, kind="stable"))
    np.testing.assert_allclose([h.score for h in hits], np.sort(expected), atol=1e-5)


def test_batch_queries_texts_and_vectors(docs: Any) -> None:
    docs.add(TEXTS)
    batch = docs.query(["cats purr", "bread recipe"], k=1)
    assert [[h.id for h in row] for row in batch] == [[3], [2]]
    vectors = HashEmbedder().embed_batch(["cats purr", "bread recipe"])
    assert [[h.id for h in row] for row in docs.query(vectors, k=1)] == [[3], [2]]
    assert [h.id for h in docs.query(vectors[1], k=1)] == [2]
    assert [h.id for h in docs.query(vectors[1].tolist(), k=1)] == [2]


def test_k_larger_than_the_collection(docs: Any) -> None:
    docs.add(TEXTS[:2])
    assert len(docs.query("cat", k=10)) == 2


def test_empty_collection_queries(tmp_path: pathlib.Path) -> None:
    coll = ruvector.Collection.open(tmp_path / "e", embedder=HashEmbedder())
    assert coll.query("anything", k=3) == []
    assert coll.query(["a", "b"], k=3) == [[], []]
    assert coll.query(np.ones(DIM, np.float32), k=3) == []
    assert coll.get() == [] and coll.count() == 0
    coll.close()


def test_string_ids_and_upsert(docs: Any) -> None:
    assert docs.add(TEXTS[:2], ids=["a", "b"]) == ["a", "b"]
    with pytest.raises(InvalidArgument, match="already present"):
        docs.add(["again"], ids=["a"])
    with pytest.raises(InvalidArgument, match="uses str ids"):
        docs.add(["int id"], ids=[5])
    docs.upsert([TEXTS[2]], ids=["a"], metadata=[{"v": 2}])
    assert docs.get(["a"])[0].text == TEXTS[2] and docs.get(["a"])[0].metadata == {"v": 2}
    assert docs.count() == 2
    auto = docs.add(["generated id"])
    assert isinstance(auto[0], str) and len(auto[0]) == 32
    assert docs.query("sourdough bread", k=1)[0].id == "a"


def test_get_order_limit_offset(docs: Any) -> None:
    docs.add(TEXTS, ids=[10, 11, 12, 13])
    assert [r.id for r in docs.get([13, 99, 10])] == [13, 10]
    assert [r.id for r in docs.get(limit=2, offset=1)] == [11, 12]
    assert [r.id for r in docs.get(where={}, limit=1, offset=3)] == [13]
    assert docs.add(["next"]) == [14]  # integer ids continue after the largest


def test_delete_by_ids_and_where(docs: Any) -> None:
    docs.add(TEXTS, metadata=[{"k": i % 2} for i in range(4)])
    assert docs.delete([0, 42]) == 1
    assert docs.delete(where={"k": 1}) == 2
    assert [r.id for r in docs.get()] == [2]
    assert [h.id for h in docs.query("cat", k=5)] == [2]
    with pytest.raises(InvalidArgument, match="needs ids, where"):
        docs.delete()
    assert docs.delete(where={}) == 1 and docs.count() == 0
    assert docs.query("cat", k=5) == []


def test_delete_counts_what_was_actually_removed(docs: Any, caplog: Any) -> None:
    import logging

    docs.add(vectors=random_vectors(10), metadata=[{"k": i % 3} for i in range(10)])
    assert docs.delete([3, 3, 4, 99, 100]) == 2  # a repeated id once; unknown ids not counted
    assert docs.delete([3, 4]) == 0  # already gone
    assert docs.delete([5, 6, 7], where={"k": 0}) == 1  # only 6 is in both
    assert sorted(r.id for r in docs.get()) == [0, 1, 2, 5, 7, 8, 9]
    # An index that drifted from the store (a vector missing from it) is
    # reported by the delete that finds out, and both agree afterwards.
    index = docs._core.adapter.index
    assert index.remove(np.array([8], dtype=np.int64)) == 1
    with caplog.at_level(logging.WARNING, logger="ruvector.collection"):
        assert docs.delete([8, 9]) == 2
    assert "held 1 of the 2 deleted documents" in caplog.text and "[8]" in caplog.text
    assert sorted(int(i) for i in docs._core.adapter.index.ids) == [0, 1, 2, 5, 7]
    assert sorted(h.id for h in docs.query(random_vectors(1, seed=3)[0], k=10)) == [0, 1, 2, 5, 7]


def test_vectors_only_collection(tmp_path: pathlib.Path) -> None:
    coll = ruvector.Collection.open(tmp_path / "v", embedder=None, metric="l2")
    vectors = random_vectors(20)
    coll.add(vectors=vectors, metadata=[{"i": i} for i in range(20)])
    hit = single_hits(coll.query(np.asarray(vectors[7]), k=1))[0]
    assert hit.id == 7 and hit.score == pytest.approx(0.0, abs=1e-4) and hit.text is None
    with pytest.raises(InvalidArgument, match="no embedder"):
        coll.add(["text"])
    with pytest.raises(InvalidArgument, match="no embedder"):
        coll.query("text")
    coll.close()


BAD_INPUT: List[Tuple[Callable[[Collection], object], type, str]] = [
    (lambda c: c.add(vectors=np.ones((1, DIM + 1))), DimensionMismatch, "dimension"),
    (lambda c: c.add(vectors=np.full((1, DIM), np.nan)), InvalidArgument, "finite"),
    (lambda c: c.add(vectors=np.zeros((1, DIM))), InvalidArgument, "all zeros"),
    (lambda c: c.add(["a", "b"], ids=[1, 1]), InvalidArgument, "twice"),
    (lambda c: c.add(["a"], ids=[True]), InvalidArgument, "str or int"),
    (lambda c: c.add(["a"], metadata=[{"$x": 1}]), InvalidArgument, "starts with"),
    (lambda c: c.add(["a"], metadata=[{"x": float("inf")}]), InvalidArgument, "finite"),
    (lambda c: c.add(["a"], metadata=[{"x": object()}]), InvalidArgument, "metadata"),
    (lambda c: c.add(["a", "b"], metadata={"x": 1}), InvalidArgument, "list of 2"),
    (lambda c: c.add(["\ud800"]), InvalidArgument, "surrogate"),
    (lambda c: c.add([b"bytes"]), InvalidArgument, "must be a str"),  # type: ignore[list-item]
    (lambda c: c.query("x", k=0), InvalidArgument, "k must be"),
    (lambda c: c.get(limit=-1), InvalidArgument, "limit"),
]


@pytest.mark.parametrize("call, error, message", BAD_INPUT)
def test_bad_input_changes_nothing(docs: Any, call: Any, error: type, message: str) -> None:
    docs.add(vectors=random_vectors(3))
    with pytest.raises(error, match=message):
        call(docs)
    assert docs.count() == 3
    assert [h.id for h in docs.query(random_vectors(1)[0], k=3)] != []


def test_reopen_answers_exactly_as_before(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "p"
    coll = ruvector.Collection.open(path, embedder=HashEmbedder())
    coll.add(TEXTS, metadata=[{"i": i} for i in range(4)])
    queries = random_vectors(5)
    before = coll.query(queries, k=3)
    coll.close()
    again = ruvector.Collection.open(path, embedder=HashEmbedder())
    assert again.query(queries, k=3) == before
    assert again.get() == [r for r in again.get()]
    assert again.stats().embedder == "test-hash-embedder"
    again.close()


def _index_file(path: pathlib.Path) -> pathlib.Path:
    (found,) = path.glob("index.*.rbpx")
    return found


def test_the_index_file_is_compressed_and_reopens_identically(tmp_path: pathlib.Path) -> None:
    import ruvector_rabitq as rr

    path = tmp_path / "p"
    vectors = random_vectors(400, seed=9)
    with ruvector.Collection.open(path, embedder=None, index="ivf", index_params={"nlist": 8, "nprobe": 8}) as coll:
        coll.add(vectors=vectors, metadata=[{"i": i % 3} for i in range(400)])
        queries = random_vectors(7, seed=10)
        before = coll.query(queries, k=5)
        filtered = coll.query(queries, k=5, where={"i": 1})
    raw = _index_file(path).read_bytes()
    assert raw[:8] == b"rvpx0001" and raw[35] & 16, "saved with compress=True"
    plain = len(rr.IvfRabitqIndex.from_bytes(raw).to_bytes())
    assert len(raw) < plain
    with ruvector.Collection.open(path) as again:
        assert again.query(queries, k=5) == before
        assert again.query(queries, k=5, where={"i": 1}) == filtered


def test_compress_false_keeps_the_index_file_mappable_and_can_change(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "p"
    vectors = random_vectors(400, seed=11)
    queries = random_vectors(6, seed=12)
    with ruvector.Collection.open(path, embedder=None, index="ivf", compress=False) as coll:
        coll.add(vectors=vectors)
        before = coll.query(queries, k=5)
    assert not _index_file(path).read_bytes()[35] & 16, "saved uncompressed"
    with ruvector.Collection.open(path, read_only=True) as again:  # the choice is remembered
        assert again.query(queries, k=5) == before
        adapter = again._core.adapter  # pyright: ignore[reportPrivateUsage]
        assert adapter is not None and adapter.index is not None
        assert adapter.index.mapped is True
    with pytest.raises(InvalidArgument, match="read_only"):
        ruvector.Collection.open(path, read_only=True, compress=True)
    with ruvector.Collection.open(path, compress=True) as coll:  # applies from the next save
        coll.add(vectors=random_vectors(3, seed=13))
        after = coll.query(queries, k=5)
    assert _index_file(path).read_bytes()[35] & 16, "saved compressed"
    with ruvector.Collection.open(path) as again:
        assert again.query(queries, k=5) == after
    with pytest.raises(InvalidArgument, match="compress must be True or False, got 'yes'"):
        ruvector.Collection.open(tmp_path / "q", compress="yes")  # type: ignore[arg-type]


def test_a_directory_with_an_uncompressed_index_keeps_opening(tmp_path: pathlib.Path) -> None:
    import sqlite3

    import ruvector_rabitq as rr

    path = tmp_path / "old"
    vectors = random_vectors(300, seed=4)
    with ruvector.Collection.open(path, embedder=None, index="flat") as coll:
        coll.add(vectors=vectors)
        queries = random_vectors(5, seed=5)
        before = coll.query(queries, k=4)
    # As an earlier release left it: the same index, saved uncompressed,
    # and the store recording that file's size.
    file = _index_file(path)
    rr.FlatF32Index.load(file).save(file, crate_format=False)
    assert not file.read_bytes()[35] & 16
    conn = sqlite3.connect(path / "ruvector.sqlite")
    conn.execute(
        "UPDATE meta SET value = json_set(value, '$.bytes', ?) WHERE key = 'index_state'", (file.stat().st_size,)
    )
    conn.commit()
    conn.close()
    with ruvector.Collection.open(path) as again:
        assert again.query(queries, k=4) == before


def test_reopen_checks_options(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "p"
    ruvector.Collection.open(path, embedder=None, metric="l2", dim=4).close()
    with pytest.raises(InvalidArgument, match="metric='l2'"):
        ruvector.Collection.open(path, metric="cosine")
    with pytest.raises(InvalidArgument, match="dim=4"):
        ruvector.Collection.open(path, dim=5)
    with pytest.raises(NotFound):
        ruvector.Collection.open(tmp_path / "missing", create=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidArgument, match="is a file"):
        ruvector.Collection.open(tmp_path / "file")


def test_closed_collection_refuses(tmp_path: pathlib.Path) -> None:
    coll = ruvector.Collection.open(tmp_path / "c", embedder=None, dim=4)
    coll.close()
    coll.close()
    assert coll.closed
    with pytest.raises(InvalidArgument, match="closed"):
        coll.count()


def test_read_only_shares_and_refuses_writes(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "c"
    with ruvector.Collection.open(path, embedder=None) as coll:
        coll.add(vectors=random_vectors(5))
    first = ruvector.Collection.open(path, read_only=True)
    second = ruvector.Collection.open(path, read_only=True)
    assert first.count() == second.count() == 5
    with pytest.raises(InvalidArgument, match="read_only"):
        first.add(vectors=random_vectors(1))
    with pytest.raises(PersistError, match="open for writing elsewhere"):
        ruvector.Collection.open(path)
    first.close()
    second.close()
    ruvector.Collection.open(path).close()


def test_second_writer_in_the_same_process_is_refused(tmp_path: pathlib.Path) -> None:
    coll = ruvector.Collection.open(tmp_path / "c", embedder=None, dim=4)
    with pytest.raises(PersistError, match="open for writing elsewhere"):
        ruvector.Collection.open(tmp_path / "c")
    coll.close()


@pytest.mark.parametrize("kind", ["flat", "rabitq_plus", "ivf", "rabitq_asym", "FlatF32Index"])
def test_index_kinds(tmp_path: pathlib.Path, kind: str) -> None:
    vectors = random_vectors(300, seed=3)
    params = {"rerank_factor": 50} if kind in ("rabitq_plus", "rabitq_asym") else {}
    if kind == "ivf":
        params = {"nlist": 4, "nprobe": 4}
    coll = ruvector.Collection.open(tmp_path / "c", embedder=None, metric="l2", index=kind, index_params=params)
    coll.add(vectors=vectors)
    assert single_hits(coll.query(np.asarray(vectors[17]), k=1))[0].id == 17
    coll.close()
    again = ruvector.Collection.open(tmp_path / "c")
    assert single_hits(again.query(np.asarray(vectors[17]), k=1))[0].id == 17
    expected = {"flat": "FlatF32Index", "rabitq_plus": "RabitqPlusIndex", "ivf": "IvfRabitqIndex"}
    assert again.index_kind == expected.get(kind, {"rabitq_asym": "RabitqAsymIndex"}.get(kind, kind))
    again.close()


def test_auto_index_becomes_ivf_above_the_recommended_size(tmp_path: pathlib.Path) -> None:
    coll = ruvector.Collection.open(tmp_path / "c", embedder=None, dim=16)
    coll.add(vectors=random_vectors(1000, 16))
    assert coll.index_kind == "FlatF32Index"
    big = random_vectors(20_000, 16, seed=1)
    coll.add(vectors=big)
    assert coll.index_kind == "IvfRabitqIndex"
    assert single_hits(coll.query(np.asarray(big[5]), k=1))[0].id == 1005
    coll.close()
    again = ruvector.Collection.open(tmp_path / "c")
    assert again.index_kind == "IvfRabitqIndex"
    assert single_hits(again.query(np.asarray(big[5]), k=1))[0].id == 1005
    again.close()


def test_auto_index_switches_at_the_recommended_size(tmp_path: pathlib.Path) -> None:
    from ruvector_rabitq._recommend import FLAT_MAX_N

    coll = ruvector.Collection.open(tmp_path / "c", embedder=None, dim=16)
    vectors = random_vectors(FLAT_MAX_N + 1, 16, seed=2)
    coll.add(vectors=vectors[:FLAT_MAX_N])
    assert coll.index_kind == "FlatF32Index"
    coll.add(vectors=vectors[FLAT_MAX_N:])
    assert coll.index_kind == "IvfRabitqIndex"
    adapter = coll._core.adapter  # pyright: ignore[reportPrivateUsage]
    assert adapter is not None
    params = adapter.params
    # cosine: spilled lists, 20 probed at 0.95 (one copy, ip, would need 24).
    assert (params["nlist"], params["nprobe"]) == (round((FLAT_MAX_N + 1) ** 0.5), 20)
    assert single_hits(coll.query(np.asarray(vectors[7]), k=1))[0].id == 7
    coll.delete([0])  # back to the flat size: exact again
    assert coll.index_kind == "FlatF32Index"
    coll.close()


def test_a_named_ivf_index_is_sized_for_the_recall_target(tmp_path: pathlib.Path) -> None:
    coll = ruvector.Collection.open(tmp_path / "c", embedder=None, dim=16, index="ivf")
    coll.add(vectors=random_vectors(6_400, 16, seed=3))
    adapter = coll._core.adapter  # pyright: ignore[reportPrivateUsage]
    assert adapter is not None and adapter.index is not None
    assert (adapter.params["nlist"], adapter.params["nprobe"]) == (80, 20)  # sqrt(n) lists, 20 probed at 0.95
    coll.close()
    ip = ruvector.Collection.open(tmp_path / "ip", embedder=None, dim=16, index="ivf", metric="ip")
    ip.add(vectors=random_vectors(6_400, 16, seed=3))
    adapter = ip._core.adapter  # pyright: ignore[reportPrivateUsage]
    assert adapter is not None and adapter.index is not None
    # One copy a vector under ip: the one-copy steps, and no metric twice.
    assert (adapter.params["nlist"], adapter.params["nprobe"], "metric" in adapter.params) == (80, 24, False)
    ip.close()
    tuned = ruvector.Collection.open(tmp_path / "t", embedder=None, dim=16, index="ivf", index_params={"nprobe": 5})
    tuned.add(vectors=random_vectors(400, 16, seed=3))
    adapter = tuned._core.adapter  # pyright: ignore[reportPrivateUsage]
    assert adapter is not None and (adapter.params["nlist"], adapter.params["nprobe"]) == (20, 5)
    tuned.close()


def test_bad_open_options(tmp_path: pathlib.Path) -> None:
    with pytest.raises(InvalidArgument, match="metric"):
        ruvector.Collection.open(tmp_path / "a", metric="manhattan")
    with pytest.raises(InvalidArgument, match="unknown index kind"):
        ruvector.Collection.open(tmp_path / "b", index="hnsw")
    with pytest.raises(InvalidArgument, match="embedder must be"):
        ruvector.Collection.open(tmp_path / "c", embedder=42)


def test_async_variants(docs: Any) -> None:
    async def main() -> Any:
        ids = await docs.add_async(TEXTS[:2], metadata=[{"x": 1}, {"x": 2}])
        await docs.upsert_async(["bread"], ids=[ids[0]])
        hits = await docs.query_async("bread", k=1)
        got = await docs.get_async([ids[1]])
        count = await docs.count_async()
        deleted = await docs.delete_async([ids[1]])
        return ids, hits, got, count, deleted

    ids, hits, got, count, deleted = asyncio.run(main())
    assert ids == [0, 1] and hits[0].id == 0 and got[0].metadata == {"x": 2} and count == 2 and deleted == 1


def test_copy_to_and_describe(docs: Any, tmp_path: pathlib.Path) -> None:
    docs.add(TEXTS, metadata=[{"i": i} for i in range(4)])
    copy = docs.copy_to(tmp_path / "copy")
    assert copy.get() == docs.get()
    info = copy.describe()
    assert info["count"] == 4 and info["dim"] == DIM and info["id_kind"] == "int" and info["disk_bytes"] > 0
    copy.close()


@needs_filter
def test_filtered_query_returns_min_k_matches(docs: Any) -> None:
    vectors = random_vectors(200, seed=5)
    docs.add(vectors=vectors, metadata=[{"group": i % 10, "even": i % 2 == 0} for i in range(200)])
    hits = docs.query(vectors[3], k=50, where={"group": 3})
    assert len(hits) == 20 and all(h.metadata["group"] == 3 for h in hits) and hits[0].id == 3
    assert docs.query(vectors[3], k=5, where={"group": 99}) == []
    batch = docs.query(vectors[:2], k=3, where={"even": True})
    assert all(h.metadata["even"] for row in batch for h in row)
    assert [h.id for h in docs.query(vectors[3], k=2, ids=[3, 4])] == [3, 4] or len(
        docs.query(vectors[3], k=2, ids=[3, 4])
    ) == 2


@needs_changes
def test_upsert_and_delete_change_the_index_in_place(docs: Any) -> None:
    vectors = random_vectors(100, seed=8)
    docs.add(vectors=vectors)
    docs.upsert(vectors=vectors[50:51] * -1, ids=[0])
    assert docs.query(-vectors[50], k=1)[0].id == 0
    docs.delete([1])
    assert 1 not in [h.id for h in docs.query(vectors[1], k=5)]


def test_metric_ip_needs_the_index_api_or_works(tmp_path: pathlib.Path) -> None:
    coll = ruvector.Collection.open(tmp_path / "c", embedder=None, metric="ip")
    vectors = random_vectors(30)
    if HAS_CHANGES:
        coll.add(vectors=vectors)
        q = vectors[4]
        hit = single_hits(coll.query(np.asarray(q), k=1))[0]
        assert hit.id == int(np.argmax(vectors @ q))
        assert hit.score == pytest.approx(1 - float(np.max(vectors @ q)), rel=1e-4)
    else:
        with pytest.raises(ruvector.RuVectorError, match="metric 'ip'"):
            coll.add(vectors=vectors)
    coll.close()


@needs_minilm
def test_rag_with_the_real_model(tmp_path: pathlib.Path) -> None:
    docs = ruvector.Collection.open(tmp_path / "docs")  # all-MiniLM-L6-v2 by default
    docs.add(
        ["Knead the dough, then bake the loaf.", "Rates rose by a quarter point.", "The striker scored twice."],
        metadata=[{"topic": "food"}, {"topic": "finance"}, {"topic": "sport"}],
    )
    assert docs.query("How do I bake bread?", k=1)[0].metadata == {"topic": "food"}
    assert docs.query("interest rates", k=1)[0].id == 1
    assert docs.dim == 384 and docs.stats().embedder == "all-MiniLM-L6-v2"
    docs.close()
    again = ruvector.Collection.open(tmp_path / "docs")  # remembers its model
    assert again.query("football match", k=1)[0].id == 2
    again.close()
    with pytest.raises(InvalidArgument, match="another space"):
        ruvector.Collection.open(tmp_path / "docs", embedder="bge-small-en-v1.5")
