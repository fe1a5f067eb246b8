"""ParquetBackend over real Parquet files written by pyarrow in a tmp dir."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, List

import numpy as np
import pytest

import ruvector_lake as rl

from .conftest import F32, U64, clustered, exact_top, sparse_ids

pa: Any = pytest.importorskip("pyarrow")
pq: Any = pytest.importorskip("pyarrow.parquet")


def fixed_table(ids: Any, x: F32, *, id_name: str = "id", vec_name: str = "embedding") -> Any:
    values = pa.array(np.ascontiguousarray(x).reshape(-1), type=pa.float32())
    vectors = pa.FixedSizeListArray.from_arrays(values, x.shape[1])
    return pa.table({id_name: pa.array(ids), vec_name: vectors})


def list_table(ids: Any, rows: List[Any], value_type: Any = None) -> Any:
    vtype = pa.list_(value_type or pa.float32())
    return pa.table({"id": pa.array(ids), "embedding": pa.array(rows, type=vtype)})


def local_top(ids: U64, x: F32, queries: F32, k: int) -> List[List[int]]:
    local = rl.LocalBackend("local")
    local.upsert("docs", ids, x)
    lake = rl.RuLake()
    lake.register_backend(local)
    return [[h.id for h in lake.search_one("local", "docs", q, k=k)] for q in queries]


def test_search_equals_a_local_backend_with_the_same_data(tmp_path: Path) -> None:
    x, ids = clustered(600, 16, seed=3), sparse_ids(600, seed=3)
    pq.write_table(fixed_table(ids, x), tmp_path / "docs.parquet", row_group_size=128)
    backend = rl.ParquetBackend("pq", tmp_path)
    assert backend.collections() == ["docs"] and backend.root == str(tmp_path.resolve())
    got_ids, got_x = backend.pull("docs")
    assert got_ids.dtype == np.uint64 and np.array_equal(got_ids, ids)
    assert got_x.dtype == np.float32 and got_x.flags.c_contiguous and np.array_equal(got_x, x)
    lake = rl.RuLake()
    lake.register_backend(backend)
    queries = x[:20]
    hits = [[h.id for h in lake.search_one("pq", "docs", q, k=10)] for q in queries]
    assert hits == local_top(ids, x, queries, 10)
    assert hits[5][0] == int(ids[5]) and exact_top(x, ids, x[5], 1) == [int(ids[5])]
    bundle = lake.current_bundle("pq", "docs")
    assert bundle.generation == backend.generation("docs") and bundle.verify()
    assert bundle.data_ref == (tmp_path / "docs.parquet").resolve().as_uri() + "#id,embedding"


def test_list_column_and_dataset_directory(tmp_path: Path) -> None:
    x, ids = clustered(300, 8, seed=5), sparse_ids(300, seed=5)
    part = tmp_path / "shards"
    part.mkdir()
    for i in range(3):
        rows = [row.tolist() for row in x[i * 100 : (i + 1) * 100]]
        pq.write_table(list_table(ids[i * 100 : (i + 1) * 100], rows, pa.float64()), part / f"p{i}.parquet")
    backend = rl.ParquetBackend("pq", tmp_path, id_column="id", vector_column="embedding")
    assert backend.collections() == ["shards"]
    got_ids, got_x = backend.pull("shards")
    assert np.array_equal(np.sort(got_ids), np.sort(ids))
    order = np.argsort(got_ids)
    assert np.array_equal(got_x[order], x[np.argsort(ids)])
    gen = backend.generation("shards")
    assert gen.startswith("dir:") and backend.generation("shards") == gen
    lake = rl.RuLake()
    lake.register_backend(backend)
    assert lake.search_one("pq", "shards", x[150], k=1)[0].id == int(ids[150])
    # A new shard changes the directory's generation and the results.
    extra = np.full((1, 8), 40.0, dtype=np.float32)
    pq.write_table(list_table(np.array([7], dtype=np.uint64), [extra[0].tolist()]), part / "p3.parquet")
    assert backend.generation("shards") != gen
    assert lake.search_one("pq", "shards", extra[0], k=1)[0].id == 7


def test_rewrite_gives_a_new_generation_and_fresh_results(tmp_path: Path) -> None:
    x, ids = clustered(200, 8, seed=7), sparse_ids(200, seed=7)
    path = tmp_path / "docs.parquet"
    pq.write_table(fixed_table(ids, x), path)
    backend = rl.ParquetBackend("pq", tmp_path)
    lake = rl.RuLake(consistency=rl.Consistency.FRESH)
    lake.register_backend(backend)
    gen1 = backend.generation("docs")
    assert lake.search_one("pq", "docs", x[0], k=1)[0].id == int(ids[0])
    # Rewritten in place, same row count: the file identity still moves
    # (past the filesystem's coarse timestamp tick, the documented limit).
    time.sleep(0.05)
    y = x.copy()
    y[0] = 50.0
    pq.write_table(fixed_table(ids, y), path)
    gen2 = backend.generation("docs")
    assert gen2 != gen1
    assert lake.search_one("pq", "docs", np.full(8, 50.0, dtype=np.float32), k=1)[0].id == int(ids[0])
    assert lake.current_bundle("pq", "docs").generation == gen2
    # Replaced atomically (write + rename, a new inode).
    tmp = tmp_path / "docs.tmp"
    pq.write_table(fixed_table(ids[:10], x[:10]), tmp)
    os.replace(tmp, path)
    assert backend.generation("docs") not in (gen1, gen2)
    assert len(lake.search_one("pq", "docs", x[0], k=50)) == 10


def bad_case(tmp_path: Path, case: str) -> None:
    ids = np.arange(4, dtype=np.uint64)
    x = np.ones((4, 3), dtype=np.float32)
    target = tmp_path / "docs.parquet"
    if case == "missing column":
        pq.write_table(fixed_table(ids, x, vec_name="vec"), target)
    elif case == "wrong vector type":
        pq.write_table(pa.table({"id": ids, "embedding": pa.array(["a", "b", "c", "d"])}), target)
    elif case == "wrong value type":
        pq.write_table(list_table(ids, [[1, 2], [3, 4], [5, 6], [7, 8]], pa.int32()), target)
    elif case == "wrong id type":
        pq.write_table(fixed_table(pa.array(["a", "b", "c", "d"]), x), target)
    elif case == "ragged":
        pq.write_table(list_table(ids, [[1.0, 2.0], [3.0, 4.0], [5.0], [7.0, 8.0]]), target)
    elif case == "null vector":
        pq.write_table(list_table(ids, [[1.0, 2.0], None, [5.0, 6.0], [7.0, 8.0]]), target)
    elif case == "null value":
        pq.write_table(list_table(ids, [[1.0, 2.0], [3.0, None], [5.0, 6.0], [7.0, 8.0]]), target)
    elif case == "null id":
        pq.write_table(list_table([0, None, 2, 3], [[1.0], [2.0], [3.0], [4.0]]), target)
    elif case == "negative id":
        pq.write_table(fixed_table(np.array([0, -5, 2, 3], dtype=np.int64), x), target)
    elif case == "nan":
        x[2, 1] = np.nan
        pq.write_table(fixed_table(ids, x), target)
    elif case == "inf":
        x[3, 0] = np.inf
        pq.write_table(fixed_table(ids, x), target)
    elif case == "not parquet":
        target.write_bytes(b"not a parquet file at all")
    else:
        raise AssertionError(case)


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("missing column", r"no column 'embedding'.*\['id', 'vec'\]"),
        ("wrong vector type", r"fixed_size_list<float32> or a list of floats, got string"),
        ("wrong value type", r"must hold floats, got list<\w+: int32>"),
        ("wrong id type", r"must be integers, got string"),
        ("ragged", r"ragged vectors: expected 2 values per row, got 1"),
        ("null vector", r"1 null row"),
        ("null value", r"null values inside vectors"),
        ("null id", r"id column 'id' has 1 null"),
        ("negative id", r"ids must be 0 or more, got -5"),
        ("nan", r"finite.*row 2 \(id 2\)"),
        ("inf", r"finite.*row 3 \(id 3\)"),
        ("not parquet", r"cannot read the Parquet schema"),
    ],
)
def test_bad_files_are_backend_errors(tmp_path: Path, case: str, needle: str) -> None:
    bad_case(tmp_path, case)
    backend = rl.ParquetBackend("pq", tmp_path)
    with pytest.raises(rl.BackendError, match=needle) as info:
        backend.pull("docs")
    assert info.value.backend == "pq" and "pq/docs" in str(info.value)
    lake = rl.RuLake()
    lake.register_backend(backend)
    with pytest.raises(rl.BackendError) as through:
        lake.search_one("pq", "docs", np.ones(2, dtype=np.float32))
    assert through.value.backend == "pq"


def test_faults_in_a_later_row_group_name_their_row(tmp_path: Path) -> None:
    # Read batch by batch: a fault past the first batch still names its row
    # in the whole collection, and nothing is returned.
    x, ids = clustered(300, 4, seed=9), sparse_ids(300, seed=9)
    x[250, 2] = np.inf
    pq.write_table(fixed_table(ids, x), tmp_path / "docs.parquet", row_group_size=64)
    backend = rl.ParquetBackend("pq", tmp_path)
    with pytest.raises(rl.BackendError, match=rf"finite.*row 250 \(id {int(ids[250])}\)"):
        backend.pull("docs")
    rows = [row.tolist() for row in x[:200]]
    rows[170] = rows[170][:3]
    pq.write_table(list_table(ids[:200], rows), tmp_path / "docs.parquet", row_group_size=64)
    with pytest.raises(rl.BackendError, match=r"ragged vectors: expected 4 values per row, got 3"):
        backend.pull("docs")
    empty = pa.table({"id": pa.array([], type=pa.uint64()), "embedding": pa.array([], type=pa.list_(pa.float32(), 4))})
    pq.write_table(empty, tmp_path / "docs.parquet")
    got_ids, got_x = backend.pull("docs")
    assert got_ids.shape == (0,) and got_x.shape == (0, 4)


def test_missing_collection_and_root(tmp_path: Path) -> None:
    two = np.ones((2, 2), dtype=np.float32)
    pq.write_table(fixed_table(np.arange(2, dtype=np.uint64), two), tmp_path / "a.parquet")
    backend = rl.ParquetBackend("pq", tmp_path)
    with pytest.raises(rl.BackendError, match=r"no collection 'b'.*have \['a'\]"):
        backend.generation("b")
    with pytest.raises(rl.BackendError, match="bad collection name"):
        backend.pull("../a")
    with pytest.raises(rl.BackendError, match="root must be a directory"):
        rl.ParquetBackend("pq", tmp_path / "nope")
    with pytest.raises(TypeError, match="vector_column"):
        rl.ParquetBackend("pq", tmp_path, vector_column="")


def test_missing_extra_names_the_install_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ruvector_common.errors import MissingComponentError

    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(MissingComponentError, match=r"pip install 'ruvector-lake\[parquet\]'") as info:
        rl.ParquetBackend("pq", tmp_path)
    assert isinstance(info.value, ImportError) and info.value.name == "pyarrow"
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(ImportError, match=r"PostgresBackend needs .*ruvector-lake\[postgres\]"):
        rl.PostgresBackend("pg", "host=/nowhere")


def test_through_a_pyarrow_filesystem(tmp_path: Path) -> None:
    """The object-store path (any ``pyarrow.fs.FileSystem``), here local."""
    pafs: Any = pytest.importorskip("pyarrow.fs")
    x, ids = clustered(200, 8, seed=9), sparse_ids(200, seed=9)
    (tmp_path / "store" / "shards").mkdir(parents=True)
    pq.write_table(fixed_table(ids, x), tmp_path / "store" / "docs.parquet")
    pq.write_table(fixed_table(ids[:100], x[:100]), tmp_path / "store" / "shards" / "a.parquet")
    pq.write_table(fixed_table(ids[100:], x[100:]), tmp_path / "store" / "shards" / "b.parquet")
    fs = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    backend = rl.ParquetBackend("obj", "store", filesystem=fs)
    assert backend.collections() == ["docs", "shards"] and backend.root == "store"
    for name in ("docs", "shards"):
        got_ids, got_x = backend.pull(name)
        assert np.array_equal(got_ids, ids) and np.array_equal(got_x, x)
    gen = backend.generation("docs")
    assert gen.endswith(":0") and backend.generation("shards").startswith("dir:")
    assert backend.data_ref("docs") == "subtree://store/docs.parquet#id,embedding"
    lake = rl.RuLake(consistency=rl.Consistency.FRESH)
    lake.register_backend(backend)
    assert lake.search_one("obj", "shards", x[150], k=1)[0].id == int(ids[150])
    pq.write_table(fixed_table(ids[:5], x[:5]), tmp_path / "store" / "docs.parquet")
    assert backend.generation("docs") != gen
    assert len(lake.search_one("obj", "docs", x[0], k=50)) == 5
    with pytest.raises(rl.BackendError, match="root must be a directory"):
        rl.ParquetBackend("obj", "nowhere", filesystem=fs)
    with pytest.raises(TypeError, match=r"pyarrow\.fs\.FileSystem"):
        rl.ParquetBackend("obj", "store", filesystem="s3")
