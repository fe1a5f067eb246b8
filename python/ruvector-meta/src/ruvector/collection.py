"""``ruvector.Collection``: documents, metadata and vectors in one directory.

>>> docs = ruvector.Collection.open("./docs")                # creates or reopens
>>> docs.add(["first text", "second text"], metadata=[{"lang": "en"}, {"lang": "de"}])
[0, 1]
>>> docs.query("what is in the first text?", k=5, where={"lang": "en"})
[QueryHit(id=0, score=0.31, text='first text', metadata={'lang': 'en'})]

The directory holds ``ruvector.sqlite`` (documents, metadata, ids; SQLite
in WAL mode, one transaction per call) and the index file saved beside it
(``index.<generation>.rbpx``). Each vector is stored once: in the saved
index file, or, when it changed since that save, in the store's
``pending`` table (until the next save moves it into a new file, written
atomically before the store points at it). The index file records the
store generation it reflects, the store logs which documents changed
since, and the first call that needs the index loads the file and replays
those changes (opening reads only SQLite, and checks that the file is there
at the size it was saved with; its checksum is verified when it is
loaded). The file is saved with its vectors compressed losslessly (about
0.85 of their bytes), so it is read and decoded, not mapped; a file saved
by an earlier release (uncompressed) is mapped. So a process
killed at any point loses at most the call in flight and never leaves a
directory that opens wrong. A file lost or damaged by other means is
rebuilt from the store's vectors and the texts re-embedded, or named in a
:class:`PersistError` when some vectors cannot come back. One writer at a time:
a second writer gets :class:`ruvector.PersistError` at once; any number of
``read_only=True`` opens may share a directory that no writer holds.

``where`` filters (see :mod:`ruvector._where`) are evaluated by SQLite over
the ``fields`` table (one row per scalar metadata value, keyed by key, kind,
value and document: a single b-tree, no rowid table or second index) and
handed to the index as an allow-list of ids: the
index searches only those, so a filtered query returns ``min(k, matches)``
hits, never fewer because others were filtered away afterwards.

The ruvector 0.1.4 API (``Collection.create/from_vectors/insert/
insert_batch/search/delete/vacuum/get_metadata/stats/save/load``) is kept
on the same class; see ``docs/migrating-from-0.1.4.md``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
    cast,
    overload,
)

import numpy as np

from ruvector_common.errors import (
    DimensionMismatch,
    InvalidArgument,
    NotFound,
    PersistError,
    RuVectorError,
)

from . import _where
from ._embed import DEFAULT_MODEL, EmbedderAdapter, make_embedder
from ._files import DB_NAME, DirLock, index_file_name, stale_files
from ._index import METRICS, IndexAdapter, rabitq_module, resolve_kind

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = [
    "Collection",
    "CollectionError",
    "CollectionStats",
    "QueryHit",
    "QueryResult",
    "Record",
    "SearchHit",
    "batch_hits",
    "single_hits",
]

_log = logging.getLogger("ruvector.collection")
_T = TypeVar("_T")

Id = Union[int, str]
Where = Mapping[str, Any]
#: Texts as :meth:`Collection.add` takes them (one, a list, or none with vectors).
Texts = Union[str, Sequence[Optional[str]], None]
#: Ids as :meth:`Collection.add` takes them (one per document, or ``None`` for new ones).
Ids = Optional[Sequence[Id]]
#: Metadata as :meth:`Collection.add` takes it (one dict per document).
Metadatas = Union[Mapping[str, Any], Sequence[Optional[Mapping[str, Any]]], None]
_PathLike = Union[str, "os.PathLike[str]"]

FORMAT = 3
#: Older formats a store is migrated from (read-only opens read them as they are).
_MIGRATES_FROM = (2,)
MAX_DIM = 8192
MAX_K = 100_000
#: Largest number of SQL variables bound in one statement (SQLite's default cap is 32766).
_CHUNK = 900
#: An index with this many changes not yet saved is saved after the call
#: (at least; a quarter of the collection otherwise), so reopening replays little.
AUTOSAVE_CHANGES = 10_000
DEFAULT_RECALL = 0.95

rabitq_module("ruvector.Collection")  # MissingComponentError naming the extra, if absent
from ruvector_rabitq import SearchHit as _IndexHit  # noqa: E402
from ruvector_rabitq import recommend as _recommend  # noqa: E402


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Any = _Unset()

#: 0.1.4's ``CollectionError``: every Collection error is a ``RuVectorError``,
#: so ``except CollectionError`` keeps catching them.
CollectionError = RuVectorError


class QueryHit(NamedTuple):
    """One query result: the document's ``id``, its ``score`` (a distance:
    ``1 - cosine``, squared L2 or ``1 - inner product``; lower is closer),
    its ``text`` and its ``metadata``."""

    id: Id
    score: float
    text: Optional[str]
    metadata: Dict[str, Any]


#: What :meth:`Collection.query` returns: the hits of one query, or a list
#: of them for a batch.
QueryResult = Union[List[QueryHit], List[List[QueryHit]]]


def single_hits(result: QueryResult) -> List[QueryHit]:
    """``result`` as the hits of one query (:class:`InvalidArgument` if it is a batch's)."""
    if result and not isinstance(result[0], QueryHit):
        raise InvalidArgument("expected the hits of one query, got the results of a batch of queries")
    return cast("List[QueryHit]", result)


def batch_hits(result: QueryResult) -> List[List[QueryHit]]:
    """``result`` as the hits of a batch of queries (:class:`InvalidArgument` if it is one query's)."""
    if result and isinstance(result[0], QueryHit):
        raise InvalidArgument("expected the results of a batch of queries, got the hits of one query")
    return cast("List[List[QueryHit]]", result)


class Record(NamedTuple):
    """One stored document, as :meth:`Collection.get` returns it (``vector``
    only when asked for)."""

    id: Id
    text: Optional[str]
    metadata: Dict[str, Any]
    vector: Optional[npt.NDArray[np.float32]] = None


class SearchHit(_IndexHit):
    """A hit of the 0.1.4 :meth:`Collection.search`: ``id``, ``score`` and
    ``metadata`` (``None`` when the document has none). It is a
    ``ruvector.SearchHit`` and unpacks as ``(id, score)`` like 0.1.4's."""

    metadata: Optional[Dict[str, Any]] = None

    def __new__(cls, id: int, score: float, metadata: Optional[Dict[str, Any]] = None) -> SearchHit:
        self = super().__new__(cls, id, score)
        self.metadata = metadata
        return self

    def __repr__(self) -> str:
        return f"SearchHit(id={self.id!r}, score={self.score!r}, metadata={self.metadata!r})"

    def __reduce__(self) -> Tuple[Any, ...]:
        return (type(self), (self.id, self.score, self.metadata))


@dataclass
class CollectionStats:
    """What :meth:`Collection.stats` reports (0.1.4's fields first)."""

    count: int
    dim: int
    backend: str
    rerank_factor: int
    memory_bytes: int
    tombstoned: int = 0
    metric: str = "cosine"
    index: str = ""
    path: Optional[str] = None
    embedder: Optional[str] = None
    disk_bytes: int = 0


# -- validation --------------------------------------------------------------------


def _check_id(value: object, kind: Optional[str]) -> Tuple[Id, str]:
    number = _where.as_int(value)
    got: Id
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidArgument(f"id {value!r} is not valid text (a lone surrogate)") from None
        got = value
        got_kind = "str"
    elif number is None:
        raise InvalidArgument(f"ids must be str or int, got {type(value).__name__} {value!r}")
    else:
        got = number
        if not -(2**63) <= got < 2**63:
            raise InvalidArgument(f"integer ids must fit in 64 bits, got {got}")
        got_kind = "int"
    if kind is not None and got_kind != kind:
        raise InvalidArgument(f"this collection uses {kind} ids, got {type(value).__name__} {value!r}")
    return got, got_kind


def _check_texts(texts: object) -> Optional[List[Optional[str]]]:
    """``texts`` (one text, a list of texts or ``None``s, or ``None``) as a
    list, each valid UTF-8."""
    if texts is None:
        return None
    got = type(texts).__name__
    if isinstance(texts, str):
        items: List[object] = [texts]
    elif isinstance(texts, (bytes, Mapping)) or not isinstance(texts, Iterable):
        raise InvalidArgument(f"texts must be a str or a list of str, got {got}")
    else:
        items = list(cast("Iterable[object]", texts))
    out: List[Optional[str]] = []
    for i, text in enumerate(items):
        if text is not None and not isinstance(text, str):
            raise InvalidArgument(f"texts[{i}] must be a str, got {type(text).__name__}")
        if text is not None:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidArgument(f"texts[{i}] is not valid text (a lone surrogate)") from None
        out.append(text)
    return out


def _query_texts(query: object) -> Optional[List[str]]:
    """The texts of a query given as a text or a non-empty list of texts (else ``None``)."""
    if isinstance(query, str):
        return [query]
    items = _where.as_list(query)
    if not items:
        return None
    texts = [q for q in items if isinstance(q, str)]
    return texts if len(texts) == len(items) else None


def _check_metadata(value: object, position: int) -> Tuple[str, List[Tuple[str, int, int, object]]]:
    """The JSON text of one metadata dict and its ``fields`` rows (without
    doc). A row's ``val`` is never NULL (it is part of the table's primary
    key): ``None`` values and list/dict presence rows store 0, told apart
    by their kind."""
    if value is None:
        return "{}", []
    mapping = _where.as_mapping(value)
    if mapping is None:
        raise InvalidArgument(f"metadata[{position}] must be a dict or None, got {type(value).__name__}")
    rows: List[Tuple[str, int, int, object]] = []
    for key, item in mapping.items():
        if not isinstance(key, str):
            raise InvalidArgument(f"metadata[{position}] keys must be strings, got {key!r}")
        if key.startswith("$"):
            raise InvalidArgument(f"metadata[{position}] key {key!r} starts with '$', which where keeps for operators")
        found = _where.scalar_kind(item)
        if found is not None:
            rows.append((key, 0, found[0], 0 if found[1] is None else found[1]))
            continue
        rows.append((key, 0, _where.KIND_OTHER, 0))
        for element in _where.as_list(item) or ():
            scalar = _where.scalar_kind(element)
            if scalar is not None:  # nested lists and dicts are not indexed
                rows.append((key, 1, scalar[0], 0 if scalar[1] is None else scalar[1]))
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as error:
        raise InvalidArgument(f"metadata[{position}] is not JSON: {error}") from None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgument(f"metadata[{position}] holds a lone surrogate") from None
    return text, rows


def _as_matrix(vectors: object, dim: Optional[int], name: str = "vectors") -> npt.NDArray[np.float32]:
    try:
        with np.errstate(over="ignore"):
            array = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise InvalidArgument(f"{name} must be numbers, got {type(vectors).__name__}: {error}") from None
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2:
        raise InvalidArgument(f"{name} must be a vector or a matrix (n, dim), got shape {array.shape}")
    if array.shape[1] == 0 or array.shape[1] > MAX_DIM:
        raise InvalidArgument(f"{name} must have 1..{MAX_DIM} columns, got {array.shape[1]}")
    if dim is not None and array.shape[1] != dim:
        raise DimensionMismatch(
            f"{name} have dimension {array.shape[1]}, the collection holds {dim}-d vectors", dim, array.shape[1]
        )
    if array.size and not np.isfinite(array).all():
        row = int(np.argwhere(~np.isfinite(array))[0][0])
        raise InvalidArgument(f"{name} must be finite: row {row} holds NaN or infinity (or a float32 overflow)")
    return np.ascontiguousarray(array)


def stack_vectors(records: Sequence[Record], dim: int) -> npt.NDArray[np.float32]:
    """The vectors of records read with ``include_vectors=True``, one row each."""
    rows = [r.vector for r in records if r.vector is not None]
    if len(rows) != len(records):
        raise InvalidArgument("the records were read without their vectors (get(include_vectors=True))")
    return np.stack(rows) if rows else np.zeros((0, dim), dtype=np.float32)


def _without_metric(params: Dict[str, Any]) -> Dict[str, Any]:
    """``recommend()``'s parameters without ``metric``: a collection's index
    is given its metric on its own."""
    return {k: v for k, v in params.items() if k != "metric"}


def _chunks(items: Sequence[_T], size: int = _CHUNK) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _stored_norm(norm: float) -> float:
    """The norm a cosine store keeps for a vector: exactly 1.0 when it is 1
    in float32 (what :meth:`CollectionCore.vectors_of` scales by), which
    SQLite stores in no payload bytes, else the norm itself."""
    return 1.0 if np.float32(norm) == np.float32(1.0) else norm


_INSERT_FIELDS = "INSERT OR IGNORE INTO fields(key, elem, kind, val, doc) VALUES (?, ?, ?, ?, ?)"
_DELETE_FIELDS = "DELETE FROM fields WHERE key = ? AND elem = ? AND kind = ? AND val = ? AND doc = ?"


def _delete_fields(conn: Any, docs: Sequence[int]) -> None:
    """Removes the ``fields`` rows of ``docs`` (still in ``docs``): each
    row is found by its primary key, re-derived from the stored metadata
    (the table has no index by doc)."""
    rows: List[Tuple[Any, ...]] = []
    for chunk in _chunks(list(docs)):
        marks = ",".join("?" * len(chunk))
        for doc, meta in conn.execute(f"SELECT doc, metadata FROM docs WHERE doc IN ({marks})", list(chunk)):
            rows += [(*row, doc) for row in _check_metadata(json.loads(meta), 0)[1]]
    conn.executemany(_DELETE_FIELDS, rows)


def _migrate(conn: Any, fmt: int) -> None:
    """Inside a transaction: a format-2 store in format 3 (its ``fields``
    rows moved into the keyed table; the two indexes they needed dropped)."""
    if fmt == 2:
        conn.execute("ALTER TABLE fields RENAME TO fields_v2")
        conn.execute("DROP INDEX IF EXISTS fields_lookup")
        conn.execute("DROP INDEX IF EXISTS fields_doc")
        for statement in _SCHEMA.strip().split(";"):
            if "fields" in statement:
                conn.execute(statement)
        conn.execute(
            "INSERT OR IGNORE INTO fields(key, elem, kind, val, doc) "
            "SELECT key, elem, kind, coalesce(val, 0), doc FROM fields_v2"
        )
        conn.execute("DROP TABLE fields_v2")


# -- the engine ----------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS docs(doc INTEGER PRIMARY KEY, id UNIQUE NOT NULL, text TEXT,
                                metadata TEXT NOT NULL, norm REAL);
