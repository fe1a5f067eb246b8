"""The vector index behind a :class:`ruvector.Collection`: which kind, how
it is built, searched, changed and saved. Internal.

Written against the index API of ``ruvector-rabitq`` (every kind takes
``metric=``, ``remove``/``upsert``, ``search(..., filter=allowed_ids)``).
A wheel that predates that API still serves what can be served exactly:
``"cosine"`` as squared L2 over unit vectors (``1 - cos = |a - b|^2 / 2``),
changes by a rebuild from the store, ``k`` capped at the index size; a
``where`` then raises (it is never emulated by filtering results after the
search).
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Protocol, Sequence, Tuple

import numpy as np

from ruvector_common.errors import InvalidArgument, MissingComponentError, PersistError, RuVectorError

if TYPE_CHECKING:
    import numpy.typing as npt

    _Ids = npt.NDArray[np.int64]
    _Rows = npt.NDArray[np.float32]


class NativeIndex(Protocol):
    """What the adapter uses of a ``ruvector_rabitq`` index (``remove``,
    ``upsert`` and ``filter=`` only where the wheel offers them)."""

    @property
    def ids(self) -> Sequence[int]: ...
    @property
    def memory_bytes(self) -> int: ...
    def __len__(self) -> int: ...
    def __contains__(self, id: object) -> bool: ...
    @property
    def mapped(self) -> bool: ...
    def search(self, query: _Rows, k: int, **options: Any) -> Sequence[Tuple[int, float]]: ...
    def search_batch(self, queries: _Rows, k: int, **options: Any) -> Tuple[_Ids, _Rows]: ...
    def upsert(self, ids: _Ids, vectors: _Rows) -> None: ...
    def remove(self, ids: _Ids) -> int: ...
    def save(self, path: str, **options: Any) -> None: ...
    def __getitem__(self, id: int) -> _Rows: ...
    def __array__(self, dtype: Any = None, copy: Any = None) -> _Rows: ...


class NativeIndexClass(Protocol):
    """An index class of ``ruvector_rabitq`` (built or loaded)."""

    __name__: str

    def __hash__(self) -> int: ...
    def __call__(self, dim: int, **params: Any) -> NativeIndex: ...
    def build(self, vectors: _Rows, ids: Optional[_Ids] = None, **params: Any) -> NativeIndex: ...
    def load(self, path: str, **options: Any) -> NativeIndex: ...


__all__ = ["KINDS", "METRICS", "IndexAdapter", "resolve_kind", "rabitq_module"]

#: Short names of the index kinds, and their classes in ``ruvector_rabitq``.
KINDS: Dict[str, str] = {
    "flat": "FlatF32Index",
    "ivf": "IvfRabitqIndex",
    "rabitq": "RabitqIndex",
    "rabitq_plus": "RabitqPlusIndex",
    "rabitq_asym": "RabitqAsymIndex",
}
METRICS = ("cosine", "l2", "ip")
#: Kinds whose structure is trained on the vectors present at build time.
TRAINED = ("IvfRabitqIndex",)
#: An IVF index is retrained once the collection has grown (or shrunk) this much.
RETRAIN_FACTOR = 4


def rabitq_module(requested: str = "ruvector.Collection") -> ModuleType:
    """``ruvector_rabitq``, or :class:`MissingComponentError` naming the extra."""
    try:
        return importlib.import_module("ruvector_rabitq")
    except ModuleNotFoundError as error:
        if error.name != "ruvector_rabitq":
            raise
        raise MissingComponentError(requested, "rabitq", "ruvector-rabitq", "ruvector_rabitq") from error


def resolve_kind(kind: object) -> str:
    """``"auto"`` or the class name of an index kind given by short name,
    class name or class."""
    if isinstance(kind, type):
        kind = kind.__name__
    if not isinstance(kind, str):
        raise InvalidArgument(f"index must be a kind name or an index class, got {type(kind).__name__}")
    if kind == "auto" or kind in KINDS.values():
        return kind
    if kind in KINDS:
        return KINDS[kind]
    names = ", ".join(["auto", *KINDS, *KINDS.values()])
    raise InvalidArgument(f"unknown index kind {kind!r}; expected one of {names}")


@functools.cache
def _caps(cls: NativeIndexClass) -> Tuple[bool, bool]:
    """Whether index class ``cls`` has the metric API and the change API."""
    import inspect

    try:
        native_metric = "metric" in inspect.signature(cls).parameters
    except (TypeError, ValueError):
        native_metric = False
    if not native_metric:
        try:
            cls(8, metric="l2")
            native_metric = True
        except TypeError:  # an unexpected keyword: no metric API
            native_metric = False
        except Exception:  # the keyword was taken; something else was refused
            native_metric = True
    changes = all(hasattr(cls, name) for name in ("remove", "upsert"))
    return native_metric, changes


@functools.cache
def _has_filter(cls: NativeIndexClass) -> bool:
    """Whether ``cls.search`` takes ``filter=`` (probed on a one-row index)."""
    probe = cls.build(np.ones((1, 2), dtype=np.float32), np.zeros(1, dtype=np.int64))
    try:
        probe.search(np.ones(2, dtype=np.float32), 1, filter=np.zeros(1, dtype=np.int64))
        return True
    except TypeError:
        return False


def _saved_compressed(path: str) -> bool:
    """Whether ``path`` is a version 2 ``.rbpx`` file saved with
    ``compress=True`` (flag bit 4 of its header), which cannot be mapped.
    An unreadable or foreign file is ``False``: the load reports it."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(36)
    except OSError:
        return False
    return (
        len(head) == 36
        and head[:8] == b"rvpx0001"
        and int.from_bytes(head[8:12], "little") == 2
        and bool(head[35] & 16)
    )


