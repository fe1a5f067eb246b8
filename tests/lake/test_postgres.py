"""PostgresBackend against a real PostgreSQL server: a throwaway cluster that
the fixture creates with initdb in a tmp dir and starts on a Unix socket
(no TCP port). Skipped only when no PostgreSQL server binaries exist."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import threading
from typing import Any, Callable, Iterator, List, Optional

import numpy as np
import pytest

import ruvector_lake as rl

from .conftest import F32, U64, clustered, exact_top, sparse_ids

psycopg: Any = pytest.importorskip("psycopg")


def _pg_bin() -> Optional[str]:
    """The directory of initdb/pg_ctl: PATH first, then Debian's layout."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return os.path.dirname(os.path.realpath(found))
    for cand in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(cand, "initdb")) and os.path.exists(os.path.join(cand, "pg_ctl")):
            return cand
    return None


@pytest.fixture(scope="module")
def dsn() -> Iterator[str]:
    """Start a throwaway cluster; yield a DSN over its socket; stop and delete it."""
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql")
    # A short path: a Unix socket path must fit in 107 bytes.
    base = tempfile.mkdtemp(prefix="rvpg")
    prefix: List[str] = []
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root: run it as the postgres user.
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
        user = "postgres"
        shutil.chown(base, user=user)
        prefix = ["runuser", "-u", user, "--"]
    data = os.path.join(base, "data")
    subprocess.run(
        [*prefix, os.path.join(bindir, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    options = f"-k {base} -c listen_addresses='' -c fsync=off"
    subprocess.run(
        [
            *prefix,
            os.path.join(bindir, "pg_ctl"),
            "-D",
            data,
            "-o",
            options,
            "-l",
            os.path.join(base, "log"),
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"host={base} dbname=postgres user=postgres"
    finally:
        subprocess.run([*prefix, os.path.join(bindir, "pg_ctl"), "-D", data, "-m", "immediate", "stop"], check=False)
        shutil.rmtree(base, ignore_errors=True)


def execute(dsn: str, *statements: str, params: Any = None) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement, params)


def load(dsn: str, table: str, ids: U64, x: F32, *, kind: str = "real[]") -> None:
    """Create ``table`` and COPY the rows in (binary)."""
    execute(dsn, f"DROP TABLE IF EXISTS {table}", f"CREATE TABLE {table} (id bigint PRIMARY KEY, embedding {kind})")
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY {table} (id, embedding) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int8", {"bytea": "bytea", "real[]": "float4[]"}.get(kind, "float8[]")])
            for i, row in zip(ids.view(np.int64).tolist(), x):
                copy.write_row((i, row.astype("<f4").tobytes() if kind == "bytea" else row.tolist()))


def signed(ids: U64) -> U64:
    """Ids that fit a bigint (the high ones cleared), still unique."""
    out = np.ascontiguousarray(ids & np.uint64(2**62 - 1))
    assert len(np.unique(out)) == len(out)
    return out


def _run_together(writer: Callable[[int], None], n: int) -> None:
    """Runs ``writer(0) … writer(n - 1)`` on ``n`` threads at once and waits."""
    threads = [threading.Thread(target=writer, args=(w,)) for w in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)


@pytest.mark.parametrize("kind", ["real[]", "bytea", "double precision[]"])
def test_search_equals_a_local_backend_with_the_same_data(dsn: str, kind: str) -> None:
    x, ids = clustered(20_000 if kind == "real[]" else 500, 16, seed=11), None
    ids = signed(sparse_ids(len(x), seed=11))
    load(dsn, "docs", ids, x, kind=kind)
    backend = rl.PostgresBackend("pg", dsn)
    assert "docs" in backend.collections()
    assert backend.install_change_counter("docs") == 0
    got_ids, got_x = backend.pull("docs")
    order = np.argsort(got_ids)
    assert got_ids.dtype == np.uint64 and np.array_equal(got_ids[order], np.sort(ids))
    assert got_x.dtype == np.float32 and np.array_equal(got_x[order], x[np.argsort(ids)])
    local = rl.LocalBackend("local")
    local.upsert("docs", ids, x)
    lake = rl.RuLake()
    lake.register_backend(backend)
    lake.register_backend(local)
    for q in x[:10]:
        want = [h.id for h in lake.search_one("local", "docs", q, k=10)]
        assert [h.id for h in lake.search_one("pg", "docs", q, k=10)] == want
    assert lake.search_one("pg", "docs", x[3], k=1)[0].id == exact_top(x, ids, x[3], 1)[0]
    bundle = lake.current_bundle("pg", "docs")
    assert bundle.generation == 0 and bundle.verify()
    assert bundle.data_ref.startswith("postgresql://") and bundle.data_ref.endswith("/postgres/docs#id,embedding")
    backend.close()


def test_every_committed_change_moves_the_generation(dsn: str) -> None:
    x, ids = clustered(300, 8, seed=2), signed(sparse_ids(300, seed=2))
    load(dsn, "items", ids, x)
    backend = rl.PostgresBackend("pg", dsn)
    with pytest.raises(rl.BackendError, match=r"install_change_counter\('items'\)"):
        backend.generation("items")
    g0 = backend.install_change_counter("items")
    assert backend.install_change_counter("items") == g0  # idempotent
    lake = rl.RuLake(consistency=rl.Consistency.FRESH)
    lake.register_backend(backend)
    assert lake.search_one("pg", "items", x[0], k=1)[0].id == int(ids[0])
    far = np.full(8, 30.0, dtype=np.float32)
    # A rolled-back change does not move it.
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE items SET embedding = %s WHERE id = %s", (far.tolist(), int(ids[5])))
        conn.rollback()
    assert backend.generation("items") == g0
    # A committed UPDATE does, and the next search sees it.
    execute(dsn, "UPDATE items SET embedding = %s WHERE id = %s", params=(far.tolist(), int(ids[5])))
    g1 = backend.generation("items")
    assert g1 == g0 + 1
    assert lake.search_one("pg", "items", far, k=1)[0].id == int(ids[5])
    execute(dsn, "DELETE FROM items WHERE id = %s", params=(int(ids[5]),))
    assert backend.generation("items") == g1 + 1
    assert lake.search_one("pg", "items", far, k=1)[0].id != int(ids[5])
    execute(dsn, "INSERT INTO items VALUES (%s, %s)", params=(7, far.tolist()))
    assert lake.search_one("pg", "items", far, k=1)[0].id == 7
    execute(dsn, "TRUNCATE items", "INSERT INTO items VALUES (1, '{1,2,3,4,5,6,7,8}')")
    assert backend.generation("items") == g1 + 4
    # An uncommitted change is invisible until its commit.
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO items VALUES (2, %s)", (far.tolist(),))
        assert backend.generation("items") == g1 + 4
        conn.commit()
    assert backend.generation("items") == g1 + 5
    assert lake.current_bundle("pg", "items").generation == g1 + 5


def test_concurrent_committed_writers_are_all_counted(dsn: str) -> None:
    x, ids = clustered(50, 4, seed=3), signed(sparse_ids(50, seed=3))
    load(dsn, "busy", ids, x)
    backend = rl.PostgresBackend("pg", dsn)
    g0 = backend.install_change_counter("busy")
    errors: List[BaseException] = []

    def writer(w: int) -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                for i in range(10):
                    conn.execute(
                        "UPDATE busy SET embedding = %s WHERE id = %s", ([float(w), 0.0, 0.0, float(i)], int(ids[w]))
                    )
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    _run_together(writer, 4)
    assert not errors
    assert backend.generation("busy") == g0 + 40


def test_pgvector_column_where_the_server_has_it(dsn: str) -> None:
    try:
        execute(dsn, "CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.Error as error:
        pytest.skip(f"pgvector is not installed on this server: {error}")
    x, ids = clustered(200, 8, seed=6), signed(sparse_ids(200, seed=6))
    execute(dsn, "DROP TABLE IF EXISTS pgv", "CREATE TABLE pgv (id bigint PRIMARY KEY, embedding vector(8))")
    with psycopg.connect(dsn) as conn:
        for i, row in zip(ids.view(np.int64).tolist(), x):
            conn.execute("INSERT INTO pgv VALUES (%s, %s::real[]::vector)", (i, row.tolist()))
    backend = rl.PostgresBackend("pg", dsn)
    got_ids, got_x = backend.pull("pgv")
    assert np.array_equal(got_x[np.argsort(got_ids)], x[np.argsort(ids)])


def test_schema_qualified_table_and_single_table_mode(dsn: str) -> None:
    x, ids = clustered(100, 8, seed=4), signed(sparse_ids(100, seed=4))
    execute(dsn, "CREATE SCHEMA IF NOT EXISTS lake")
    load(dsn, "lake.vecs", ids, x)
    backend = rl.PostgresBackend("pg", dsn, table="lake.vecs")
    assert backend.collections() == ["lake.vecs"]
    backend.install_change_counter("lake.vecs")
    lake = rl.RuLake()
    lake.register_backend(backend)
    assert lake.search_one("pg", "lake.vecs", x[9], k=1)[0].id == int(ids[9])
    with pytest.raises(rl.BackendError, match=r"serves only table 'lake\.vecs', got 'docs'"):
        backend.pull("docs")
    assert "lake.vecs" in rl.PostgresBackend("all", dsn).collections()


@pytest.mark.parametrize(
    ("setup", "needle"),
    [
        ([], r"no table 'bad'"),
        (["CREATE TABLE bad (id bigint, embedding real[])"], r"no rows: the dimension of its vectors is unknown"),
        (["CREATE TABLE bad (id bigint, vec real[])"], r"no column 'embedding'; columns: \['id', 'vec'\]"),
        (["CREATE TABLE bad (id bigint, embedding text)"], r"must be real\[\], double precision\[\], bytea.*got text"),
        (["CREATE TABLE bad (id bigint, embedding integer[])"], r"got int4\[\]"),
        (["CREATE TABLE bad (id text, embedding real[])"], r"must be smallint, integer or bigint, got text"),
        (
            ["CREATE TABLE bad (id bigint, embedding real[])", "INSERT INTO bad VALUES (1, '{1,2,3}'), (2, '{1,2}')"],
            r"wrong dimension: expected 3 values, got 2 \(id 2\)",
        ),
        (
            ["CREATE TABLE bad (id bigint, embedding real[])", "INSERT INTO bad VALUES (1, '{1,2}'), (2, NULL)"],
            r"NULL vector in column 'embedding' \(id 2\)",
        ),
        (
            ["CREATE TABLE bad (id bigint, embedding real[])", "INSERT INTO bad VALUES (1, '{1,NULL}')"],
            r"NULL element in the vector of id 1",
        ),
        (
            ["CREATE TABLE bad (id bigint, embedding real[])", "INSERT INTO bad VALUES (NULL, '{1,2}')"],
            r"NULL id",
        ),
        (
            ["CREATE TABLE bad (id bigint, embedding real[])", "INSERT INTO bad VALUES (-4, '{1,2}')"],
            r"ids must be 0 or more, got -4",
        ),
        (
            ["CREATE TABLE bad (id bigint, embedding real[])", "INSERT INTO bad VALUES (1, '{1,NaN}')"],
            r"must be finite.*\(id 1\)",
        ),
        (
            ["CREATE TABLE bad (id bigint, embedding bytea)", "INSERT INTO bad VALUES (1, '\\x0102030405')"],
            r"multiple of 4 bytes, got 5",
        ),
    ],
)
def test_bad_tables_are_backend_errors(dsn: str, setup: List[str], needle: str) -> None:
    execute(dsn, "DROP TABLE IF EXISTS bad", *setup)
    backend = rl.PostgresBackend("pg", dsn)
    with pytest.raises(rl.BackendError, match=needle) as info:
        backend.pull("bad")
    assert info.value.backend == "pg" and "pg/bad" in str(info.value)
    if setup:
        backend.install_change_counter("bad")
    lake = rl.RuLake()
    lake.register_backend(backend)
    with pytest.raises(rl.BackendError) as through:
        lake.search_one("pg", "bad", np.ones(2, dtype=np.float32))
    assert through.value.backend == "pg"


@pytest.mark.parametrize("kind", ["real[]", "bytea"])
@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ("UPDATE big SET embedding = NULL WHERE id = 12345", r"NULL vector in column 'embedding' \(id 12345\)"),
        ("UPDATE big SET embedding = embedding[1:5] WHERE id = 20000", r"expected 6 values, got 5 \(id 20000\)"),
        ("UPDATE big SET id = -3 WHERE id = 17", r"ids must be 0 or more, got -3"),
    ],
)
def test_a_bad_row_deep_in_a_large_table_is_found(dsn: str, kind: str, change: str, needle: str) -> None:
    """The chunked parser checks every row, not just the first of a chunk."""
    x = clustered(30_000, 6, seed=8)
    ids = np.arange(30_000, dtype=np.uint64)
    load(dsn, "big", ids, x, kind=kind)
    backend = rl.PostgresBackend("pg", dsn)
    got_ids, got_x = backend.pull("big")
    assert np.array_equal(got_ids[np.argsort(got_ids)], ids) and np.array_equal(got_x[np.argsort(got_ids)], x)
    if kind == "bytea" and "embedding[1:5]" in change:
        change = "UPDATE big SET embedding = substring(embedding from 1 for 20) WHERE id = 20000"
    execute(dsn, change)
    with pytest.raises(rl.BackendError, match=needle):
        backend.pull("big")


def test_timeouts_and_connection_errors(dsn: str, tmp_path: Any) -> None:
    execute(dsn, "DROP TABLE IF EXISTS slow", "CREATE TABLE slow (id bigint, embedding real[])")
    execute(dsn, "CREATE OR REPLACE VIEW slow_view AS SELECT id, embedding FROM slow, pg_sleep(2)")
    execute(dsn, "INSERT INTO slow VALUES (1, '{1,2}')")
    backend = rl.PostgresBackend("pg", dsn, statement_timeout=200)
    with pytest.raises(rl.BackendError, match="statement timeout") as slow:
        backend.pull("slow_view")
    assert slow.value.backend == "pg" and isinstance(slow.value.__cause__, psycopg.errors.QueryCanceled)
    # The connection that timed out was not returned to the pool broken.
    assert backend.pull("slow")[0].tolist() == [1]
    # A server that is not there: a BackendError naming the backend, fast.
    gone = rl.PostgresBackend("gone", f"host={tmp_path} dbname=postgres user=postgres", connect_timeout=2)
    with pytest.raises(rl.BackendError, match="cannot connect to PostgreSQL") as info:
        gone.generation("docs")
    assert info.value.backend == "gone"
    with pytest.raises(ValueError, match="statement_timeout"):
        rl.PostgresBackend("pg", dsn, statement_timeout=-1)


# -- incremental refresh: the change log ---------------------------------------


def _sorted(ids: Any) -> List[int]:
    return sorted(int(i) for i in ids)


def test_changes_since_reads_the_log_and_the_lake_applies_it(dsn: str) -> None:
    x, ids = clustered(2000, 16, seed=21), signed(sparse_ids(2000, seed=21))
    load(dsn, "delta", ids, x)
    backend = rl.PostgresBackend("pg", dsn)
    g0 = backend.install_change_counter("delta")
    changes = backend.changes_since("delta", g0)
    assert changes is not None and changes.generation == g0
    assert _sorted(changes.upserted_ids) == [] and _sorted(changes.removed_ids) == []
    lake = rl.RuLake()
    lake.register_backend(backend)
    assert lake.search_one("pg", "delta", x[0], k=1)[0].id == int(ids[0])
    far = np.full(16, 9.0, dtype=np.float32)
    near = np.full(16, -9.0, dtype=np.float32)
    execute(
        dsn,
        f"UPDATE delta SET embedding = '{{{','.join(['9'] * 16)}}}' WHERE id IN ({int(ids[1])}, {int(ids[2])})",
        f"DELETE FROM delta WHERE id IN ({int(ids[3])}, {int(ids[4])})",
        f"INSERT INTO delta VALUES (11, '{{{','.join(['-9'] * 16)}}}'), (12, '{{{','.join(['-9'] * 16)}}}')",
        # An id that moves: its old id is removed, its new one upserted.
        f"UPDATE delta SET id = 13 WHERE id = {int(ids[5])}",
        # Written and deleted since g0: removed (the lake ignores ids it lacks).
        "INSERT INTO delta VALUES (14, '{" + ",".join(["1"] * 16) + "}')",
        "DELETE FROM delta WHERE id = 14",
    )
    changes = backend.changes_since("delta", g0)
    assert changes is not None and changes.generation == g0 + 6 == backend.generation("delta")
    assert _sorted(changes.upserted_ids) == sorted([int(ids[1]), int(ids[2]), 11, 12, 13])
    assert _sorted(changes.removed_ids) == sorted([int(ids[3]), int(ids[4]), int(ids[5]), 14])
    up = dict(zip(np.asarray(changes.upserted_ids).tolist(), np.asarray(changes.upserted_vectors)))
    assert np.array_equal(up[int(ids[1])], far) and np.array_equal(up[11], near)
    assert np.array_equal(up[13], x[5])
    # From an intermediate generation: only what came after it.
    later = backend.changes_since("delta", g0 + 4)
    assert later is not None and _sorted(later.upserted_ids) == [] and _sorted(later.removed_ids) == [14]
    # The lake applies it: no new prime, a refresh; then it equals a fresh prime.
    assert lake.search_one("pg", "delta", near, k=2)[0].id in (11, 12)
    stats = lake.cache_stats()
    assert (stats.primes, stats.refreshes) == (1, 1)
    fresh = rl.RuLake()
    fresh.register_backend(rl.PostgresBackend("pg", dsn))
    for q in [far, near, x[0], x[6], x[500]]:
        assert lake.search_one("pg", "delta", q, k=10) == fresh.search_one("pg", "delta", q, k=10)
    assert lake.witness("pg", "delta") == fresh.witness("pg", "delta")
    assert lake.cached_bundle("pg", "delta") == fresh.cached_bundle("pg", "delta")
    # Not a generation of this counter: no answer (the lake would pull).
    assert backend.changes_since("delta", g0 + 100) is None
    assert backend.changes_since("delta", "g0") is None


def test_a_transaction_in_flight_is_never_skipped(dsn: str) -> None:
    """Writers serialise on the counter row: a writer that starts after an
    uncommitted one waits for its commit, so counter values commit in
    order and a reader at generation G has seen every change up to G."""
    x, ids = clustered(100, 4, seed=22), signed(sparse_ids(100, seed=22))
    load(dsn, "race", ids, x)
    backend = rl.PostgresBackend("pg", dsn)
    g0 = backend.install_change_counter("race")
    first = psycopg.connect(dsn)
    first.execute("INSERT INTO race VALUES (1001, '{1,1,1,1}')")  # takes counter g0 + 1, uncommitted
    second_done = threading.Event()
    errors: List[BaseException] = []

    def second() -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f"UPDATE race SET embedding = '{{2,2,2,2}}' WHERE id = {int(ids[0])}")
            second_done.set()
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=second)
    t.start()
    try:
        # The second writer waits on the first's counter row lock.
        assert not second_done.wait(0.5)
        assert backend.generation("race") == g0
        changes = backend.changes_since("race", g0)
        assert changes is not None and changes.generation == g0 and _sorted(changes.upserted_ids) == []
        first.commit()
        t.join(30)
        assert second_done.is_set() and not errors
    finally:
        first.close()
    assert backend.generation("race") == g0 + 2
    changes = backend.changes_since("race", g0)
    assert changes is not None and changes.generation == g0 + 2
    assert _sorted(changes.upserted_ids) == sorted([1001, int(ids[0])])
    # Each in its own generation, in commit order.
    one = backend.changes_since("race", g0 + 1)
    assert one is not None and _sorted(one.upserted_ids) == [int(ids[0])]


def test_a_rolled_back_write_leaves_no_log_and_concurrent_writers_are_all_logged(dsn: str) -> None:
    x, ids = clustered(60, 4, seed=23), signed(sparse_ids(60, seed=23))
    load(dsn, "many", ids, x)
    backend = rl.PostgresBackend("pg", dsn)
    g0 = backend.install_change_counter("many")
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO many VALUES (5000, '{1,2,3,4}')")
        conn.rollback()
    changes = backend.changes_since("many", g0)
    assert changes is not None and changes.generation == g0 and _sorted(changes.upserted_ids) == []
    errors: List[BaseException] = []

    def writer(w: int) -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                for i in range(5):
                    conn.execute(f"INSERT INTO many VALUES ({10_000 + 10 * w + i}, '{{{w},{i},0,0}}')")
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    _run_together(writer, 4)
    assert not errors
    changes = backend.changes_since("many", g0)
    assert changes is not None and changes.generation == g0 + 20
    assert _sorted(changes.upserted_ids) == sorted(10_000 + 10 * w + i for w in range(4) for i in range(5))


def test_a_trimmed_or_truncated_log_means_a_full_pull(dsn: str) -> None:
    x, ids = clustered(300, 8, seed=24), signed(sparse_ids(300, seed=24))
    load(dsn, "trim", ids, x)
    backend = rl.PostgresBackend("pg", dsn)
    g0 = backend.install_change_counter("trim")
    lake = rl.RuLake()
    lake.register_backend(backend)
    lake.search_one("pg", "trim", x[0], k=1)
    execute(dsn, "INSERT INTO trim VALUES (1, '{0,0,0,0,0,0,0,0}')", "INSERT INTO trim VALUES (2, '{0,0,0,0,0,0,0,1}')")
    assert backend.trim_change_log("trim", g0 + 1) == 1
    assert backend.changes_since("trim", g0) is None
    later = backend.changes_since("trim", g0 + 1)
    assert later is not None and _sorted(later.upserted_ids) == [2]
    # The lake holds g0, which the log no longer reaches: a full pull.
    assert lake.search_one("pg", "trim", np.zeros(8, np.float32), k=1)[0].id == 1
    assert (lake.cache_stats().primes, lake.cache_stats().refreshes) == (2, 0)
    execute(dsn, "UPDATE trim SET embedding = '{5,5,5,5,5,5,5,5}' WHERE id = 1")
    assert lake.search_one("pg", "trim", np.full(8, 5.0, np.float32), k=1)[0].id == 1
    assert (lake.cache_stats().primes, lake.cache_stats().refreshes) == (2, 1)
    g = backend.generation("trim")
    execute(dsn, "TRUNCATE trim", "INSERT INTO trim VALUES (3, '{1,1,1,1,1,1,1,1}')")
    assert backend.changes_since("trim", g) is None
    assert lake.search_one("pg", "trim", np.ones(8, np.float32), k=5)[0].id == 3
    assert (lake.cache_stats().primes, lake.cache_stats().refreshes) == (3, 1)
    assert backend.trim_change_log("trim") == 1
    with pytest.raises(ValueError, match="through must be an int"):
        backend.trim_change_log("trim", -1)