CREATE TABLE IF NOT EXISTS pending(doc INTEGER PRIMARY KEY, vector BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS fields(key TEXT NOT NULL, elem INTEGER NOT NULL, kind INTEGER NOT NULL,
                                  val NOT NULL, doc INTEGER NOT NULL,
                                  PRIMARY KEY(key, elem, kind, val, doc)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS changes(gen INTEGER NOT NULL, doc INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS changes_gen ON changes(gen);
"""


class CollectionCore:
    """Everything a collection holds; kept apart from :class:`Collection` so
    the finaliser that saves and closes at exit does not keep it alive."""

    def __init__(self, path: Optional[Path], read_only: bool) -> None:
        import sqlite3

        self.path = path
        self.read_only = read_only
        self.lock = threading.RLock()
        self.dir_lock: Optional[DirLock] = None
        self.closed = False
        self.filter_cache: OrderedDict[Tuple[str, int], Any] = OrderedDict()
        self.index_stale = False
        #: Opened without mapping the index file yet: the first call that
        #: needs the index loads it (see :meth:`defer_index`).
        self.index_deferred = False
        self.saved_gen = 0
        target = ":memory:" if path is None else str(path / DB_NAME)
        if path is not None:
            self.dir_lock = DirLock(path, shared=read_only)
        try:
            self.conn = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
            if not read_only:
                # Pages freed when saved vectors leave the store go back to the
                # file system (takes effect on a new store only: before its
                # first table, and before WAL mode is set).
                self.conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA journal_size_limit=8388608")  # the WAL shrinks back after checkpoints
                # FULL: a committed call survives a power cut too, not only a kill.
                self.conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as error:
            self.release()
            raise PersistError(f"cannot open {target}: {error}", target) from error
        self.config: Dict[str, Any] = {}
        self.adapter: Optional[IndexAdapter] = None
        self.embedder: Optional[EmbedderAdapter] = None

    # -- meta ------------------------------------------------------------------------

    def meta(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )

    @property
    def generation(self) -> int:
        return int(self.meta("generation", 0))

    # -- lifecycle ----------------------------------------------------------------

    def release(self) -> None:
        if self.dir_lock is not None:
            self.dir_lock.release()
            self.dir_lock = None

    def close(self) -> None:
        """Saves the index if it has unsaved changes, then closes (idempotent)."""
        with self.lock:
            if self.closed:
                return
            try:
                if not self.read_only and self.path is not None and self.adapter is not None:
                    if self.saved_gen != self.generation and not self.index_stale:
                        self.save_index()
            finally:
                self.closed = True
                try:
                    self.conn.close()
                finally:
                    self.release()

    def check_open(self) -> None:
        if self.closed:
            raise InvalidArgument("this collection is closed")

    def check_writable(self) -> None:
        self.check_open()
        if self.read_only:
            raise InvalidArgument("this collection was opened read_only=True")

    # -- the index ----------------------------------------------------------------

    def _norms(self, docs: Sequence[int]) -> Optional[npt.NDArray[np.float32]]:
        """The stored norms of ``docs`` (cosine collections; ``None`` otherwise)."""
        if self.config["metric"] != "cosine":
            return None
        found: Dict[int, float] = {}
        for chunk in _chunks(list(docs)):
            marks = ",".join("?" * len(chunk))
            found.update(self.conn.execute(f"SELECT doc, norm FROM docs WHERE doc IN ({marks})", chunk).fetchall())
        return np.array([found.get(d) or 1.0 for d in docs], dtype=np.float32)

    def pending_vectors(self, docs: Sequence[int]) -> Dict[int, npt.NDArray[np.float32]]:
        """The vectors the store holds for ``docs`` (those changed since the
        saved index file), as the caller gave them."""
        out: Dict[int, npt.NDArray[np.float32]] = {}
        for chunk in _chunks(list(docs)):
            marks = ",".join("?" * len(chunk))
            for doc, blob in self.conn.execute(f"SELECT doc, vector FROM pending WHERE doc IN ({marks})", chunk):
                out[int(doc)] = np.frombuffer(blob, dtype=np.float32)
        return out

    def all_vectors(self) -> Tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Every document's vector (as the index computes with), by doc: read
        from the in-memory index when it keeps vectors and is current, else
        from the store."""
        dim = int(self.config["dim"] or 0)
        adapter = self.adapter
        if adapter is not None and not self.index_stale and adapter.keeps_vectors():
            assert adapter.index is not None
            ids = np.asarray(adapter.index.ids, dtype=np.int64)
            vectors = np.array(adapter.index, dtype=np.float32, copy=True)
            order = np.argsort(ids, kind="stable")
            return ids[order], vectors[order]
        rows = self.conn.execute("SELECT doc, vector FROM pending ORDER BY doc").fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        if not rows:
            return ids, np.zeros((0, max(dim, 1)), dtype=np.float32)
        vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)
        return ids, vectors

    def vectors_of(self, docs: Sequence[int]) -> npt.NDArray[np.float32]:
        """The vectors of ``docs`` (present documents), one row each in that
        order, as they were given (a cosine index holds unit vectors: they
        are scaled back by the stored norm, within float32 rounding)."""
        dim = int(self.config["dim"] or 1)
        if not docs:
            return np.zeros((0, dim), dtype=np.float32)
        adapter = self.ensure_index()
        pending = self.pending_vectors(docs)
        out = np.empty((len(docs), dim), dtype=np.float32)
        scale = np.ones(len(docs), dtype=np.float32)
        norms = self._norms(docs)
        for row, doc in enumerate(docs):
            got = pending.get(doc)
            if got is not None:
                out[row] = got
            else:
                assert adapter.index is not None
                out[row] = adapter.index[doc]
                if norms is not None:
                    scale[row] = norms[row]
        if norms is not None:
            out *= scale[:, None]
        return out

    def wanted_kind(self, n: int) -> Tuple[str, Dict[str, Any]]:
        """The index kind and parameters for ``n`` vectors."""
        kind = self.config["index"]
        params = dict(self.config["index_params"] or {})
        dim = int(self.config["dim"] or 1)
        target = float(self.config["recall_target"])
        # The collection's metric picks the measured steps (spilled lists
        # for l2 and cosine, one copy for ip); the index gets it separately.
        metric = str(self.config["metric"])
        if kind == "IvfRabitqIndex":
            # An IVF index asked for by name gets the lists and probes that
            # reach the recall target too (as recommend() sizes them for a
            # collection of this size), unless index_params set them.
            import importlib

            flat_max = int(getattr(importlib.import_module("ruvector_rabitq._recommend"), "FLAT_MAX_N", 0))
            rec = _recommend(max(n, flat_max + 1, 1), dim, target, metric=metric)
            if rec.index == "IvfRabitqIndex":
                nlist = max(1, round(max(n, 1) ** 0.5))
                sized = {**_without_metric(rec.params), "nlist": nlist, "nprobe": min(nlist, int(rec.params["nprobe"]))}
                sized.setdefault("seed", 42)
                sized.update(params)
                return kind, sized
            return kind, params
        if kind != "auto":
            return kind, params
        rec = _recommend(max(n, 1), dim, target, metric=metric)
        chosen = rec.index if rec.index in ("FlatF32Index", "IvfRabitqIndex") else "IvfRabitqIndex"
        merged = _without_metric(rec.params) if chosen == rec.index else {}
        if chosen == "IvfRabitqIndex":
            merged.setdefault("seed", 42)
            merged.update(params)
            return chosen, merged
        return chosen, {}

    def rebuild_index(self) -> None:
        """A fresh index over every vector, of the kind ``n`` calls for."""
        ids, vectors = self.all_vectors()
        kind, params = self.wanted_kind(len(ids))
        adapter = IndexAdapter(kind, self.config["metric"], params)
        adapter.build(ids, vectors)
        self.adapter = adapter
        self.index_stale = False
        self.filter_cache.clear()

    def defer_index(self) -> bool:
        """At open: leaves the saved index file unread until a call needs
        it, when the file the store names is there at the size it was saved
        with (a missing or truncated file is handled at once, by
        :meth:`load_index`). Tells whether it deferred."""
        assert self.path is not None
        state: Optional[Dict[str, Any]] = self.meta("index_state")
        if self.config.get("dim") is None or state is None or not state.get("file") or "bytes" not in state:
            return False
        try:
            size = (self.path / state["file"]).stat().st_size
        except OSError:
            return False
        if size != int(state["bytes"]):
            return False
        self.index_deferred = True
        return True

    def ensure_index(self) -> IndexAdapter:
        if self.index_stale or self.index_deferred:
            # A rolled-back call had changed the in-memory index (or it was
            # never loaded): back to what the store says (the saved file
            # and the changes since). Never inside a transaction: a
            # deferred load is done before a write call begins its own.
            self.index_stale = False
            self.index_deferred = False
            self.adapter = None
            self.filter_cache.clear()
            try:
                if self.path is not None:
                    self.load_index()
                elif self.config.get("dim") is not None:
                    self.rebuild_index()
            except BaseException:
                # Still to be loaded from the file: the next call tries
                # again (and fails alike) rather than building an index
                # from the store's few pending vectors.
                self.adapter = None
                self.index_deferred = self.path is not None
                raise
        if self.adapter is None:
            if self.config.get("dim") is None:
                kind, params = ("FlatF32Index", {}) if self.config["index"] == "auto" else self.wanted_kind(0)
                self.adapter = IndexAdapter(kind, self.config["metric"], params)
            else:
                self.rebuild_index()
        assert self.adapter is not None
        return self.adapter

    def after_change(self, n: int) -> bool:
        """Rebuilds when the collection outgrew its index; tells whether it did."""
        adapter = self.ensure_index()
        if self.config.get("dim") is None:
            return False
        kind, _ = self.wanted_kind(n)
        if kind != adapter.kind or adapter.wants_retrain(n):
            self.rebuild_index()
            return True
        return False

    def change_index(self, docs: Sequence[int], vectors: Optional[npt.NDArray[np.float32]]) -> bool:
        """Follows a change of the store (inside its transaction) in the
        index: ``vectors`` put under ``docs``, or ``docs`` removed when
        ``vectors`` is ``None``. Tells whether the index was rebuilt for its
        new size (then it is saved after the call)."""
        adapter = self.ensure_index()
        if not adapter.can_change():
            # No change API in this wheel: rebuilt from the store (which then
            # keeps every vector: see keeps_vectors).
            self.rebuild_index()
            return False
        ids = np.asarray(docs, dtype=np.int64)
        if vectors is None:
            index = adapter.index
            absent = [] if index is None else [int(d) for d in docs if int(d) not in index]
            removed = adapter.remove(ids)
            if absent or removed != len(ids) - len(absent):
                # The store deleted them all; the index lacked some (it had
                # drifted from the store). Both agree again after this call.
                _log.warning(
                    "the index of %s held %d of the %d deleted documents (store rows it lacked: %s)",
                    self.path,
                    removed,
                    len(ids),
                    absent[:10],
                )
        else:
            if adapter.index is None and self.config.get("dim") is not None:
                # The first vectors: build the kind their number calls for
                # at once (not a flat index rebuilt as IVF right after).
                kind, params = self.wanted_kind(len(ids))
                if kind != adapter.kind or params != adapter.params:
                    adapter = self.adapter = IndexAdapter(kind, self.config["metric"], params)
            adapter.upsert(ids, vectors)
        return self.after_change(int(self.conn.execute("SELECT count(*) FROM docs").fetchone()[0]))

    def save_index(self) -> None:
        """Writes the index file for the current generation and records it;
        the vectors it now holds leave the store (each vector is kept once:
        in the index file, or in the store until the next save). Nothing
        to do when the saved file is current."""
        assert self.path is not None
        self.ensure_index()
        gen = self.generation
        state: Optional[Dict[str, Any]] = self.meta("index_state")
        if (
            state is not None
            and int(state["generation"]) == gen
            and self.saved_gen == gen
            and (state.get("file") is None or (self.path / state["file"]).is_file())
        ):
            return
        name = self.write_index_file(gen)
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            freed = self.record_saved(gen, name)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.after_save(gen, name, freed)

    def write_index_file(self, gen: int) -> Optional[str]:
        """Writes the index file for generation ``gen`` (atomically; the
        store does not point at it yet); ``None`` for an empty index."""
        assert self.path is not None
        adapter = self.ensure_index()
        if adapter.index is None or not len(adapter):
            return None
        name = index_file_name(gen)
        adapter.save(str(self.path / name), compress=bool(self.config.get("compress", True)))
        _fsync_dir(self.path)  # the new name is on disk before the store points at it
        return name

    def record_saved(self, gen: int, name: Optional[str]) -> bool:
        """Inside a transaction: points the store at the file saved for
        ``gen`` and drops what it now holds (the change log, and the
        vectors when the index keeps them). Tells whether vectors left."""
        adapter = self.ensure_index()
        count, total = self.conn.execute("SELECT count(*), total(doc) FROM docs").fetchone()
        state = {
            "file": name,
            "generation": gen,
            "kind": adapter.kind,
            "params": adapter.params,
            "trained_n": adapter.trained_n,
            "index_metric": adapter.index_metric,
            "count": int(count),
            "doc_sum": int(total),
        }
        if name is not None:
            assert self.path is not None
            state["bytes"] = (self.path / name).stat().st_size  # what a deferred open checks
        self.set_meta("index_state", state)
        self.conn.execute("DELETE FROM changes WHERE gen <= ?", (gen,))
        if adapter.keeps_vectors():
            return self.conn.execute("DELETE FROM pending").rowcount > 0
        return False

    def after_save(self, gen: int, name: Optional[str], freed: bool) -> None:
        """After the commit that recorded a save: the files it replaced go."""
        assert self.path is not None
        self.saved_gen = gen
        if freed or int(self.conn.execute("PRAGMA freelist_count").fetchone()[0]):
            # Hands the pages the vectors (and the change log the save
            # cleared) held back to the file system (run to completion:
            # executescript steps the pragma until done).
            self.conn.executescript("PRAGMA incremental_vacuum;")
        for stale in stale_files(self.path, name):
            try:
                stale.unlink()
            except OSError:
                pass

    def load_index(self) -> bool:
        """Loads the saved index (decoded, or mapped when saved uncompressed)
        and replays the changes since from
        the store; tells whether the in-memory index differs from the file.
        A missing, damaged or disagreeing file is rebuilt from what the
        store holds (its vectors, or its texts re-embedded); when neither
        can restore a document's vector, :class:`PersistError` says so."""
        assert self.path is not None
        state: Optional[Dict[str, Any]] = self.meta("index_state")
        if self.config.get("dim") is None:
            self.ensure_index()
            self.saved_gen = self.generation
            return False
        count, total = self.conn.execute("SELECT count(*), total(doc) FROM docs").fetchone()
        count, total = int(count), int(total)
        problem = None
        if state is None or not state.get("file"):
            if count == 0 and state is not None:
                self.adapter = None
                self.ensure_index()
                self.saved_gen = int(state["generation"])
                return False
            problem = "no index file was saved"
        else:
            adapter = IndexAdapter(state["kind"], self.config["metric"], state.get("params") or {})
            try:
                adapter.load(str(self.path / state["file"]), int(state.get("trained_n", 0)))
                if not adapter.matches_file_metric():
                    problem = f"{state['file']} computes another metric"
            except (RuVectorError, OSError) as error:
                problem = f"{state['file']}: {error}"
            if problem is None:
                self.adapter = adapter
        if problem is None:
            assert state is not None
            saved_gen = int(state["generation"])
            changed = [r[0] for r in self.conn.execute("SELECT DISTINCT doc FROM changes WHERE gen > ?", (saved_gen,))]
            if changed:
                problem = self.replay(changed)
            held = self.adapter.index if self.adapter is not None else None
            n_held = 0 if held is None else len(held)
            sum_held = 0 if held is None or n_held == 0 else int(np.asarray(held.ids, dtype=np.int64).sum())
            if problem is None and (n_held != count or sum_held != total):
                problem = f"it holds {n_held} vectors, the store {count} documents"
            if problem is None:
                if self.after_change(count):
                    return True
                self.saved_gen = saved_gen
                return bool(changed)
        _log.warning("rebuilding the index of %s from its store: %s", self.path, problem)
        self.recover(problem)
        return True

    def replay(self, docs: List[int]) -> Optional[str]:
        """Applies the store's changes to ``docs`` since the saved file to the
        loaded index; a problem if the store lacks a changed vector."""
        adapter = self.adapter
        assert adapter is not None
        present = {
            int(r[0])
            for chunk in _chunks(docs)
            for r in self.conn.execute(f"SELECT doc FROM docs WHERE doc IN ({','.join('?' * len(chunk))})", list(chunk))
        }
        vectors = self.pending_vectors(sorted(present))
        if len(vectors) != len(present):
            return f"{len(present) - len(vectors)} changed vectors are missing from the store"
        gone = np.asarray(sorted(set(docs) - present), dtype=np.int64)
        if not adapter.native_changes:
            self.rebuild_index()
            return None
        adapter.remove(gone)
        if vectors:
            order = sorted(vectors)
            adapter.upsert(np.asarray(order, dtype=np.int64), np.stack([vectors[d] for d in order]))
        return None

    def recover(self, problem: str) -> None:
        """Rebuilds the index from the store alone: the vectors it holds, and
        the texts of the others re-embedded by the collection's embedder.
        The recovered vectors go back into the store until the next save."""
        rows = self.conn.execute(
            "SELECT d.doc, d.text, p.vector IS NOT NULL FROM docs d LEFT JOIN pending p ON p.doc = d.doc"
        ).fetchall()
        lost = [(int(doc), text) for doc, text, has in rows if not has]
        matrix = np.zeros((0, int(self.config["dim"])), dtype=np.float32)
        if lost:
            if self.embedder is None or any(text is None for _, text in lost):
                raise PersistError(
                    f"the index file of {str(self.path)!r} is unusable ({problem}) and it was the only copy of "
                    f"{len(lost)} document vectors that cannot be re-embedded (no embedder, or no text): "
                    "restore the directory from a backup, or open it with the embedder that made those vectors "
                    "(embedder=...) when every document has its text",
                    str(self.path),
                )
            matrix = self.embedder.embed([str(text) for _, text in lost], query=False)
            matrix = _as_matrix(matrix, int(self.config["dim"]), "embeddings")
            if not self.read_only:
                self.conn.execute("BEGIN IMMEDIATE")
                try:
                    self.conn.executemany(
                        "INSERT OR REPLACE INTO pending(doc, vector) VALUES (?, ?)",
                        [(doc, matrix[i].tobytes()) for i, (doc, _) in enumerate(lost)],
                    )
                    self.conn.execute("COMMIT")
                except BaseException:
                    self.conn.execute("ROLLBACK")
                    raise
        self.adapter = None
        ids, vectors = self.all_vectors()
        if lost and self.read_only:
            extra = np.asarray([doc for doc, _ in lost], dtype=np.int64)
            ids = np.concatenate([ids, extra])
            vectors = np.concatenate([vectors, matrix])
        kind, params = self.wanted_kind(len(ids))
        adapter = IndexAdapter(kind, self.config["metric"], params)
        adapter.build(ids, vectors)
        self.adapter = adapter
        self.filter_cache.clear()


def _fsync_dir(path: Path) -> None:
    """Makes a rename in ``path`` durable (where directories can be synced)."""
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _dir_size(path: Path) -> int:
    total = 0
    for entry in path.iterdir():
        try:
            total += entry.stat().st_size
        except OSError:
            pass
    return total


def configure(
    core: CollectionCore,
    exists: bool,
    embedder: Any,
    dim: Optional[int],
    metric: Optional[str],
    index: Any,
    index_params: Optional[Mapping[str, Any]],
    recall_target: Optional[float],
    compress: object = None,
) -> None:
    """Checks the options of :meth:`Collection.open` (or of a 0.1.4 in-memory
    collection), writes them into a new store or compares them with an
    existing one, and sets ``core.config`` and ``core.embedder``."""
    if compress is not None and not isinstance(compress, bool):
        raise InvalidArgument(f"compress must be True or False, got {compress!r}")
    if metric is not None and metric not in METRICS:
        raise InvalidArgument(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if dim is not None:
        checked_dim = _where.as_int(dim)
        if checked_dim is None or not 1 <= checked_dim <= MAX_DIM:
            raise InvalidArgument(f"dim must be an integer in 1..{MAX_DIM}, got {dim!r}")
        dim = checked_dim
    kind = None if index is None else resolve_kind(index)
    if recall_target is not None and not (0.0 < float(recall_target) <= 1.0):
        raise InvalidArgument(f"recall_target must be in (0, 1], got {recall_target!r}")
    if index_params is not None and _where.as_mapping(index_params) is None:
        raise InvalidArgument(f"index_params must be a dict, got {type(index_params).__name__}")
    if embedder is _UNSET:
        adapter = None if exists else make_embedder(DEFAULT_MODEL)
    else:
        adapter = make_embedder(embedder)
    if not exists:
        core.conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.strip().split(";"):
                if statement.strip():
                    core.conn.execute(statement)
            core.set_meta("format", FORMAT)
            core.set_meta("dim", dim)
            core.set_meta("metric", metric or "cosine")
            core.set_meta("index", kind or "auto")
            core.set_meta("index_params", dict(index_params or {}))
            core.set_meta("recall_target", float(recall_target or DEFAULT_RECALL))
            core.set_meta("compress", True if compress is None else compress)
            core.set_meta("embedder", None if adapter is None else adapter.name)
            core.set_meta("id_kind", None)
            core.set_meta("next_id", 0)
            core.set_meta("next_doc", 0)
            core.set_meta("generation", 0)
            core.conn.execute("COMMIT")
        except BaseException:
            core.conn.execute("ROLLBACK")
            raise
    else:
        try:
            fmt = core.meta("format")
        except Exception as error:
            raise PersistError(f"{core.path} is not a ruvector collection: {error}", str(core.path)) from error
        if fmt in _MIGRATES_FROM and not core.read_only:
            core.conn.execute("BEGIN IMMEDIATE")
            try:
                _migrate(core.conn, int(fmt))
                core.set_meta("format", FORMAT)
                core.conn.execute("COMMIT")
            except BaseException:
                core.conn.execute("ROLLBACK")
                raise
            core.conn.executescript("PRAGMA incremental_vacuum;")
        elif fmt != FORMAT and fmt not in _MIGRATES_FROM:
            raise PersistError(
                f"{core.path} has collection format {fmt!r}; this ruvector reads format {FORMAT}", str(core.path)
            )
    if exists and compress is not None and compress != core.meta("compress", True):
        # A storage choice, not part of what the collection means: changing
        # it applies from the next save of the index file.
        if core.read_only:
            raise InvalidArgument("compress= changes how a collection is saved; open it without read_only=True")
        core.set_meta("compress", compress)
    config = {
        key: core.meta(key)
        for key in ("dim", "metric", "index", "index_params", "recall_target", "embedder", "id_kind")
    }
    config["compress"] = core.meta("compress", True)
    for name, given, stored in (("dim", dim, config["dim"]), ("metric", metric, config["metric"])):
        if given is not None and stored is not None and given != stored:
            raise InvalidArgument(f"this collection was made with {name}={stored!r}, got {name}={given!r}")
    if kind is not None and kind != config["index"]:
        raise InvalidArgument(f"this collection was made with index={config['index']!r}, got index={kind!r}")
    if exists and embedder is not _UNSET and embedder is not None:
        stored_name = config["embedder"]
        if isinstance(embedder, str) and stored_name is not None and embedder != stored_name:
            raise InvalidArgument(
                f"this collection was embedded with {stored_name!r}; embedding with {embedder!r} "
                "would put queries in another space"
            )
    if exists and embedder is _UNSET:
        adapter = make_embedder(config["embedder"])
    core.config = config
    core.embedder = adapter


class Collection:
    """Documents (text, metadata, vector) under string or integer ids, in a
    persistent directory, searched by meaning with ``where`` filters.

    Open one with :meth:`open`; :meth:`create` and :meth:`from_vectors`
    make 0.1.4-style in-memory collections (saved with :meth:`save`).
    Thread-safe; ``*_async`` variants run the call on a worker thread.
    """

    def __init__(self, _core: CollectionCore) -> None:
        self._core = _core
        self._finalizer = weakref.finalize(self, _core.close)

    # -- opening -----------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: _PathLike,
        *,
        embedder: Any = _UNSET,
        dim: Optional[int] = None,
        metric: Optional[str] = None,
        index: Any = None,
        index_params: Optional[Mapping[str, Any]] = None,
        recall_target: Optional[float] = None,
        read_only: bool = False,
        create: bool = True,
        compress: Optional[bool] = None,
    ) -> Collection:
        """Opens the collection in directory ``path``, creating it if needed.

        Args:
            path: The directory (created with its parents when missing).
            embedder: How texts become vectors: a model name (default
                ``"all-MiniLM-L6-v2"``, run by ``ruvector-embed``), an
                ``Embedder``, a LangChain ``Embeddings``, a callable, or
                ``None`` for vectors only. A reopened collection remembers
                its model name.
            dim: The vector dimension (otherwise taken from the first vectors).
            metric: ``"cosine"`` (default), ``"l2"`` (squared) or ``"ip"``.
            index: ``"auto"`` (default: exact ``flat`` while small, ``ivf``
                above the size :func:`ruvector.recommend` picks), or a kind:
                ``flat``, ``ivf``, ``rabitq``, ``rabitq_plus``,
                ``rabitq_asym`` or an index class.
            index_params: Keyword arguments for the index kind (``nlist``,
                ``nprobe``, ``rerank_factor``, ``seed``, ``rotation``).
            recall_target: Recall@10 the automatic choice aims at (0.95).
            read_only: Share the directory with other readers; no writes.
            create: Refuse to create a missing collection when ``False``.
            compress: Save the index's float32 vectors compressed losslessly
                (the default, ``True``: about 0.85 of their bytes on disk,
                decoded into this process's memory when the index is
                loaded), or uncompressed (``False``: ~15 % more disk, but
                the file is memory-mapped, so the first query after a
                reopen comes several times sooner and processes share one
                copy of the vectors). Remembered; changing it on an
                existing collection applies from its next save.

        Raises:
            PersistError: Another writer holds the directory, or its files
                cannot be read. The index file is loaded by the first call
                that needs it (a query, a write, vectors read back): a file
                damaged without changing its size is found then, and that
                call raises (or rebuilds it from the store, as here).
            InvalidArgument: An option contradicts how the collection was made.
        """
        directory = Path(os.fspath(path)).expanduser()
        legacy = directory.with_name(directory.name + ".meta.json")
        if not directory.is_dir() and legacy.is_file():
            raise InvalidArgument(
                f"{str(directory)!r} is a ruvector 0.1.4 collection file: read it with "
                f"Collection.load({str(directory)!r}), then .copy_to(directory) to move it into a directory"
            )
        if directory.exists() and not directory.is_dir():
            raise InvalidArgument(f"{str(directory)!r} is a file, not a collection directory")
        exists = (directory / DB_NAME).is_file()
        if not exists:
            if read_only or not create:
                raise NotFound(f"no collection at {str(directory)!r}", str(directory))
            directory.mkdir(parents=True, exist_ok=True)
        core = CollectionCore(directory, read_only)
        try:
            configure(core, exists, embedder, dim, metric, index, index_params, recall_target, compress)
            if exists and not core.defer_index():
                differs = core.load_index()
                if differs and not read_only:
                    core.save_index()
            if not read_only:
                state: Dict[str, Any] = core.meta("index_state") or {}
                for stale in stale_files(directory, state.get("file")):
                    try:
                        stale.unlink()
                    except OSError:
                        pass
        except BaseException:
            core.closed = True
            core.conn.close()
            core.release()
            raise
        return cls(core)

    # -- properties --------------------------------------------------------------------

    @property
    def path(self) -> Optional[Path]:
        """The collection directory (``None`` for an in-memory collection)."""
        return self._core.path

    @property
    def dim(self) -> Optional[int]:
        """The vector dimension (``None`` until the first vectors arrive)."""
        dim = self._core.config.get("dim")
        return None if dim is None else int(dim)

    @property
    def metric(self) -> str:
        """``"cosine"``, ``"l2"`` or ``"ip"`` (0.1.4 reported ``"squared_l2"``
        for its rabitq backend; that is ``"l2"`` here)."""
        metric = str(self._core.config["metric"])
        if self._core.config.get("legacy_backend") == "rabitq":
            return "squared_l2"
        return metric

    @property
    def index_kind(self) -> str:
        """The class name of the index in use (``"auto"`` picks it by size)."""
        with self._core.lock:
            return self._core.ensure_index().kind

    @property
    def embedder(self) -> Any:
        """The embedder object (a named model is loaded now), or ``None``."""
        return None if self._core.embedder is None else self._core.embedder.loaded

    @property
    def read_only(self) -> bool:
        return self._core.read_only

    @property
    def closed(self) -> bool:
        return self._core.closed

    def __len__(self) -> int:
        return self.count()

    def __contains__(self, id: object) -> bool:
        key = id if isinstance(id, str) else _where.as_int(id)
        if key is None:
            return False
        with self._core.lock:
            self._core.check_open()
            return self._core.conn.execute("SELECT 1 FROM docs WHERE id = ?", (key,)).fetchone() is not None

    def __repr__(self) -> str:
        core = self._core
        where = "in memory" if core.path is None else repr(str(core.path))
        if core.closed:
            return f"Collection({where}, closed)"
        return f"Collection({where}, n={self.count()}, dim={self.dim}, metric={core.config['metric']!r})"

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Saves the index if it changed and releases the directory (idempotent).
        Also done when the collection is garbage-collected or at exit."""
        self._finalizer()

    def embed(self, texts: Sequence[str], *, query: bool = False) -> npt.NDArray[np.float32]:
        """``texts`` as this collection's embedder makes them: a
        ``(len(texts), dim)`` float32 matrix (``query=True`` uses the
        embedder's query form where it has one).

        Raises:
            InvalidArgument: The collection has no embedder (it takes vectors only).
            DimensionMismatch: The embedder's vectors differ from the collection's dimension.
        """
        embedder = self._core.embedder
        if embedder is None:
            raise InvalidArgument(
                "this collection has no embedder: pass vectors=..., or open it with embedder='all-MiniLM-L6-v2'"
            )
        dim = self._core.config.get("dim")
        if not texts:
            return np.zeros((0, dim or 1), dtype=np.float32)
        matrix = embedder.embed(list(texts), query=query)
        embedder.check_dim(matrix.shape[1], dim)
        return _as_matrix(matrix, dim, "embeddings")

    # -- writing ------------------------------------------------------------------------

    def add(self, texts: Texts = None, *, ids: Ids = None, metadata: Metadatas = None, vectors: Any = None) -> List[Id]:
        """Adds documents; returns their ids.

        ``texts`` are embedded unless ``vectors`` (one row per document) are
        given. Ids default to the next integers (or new UUID strings in a
        collection of string ids); an id already present raises
        :class:`InvalidArgument` (use :meth:`upsert` to replace). All or
        nothing: one SQLite transaction.
        """
        return self._put(texts, ids, metadata, vectors, replace=False)

    def upsert(
        self, texts: Texts = None, *, ids: Ids = None, metadata: Metadatas = None, vectors: Any = None
    ) -> List[Id]:
        """Like :meth:`add`, but a present id is replaced (text, metadata and vector)."""
        return self._put(texts, ids, metadata, vectors, replace=True)

    def _put(self, texts: Texts, ids: Ids, metadata: Metadatas, vectors: Any, replace: bool) -> List[Id]:
        core = self._core
        core.check_writable()
        given = _check_texts(texts)
        dim = core.config.get("dim")
        matrix = None if vectors is None else _as_matrix(vectors, dim)
        if given is None:
            if matrix is None:
                raise InvalidArgument("give texts, vectors or both")
            n = len(matrix)
            text_list: List[Optional[str]] = [None] * n
        else:
            text_list = given
            n = len(text_list)
            if matrix is not None and len(matrix) != n:
                raise InvalidArgument(f"got {n} texts but {len(matrix)} vectors")
        if isinstance(metadata, Mapping):
            if n != 1:
                raise InvalidArgument(f"metadata must be a list of {n} dicts (one per document), got one dict")
            metas: List[Optional[Mapping[str, Any]]] = [metadata]
        elif metadata is None:
            metas = [None] * n
        else:
            metas = list(metadata)
            if len(metas) != n:
                raise InvalidArgument(f"got {n} documents but {len(metas)} metadata entries")
        encoded = [_check_metadata(m, i) for i, m in enumerate(metas)]
        id_list: List[object] = []
        if ids is not None:
            if isinstance(ids, (str, bytes, int)):
                raise InvalidArgument("ids must be a list (one id per document)")
            id_list = list(ids)
            if len(id_list) != n:
                raise InvalidArgument(f"got {n} documents but {len(id_list)} ids")
        if matrix is None:
            present = [t for t in text_list if t is not None]
            if len(present) != n:
                missing = text_list.index(None)
                raise InvalidArgument(f"texts[{missing}] is None and no vector was given for it")
            matrix = self.embed(present)
        if core.config["metric"] == "cosine" and len(matrix):
            zero = np.flatnonzero(~(np.einsum("ij,ij->i", matrix, matrix) > 0))
            if len(zero):
                raise InvalidArgument(f"vectors[{int(zero[0])}] is all zeros, which has no cosine similarity")
        if n == 0:
            return []
        with core.lock:
            core.check_writable()
            id_kind = core.config.get("id_kind")
            if ids is None:
                next_id = int(core.meta("next_id", 0))
                if id_kind == "str":
                    id_list = [uuid.uuid4().hex for _ in range(n)]
                else:
                    id_list = list(range(next_id, next_id + n))
                    id_kind = "int"
            checked: List[Id] = []
            for value in id_list:
                got, got_kind = _check_id(value, id_kind)
                id_kind = got_kind
                checked.append(got)
            if len(set(checked)) != n:
                seen: set[Id] = set()
                for x in checked:
                    if x in seen:
                        raise InvalidArgument(f"id {x!r} appears twice in one call")
                    seen.add(x)
            return self._write(checked, id_kind, text_list, encoded, matrix, replace)

    def _write(
        self,
        ids: List[Id],
        id_kind: Optional[str],
        texts: List[Optional[str]],
        encoded: List[Tuple[str, List[Tuple[str, int, int, object]]]],
        matrix: npt.NDArray[np.float32],
        replace: bool,
    ) -> List[Id]:
        core = self._core
        conn = core.conn

        def store() -> Tuple[List[int], Optional[npt.NDArray[np.float32]]]:
            existing: Dict[Id, int] = {}
            for chunk in _chunks(ids):
                marks = ",".join("?" * len(chunk))
                for doc, ext in conn.execute(f"SELECT doc, id FROM docs WHERE id IN ({marks})", list(chunk)):
                    existing[ext] = doc
            if existing and not replace:
                shown = sorted(existing, key=str)[:5]
                raise InvalidArgument(
                    f"{len(existing)} id(s) already present, e.g. {shown!r}: use upsert() to replace documents"
                )
            next_doc = int(core.meta("next_doc", 0))
            docs: List[int] = []
            new_rows: List[Tuple[int, Id, Optional[str], str, Optional[float]]] = []
            updates: List[Tuple[Optional[str], str, Optional[float], int]] = []
            # A cosine index keeps unit vectors: the norm gives back the vector as given.
            norms: List[Optional[float]] = (
                [_stored_norm(x) for x in np.linalg.norm(matrix.astype(np.float64), axis=1).tolist()]
                if core.config["metric"] == "cosine"
                else [None] * len(ids)
            )
            for i, ext in enumerate(ids):
                if ext in existing:
                    doc = existing[ext]
                    updates.append((texts[i], encoded[i][0], norms[i], doc))
                else:
                    doc = next_doc
                    next_doc += 1
                    new_rows.append((doc, ext, texts[i], encoded[i][0], norms[i]))
                docs.append(doc)
            if updates:
                _delete_fields(conn, [u[3] for u in updates])  # before the old metadata goes
                conn.executemany("UPDATE docs SET text = ?, metadata = ?, norm = ? WHERE doc = ?", updates)
            if new_rows:
                conn.executemany("INSERT INTO docs(doc, id, text, metadata, norm) VALUES (?, ?, ?, ?, ?)", new_rows)
            conn.executemany(_INSERT_FIELDS, [(*row, doc) for doc, (_, rows) in zip(docs, encoded) for row in rows])
            core.set_meta("next_doc", next_doc)
            if id_kind == "int":
                top = max(int(x) for x in ids) + 1
                core.set_meta("next_id", max(top, int(core.meta("next_id", 0))))
            if core.config.get("id_kind") is None:
                core.set_meta("id_kind", id_kind)
            if core.config.get("dim") is None:
                core.set_meta("dim", int(matrix.shape[1]))
            core.config["id_kind"] = id_kind
            core.config["dim"] = int(matrix.shape[1])
            return docs, matrix

        self._transact(store)
        return list(ids)

    def _transact(self, store: Callable[[], Tuple[List[int], Optional[npt.NDArray[np.float32]]]]) -> None:
        """One write call as one SQLite transaction: ``store`` changes the
        store and returns the documents it put (with their vectors) or
        removed (``None``); they are logged under the next generation and
        the index follows before the commit. Any error rolls back both.

        The vectors put go into the store's ``pending`` table, except when
        the call is big enough to save the index file anyway (it rebuilt
        the index, or put as many vectors as an autosave waits for): then
        the file for the new generation is written first and the same
        commit records it, so the vectors are written once, into the file.
        A kill before that commit leaves an unrecorded file (removed on the
        next open) and the store as before the call."""
        core = self._core
        conn = core.conn
        core.ensure_index()  # a deferred load (which may write) before the transaction
        conn.execute("BEGIN IMMEDIATE")
        touched_index = False
        written: Optional[str] = None
        saved = False
        freed = False
        try:
            docs, vectors = store()
            gen = core.generation + 1
            conn.executemany("INSERT INTO changes(gen, doc) VALUES (?, ?)", [(gen, d) for d in docs])
            core.set_meta("generation", gen)
            touched_index = True
            # An index without the change API is rebuilt from the store: it
            # needs this call's vectors there first.
            early = vectors is not None and core.adapter is not None and not core.adapter.native_changes
            if early:
                assert vectors is not None
                self._put_pending(docs, vectors)
            rebuilt = core.change_index(docs, vectors)
            if vectors is not None and not early:
                adapter = core.adapter
                if (
                    core.path is not None
                    and adapter is not None
                    and adapter.keeps_vectors()
                    and (rebuilt or len(docs) >= self._autosave_at())
                ):
                    written = core.write_index_file(gen)
                    freed = core.record_saved(gen, written)
                    saved = True
                else:
                    self._put_pending(docs, vectors)
            conn.execute("COMMIT")
        except BaseException:
            self._rollback(touched_index)
            if written is not None and core.path is not None:
                try:
                    (core.path / written).unlink()
                except OSError:
                    pass
            raise
        core.filter_cache.clear()
        if saved:
            core.after_save(gen, written, freed)
        else:
            self._maybe_save(rebuilt)

    def _put_pending(self, docs: List[int], vectors: npt.NDArray[np.float32]) -> None:
        """Keeps the vectors of ``docs`` in the store until a saved index file holds them."""
        self._core.conn.executemany(
            "INSERT OR REPLACE INTO pending(doc, vector) VALUES (?, ?)",
            [(doc, vectors[i].tobytes()) for i, doc in enumerate(docs)],
        )

    def _autosave_at(self) -> int:
        """How many unsaved changes make a call save the index file."""
        return max(AUTOSAVE_CHANGES, len(self._core.adapter or ()) // 4)

    def _rollback(self, touched_index: bool) -> None:
        core = self._core
        try:
            core.conn.execute("ROLLBACK")
        finally:
            # Re-read what the store says; the in-memory index may be ahead of it.
            core.config["dim"] = core.meta("dim")
            core.config["id_kind"] = core.meta("id_kind")
            if touched_index:
                core.index_stale = True
                core.filter_cache.clear()

    def _maybe_save(self, rebuilt: bool) -> None:
        core = self._core
        if core.path is None:
            return
        pending = core.generation - core.saved_gen
        if rebuilt:
            core.save_index()
            return
        count = int(core.conn.execute("SELECT count(*) FROM changes").fetchone()[0])
        if pending and count >= self._autosave_at():
            core.save_index()

    def delete(self, ids: Union[Id, Sequence[Id], None] = None, *, where: Optional[Where] = None) -> int:
        """Deletes the documents with these ids and/or matching ``where``
        (both given: those that are in ``ids`` and match); returns how many
        were deleted: ids not present are ignored and not counted, an id
        given twice counts once."""
        core = self._core
        core.check_writable()
        if ids is None and where is None:
            raise InvalidArgument("delete() needs ids, where or both (where={} deletes everything)")
        if isinstance(ids, (str, int)):
            ids = [ids]
        with core.lock:
            core.check_writable()
            docs = self._select_docs(ids, where)
            if not docs:
                return 0
            conn = core.conn

            def store() -> Tuple[List[int], Optional[npt.NDArray[np.float32]]]:
                _delete_fields(conn, docs)
                for chunk in _chunks(docs):
                    marks = ",".join("?" * len(chunk))
                    conn.execute(f"DELETE FROM docs WHERE doc IN ({marks})", list(chunk))
                    conn.execute(f"DELETE FROM pending WHERE doc IN ({marks})", list(chunk))
                return docs, None

            self._transact(store)
            return len(docs)

    # -- reading ------------------------------------------------------------------------

    def _select_docs(self, ids: Optional[Sequence[Id]], where: Optional[Where]) -> List[int]:
        """Store rows (``doc``) of these ids and/or matching ``where``, in doc order."""
        conn = self._core.conn
        if ids is not None:
            id_list = [_check_id(x, None)[0] for x in ids]
            docs: set[int] = set()
            for chunk in _chunks(id_list):
                marks = ",".join("?" * len(chunk))
                docs.update(r[0] for r in conn.execute(f"SELECT doc FROM docs WHERE id IN ({marks})", list(chunk)))
            if where is None:
                return sorted(docs)
        else:
            docs = set()
        assert where is not None
        sql, params = _where.compile_where(where)
        matching = [r[0] for r in conn.execute(f"SELECT doc FROM ({sql}) ORDER BY doc", params)]
        if ids is not None:
            return [d for d in matching if d in docs]
        return matching

    def count(self, where: Optional[Where] = None) -> int:
        """How many documents there are (matching ``where``)."""
        core = self._core
        with core.lock:
            core.check_open()
            if where is None:
                return int(core.conn.execute("SELECT count(*) FROM docs").fetchone()[0])
            sql, params = _where.compile_where(where)
            return int(core.conn.execute(f"SELECT count(*) FROM ({sql})", params).fetchone()[0])

    def get(
        self,
        ids: Union[Id, Sequence[Id], None] = None,
        *,
        where: Optional[Where] = None,
        limit: Optional[int] = None,
        offset: int = 0,
        include_vectors: bool = False,
    ) -> List[Record]:
        """Stored documents: by ``ids`` (in that order, unknown ones left
        out), by ``where``, or all (in insertion order), paged by
        ``limit``/``offset``."""
        core = self._core
        if isinstance(ids, (str, int)):
            ids = [ids]
        if limit is not None:
            checked = _where.as_int(limit)
            if checked is None or checked < 0:
                raise InvalidArgument(f"limit must be a non-negative integer, got {limit!r}")
            limit = checked
        checked = _where.as_int(offset)
        if checked is None or checked < 0:
            raise InvalidArgument(f"offset must be a non-negative integer, got {offset!r}")
        offset = checked
        cols = "doc, id, text, metadata"
        rows: List[Tuple[Any, ...]]
        with core.lock:
            core.check_open()
            conn = core.conn
            if ids is None and where is None:
                sql = f"SELECT {cols} FROM docs ORDER BY doc LIMIT ? OFFSET ?"
                rows = conn.execute(sql, (-1 if limit is None else limit, offset)).fetchall()
            else:
                docs = self._select_docs(ids, where)
                order: Dict[Id, int] = {}
                if ids is not None:
                    for position, x in enumerate(_check_id(v, None)[0] for v in ids):
                        order.setdefault(x, position)
                rows = []
                for chunk in _chunks(docs):
                    marks = ",".join("?" * len(chunk))
                    rows += conn.execute(f"SELECT {cols} FROM docs WHERE doc IN ({marks})", list(chunk)).fetchall()
                if ids is not None:
                    rows.sort(key=lambda r: order.get(r[1], 0))
                else:
                    rows.sort(key=lambda r: r[0])
                rows = rows[offset:] if limit is None else rows[offset : offset + limit]
            vectors = core.vectors_of([int(r[0]) for r in rows]) if include_vectors else None
        return [
            Record(r[1], r[2], json.loads(r[3]), None if vectors is None else vectors[i]) for i, r in enumerate(rows)
        ]

    def _allowed(self, where: Optional[Where], ids: Optional[Sequence[Id]]) -> Any:
        """The allow-list for the index (cached per where and store generation)."""
        core = self._core
        adapter = core.ensure_index()
        if not adapter.filter_supported():
            raise RuVectorError(
                "a where filter needs a ruvector-rabitq whose search takes filter= (filtered search in the "
                "index); upgrade it with: pip install -U ruvector-rabitq"
            )
        key = (json.dumps([where, None if ids is None else list(ids)], sort_keys=True, default=str), core.generation)
        cached = core.filter_cache.get(key)
        if cached is not None:
            core.filter_cache.move_to_end(key)
            return cached
        docs = self._select_docs(ids, where if where is not None else ({} if ids is None else None))
        allowed = adapter.make_filter(np.asarray(docs, dtype=np.int64))
        core.filter_cache[key] = (allowed, len(docs))
        while len(core.filter_cache) > 16:
            core.filter_cache.popitem(last=False)
        return allowed, len(docs)

    def _queries(self, query: Any) -> Tuple[npt.NDArray[np.float32], bool]:
        """Query rows and whether one query was given (not a batch)."""
        core = self._core
        dim = core.config.get("dim")
        texts = _query_texts(query)
        if texts is not None:
            return self.embed(texts, query=True), isinstance(query, str)
        got = type(query).__name__
        if isinstance(query, (bytes, Mapping)) or query is None:
            raise InvalidArgument(f"query must be a text, texts, a vector or vectors, got {got}")
        array: npt.NDArray[Any] = np.asarray(query)
        single = array.ndim == 1
        return _as_matrix(array, dim, "query"), single

    # A str is also a Sequence[str]: the first overload takes it first.
    @overload
    def query(  # type: ignore[overload-overlap]
        self,
        query: Union[str, Sequence[float]],
        k: int = 10,
        *,
        where: Optional[Where] = None,
        ids: Union[Id, Sequence[Id], None] = None,
        nprobe: Optional[int] = None,
        rerank_factor: Optional[int] = None,
    ) -> List[QueryHit]: ...
    @overload
    def query(
        self,
        query: Union[Sequence[str], Sequence[Sequence[float]]],
        k: int = 10,
        *,
        where: Optional[Where] = None,
        ids: Union[Id, Sequence[Id], None] = None,
        nprobe: Optional[int] = None,
        rerank_factor: Optional[int] = None,
    ) -> List[List[QueryHit]]: ...
    @overload
    def query(
        self,
        query: npt.NDArray[Any],
        k: int = 10,
        *,
        where: Optional[Where] = None,
        ids: Union[Id, Sequence[Id], None] = None,
        nprobe: Optional[int] = None,
        rerank_factor: Optional[int] = None,
    ) -> QueryResult: ...
    def query(
        self,
        query: object,
        k: int = 10,
        *,
        where: Optional[Where] = None,
        ids: Union[Id, Sequence[Id], None] = None,
        nprobe: Optional[int] = None,
        rerank_factor: Optional[int] = None,
    ) -> QueryResult:
        """The ``k`` nearest documents to a text or a vector (a list of
        :class:`QueryHit`, nearest first), or to each of a batch of texts
        or vectors (a list of such lists).

        Typed by what is given: a text or a list of floats gives
        ``List[QueryHit]``; a list of texts or of vectors gives
        ``List[List[QueryHit]]``; a NumPy array (one vector or a matrix: its
        shape is not in its static type) gives :data:`QueryResult`, the
        union of the two (narrow it with :func:`single_hits` /
        :func:`batch_hits`, or ``isinstance(result[0], QueryHit)``).

        ``where`` (and ``ids``) restrict the search to matching documents:
        SQLite finds them, the index searches only them, so ``min(k,
        matches)`` hits come back. ``nprobe``/``rerank_factor`` tune one
        call of an IVF or reranking index.
        """
        checked_k = _where.as_int(k)
        if checked_k is None or not 1 <= checked_k <= MAX_K:
            raise InvalidArgument(f"k must be an integer in 1..{MAX_K}, got {k!r}")
        k = checked_k
        core = self._core
        core.check_open()
        if isinstance(ids, (str, int)):
            ids = [ids]
        if where is not None and _where.as_mapping(where) is None:
            raise InvalidArgument(f"a where must be a dict, got {type(where).__name__}")
        if where is not None and not where:
            where = None  # {} matches every document: no filter
        with core.lock:
            if core.config.get("dim") is None or self.count() == 0:
                texts = _query_texts(query)
                none: List[List[QueryHit]]
                if texts is not None:
                    none = [[] for _ in texts]
                    return [] if isinstance(query, str) else none
                array = np.asarray(query, dtype=np.float32) if query is not None else None
                if array is None or array.ndim not in (1, 2):
                    raise InvalidArgument("query must be a text, texts, a vector or vectors")
                none = [[] for _ in range(len(array))]
                return [] if array.ndim == 1 else none
        matrix, single = self._queries(query)
        with core.lock:
            core.check_open()
            adapter = core.ensure_index()
            allowed = None
            if where is not None or ids is not None:
                allowed, matches = self._allowed(where, ids)
                if matches == 0:
                    nothing: List[List[QueryHit]] = [[] for _ in range(len(matrix))]
                    return [] if single else nothing
            options = {"nprobe": nprobe, "rerank_factor": rerank_factor}
            if adapter.kind != "IvfRabitqIndex":
                options.pop("nprobe")
            if adapter.kind == "FlatF32Index" or adapter.kind == "RabitqIndex":
                options.pop("rerank_factor")
            raw = adapter.search(matrix, k, allowed, options)
            docs = sorted({d for row in raw for d, _ in row})
            found: Dict[int, Tuple[Any, ...]] = {}
            for chunk in _chunks(docs):
                marks = ",".join("?" * len(chunk))
                for row in core.conn.execute(f"SELECT doc, id, text, metadata FROM docs WHERE doc IN ({marks})", chunk):
                    found[row[0]] = row
        results = [
            [QueryHit(found[d][1], s, found[d][2], json.loads(found[d][3])) for d, s in row if d in found]
            for row in raw
        ]
        return results[0] if single else results

    # -- persistence ---------------------------------------------------------------------

    def save(self, path: Optional[_PathLike] = None) -> None:
        """Without ``path``: saves the index file of this directory now
        (otherwise done when it has many unsaved changes, on close and at
        exit). With ``path``: writes the collection in ruvector 0.1.4's two
        files, ``path`` and ``path.meta.json`` (what 0.1.4's ``save`` wrote
        and its ``load`` reads)."""
        core = self._core
        with core.lock:
            core.check_open()
            if path is None:
                if core.path is None:
                    raise InvalidArgument("an in-memory collection is saved with save(path)")
                core.check_writable()
                core.save_index()
                return
            from ._compat import save_legacy

            save_legacy(self, self._core, Path(os.fspath(path)))

    @classmethod
    def load(cls, path: _PathLike, **options: Any) -> Collection:
        """Opens a collection directory, or reads a ruvector 0.1.4 collection
        (``path`` and ``path.meta.json``) into an in-memory collection."""
        target = Path(os.fspath(path)).expanduser()
        if (target / DB_NAME).is_file():
            return cls.open(target, create=False, **options)
        from ._compat import load_legacy

        return load_legacy(cls, target)

    def copy_to(self, path: _PathLike, **options: Any) -> Collection:
        """Writes every document into a new collection directory at ``path``
        and returns it open (moves a 0.1.4 or in-memory collection to disk)."""
        core = self._core
        options.setdefault("metric", core.config["metric"])
        options.setdefault("embedder", core.config.get("embedder"))
        if core.config.get("legacy_backend") != "rabitq":
            options.setdefault("index", core.config["index"])
        else:
            options.setdefault("index", "rabitq_plus")
            options.setdefault("index_params", core.config.get("index_params"))
        target = Collection.open(path, **options)
        try:
            if target.count():
                raise InvalidArgument(f"{str(path)!r} already holds documents")
            batch = 10_000
            offset = 0
            while True:
                records = self.get(limit=batch, offset=offset, include_vectors=True)
                if not records:
                    break
                target.add(
                    [r.text for r in records],
                    ids=[r.id for r in records],
                    metadata=[r.metadata for r in records],
                    vectors=stack_vectors(records, self.dim or 1),
                )
                offset += batch
        except BaseException:
            target.close()
            raise
        return target

    def stats(self) -> CollectionStats:
        """Counts and settings (0.1.4's fields first)."""
        core = self._core
        with core.lock:
            core.check_open()
            adapter = core.ensure_index()
            legacy = core.config.get("legacy_backend")
            rerank = adapter.params.get("rerank_factor")
            if rerank is None and adapter.index is not None:
                rerank = getattr(adapter.index, "rerank_factor", 0)
            return CollectionStats(
                count=self.count(),
                dim=int(core.config.get("dim") or 0),
                backend=legacy or adapter.kind,
                rerank_factor=int(rerank or 0),
                memory_bytes=adapter.memory_bytes,
                tombstoned=0,
                metric=str(core.config["metric"]),
                index=adapter.kind,
                path=None if core.path is None else str(core.path),
                embedder=core.config.get("embedder"),
                disk_bytes=0 if core.path is None else _dir_size(core.path),
            )

    def describe(self) -> Dict[str, Any]:
        """:meth:`stats` as a plain dict (for JSON)."""
        from dataclasses import asdict

        out = asdict(self.stats())
        out["id_kind"] = self._core.config.get("id_kind")
        out["read_only"] = self.read_only
        return out

    # -- async -------------------------------------------------------------------------

    async def _run(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        import asyncio
        import functools

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(fn, *args, **kwargs))

    async def add_async(self, *args: Any, **kwargs: Any) -> List[Id]:
        """:meth:`add` on a worker thread."""
        return await self._run(self.add, *args, **kwargs)

    async def upsert_async(self, *args: Any, **kwargs: Any) -> List[Id]:
        """:meth:`upsert` on a worker thread."""
        return await self._run(self.upsert, *args, **kwargs)

    async def query_async(self, *args: Any, **kwargs: Any) -> QueryResult:
        """:meth:`query` on a worker thread."""
        result: QueryResult = await self._run(self.query, *args, **kwargs)
        return result

    async def get_async(self, *args: Any, **kwargs: Any) -> List[Record]:
        """:meth:`get` on a worker thread."""
        return await self._run(self.get, *args, **kwargs)

    async def delete_async(self, *args: Any, **kwargs: Any) -> int:
        """:meth:`delete` on a worker thread."""
        return await self._run(self.delete, *args, **kwargs)

    async def count_async(self, where: Optional[Where] = None) -> int:
        """:meth:`count` on a worker thread."""
        return await self._run(self.count, where)

    # -- ruvector 0.1.4 ----------------------------------------------------------------

    @classmethod
    def create(
        cls,
        dim: int,
        *,
        backend: str = "hnsw",
        rerank_factor: int = 20,
        seed: int = 42,
        metric: str = "cosine",
        m: int = 16,
        ef_construction: int = 200,
        ef_search: int = 50,
    ) -> Collection:
        """0.1.4: an empty in-memory collection of ``dim``-d vectors.

        ``backend="hnsw"`` (0.1.4's default) is served by the automatic
        index (exact while small, IVF above) with ``metric``; the graph
        parameters ``m``/``ef_*`` have no counterpart and are ignored.
        ``backend="rabitq"`` is :class:`ruvector.RabitqPlusIndex` with
        ``rerank_factor`` and ``seed`` (squared L2, as in 0.1.4).
        """
        from ._compat import legacy_collection

        return legacy_collection(cls, dim, backend, rerank_factor, seed, metric)

    @classmethod
    def from_vectors(
        cls,
        vectors: Any,
        *,
        ids: Optional[Sequence[int]] = None,
        metadatas: Optional[Sequence[Optional[Dict[str, Any]]]] = None,
        backend: str = "hnsw",
        rerank_factor: int = 20,
        seed: int = 42,
        metric: str = "cosine",
        m: int = 16,
        ef_construction: int = 200,
        ef_search: int = 50,
    ) -> Collection:
        """0.1.4: an in-memory collection over the rows of ``vectors`` (ids default to 0..n-1)."""
        matrix = _as_matrix(vectors, None)
        coll = cls.create(int(matrix.shape[1]), backend=backend, rerank_factor=rerank_factor, seed=seed, metric=metric)
        coll.add(vectors=matrix, ids=list(range(len(matrix))) if ids is None else list(ids), metadata=metadatas)
        return coll

    def insert(self, vector: Any, *, metadata: Optional[Dict[str, Any]] = None) -> int:
        """0.1.4: adds one vector under the next integer id; returns it."""
        return int(self.add(vectors=_as_matrix(vector, self.dim, "vector"), metadata=[metadata])[0])

    def insert_batch(
        self, vectors: Any, *, metadatas: Optional[Sequence[Optional[Dict[str, Any]]]] = None
    ) -> List[int]:
        """0.1.4: adds the rows of ``vectors`` under the next integer ids."""
        matrix = _as_matrix(vectors, self.dim)
        return [int(x) for x in self.add(vectors=matrix, metadata=metadatas)]

    def search(
        self,
        query: Any,
        k: int,
        *,
        filter: Union[Dict[str, Any], Callable[[Dict[str, Any]], bool], None] = None,
        rerank_factor: Optional[int] = None,
        overfetch: int = 4,
    ) -> List[SearchHit]:
        """0.1.4: the ``k`` nearest vectors as :class:`SearchHit` (id, score,
        metadata). ``filter`` is an exact-match dict or a predicate over the
        metadata; both select the allowed documents before the index
        searches (``overfetch`` is accepted and no longer needed)."""
        if isinstance(query, str):
            raise InvalidArgument("search() takes a vector; query() takes texts")
        where: Optional[Where] = None
        ids: Optional[List[Id]] = None
        if callable(filter) or (
            isinstance(filter, Mapping) and any(isinstance(v, (list, tuple, dict)) for v in filter.values())
        ):
            ids = self._matching_ids(filter)
            if not ids:
                return []
        elif isinstance(filter, Mapping):
            where = dict(filter)
        elif filter is not None:
            raise InvalidArgument(f"filter must be a dict or a callable, got {type(filter).__name__}")
        if self.dim is None or self.count() == 0:
            return []
        hits = single_hits(
            self.query(np.asarray(query, dtype=np.float32), k, where=where, ids=ids, rerank_factor=rerank_factor)
        )
        return [SearchHit(int(h.id), h.score, h.metadata or None) for h in hits]

    def _matching_ids(self, predicate: Union[Mapping[str, Any], Callable[[Dict[str, Any]], bool]]) -> List[Id]:
        """Ids whose metadata passes a 0.1.4 predicate (evaluated before the search)."""
        test: Callable[[Dict[str, Any]], bool]
        if callable(predicate):
            test = predicate
        else:
            wanted = dict(predicate)

            def matches(meta: Dict[str, Any]) -> bool:
                return all(meta.get(key) == value for key, value in wanted.items())

            test = matches
        with self._core.lock:
            rows = self._core.conn.execute("SELECT id, metadata FROM docs").fetchall()
        return [row[0] for row in rows if test(json.loads(row[1]))]

    def get_metadata(self, id: int) -> Optional[Dict[str, Any]]:
        """0.1.4: the metadata of ``id`` (``None`` when it has none or is unknown)."""
        records = self.get([id])
        return (records[0].metadata or None) if records else None

    def vacuum(self) -> int:
        """0.1.4: deletes are immediate here, so there is nothing to reclaim (returns 0)."""
        return 0

    def export_live_items(self) -> List[Tuple[Id, npt.NDArray[np.float32], Optional[Dict[str, Any]]]]:
        """0.1.4: ``(id, vector, metadata)`` of every document, by id."""
        records = self.get(include_vectors=True)
        items = [(r.id, v, r.metadata or None) for r, v in zip(records, stack_vectors(records, self.dim or 1))]
        return sorted(items, key=lambda item: (isinstance(item[0], str), item[0]))

    @staticmethod
    def meta_path(path: _PathLike) -> Path:
        """0.1.4: the sidecar file of a collection saved at ``path``."""
        target = Path(os.fspath(path))
        return target.with_name(target.name + ".meta.json")
