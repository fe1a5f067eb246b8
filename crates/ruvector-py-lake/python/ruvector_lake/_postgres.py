"""A backend over PostgreSQL tables (psycopg 3, binary COPY)."""

from __future__ import annotations

import struct
import threading
import urllib.parse
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Generator, List, Optional, Tuple, Union

import numpy as np

from ruvector_common.errors import BackendError

from ._adapter import BackendAdapter
from ._stores import optional_import
from ._types import Changes

if TYPE_CHECKING:
    from ._stores import Ids, Vectors

GENERATIONS_TABLE = "ruvector_generations"
"""The table holding one change counter per table (see :meth:`PostgresBackend.install_change_counter`)."""

CHANGES_TABLE = "ruvector_changes"
"""The change log: ``(table_name, generation, id, op)`` for every row a
committed statement wrote (see :meth:`PostgresBackend.changes_since`)."""

_TRIGGERS = (
    ("ruvector_changes_ins", "INSERT", "REFERENCING NEW TABLE AS new_rows"),
    ("ruvector_changes_upd", "UPDATE", "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"),
    ("ruvector_changes_del", "DELETE", "REFERENCING OLD TABLE AS old_rows"),
)

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

    **Generations and the change log.** :meth:`install_change_counter`
    creates (once) the small table ``ruvector_generations(table_name,
    generation, log_floor)``, the change log ``ruvector_changes(table_name,
    generation, id, op)`` and statement-level triggers on the table: every
    ``INSERT``, ``UPDATE`` or ``DELETE`` statement increments the table's
    counter and logs the ids it wrote under the new counter value (from its
    transition tables: one set-based insert per statement, no per-row
    trigger); a ``TRUNCATE`` increments it and moves ``log_floor`` up to it
    (the log cannot list what a truncate removed). The increment and the
    log rows are part of the writing transaction, so they become visible
    exactly when it commits (never for a rolled-back one).

    *Why no committed change is missed.* The increment updates the
    counter's row, and the row lock it takes is held until the writer
    commits or rolls back, so writers of one table are serialised on it:
    a transaction that takes counter value ``g`` commits before any other
    takes ``g + 1``. Values are therefore committed in counter order, and
    any snapshot that shows the counter at ``G`` shows every log row of
    generation ``G`` or less and none above (a sequence would not do: its
    values are handed out outside transactions, so a reader could see
    ``g + 1`` committed while ``g`` is still in flight, and skip it for
    good). :meth:`generation` reads the counter; a table without one is a
    ``BackendError`` that names the method to call. :meth:`changes_since`
    reads the counter and the log in one repeatable-read snapshot.
    The price: writers of one table wait for each other's commit (they
    would for a ``PRIMARY KEY`` anyway when they touch the same rows).

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
        """Create ``ruvector_generations`` and ``ruvector_changes`` (if
        absent) and the triggers on ``table`` that increment its counter and
        log the ids of every committed ``INSERT``/``UPDATE``/``DELETE``
        (``TRUNCATE`` increments it and restarts the log); return the
        current counter. Idempotent (a table set up by an earlier version,
        counter only, gains its log from now on). Needs the right to create
        tables, functions and triggers.

        The counter row is keyed by the table's ``regclass`` text
        (``schema.table`` outside the search path). The log reaches back to
        the counter value at installation (``log_floor``): a lake holding an
        older generation pulls in full once.
        """
        sql = self._sql
        ident = self._ident(table)
        g, c = GENERATIONS_TABLE, CHANGES_TABLE
        bump = (
            f"INSERT INTO {g} (table_name, generation) VALUES (TG_RELID::regclass::text, 1)"
            f" ON CONFLICT (table_name) DO UPDATE SET generation = {g}.generation + 1"
            " RETURNING generation INTO gen;"
        )
        with self._connection() as conn:
            with conn.transaction(), conn.cursor() as cur:
                oid = self._regclass(cur, table)
                cur.execute(
                    f"CREATE TABLE IF NOT EXISTS {g} ("
                    " table_name text PRIMARY KEY, generation bigint NOT NULL DEFAULT 0)"
                )
                cur.execute(f"ALTER TABLE {g} ADD COLUMN IF NOT EXISTS log_floor bigint")
                cur.execute(
                    f"CREATE TABLE IF NOT EXISTS {c} ("
                    ' table_name text NOT NULL, generation bigint NOT NULL, id bigint NOT NULL, op "char" NOT NULL)'
                )
                cur.execute(f"CREATE INDEX IF NOT EXISTS {c}_at ON {c} (table_name, generation)")
                # Statement-level, from the transition tables; the id column
                # is the trigger's argument.
                cur.execute(
                    f"CREATE OR REPLACE FUNCTION {c}_log() RETURNS trigger LANGUAGE plpgsql AS $$"
                    f" DECLARE gen bigint; key text := TG_RELID::regclass::text; BEGIN {bump}"
                    " IF TG_OP = 'INSERT' THEN"
                    f" EXECUTE format('INSERT INTO {c} SELECT $1, $2, %I, ''i'' FROM new_rows', TG_ARGV[0])"
                    " USING key, gen;"
                    " ELSIF TG_OP = 'UPDATE' THEN"
                    f" EXECUTE format('INSERT INTO {c} SELECT $1, $2, %I, ''u'' FROM new_rows', TG_ARGV[0])"
                    " USING key, gen;"
                    f" EXECUTE format('INSERT INTO {c} SELECT $1, $2, o.%1$I, ''d'' FROM old_rows o"
                    " WHERE NOT EXISTS (SELECT 1 FROM new_rows n WHERE n.%1$I = o.%1$I)', TG_ARGV[0])"
                    " USING key, gen;"
                    " ELSE"
                    f" EXECUTE format('INSERT INTO {c} SELECT $1, $2, %I, ''d'' FROM old_rows', TG_ARGV[0])"
                    " USING key, gen;"
                    " END IF; RETURN NULL; END $$"
                )
                cur.execute(
                    f"CREATE OR REPLACE FUNCTION {c}_truncated() RETURNS trigger LANGUAGE plpgsql AS $$"
                    f" DECLARE gen bigint; BEGIN {bump}"
                    f" UPDATE {g} SET log_floor = gen WHERE table_name = TG_RELID::regclass::text;"
                    f" DELETE FROM {c} WHERE table_name = TG_RELID::regclass::text; RETURN NULL; END $$"
                )
                cur.execute("SELECT %s::oid::regclass::text", (oid,))
                key = cur.fetchone()[0]
                cur.execute(
                    f"INSERT INTO {g} (table_name, generation) VALUES (%s, 0) ON CONFLICT (table_name) DO NOTHING",
                    (key,),
                )
                # The log starts now (CREATE TRIGGER below locks out writers
                # until this transaction commits).
                cur.execute(
                    f"UPDATE {g} SET log_floor = generation WHERE table_name = %s AND log_floor IS NULL", (key,)
                )
                # The counter-only trigger of earlier versions.
                cur.execute(sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(sql.Identifier(f"{g}_bump"), ident))
                for name, event, referencing in _TRIGGERS:
                    trigger = sql.Identifier(name)
                    cur.execute(sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(trigger, ident))
                    cur.execute(
                        sql.SQL(
                            "CREATE TRIGGER {} AFTER " + event + " ON {} " + referencing + " FOR EACH STATEMENT"
                            " EXECUTE FUNCTION {}({})"
                        ).format(trigger, ident, sql.Identifier(f"{c}_log"), sql.Literal(self._id_column))
                    )
                trigger = sql.Identifier(f"{c}_truncate")
                cur.execute(sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(trigger, ident))
                cur.execute(
                    sql.SQL("CREATE TRIGGER {} AFTER TRUNCATE ON {} FOR EACH STATEMENT EXECUTE FUNCTION {}()").format(
                        trigger, ident, sql.Identifier(f"{c}_truncated")
                    )
                )
                cur.execute(f"SELECT generation FROM {g} WHERE table_name = %s", (key,))
                return int(cur.fetchone()[0])

    def trim_change_log(self, table: str, through: Optional[int] = None) -> int:
        """Delete the log rows of ``table`` up to generation ``through``
        (default: the current counter) and return how many went. The log
        then reaches back to ``through`` only: a lake holding an older
        generation pulls the table in full once (``changes_since`` returns
        ``None``). Run it periodically (e.g. daily) to bound the log."""
        g, c = GENERATIONS_TABLE, CHANGES_TABLE
        if through is not None and (isinstance(through, bool) or not isinstance(through, int) or through < 0):
            raise ValueError(f"through must be an int of 0 or more, got {through!r}")
        with self._connection() as conn:
            with conn.transaction(), conn.cursor() as cur:
                oid = self._regclass(cur, table)
                cur.execute(
                    f"SELECT table_name, generation FROM {g} WHERE table_name = %s::oid::regclass::text FOR UPDATE",
                    (oid,),
                )
                row = cur.fetchone()
                if row is None:
                    raise self._fail(table, f"no change counter for table {table!r}: call install_change_counter first")
                key, current = row[0], int(row[1])
                upto = current if through is None else min(through, current)
                cur.execute(f"DELETE FROM {c} WHERE table_name = %s AND generation <= %s", (key, upto))
                deleted = int(cur.rowcount)
                cur.execute(f"UPDATE {g} SET log_floor = GREATEST(log_floor, %s) WHERE table_name = %s", (upto, key))
                return deleted

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

    def changes_since(self, collection: str, generation: Union[int, str]) -> Optional[Changes]:
        """What changed in the table since counter value ``generation``, from
        the change log (see the class docstring), read in one
        repeatable-read snapshot: the ids logged after ``generation``, split
        into those the table holds now (upserted, with their current
        vectors, read with binary COPY) and those it does not (removed),
        and the counter in that snapshot. ``None`` (the lake then pulls in
        full) when the table has no log, the log no longer reaches back to
        ``generation`` (trimmed, truncated, installed later) or
        ``generation`` is not one of this counter's values."""
        if isinstance(generation, bool) or not isinstance(generation, int) or generation < 0:
            return None
        sql = self._sql
        ident = self._ident(collection)
        g, c = GENERATIONS_TABLE, CHANGES_TABLE
        with self._connection() as conn:
            conn.isolation_level = self._pg.IsolationLevel.REPEATABLE_READ
            try:
                with conn.transaction(), conn.cursor() as cur:
                    oid = self._regclass(cur, collection)
                    cur.execute("SELECT to_regclass(%s)::oid, to_regclass(%s)::oid", (g, c))
                    if None in cur.fetchone():
                        return None
                    cur.execute(
                        f"SELECT table_name, generation, log_floor FROM {g} WHERE table_name = %s::oid::regclass::text",
                        (oid,),
                    )
                    row = cur.fetchone()
                    if row is None or row[2] is None:
                        return None
                    key, current, floor = row[0], int(row[1]), int(row[2])
                    if generation < floor or generation > current:
                        return None
                    empty_ids = np.empty(0, dtype=np.uint64)
                    if generation == current:
                        return Changes(empty_ids, np.empty((0, 0), dtype=np.float32), empty_ids, current)
                    cur.execute(
                        f"SELECT DISTINCT id FROM {c} WHERE table_name = %s AND generation > %s", (key, generation)
                    )
                    changed = np.array([r[0] for r in cur.fetchall()], dtype=np.int64)
                    if changed.size and int(changed.min()) < 0:
                        raise self._fail(collection, f"ids must be 0 or more, got {int(changed.min())}")
                    _, kind = self._columns(cur, collection, oid)
                    idc = sql.Identifier(self._id_column)
                    logged = sql.SQL("SELECT id FROM {} WHERE table_name = {} AND generation > {}").format(
                        sql.Identifier(c), sql.Literal(key), sql.Literal(generation)
                    )
                    cur.execute(sql.SQL("SELECT count(*) FROM {} WHERE {} IN ({})").format(ident, idc, logged))
                    n = int(cur.fetchone()[0])
                    if n == 0:
                        ids, vectors = empty_ids, np.empty((0, 0), dtype=np.float32)
                    else:
                        vec = sql.Identifier(self._vector_column)
                        vexpr = vec if kind == "bytea" else sql.SQL("{}::real[]").format(vec)
                        query = sql.SQL(
                            "COPY (SELECT {}::int8, {} FROM {} WHERE {} IN ({})) TO STDOUT (FORMAT BINARY)"
                        ).format(idc, vexpr, ident, idc, logged)
                        ids, vectors = self._copy(cur, query, collection, n, kind)
                    removed = np.setdiff1d(changed.astype(np.uint64), ids, assume_unique=False)
                    return Changes(ids, vectors, removed, current)
            finally:
                conn.isolation_level = None

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
                        got = out[row : row + m]
                        got[...] = rows["v"][:m] if kind == "bytea" else rows["v"]["x"][:m]
                        # Checked chunk by chunk: a whole-table mask would
                        # cost a byte per value at once.
                        if not np.isfinite(got).all():
                            bad_row = int(np.flatnonzero(~np.isfinite(got).all(axis=1))[0])
                            raise self._fail(
                                collection,
                                f"vectors must be finite, got NaN or infinity (id {int(chunk_ids[bad_row])})",
                            )
                        del got
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
        return ids, out

    def _stop_at(self, collection: str, buf: bytearray, pos: int, dim: int, kind: str) -> None:
        """Raise the error of the malformed row at ``pos``."""
        why = self._row_error(collection, buf, pos, dim, kind)
        raise self._fail(collection, why or "truncated COPY stream")


__all__ = ["CHANGES_TABLE", "GENERATIONS_TABLE", "PostgresBackend"]
