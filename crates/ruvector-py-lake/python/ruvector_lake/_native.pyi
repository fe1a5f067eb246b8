"""Type stubs for the compiled module ``ruvector_lake._native``.

Vector arguments: float32 arrays are read without a copy; float16 and
float64 arrays and buffers (``memoryview``, ``array.array``) are converted to
float32 once (a copy); other dtypes raise ``InvalidArgument``. Names
(``backend``, ``collection``, ``name``, ``filename``) are ``str``; paths are
``str`` or ``os.PathLike[str]`` (anything else, ``bytes`` included, raises
``TypeError``); a lone surrogate in either raises ``InvalidArgument`` naming
the argument. A prime, ``search_batch`` and ``warm_from_dir`` stop at Ctrl-C.

Searches: ``k`` is 10 and ``metric`` is ``"l2"`` when omitted or ``None``.
"""

import os
from typing import Any, Dict, List, Literal, Optional, Sequence, Tuple, Union, final

import numpy as np
import numpy.typing as npt

from ._adapter import BackendAdapter
from ._types import BackendStats, CacheStats, Consistency, LakeHit, RefreshResult

__all__ = [
    "__version__",
    "_error_classes",
    "cpu_features",
    "runtime_info",
    "set_num_threads",
    "get_num_threads",
    "RuLake",
    "RuLakeBuilder",
    "LakeSession",
    "LocalBackend",
    "FsBackend",
    "Bundle",
    "_crate_read_bundle",
    "_crate_write_bundle",
    "MAX_DIM",
    "MAX_RERANK_FACTOR",
    "MAX_K",
    "MAX_ID",
    "PAD_ID",
]

__version__: str
#: Names of the ``ruvector_common.errors`` classes this module raises
#: (checked against ``ruvector_common`` at import).
_error_classes: List[str]
MAX_DIM: int
MAX_RERANK_FACTOR: int
MAX_K: int
#: Largest id a lake vector may have (``2**64 - 2``).
MAX_ID: int
#: The id padding batch rows shorter than ``k`` (``2**64 - 1``); no vector has it.
PAD_ID: int

#: Exactly what path parameters accept (``bytes`` paths are a ``TypeError``).
_Path = Union[str, "os.PathLike[str]"]
_Int = Union[int, np.integer[Any]]
_Targets = Union[str, Sequence[Tuple[str, str]]]
_Batch = Tuple[npt.NDArray[np.uint64], npt.NDArray[np.float32]]
#: What a search ranks by: ``"l2"`` (squared L2, ascending; the default),
#: ``"ip"`` (inner product, descending) or ``"cosine"`` (cosine similarity,
#: descending): the indexes' meaning. Anything else raises ``InvalidArgument``.
_Metric = Literal["l2", "ip", "cosine"]
#: Allowed ids (the backend's ids): a non-empty 1-D integer array or
#: sequence; ids the collection does not hold are ignored.
_Filter = Optional[npt.ArrayLike]

def cpu_features() -> Dict[str, Union[bool, str]]:
    """CPU architecture and SIMD features detected at run time."""

def set_num_threads(n: int) -> None:
    """Sets the size of this wheel's thread pool from now on (1 to 1024).

    Like ``faiss.omp_set_num_threads``; overrides ``RUVECTOR_NUM_THREADS``.
    Calls already running finish on the old pool. Raises
    :class:`ruvector_common.errors.InvalidArgument` outside 1..1024.
    """

def get_num_threads() -> int:
    """The size of this wheel's thread pool: the value set by
    :func:`set_num_threads`, else ``RUVECTOR_NUM_THREADS``, else the CPU count."""

def runtime_info() -> Dict[str, Any]:
    """State of this wheel's tokio runtime and thread pool (started lazily)."""

def _crate_read_bundle(dir: _Path) -> str:
    """Test hook: verify a sidecar with the crate's own reader; its witness."""

def _crate_write_bundle(
    dir: _Path, data_ref: str, dim: int, rotation_seed: int, rerank_factor: int, generation: int
) -> str:
    """Test hook: write a sidecar with the crate's own writer; its witness."""

