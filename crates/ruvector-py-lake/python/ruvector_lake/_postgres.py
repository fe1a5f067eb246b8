"""A backend over PostgreSQL tables (psycopg 3, binary COPY)."""

from __future__ import annotations

import struct
import threading
import urllib.parse
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Generator, List, Optional, Tuple

import numpy as np

from ruvector_common.errors import BackendError

from ._adapter import BackendAdapter
from ._stores import optional_import

if TYPE_CHECKING:
    from ._stores import Ids, Vectors

GENERATIONS_TABLE = "ruvector_generations"
"""The table holding one change counter per table (see :meth:`PostgresBackend.install_change_counter`)."""

_CHUNK_ROWS = 8192


class PostgresBackend(BackendAdapter):
    """Serve PostgreSQL tables as collections.

    Each collection is a table (``"table"`` or ``"schema.table"``) with an
    integer id column (``id_column``, ``smallint``/``integer``/``bigint``,
    0 or more) and a vector column (``vector_column``) of type ``real[]``,
    ``double precision[]``, ``bytea`` (little-endian float32) or pgvector's
    ``vector`` where the extension is installed. A pull reads the rows with
    binary ``COPY`` in one repeatable-read transaction, ``8192`` rows at a
    time, into one preallocated ``(n, dim)`` float32 array.

    **Generations.** :meth:`install_change_counter` creates (once) the small
    table ``ruvector_generations(table_name, generation)`` and a
    statement-level trigger on the table that increments its row on every
    ``INSERT``, ``UPDATE``, ``DELETE`` and ``TRUNCATE``. The increment is
    part of the writing transaction, so the counter moves exactly when that
    transaction commits (never for a rolled-back one) and concurrent writers
    are serialised on the counter row: no committed change is missed.
    :meth:`generation` reads the counter; a table without one is a
    ``BackendError`` that names the method to call.

    Connections are opened with ``connect_timeout`` (seconds) and every
    statement runs under ``statement_timeout`` (milliseconds); up to
    ``pool_size`` idle connections are kept for reuse across threads.

    Needs the ``postgres`` extra: ``pip install 'ruvector-lake[postgres]'``.

    Args:
        name: The backend's name within a lake.
        dsn: A libpq connection string or URI.
        id_column: Name of the id column.
        vector_column: Name of the vector column.
        table: If given, the only table served (other collections are a
            ``BackendError``).
        connect_timeout: Seconds to wait for a connection.
        statement_timeout: Milliseconds any statement may run (0: no limit).
        pool_size: Most idle connections kept open.
    """

    def __init__(
        self,
        name: str,
        dsn: str,
        id_column: str = "id",
        vector_column: str = "embedding",
        table: Optional[str] = None,
        *,
        connect_timeout: int = 10,
        statement_timeout: int = 60_000,
        pool_size: int = 4,
    ) -> None:
        """See the class docstring."""
        super().__init__(name)
        self._pg = optional_import("psycopg", "postgres", "psycopg", "PostgresBackend")
        self._sql = optional_import("psycopg.sql", "postgres", "psycopg", "PostgresBackend")
        if not isinstance(dsn, str):
            raise TypeError(f"dsn must be a str, got {type(dsn).__name__}")
        for label, value in (("id_column", id_column), ("vector_column", vector_column)):
            if not isinstance(value, str) or not value:
                raise TypeError(f"{label} must be a non-empty str, got {value!r}")
        for label, number in (
            ("connect_timeout", connect_timeout),
            ("statement_timeout", statement_timeout),
            ("pool_size", pool_size),
        ):
            if isinstance(number, bool) or not isinstance(number, int) or number < 0:
                raise ValueError(f"{label} must be an int of 0 or more, got {number!r}")
        self._dsn = dsn
        self._id_column = id_column
        self._vector_column = vector_column
        self._table = table
        self._connect_timeout = connect_timeout
        self._statement_timeout = statement_timeout
        self._pool_size = pool_size
        self._idle: List[Any] = []
        self._lock = threading.Lock()

    # -- connections -------------------------------------------------------

    @contextmanager
    def _connection(self) -> Generator[Any, None, None]:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None or conn.closed:
            try:
                conn = self._pg.connect(
                    self._dsn,
                    connect_timeout=self._connect_timeout,
                    options=f"-c statement_timeout={self._statement_timeout}",
                )
            except Exception as error:
                raise BackendError(f"{self.name}: cannot connect to PostgreSQL: {error}", backend=self.name) from error
        ok = False
        try:
            yield conn
            ok = True
        except self._pg.Error as error:
            raise BackendError(f"{self.name}: PostgreSQL error: {error}", backend=self.name) from error
        finally:
            if ok and not conn.closed and conn.info.transaction_status == self._pg.pq.TransactionStatus.IDLE:
                with self._lock:
                    if len(self._idle) < self._pool_size:
                        self._idle.append(conn)
                        conn = None
            if conn is not None:
                conn.close()

    def close(self) -> None:
        """Close the idle connections (the backend stays usable)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def __del__(self) -> None:
        # Idle pooled connections go with the backend (no ResourceWarning).
        idle = getattr(self, "_idle", None)
        if idle:
            for conn in idle:
                conn.close()

    # -- names ---------------------------------------------------------------

    def _split(self, collection: str) -> Tuple[Optional[str], str]:
        if self._table is not None and collection != self._table:
            raise BackendError(f"{self.name}: serves only table {self._table!r}, got {collection!r}", backend=self.name)
        if not isinstance(collection, str) or not collection:
            raise BackendError(f"{self.name}: bad collection name {collection!r}", backend=self.name)
        schema, dot, table = collection.partition(".")
        return (schema, table) if dot else (None, collection)

    def _ident(self, collection: str) -> Any:
        schema, table = self._split(collection)
        sql = self._sql
        return sql.Identifier(schema, table) if schema else sql.Identifier(table)

    def _fail(self, collection: str, message: str) -> BackendError:
        return BackendError(f"{self.name}/{collection}: {message}", backend=self.name)

    def _regclass(self, cur: Any, collection: str) -> int:
        schema, table = self._split(collection)
        parts = [table] if schema is None else [schema, table]
        qualified = ".".join('"' + part.replace('"', '""') + '"' for part in parts)
        cur.execute("SELECT to_regclass(%s)::oid", (qualified,))
        row = cur.fetchone()
        if row is None or row[0] is None:
            raise self._fail(collection, f"no table {collection!r} in the database")
        return int(row[0])

    def collections(self) -> List[str]:
        """The tables with both columns (schema-qualified outside ``public``)."""
        if self._table is not None:
            return [self._table]
        with self._connection() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE c.relkind IN ('r', 'p', 'v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
                " AND (SELECT count(*) FROM pg_attribute a WHERE a.attrelid = c.oid"
                " AND a.attname IN (%s, %s) AND NOT a.attisdropped) = 2"
                " ORDER BY 1, 2",
                (self._id_column, self._vector_column),
            )
            rows = cur.fetchall()
            conn.rollback()
        return [table if schema == "public" else f"{schema}.{table}" for schema, table in rows]

    # -- change counter --------------------------------------------------------

    def install_change_counter(self, table: str) -> int:
        """Create ``ruvector_generations`` (if absent) and a trigger on
        ``table`` that increments the table's counter on every committed
        ``INSERT``/``UPDATE``/``DELETE``/``TRUNCATE``; return the current
        counter. Idempotent. Needs the right to create tables and triggers.

        The counter row is keyed by the table's ``regclass`` text
        (``schema.table`` outside the search path).
        """
        sql = self._sql
        ident = self._ident(table)
        with self._connection() as conn:
            with conn.transaction(), conn.cursor() as cur:
                oid = self._regclass(cur, table)
                cur.execute(
                    f"CREATE TABLE IF NOT EXISTS {GENERATIONS_TABLE} ("
                    " table_name text PRIMARY KEY, generation bigint NOT NULL DEFAULT 0)"
                )
                cur.execute(
                    f"CREATE OR REPLACE FUNCTION {GENERATIONS_TABLE}_bump() RETURNS trigger LANGUAGE plpgsql AS $$"
                    f" BEGIN INSERT INTO {GENERATIONS_TABLE} (table_name, generation)"
                    " VALUES (TG_RELID::regclass::text, 1)"
                    " ON CONFLICT (table_name) DO UPDATE SET generation = "
                    f"{GENERATIONS_TABLE}.generation + 1; RETURN NULL; END $$"
                )
                cur.execute("SELECT %s::oid::regclass::text", (oid,))
                key = cur.fetchone()[0]
                cur.execute(
                    f"INSERT INTO {GENERATIONS_TABLE} (table_name, generation) VALUES (%s, 0)"
                    " ON CONFLICT (table_name) DO NOTHING",
                    (key,),
                )
                trigger = sql.Identifier(f"{GENERATIONS_TABLE}_bump")
                cur.execute(sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(trigger, ident))
                cur.execute(
                    sql.SQL(
                        "CREATE TRIGGER {} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {}"
                        " FOR EACH STATEMENT EXECUTE FUNCTION {}()"
                    ).format(trigger, ident, sql.Identifier(f"{GENERATIONS_TABLE}_bump"))
                )
                cur.execute(f"SELECT generation FROM {GENERATIONS_TABLE} WHERE table_name = %s", (key,))
                return int(cur.fetchone()[0])

    def generation(self, collection: str) -> int:
        """The table's committed change counter (see :meth:`install_change_counter`)."""
        with self._connection() as conn, conn.cursor() as cur:
            try:
                oid = self._regclass(cur, collection)
                cur.execute(f"SELECT to_regclass('{GENERATIONS_TABLE}')::oid")
                have = cur.fetchone()
                row = None
                if have is not None and have[0] is not None:
                    cur.execute(
                        f"SELECT generation FROM {GENERATIONS_TABLE} WHERE table_name = %s::oid::regclass::text",
                        (oid,),
                    )
                    row = cur.fetchone()
            finally:
                conn.rollback()
        if row is None:
            raise self._fail(
                collection,
                f"no change counter for table {collection!r}: call install_change_counter({collection!r}) once",
            )
        return int(row[0])

    def data_ref(self, collection: str) -> str:
        """``postgresql://host:port/dbname/table#id,vector`` (no credentials;
        a socket directory as host is percent-encoded)."""
        with self._connection() as conn:
            info = conn.info
            host, port, dbname = info.host, info.port, info.dbname
        host = urllib.parse.quote(host, safe="")
        return f"postgresql://{host}:{port}/{dbname}/{collection}#{self._id_column},{self._vector_column}"

    # -- pull ------------------------------------------------------------------

    def _columns(self, cur: Any, collection: str, oid: int) -> Tuple[str, str]:
        cur.execute(
            "SELECT a.attname, t.typname, et.typname FROM pg_attribute a"
            " JOIN pg_type t ON t.oid = a.atttypid LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A'"
            " WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped",
            (oid,),
        )
        types = {row[0]: (row[1], row[2]) for row in cur.fetchall()}
        for column in (self._id_column, self._vector_column):
            if column not in types:
                raise self._fail(collection, f"no column {column!r}; columns: {sorted(types)}")
        id_type = types[self._id_column][0]
        if id_type not in ("int2", "int4", "int8"):
            raise self._fail(
                collection, f"id column {self._id_column!r} must be smallint, integer or bigint, got {id_type}"
            )
        vtype, elem = types[self._vector_column]
        if vtype in ("_float4", "_float8", "vector", "halfvec"):
            kind = "array"
        elif vtype == "bytea":
            kind = "bytea"
        else:
            raise self._fail(
                collection,
                f"vector column {self._vector_column!r} must be real[], double precision[], bytea or vector, "
                f"got {vtype if elem is None else elem + '[]'}",
            )
        return id_type, kind

    def pull(self, collection: str) -> Tuple[Ids, Vectors]:
        """Read ``(ids, vectors)`` with binary COPY in one repeatable-read
        transaction. ``BackendError`` for a missing table or column, a wrong
        column type, NULL ids or vectors, negative ids, rows of the wrong
        dimension, bytea of a length not a multiple of 4, non-finite values."""
        sql = self._sql
        ident = self._ident(collection)
        with self._connection() as conn:
            conn.isolation_level = self._pg.IsolationLevel.REPEATABLE_READ
            try:
                with conn.transaction(), conn.cursor() as cur:
                    oid = self._regclass(cur, collection)
                    _, kind = self._columns(cur, collection, oid)
                    cur.execute(sql.SQL("SELECT count(*) FROM {}").format(ident))
                    n = int(cur.fetchone()[0])
                    vec = sql.Identifier(self._vector_column)
                    vexpr = vec if kind == "bytea" else sql.SQL("{}::real[]").format(vec)
                    query = sql.SQL("COPY (SELECT {}::int8, {} FROM {}) TO STDOUT (FORMAT BINARY)").format(
                        sql.Identifier(self._id_column), vexpr, ident
                    )
                    return self._copy(cur, query, collection, n, kind)
            finally:
                conn.isolation_level = None

    def _row_error(self, collection: str, buf: bytearray, pos: int, dim: int, kind: str) -> Optional[str]:
        """Why the row at ``pos`` does not have the expected layout (``None``
        if fewer than its header's bytes are buffered yet)."""
        if len(buf) - pos < 2:
            return None
        (fields,) = struct.unpack_from(">h", buf, pos)
        if fields != 2:
            return f"unexpected COPY row of {fields} fields"
        if len(buf) - pos < 6:
            return None
        (id_len,) = struct.unpack_from(">i", buf, pos + 2)
        if id_len == -1:
            return f"NULL id in column {self._id_column!r}"
        if len(buf) - pos < 18:
            return None
        rid, v_len = struct.unpack_from(">qi", buf, pos + 6)
        if v_len == -1:
            return f"NULL vector in column {self._vector_column!r} (id {rid})"
        if kind == "bytea":
            if v_len % 4:
                return f"bytea vector of id {rid}: length must be a multiple of 4 bytes, got {v_len}"
            length = v_len // 4
        else:
            if len(buf) - pos < 30:
                return None
            ndim, has_null = struct.unpack_from(">ii", buf, pos + 18)
            if ndim == 0:
                length = 0
            elif ndim != 1:
                return f"vectors must be one-dimensional arrays, got {ndim} dimensions (id {rid})"
            elif has_null:
                return f"NULL element in the vector of id {rid}"
            else:
                if len(buf) - pos < 34:
                    return None
                (length,) = struct.unpack_from(">i", buf, pos + 30)
        if length == 0:
            return f"vectors must have at least 1 value, got 0 (id {rid})"
        if dim >= 0 and length != dim:
            return f"wrong dimension: expected {dim} values, got {length} (id {rid})"
        if dim < 0:
            return f"dim={length}"
        return f"unexpected COPY row layout (id {rid})"

    @staticmethod
    def _layout(kind: str, dim: int) -> np.dtype[Any]:
        """The fixed layout of a well-formed binary COPY row."""
        head = [("fields", ">i2"), ("id_len", ">i4"), ("id", ">i8"), ("v_len", ">i4")]
        if kind == "bytea":
            return np.dtype([*head, ("v", "<f4", (dim,))])
        array = [("ndim", ">i4"), ("has_null", ">i4"), ("oid", ">i4"), ("size", ">i4"), ("lbound", ">i4")]
        return np.dtype([*head, *array, ("v", [("len", ">i4"), ("x", ">f4")], (dim,))])

    def _copy(self, cur: Any, query: Any, collection: str, n: int, kind: str) -> Tuple[Ids, Vectors]:
        """Parse the raw binary COPY stream ``_CHUNK_ROWS`` rows at a time:
        a NumPy structured view per chunk, checked field by field, copied
        once into the output; the first row that breaks the layout is
        decoded alone to say what is wrong with it."""
        ids = np.empty(n, dtype=np.uint64)
        out: Optional[Vectors] = None
        dim = -1
        layout: Optional[np.dtype[Any]] = None
        row = 0
        buf = bytearray()
        pos = 0
        header_done = False
        done = False

        def parse(final: bool) -> None:
            nonlocal pos, row, dim, layout, out, done
            if layout is None:
                if len(buf) - pos >= 2 and struct.unpack_from(">h", buf, pos)[0] == -1:
                    pos += 2
                    done = True
                    return
                why = self._row_error(collection, buf, pos, -1, kind)
                if why is None:
                    if final:
                        raise self._fail(collection, "truncated COPY stream")
                    return
                if not why.startswith("dim="):
                    raise self._fail(collection, why)
                dim = int(why[4:])
                layout = self._layout(kind, dim)
                out = np.empty((n, dim), dtype=np.float32)
            size = layout.itemsize
            while not done:
                k = min((len(buf) - pos) // size, _CHUNK_ROWS)
                if k and (final or k == _CHUNK_ROWS):
                    rows = np.frombuffer(buf, dtype=layout, count=k, offset=pos)
                    good = (rows["fields"] == 2) & (rows["id_len"] == 8)
                    if kind == "bytea":
                        good &= rows["v_len"] == 4 * dim
                    else:
                        good &= (rows["v_len"] == 20 + 8 * dim) & (rows["ndim"] == 1) & (rows["has_null"] == 0)
                        good &= rows["size"] == dim
                    bad = np.flatnonzero(~good)
                    m = int(bad[0]) if bad.size else k
                    if m:
                        if row + m > n:
                            raise self._fail(collection, f"the table grew during the read: more than {n} rows")
                        chunk_ids = rows["id"][:m]
                        if int(chunk_ids.min()) < 0:
                            raise self._fail(collection, f"ids must be 0 or more, got {int(chunk_ids.min())}")
                        ids[row : row + m] = chunk_ids
                        assert out is not None
                        out[row : row + m] = rows["v"][:m] if kind == "bytea" else rows["v"]["x"][:m]
                        row += m
                        pos += m * size
                        del chunk_ids
                    del rows  # no view of `buf` may outlive this: it is resized below
                    if m < k:
                        self._stop_at(collection, buf, pos, dim, kind)
                    continue
                if len(buf) - pos >= 2 and struct.unpack_from(">h", buf, pos)[0] == -1 and (final or k == 0):
                    pos += 2
                    done = True
                elif final and len(buf) - pos:
                    self._stop_at(collection, buf, pos, dim, kind)
                break
            if pos > (1 << 20):
                del buf[:pos]
                pos = 0

        with cur.copy(query) as copy:
            for block in copy:
                buf += block
                if not header_done:
                    if len(buf) < 19:
                        continue
                    if bytes(buf[:11]) != b"PGCOPY\n\xff\r\n\x00":
                        raise self._fail(collection, "not a binary COPY stream")
                    (ext,) = struct.unpack_from(">i", buf, 15)
                    if len(buf) < 19 + ext:
                        continue
                    pos = 19 + ext
                    header_done = True
                if not done and len(buf) - pos >= _CHUNK_ROWS * (layout.itemsize if layout is not None else 1):
                    parse(False)
            if not done:
                parse(True)
        if not done:
            raise self._fail(collection, "truncated COPY stream")
        if out is None:
            raise self._fail(collection, "the table has no rows: the dimension of its vectors is unknown")
        if row != n:
            raise self._fail(collection, f"expected {n} rows, read {row}")
        if not np.isfinite(out).all():
            bad_row = int(np.flatnonzero(~np.isfinite(out).all(axis=1))[0])
            raise self._fail(collection, f"vectors must be finite, got NaN or infinity (id {int(ids[bad_row])})")
        return ids, out

    def _stop_at(self, collection: str, buf: bytearray, pos: int, dim: int, kind: str) -> None:
        """Raise the error of the malformed row at ``pos``."""
        why = self._row_error(collection, buf, pos, dim, kind)
        raise self._fail(collection, why or "truncated COPY stream")


__all__ = ["GENERATIONS_TABLE", "PostgresBackend"]