class IndexAdapter:
    """One index of a collection: its kind, metric and parameters, and the
    native index once it holds vectors (``None`` while empty)."""

    def __init__(self, kind: str, metric: str, params: Dict[str, Any]) -> None:
        self.rr = rabitq_module()
        self.kind = kind  # a class name, never "auto" here
        self.metric = metric
        self.params = dict(params)
        self.cls: NativeIndexClass = getattr(self.rr, kind)
        self.native_metric, self.native_changes = _caps(self.cls)
        if metric == "ip" and not self.native_metric:
            raise RuVectorError(
                "metric 'ip' needs a ruvector-rabitq whose indexes take metric=; upgrade it with: "
                "pip install -U ruvector-rabitq (or use metric 'cosine' or 'l2')"
            )
        self.index: Optional[NativeIndex] = None
        self.trained_n = 0

    # -- what the native index stores ---------------------------------------------

    @property
    def index_metric(self) -> str:
        """The metric the native index itself computes."""
        return self.metric if self.native_metric else "l2"

    def prepare(self, vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Rows as the native index takes them (unit rows for emulated cosine)."""
        if self.metric == "cosine" and not self.native_metric:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            unit: npt.NDArray[np.float32] = (vectors / norms).astype(np.float32, copy=False)
            return unit
        return vectors

    def _kwargs(self) -> Dict[str, Any]:
        kwargs = dict(self.params)
        if self.native_metric:
            kwargs["metric"] = self.metric
        return kwargs

    def __len__(self) -> int:
        return 0 if self.index is None else len(self.index)

    # -- changes --------------------------------------------------------------------

    def build(self, ids: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32]) -> None:
        """Replaces the index by one over exactly these rows (trained on them)."""
        if len(ids) == 0:
            self.index = None
            self.trained_n = 0
            return
        self.index = self.cls.build(self.prepare(vectors), ids, **self._kwargs())
        self.trained_n = len(ids)

    def can_change(self) -> bool:
        """Whether :meth:`upsert` and :meth:`remove` change the index in place
        (otherwise the caller rebuilds it from the store)."""
        return self.native_changes or self.index is None

    def upsert(self, ids: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32]) -> None:
        if self.index is None:
            self.build(ids, vectors)
        else:
            self.index.upsert(ids, self.prepare(vectors))

    def remove(self, ids: npt.NDArray[np.int64]) -> int:
        """Removes the vectors of ``ids`` (distinct); returns how many the index held."""
        if self.index is None or not len(ids):
            return 0
        return int(self.index.remove(ids))

    def wants_retrain(self, n: int) -> bool:
        """Whether a trained kind has grown or shrunk past its training size."""
        if self.kind not in TRAINED or self.index is None or n == 0:
            return False
        return n >= RETRAIN_FACTOR * self.trained_n or n * RETRAIN_FACTOR <= self.trained_n

    # -- search -------------------------------------------------------------------

    def filter_supported(self) -> bool:
        return _has_filter(self.cls)

    def make_filter(self, allowed: npt.NDArray[np.int64]) -> object:
        """The allow-list as the index takes it (a precompiled id set where offered)."""
        id_set = getattr(self.rr, "IdSet", None)
        return allowed if id_set is None else id_set(allowed)

    def search(
        self,
        queries: npt.NDArray[np.float32],
        k: int,
        allowed: object,
        options: Dict[str, Any],
    ) -> List[List[Tuple[int, float]]]:
        """Per query row, ``(index id, distance)`` pairs, nearest first."""
        if self.index is None:
            return [[] for _ in range(len(queries))]
        kwargs = {key: value for key, value in options.items() if value is not None}
        if allowed is not None:
            kwargs["filter"] = allowed
        elif not self.native_changes:
            # Before the index API: k must not exceed the index size.
            k = min(k, len(self.index))
        q = self.prepare(queries)
        out: List[List[Tuple[int, float]]] = []
        if len(q) == 1:
            hits = self.index.search(q[0], k, **kwargs)
            ids = np.array([[int(h[0]) for h in hits]], dtype=np.int64)
            scores = np.array([[float(h[1]) for h in hits]], dtype=np.float32)
        else:
            ids, scores = self.index.search_batch(q, k, **kwargs)
        distances = self.distances(scores)
        for row_ids, row_distances in zip(ids.tolist(), distances.tolist()):
            # Rows shorter than k are padded with id -1.
            out.append([(i, d) for i, d in zip(row_ids, row_distances) if i >= 0])
        return out

    def distances(self, scores: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """The collection's distances (lower is nearer, as chromadb's) from the
        index's scores: squared L2 for ``l2``; ``1 - similarity`` for
        ``cosine`` and ``ip`` (native indexes score those as similarities; an
        emulated cosine index scores squared L2 between unit rows, twice the
        cosine distance)."""
        if self.metric == "l2":
            return scores
        if self.native_metric:
            return (1.0 - scores).astype(np.float32, copy=False)
        return (scores / 2).astype(np.float32, copy=False)

    # -- files ----------------------------------------------------------------------

    def keeps_vectors(self) -> bool:
        """Whether the index holds every vector as given (or as a unit vector
        under cosine) and follows changes in place: then its saved file is
        the one copy of the vectors, and the store keeps only those changed
        since the last save."""
        if self.index is None or not self.native_changes:
            return False
        return bool(getattr(self.index, "keeps_vectors", True))

    def save(self, path: str, compress: bool = True) -> None:
        """Saves atomically, the vectors compressed losslessly (about 0.85 of
        their float32 bytes for embeddings) unless ``compress`` is false;
        uncompressed (or with a wheel before ``compress=``) in the layout
        :meth:`load` can map."""
        assert self.index is not None
        try:
            self.index.save(path, crate_format=False, compress=compress)
        except TypeError:  # a wheel before compress=
            try:
                self.index.save(path, crate_format=False)
            except TypeError:  # a wheel before crate_format=
                self.index.save(path)

    def load(self, path: str, trained_n: int) -> None:
        """Loads a saved index: a compressed file (see :meth:`save`) is read
        and decoded; an uncompressed one (saved by earlier releases) is
        mapped (its vectors stay in the file, shared by every process that
        maps it, until the first change copies them), or read when the
        file or the wheel cannot be mapped."""
        if _saved_compressed(path):
            self.index = self.cls.load(path)
        else:
            try:
                self.index = self.cls.load(path, mmap=True)
            except (TypeError, PersistError):
                self.index = self.cls.load(path)
        self.trained_n = trained_n

    def matches_file_metric(self) -> bool:
        """Whether a loaded index computes the metric this adapter needs."""
        return getattr(self.index, "metric", "l2") == self.index_metric

    @property
    def memory_bytes(self) -> int:
        return 0 if self.index is None else int(self.index.memory_bytes)