@final
class LocalBackend:
    """An in-memory backend; every ``upsert`` (and ``remove`` of a row) bumps the collection's generation."""

    def __new__(cls, name: str) -> LocalBackend: ...
    def upsert(self, collection: str, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        """Insert or replace rows (``(n, dim)`` floats, ``n`` unique u64 ids); all or nothing."""
    @property
    def name(self) -> str: ...
    def collections(self) -> List[str]: ...
    def remove(self, collection: str, ids: npt.ArrayLike) -> int:
        """Remove the rows of ``ids`` (1-D u64 ids; unknown ones ignored) and
        return how many went. Removing any bumps the generation: a ``FRESH``
        lake re-primes and never returns them again. ``NotFound`` if there
        is no such collection."""
    def count(self, collection: str) -> int:
        """Vectors in ``collection`` (``NotFound`` if absent)."""

@final
class FsBackend:
    """A backend over ``ruvec1`` files in ``root`` (the crate's format)."""

    def __new__(cls, name: str, root: _Path) -> FsBackend: ...
    def write(
        self, collection: str, ids: npt.ArrayLike, vectors: npt.ArrayLike, *, filename: Optional[str] = None
    ) -> str:
        """Write ``root/filename`` (default ``<collection>.ruvec``) atomically and register it."""
    def register(self, collection: str, filename: str) -> None:
        """Map ``collection`` to an existing file inside ``root``."""
    @property
    def name(self) -> str: ...
    @property
    def root(self) -> str: ...
    def collections(self) -> List[str]: ...

@final
class Bundle:
    """A ruLake bundle (``table.rulake.json``) and its SHAKE-256 witness."""

    @staticmethod
    def read(dir: _Path) -> Bundle:
        """Read and verify ``dir/table.rulake.json``."""
    @staticmethod
    def from_json(text: str) -> Bundle:
        """Parse (the witness is not checked; see :meth:`verify`)."""
    def to_json(self) -> str: ...
    def write(self, dir: _Path) -> str:
        """Write ``dir/table.rulake.json`` atomically; its path."""
    def verify(self) -> bool:
        """Whether the witness matches the other fields."""
    @property
    def witness(self) -> str: ...
    @property
    def data_ref(self) -> str: ...
    @property
    def dim(self) -> int: ...
    @property
    def rotation_seed(self) -> int: ...
    @property
    def rerank_factor(self) -> int: ...
    @property
    def format_version(self) -> int: ...
    @property
    def generation(self) -> Union[int, str]: ...
    @property
    def pii_policy(self) -> Optional[str]: ...
    @property
    def lineage_id(self) -> Optional[str]: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __ne__(self, other: object, /) -> bool: ...

@final
class LakeSession:
    """A consistent view: each pair is resolved once, then served from that entry."""

    def search_one(
        self,
        backend: str,
        collection: str,
        query: npt.ArrayLike,
        k: Optional[_Int] = None,
        *,
        rerank_factor: Optional[_Int] = None,
        metric: Optional[_Metric] = None,
        filter: _Filter = None,
    ) -> List[LakeHit]: ...
    def search_federated(
        self,
        targets: _Targets,
        query: npt.ArrayLike,
        k: Optional[_Int] = None,
        *,
        rerank_factor: Optional[_Int] = None,
        metric: Optional[_Metric] = None,
        filter: _Filter = None,
    ) -> List[LakeHit]: ...
    def search_batch(
        self,
        backend: str,
        collection: str,
        queries: npt.ArrayLike,
        k: Optional[_Int] = None,
        *,
        rerank_factor: Optional[_Int] = None,
        metric: Optional[_Metric] = None,
        filter: _Filter = None,
    ) -> _Batch: ...
    def witness(self, backend: str, collection: str) -> Optional[str]: ...
    @property
    def closed(self) -> bool: ...
    def close(self) -> None: ...
    def __enter__(self) -> LakeSession: ...
    def __exit__(self, *args: object) -> bool: ...

@final
class RuLakeBuilder:
    """Collects settings, then :meth:`build` makes the lake (and checks them)."""

    def __init__(self) -> None: ...
    def rerank_factor(self, value: _Int) -> RuLakeBuilder:
        """Exact-rerank width of every cached index (1..1024, default 20)."""
    def rotation_seed(self, value: _Int) -> RuLakeBuilder:
        """Seed of the random rotation (0..2**64-1, default 42)."""
    def max_cache_entries(self, value: Optional[_Int]) -> RuLakeBuilder:
        """Most cached indexes; the least recently used is evicted (default: no limit)."""
    def consistency(self, mode: Consistency, *, ttl_ms: Optional[_Int] = None) -> RuLakeBuilder:
        """Coherence mode; ``ttl_ms`` is required for ``Consistency.EVENTUAL`` only."""
    def build(self) -> RuLake:
        """The configured lake (``InvalidArgument`` names a bad setting)."""

@final
class RuLake:
    """A cache-first vector fabric over registered backends."""

    def __new__(
        cls,
        *,
        rerank_factor: Optional[_Int] = None,
        rotation_seed: Optional[_Int] = None,
        max_cache_entries: Optional[_Int] = None,
        consistency: Optional[Consistency] = None,
        ttl_ms: Optional[_Int] = None,
    ) -> RuLake: ...
    @staticmethod
    def builder() -> RuLakeBuilder: ...
    def register_backend(self, backend: Union[LocalBackend, FsBackend, BackendAdapter]) -> None: ...
    @property
    def backends(self) -> List[str]: ...
    @property
    def rerank_factor(self) -> int: ...
    @property
    def rotation_seed(self) -> int: ...
    @property
    def max_cache_entries(self) -> Optional[int]: ...
    @property
    def consistency(self) -> Consistency: ...
    @property
    def ttl_ms(self) -> Optional[int]: ...
    def search_one(
        self,
        backend: str,
        collection: str,
        query: npt.ArrayLike,
        k: Optional[_Int] = None,
        *,
        rerank_factor: Optional[_Int] = None,
        metric: Optional[_Metric] = None,
        filter: _Filter = None,
    ) -> List[LakeHit]:
        """The ``k`` best vectors of one collection by ``metric``, best first.

        ``metric="l2"`` (default): squared L2, ascending (the crate's
        results); ``"ip"``: inner product, descending; ``"cosine"``: cosine
        similarity, descending. The first search of an entry with ``"ip"``
        or ``"cosine"`` builds that metric's index from the entry's vectors
        (once; Ctrl-C stops it): cosine a ``RabitqPlusIndex`` (1-bit scan +
        exact rerank), ip a ``FlatF32Index`` up to 20,000 rows (exact) and
        an ``IvfRabitqIndex`` above (MIPS). ``filter``: only these of the
        backend's ids may be returned, applied inside the scan, so
        ``min(k, allowed ids held)`` hits come back.
        """
    async def search_one_async(
        self,
        backend: str,
        collection: str,
        query: npt.ArrayLike,
        k: Optional[_Int] = None,
        *,
        rerank_factor: Optional[_Int] = None,
        metric: Optional[_Metric] = None,
        filter: _Filter = None,
    ) -> List[LakeHit]:
        """Awaitable :meth:`search_one`, on the wheel's tokio runtime."""
    def search_federated(
        self,
        targets: _Targets,
        query: npt.ArrayLike,
        k: Optional[_Int] = None,
        *,
        rerank_factor: Optional[_Int] = None,
        metric: Optional[_Metric] = None,
        filter: _Filter = None,
    ) -> List[LakeHit]:
        """Search several ``(backend, collection)`` pairs in parallel and merge
        best first by ``metric`` (``filter`` holds real ids of any backend)."""
    async def search_federated_async(
        self,
        targets: _Targets,
        query: npt.ArrayLike,
        k: Optional[_Int] = None,
        *,
        rerank_factor: Optional[_Int] = None,
        metric: Optional[_Metric] = None,
        filter: _Filter = None,
    ) -> List[LakeHit]:
        """Awaitable :meth:`search_federated`."""
    def search_batch(
        self,
        backend: str,
        collection: str,
        queries: npt.ArrayLike,
        k: Optional[_Int] = None,
        *,
        rerank_factor: Optional[_Int] = None,
        metric: Optional[_Metric] = None,
        filter: _Filter = None,
    ) -> _Batch:
        """``(ids uint64, scores float32)`` of shape ``(nq, min(k, m))``, ``m``
        the rows the search may return (all, or those ``filter`` allows); one
        coherence check. A row with fewer hits (possible only for an
        approximate filtered search) is padded with id ``2**64 - 1`` (``-1``
        as uint64) and the metric's worst score (``inf`` for ``l2``,
        ``-inf`` for ``ip`` / ``cosine``)."""
    async def search_batch_async(
        self,
        backend: str,
        collection: str,
        queries: npt.ArrayLike,
        k: Optional[_Int] = None,
        *,
        rerank_factor: Optional[_Int] = None,
        metric: Optional[_Metric] = None,
        filter: _Filter = None,
    ) -> _Batch:
        """Awaitable :meth:`search_batch`."""
    def current_bundle(self, backend: str, collection: str) -> Bundle:
        """The backend's current bundle."""
    def publish_bundle(self, backend: str, collection: str, dir: _Path) -> Bundle:
        """Write the backend's current bundle to ``dir/table.rulake.json``."""
    def refresh_from_bundle_dir(self, backend: str, collection: str, dir: _Path) -> RefreshResult:
        """Drop the cached entry if the bundle published in ``dir`` differs."""
    def witness(self, backend: str, collection: str) -> Optional[str]:
        """Witness of the cached entry, or ``None``."""
    def cached_bundle(self, backend: str, collection: str) -> Optional[Bundle]:
        """Bundle the cached entry was built from, or ``None``."""
    def invalidate_cache(self, backend: str, collection: str) -> bool:
        """Drop the cached entry; whether there was one."""
    def cache_stats(self) -> CacheStats: ...
    def cache_stats_by_backend(self) -> Dict[str, BackendStats]: ...
    def cache_stats_by_collection(self) -> Dict[Tuple[str, str], BackendStats]: ...
    @property
    def cache_entry_count(self) -> int: ...
    def save_cache_to_dir(self, backend: str, collection: str, dir: _Path) -> str:
        """Save the cached entry (ids, vectors, its own bundle) atomically; the cache file's path."""
    def warm_from_dir(self, backend: str, collection: str, dir: _Path) -> int:
        """Install a saved entry after checking all of it (sizes, CRC, witness,
        every vector, every saved code); the number of vectors."""
    def session(self) -> LakeSession: ...
    def __contains__(self, key: object, /) -> bool: ...
