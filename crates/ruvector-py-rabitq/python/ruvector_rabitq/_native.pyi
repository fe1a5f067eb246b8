"""Type stubs for the compiled module ``ruvector_rabitq._native``.

Vector arguments (``vectors``, ``vector``, ``query``, ``queries``): a
C-contiguous, aligned float32 array is read without a copy; float16 and
float64 arrays and buffers (``memoryview``, ``array.array``) are converted
to float32 once (a copy), as are plain sequences of numbers; other dtypes
raise ``InvalidArgument``. Paths are ``str`` or ``os.PathLike[str]``
(anything else, ``bytes`` included, raises ``TypeError``; a path with a lone
surrogate raises ``InvalidArgument``). ``build``, ``add_batch``,
``search_batch`` and ``load`` stop at Ctrl-C: ``KeyboardInterrupt`` arrives
while they run, and an interrupted ``add_batch`` has changed nothing.
"""

import os
from typing import Any, Dict, List, Literal, Optional, Tuple, TypeVar, Union, final

import numpy as np
import numpy.typing as npt
from typing_extensions import disjoint_base

from ._types import SearchHit

__all__ = [
    "__version__",
    "_error_classes",
    "cpu_features",
    "runtime_info",
    "set_num_threads",
    "get_num_threads",
    "_IndexBase",
    "FlatF32Index",
    "RabitqIndex",
    "RabitqPlusIndex",
    "RabitqAsymIndex",
    "IvfRabitqIndex",
    "VectorIter",
    "IdSet",
    "MAX_K",
    "MAX_DIM",
    "MAX_HAAR_DIM",
    "MAX_RERANK_FACTOR",
    "MAX_VECTORS",
    "MAX_NLIST",
]

__version__: str
#: Names of the ``ruvector_common.errors`` classes this module raises
#: (checked against ``ruvector_common`` at import).
_error_classes: List[str]
MAX_DIM: int
MAX_HAAR_DIM: int
MAX_RERANK_FACTOR: int
MAX_VECTORS: int
MAX_NLIST: int
MAX_K: int

_Self = TypeVar("_Self", bound="_IndexBase")
#: Exactly what path parameters accept (``bytes`` paths are a ``TypeError``).
_Path = Union[str, "os.PathLike[str]"]
_Int = Union[int, np.integer[Any]]
_F32Matrix = npt.NDArray[np.float32]
_IdArray = npt.NDArray[np.int64]
#: What an index ranks by (see :attr:`_IndexBase.metric`).
_Metric = Literal["l2", "ip", "cosine"]
#: ``filter=``: an :class:`IdSet`, or a 1-D int64/uint64 array or sequence of ids.
_Filter = Union["IdSet", npt.ArrayLike]

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

@disjoint_base
class _IndexBase:
    """Behaviour shared by the index classes (see :class:`AnyIndex`).

    ``nprobe`` (per call) applies to :class:`IvfRabitqIndex` only;
    ``rerank_factor`` to the kinds that rerank.

    ``k`` is an int from 1 to :data:`MAX_K` (bools refused); ``k`` above the
    vectors held is fine: a search returns ``min(k, available)`` hits and
    batch rows are padded to ``k`` with id ``-1`` and score ``+inf``.
    Searching an index without vectors raises ``EmptyIndex``.

    ``filter`` restricts hits to the given ids, applied inside the scan (not
    by dropping hits afterwards): an :class:`IdSet` (reusable) or a 1-D
    int64/uint64 array or sequence of ids from 0 to the kind's largest id
    (ids not held are ignored; negative ids, other dtypes or 2-D raise
    ``InvalidArgument``). An empty filter gives no hits (an all-padded batch).
    """

    def search(
        self,
        query: npt.ArrayLike,
        k: _Int,
        *,
        rerank_factor: Optional[_Int] = None,
        nprobe: Optional[_Int] = None,
        filter: Optional[_Filter] = None,
    ) -> List[SearchHit]:
        """The ``min(k, available)`` best stored vectors (among ``filter``), best first:
        ascending squared L2 distance for ``metric="l2"``, descending inner product or cosine
        similarity for ``"ip"``/``"cosine"``."""

    def search_batch(
        self,
        queries: npt.ArrayLike,
        k: _Int,
        *,
        rerank_factor: Optional[_Int] = None,
        nprobe: Optional[_Int] = None,
        filter: Optional[_Filter] = None,
    ) -> Tuple[_IdArray, npt.NDArray[np.float32]]:
        """Searches each row in parallel (GIL released): ``(ids, scores)`` of shape ``(nq, k)``,
        padded with ``-1`` / ``+inf``."""

    async def search_async(
        self,
        query: npt.ArrayLike,
        k: _Int,
        *,
        rerank_factor: Optional[_Int] = None,
        nprobe: Optional[_Int] = None,
        filter: Optional[_Filter] = None,
    ) -> List[SearchHit]:
        """Awaitable :meth:`search`, run on the wheel's runtime."""

    async def search_batch_async(
        self,
        queries: npt.ArrayLike,
        k: _Int,
        *,
        rerank_factor: Optional[_Int] = None,
        nprobe: Optional[_Int] = None,
        filter: Optional[_Filter] = None,
    ) -> Tuple[_IdArray, npt.NDArray[np.float32]]:
        """Awaitable :meth:`search_batch`."""

    def add(self, id: _Int, vector: npt.ArrayLike) -> None:
        """Adds one vector; the index is unchanged on error."""

    def add_batch(self, vectors: npt.ArrayLike, ids: Optional[npt.ArrayLike] = None) -> None:
        """Adds the rows of ``vectors``; ids default to ``len(self)..``, or to one above the
        largest id held when one of those is held (after removals); all or nothing (also when
        interrupted by Ctrl-C)."""

    def remove(self, ids: npt.ArrayLike) -> int:
        """Removes the vectors of ``ids`` (ids not held are ignored); returns how many were
        removed. Physical: ``len``, ``ids``, iteration and ``save`` agree at once."""

    def upsert(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        """Replaces the vectors of held ids and adds the others (upserted rows come last);
        all or nothing (NaN, shape, repeated ids)."""

    def __delitem__(self, id: _Int, /) -> None:
        """``del idx[id]``; ``NotFound`` (a ``KeyError``) if ``id`` is not held."""

    def compact(self) -> None:
        """Gives back memory not in use after removals."""

    def __len__(self) -> int: ...
    @property
    def dim(self) -> int:
        """Dimension of the stored vectors."""
    @property
    def memory_bytes(self) -> int:
        """Bytes held: codes, rotation, kept vectors, ids."""
    @property
    def seed(self) -> Optional[int]:
        """Seed of the random rotation (``None`` for :class:`FlatF32Index`)."""
    @property
    def rerank_factor(self) -> int:
        """Candidates per result reranked exactly (1 = none); settable on Plus/Asym/Ivf."""
    @rerank_factor.setter
    def rerank_factor(self, value: _Int) -> None: ...
    @property
    def metric(self) -> _Metric:
        """What the index ranks by, fixed at construction: ``"l2"`` (scores are squared L2
        distances, ascending), ``"ip"`` (inner products of the vectors as given, descending:
        MIPS; :class:`FlatF32Index` and :class:`IvfRabitqIndex` only) or ``"cosine"`` (cosine
        similarities, descending; vectors are stored normalised, so ``index[id]`` is the unit
        vector)."""
    @property
    def rotation(self) -> Optional[str]:
        """``"haar"`` or ``"hadamard"``; ``None`` for :class:`FlatF32Index`."""
    @property
    def keeps_vectors(self) -> bool:
        """Whether original vectors are kept (indexing, iteration, arrays, save)."""
    @property
    def ids(self) -> _IdArray:
        """Stored ids in insertion order (a copy)."""
    def __contains__(self, id: object, /) -> bool: ...
    def __getitem__(self, id: _Int, /) -> npt.NDArray[np.float32]:
        """Read-only view of the stored vector of ``id`` (no copy)."""
    def __iter__(self) -> VectorIter:
        """``(id, vector)`` pairs over a snapshot, in insertion order."""
    def __array__(self, dtype: Optional[npt.DTypeLike] = None, copy: Optional[bool] = None) -> _F32Matrix:
        """``numpy.asarray(idx)``: the read-only ``(n, dim)`` matrix, no copy."""
    def __eq__(self, other: object, /) -> bool: ...
    def __ne__(self, other: object, /) -> bool: ...
    def save(self, path: _Path, *, crate_format: bool = True, compress: bool = False) -> None:
        """Saves atomically (temp file, fsync, rename); removes the temporaries
        that killed saves of the same file left behind.

        A RabitqPlusIndex with the Haar rotation and metric ``"l2"`` is
        written in the Rust crate's layout (which the crate reads) unless
        ``crate_format=False``; everything else in the SDK's ``.rbpx``
        version 2 layout, the one ``load(path, mmap=True)`` can map.

        ``compress=True`` writes version 2 with the float32 vectors
        compressed losslessly (about 0.85 of their bytes for embeddings,
        every bit kept, decoded in parallel on load); such a file loads
        only without ``mmap=True`` (else :class:`PersistError` says so) and
        the crate cannot read it. A kind that keeps no vectors has nothing
        to compress and is written as usual."""
    # ── serialisation ────────────────────────────────────────────────────
    def to_bytes(self) -> bytes:
        """The index as bytes (the ``.rbpx`` version 2 layout, CRC-checked),
        for :meth:`from_bytes`: one copy, written with the GIL released.
        Never compressed (:meth:`from_bytes` also reads the bytes of a file
        saved with ``compress=True``)."""
    @classmethod
    def from_bytes(cls: type[_Self], data: Any) -> _Self:
        """An index from :meth:`to_bytes` output, given as any C-contiguous
        buffer (``bytes``, ``bytearray``, ``memoryview``,
        ``pickle.PickleBuffer``, ``mmap``). The bytes must hold this class's
        kind (else :class:`PersistError` naming both; on ``_IndexBase`` any
        kind). Damaged bytes raise :class:`PersistError`. The vectors are
        copied into the index."""
    def __reduce_ex__(self, protocol: Any) -> Tuple[Any, Tuple[Any]]:
        """Pickles by value as ``type(self).from_bytes(self.to_bytes())``;
        with protocol 5 the bytes are a ``pickle.PickleBuffer`` (out-of-band
        with a ``buffer_callback``, so a big index is not copied into the
        stream)."""
    def __copy__(self: _Self) -> _Self:
        """An independent index with equal contents (same as ``deepcopy``;
        a mapped index's copy holds its vectors in memory)."""
    def __deepcopy__(self: _Self, memo: Any) -> _Self:
        """See :meth:`__copy__`."""
    @property
    def mapped(self) -> bool:
        """Whether the vectors are mapped read-only from a file
        (``load(path, mmap=True)``). The first change to a mapped index copies
        what it changes (its vectors, an IVF list's codes) into memory ("copy
        first"); the file is never written."""

@final
class VectorIter:
    """Iterator over the ``(id, vector)`` pairs of an index snapshot, in
    insertion order (what iterating an index gives)."""

    def __iter__(self) -> VectorIter: ...
    def __next__(self) -> Tuple[int, npt.NDArray[np.float32]]: ...

@final
class IdSet:
    """A precompiled, reusable set of allowed ids for ``filter=`` (sorted, unique)."""

    def __new__(cls, ids: npt.ArrayLike) -> IdSet: ...
    def __len__(self) -> int: ...
    def __contains__(self, id: object, /) -> bool: ...
    @property
    def ids(self) -> _IdArray:
        """The ids, ascending (a copy)."""

@final
class FlatF32Index(_IndexBase):
    """Exact brute force over float32 vectors.

    Trade-off: exact answers and ids up to 2**63-1, at O(n·dim) per query and
    4·dim bytes per vector. Best below a few tens of thousands of vectors,
    and as ground truth.
    """

    # The index classes share one constructor signature: FlatF32Index takes
    # seed, rerank_factor and rotation as None only (a value raises
    # InvalidArgument: it is exact and does not rerank).
    def __new__(
        cls,
        dim: _Int,
        *,
        seed: None = None,
        rerank_factor: None = None,
        rotation: None = None,
        metric: Optional[_Metric] = None,
    ) -> FlatF32Index: ...
    @classmethod
    def build(
        cls,
        vectors: npt.ArrayLike,
        ids: Optional[npt.ArrayLike] = None,
        *,
        seed: None = None,
        rerank_factor: None = None,
        rotation: None = None,
        metric: Optional[_Metric] = None,
    ) -> FlatF32Index: ...
    @classmethod
    def load(cls, path: _Path, *, mmap: bool = False) -> FlatF32Index:
        """Loads a saved index; the peak memory of a load is about the index's
        size. ``mmap=True`` maps the vectors read-only from a version 2 file
        (processes that map one file share one copy; the whole file is checked
        first, then its pages are let go, so the vectors are not resident
        until searches touch them; a version 1 file, or one saved with
        ``compress=True``, raises :class:`PersistError`)."""

@final
class RabitqIndex(_IndexBase):
    """1-bit RaBitQ codes only, no rerank.

    Trade-off: the smallest (about dim/8 bytes per vector) and fastest scan,
    but estimated distances only: recall@10 is low (about 0.1-0.4). Keeps no
    original vectors, so it cannot be indexed or iterated (it saves its codes).
    """

    # rerank_factor: None only (a value raises InvalidArgument: no rerank).
    def __new__(
        cls,
        dim: _Int,
        *,
        seed: Optional[_Int] = None,
        rerank_factor: None = None,
        rotation: Optional[str] = None,
        metric: Optional[_Metric] = None,
    ) -> RabitqIndex: ...
    @classmethod
    def build(
        cls,
        vectors: npt.ArrayLike,
        ids: Optional[npt.ArrayLike] = None,
        *,
        seed: Optional[_Int] = None,
        rerank_factor: None = None,
        rotation: Optional[str] = None,
        metric: Optional[_Metric] = None,
    ) -> RabitqIndex: ...
    @classmethod
    def load(cls, path: _Path, *, mmap: bool = False) -> RabitqIndex:
        """Loads a saved index; the peak memory of a load is about the index's
        size. ``mmap=True`` maps the vectors read-only from a version 2 file
        (processes that map one file share one copy; the whole file is checked
        first, then its pages are let go, so the vectors are not resident
        until searches touch them; a version 1 file, or one saved with
        ``compress=True``, raises :class:`PersistError`)."""

@final
class RabitqPlusIndex(_IndexBase):
    """1-bit RaBitQ scan, then exact float32 rerank of ``k·rerank_factor`` candidates.

    Trade-off: the recommended index. Scan speed of 1-bit codes with exact
    final distances; recall rises with ``rerank_factor`` (20 gives recall@10
    near 1.0 on 128-d clustered data) at the cost of keeping the float32
    vectors. Saved files are read by the Rust crate too (Haar rotation).
    """

    def __new__(
        cls,
        dim: _Int,
        *,
        seed: Optional[_Int] = None,
        rerank_factor: Optional[_Int] = None,
        rotation: Optional[str] = None,
        metric: Optional[_Metric] = None,
    ) -> RabitqPlusIndex: ...
    @classmethod
    def build(
        cls,
        vectors: npt.ArrayLike,
        ids: Optional[npt.ArrayLike] = None,
        *,
        seed: Optional[_Int] = None,
        rerank_factor: Optional[_Int] = None,
        rotation: Optional[str] = None,
        metric: Optional[_Metric] = None,
    ) -> RabitqPlusIndex: ...
    @classmethod
    def load(cls, path: _Path, *, mmap: bool = False) -> RabitqPlusIndex:
        """Loads a saved index; the peak memory of a load is about the index's
        size. ``mmap=True`` maps the vectors read-only from a version 2 file
        (processes that map one file share one copy; the whole file is checked
        first, then its pages are let go, so the vectors are not resident
        until searches touch them; a version 1 file, or one saved with
        ``compress=True``, raises :class:`PersistError`)."""

@final
class RabitqAsymIndex(_IndexBase):
    """Float32 query against 1-bit codes (the RaBitQ-2024 asymmetric estimator).

    Trade-off: better estimates than the symmetric 1-bit scan but O(dim) per
    candidate, about 100x slower than :class:`RabitqPlusIndex` at n=100k.
    ``rerank_factor`` > 1 keeps the vectors and reranks exactly. Haar only.
    """

    def __new__(
        cls,
        dim: _Int,
        *,
        seed: Optional[_Int] = None,
        rerank_factor: Optional[_Int] = None,
        rotation: Optional[str] = None,
        metric: Optional[_Metric] = None,
    ) -> RabitqAsymIndex: ...
    @classmethod
    def build(
        cls,
        vectors: npt.ArrayLike,
        ids: Optional[npt.ArrayLike] = None,
        *,
        seed: Optional[_Int] = None,
        rerank_factor: Optional[_Int] = None,
        rotation: Optional[str] = None,
        metric: Optional[_Metric] = None,
    ) -> RabitqAsymIndex: ...
    @classmethod
    def load(cls, path: _Path, *, mmap: bool = False) -> RabitqAsymIndex:
        """Loads a saved index; the peak memory of a load is about the index's
        size. ``mmap=True`` maps the vectors read-only from a version 2 file
        (processes that map one file share one copy; the whole file is checked
        first, then its pages are let go, so the vectors are not resident
        until searches touch them; a version 1 file, or one saved with
        ``compress=True``, raises :class:`PersistError`)."""

@final
class IvfRabitqIndex(_IndexBase):
    """IVF lists over 1-bit RaBitQ codes of residuals, then exact rerank.

    Trade-off: sub-linear search. A query visits only the ``nprobe`` lists
    whose k-means centroids are nearest, scores their 1-bit codes against
    the query with FastScan tables, and reranks ``k·rerank_factor``
    candidates exactly, so returned scores are exact squared L2 distances.
    The index for 100k to millions of vectors; keeps the float32 vectors;
    ids up to 2**63-1. The lists are trained on the first batch added
    (``build``): later adds go to the nearest list, so they should come from
    the same distribution. Recall rises with ``nprobe`` and
    ``rerank_factor``. The default ``rotation="hadamard"`` is the SDK's
    randomised Hadamard transform of the vector zero-padded to a power of
    two, keeping every padded coordinate, so it is exactly orthogonal for
    any ``dim`` (the crate's Hadamard truncates and is not); ``"haar"`` is
    the crate's dense ``dim x dim`` rotation (slower to apply, ``dim`` <=
    2048). :meth:`search_batch` scans each probed list once for a group of
    up to 128 queries while its codes are in cache, so a batch costs less
    per query than single searches; its hits are those of one
    :meth:`search` per row.

    ``spill=True`` (the default for ``"l2"`` and ``"cosine"``; ``"ip"``
    refuses it) also keeps every vector in a second list:
    of the other lists, the one whose residual is least parallel to the
    residual in the first (SOAR's spilled assignment). A neighbour that
    sits across the border of the query's nearest lists is then usually in
    one of them anyway, so far fewer lists reach a recall (on MiniLM
    embeddings of Debian package texts, 16 lists instead of 64 for
    recall@10 0.95), for twice the list codes (about 60 bytes more a
    vector, a few % of the float32 rows) and a somewhat longer build. A
    vector found in two lists is one hit. ``spill=False`` keeps one copy:
    the leanest memory (as with ``load(path, lean=True)``).

    >>> import numpy as np, ruvector_rabitq as rr
    >>> x = np.random.default_rng(0).standard_normal((5000, 32), dtype=np.float32)
    >>> idx = rr.IvfRabitqIndex.build(x, nlist=64, nprobe=8)
    >>> idx.search(x[3], k=1)[0].id
    3
    """

    def __new__(
        cls,
        dim: _Int,
        *,
        nlist: Optional[_Int] = None,
        nprobe: Optional[_Int] = None,
        seed: Optional[_Int] = None,
        rerank_factor: Optional[_Int] = None,
        rotation: Optional[str] = None,
        metric: Optional[_Metric] = None,
        spill: Optional[bool] = None,
    ) -> IvfRabitqIndex: ...
    @classmethod
    def build(
        cls,
        vectors: npt.ArrayLike,
        ids: Optional[npt.ArrayLike] = None,
        *,
        nlist: Optional[_Int] = None,
        nprobe: Optional[_Int] = None,
        seed: Optional[_Int] = None,
        rerank_factor: Optional[_Int] = None,
        rotation: Optional[str] = None,
        metric: Optional[_Metric] = None,
        spill: Optional[bool] = None,
    ) -> IvfRabitqIndex: ...
    @classmethod
    def load(cls, path: _Path, *, mmap: bool = False, lean: bool = False) -> IvfRabitqIndex:
        """Loads a saved index; the peak memory of a load is about the index's
        size. ``mmap=True`` maps the vectors and the lists' codes read-only
        from a version 2 file (processes that map one file share one copy; the
        whole file is checked first, then its pages are let go, so the index
        is not resident until searches touch the probed lists and the reranked
        rows; files saved before the codes were kept in the scan layout map the
        vectors only; a version 1 file, or one saved with ``compress=True``,
        raises :class:`PersistError`).

        ``lean=True`` (implies ``mmap=True``) keeps the float32 vectors out of
        memory altogether: an 8-bit copy of them (a quarter of their size)
        orders each search's candidates, whose float32 rows are then read from
        the file in that order (``pread``, so they never become resident) and
        scored exactly until the 8-bit error bound proves that no unread
        candidate can enter the top ``k`` (about ``1.3·k`` reads on real
        embeddings). The hits and their exact scores are those of
        ``mmap=True`` (ties aside), and resident memory stays near a quarter
        of the vectors plus the list codes however many searches run. The
        first change (``add``, ``remove``, ``upsert``) makes it an ordinary
        in-memory index (:attr:`lean` turns ``False``).

        >>> import numpy as np, tempfile, os, ruvector_rabitq as rr
        >>> x = np.random.default_rng(0).standard_normal((2000, 32), dtype=np.float32)
        >>> path = os.path.join(tempfile.mkdtemp(), "ivf.rbpx")
        >>> rr.IvfRabitqIndex.build(x).save(path)
        >>> lean = rr.IvfRabitqIndex.load(path, lean=True)
        >>> lean.lean, lean.search(x[7], k=1)[0].id
        (True, 7)
        """
    @property
    def spill(self) -> bool:
        """Whether every vector is also kept in a second list (set at
        construction, default ``True`` except for ``metric="ip"``; kept by
        ``save``)."""
    @property
    def lean(self) -> bool:
        """Whether searches rank candidates by a resident 8-bit copy and read
        the float32 rows from the file (``load(path, lean=True)``, until the
        first change)."""
    @property
    def nlist(self) -> Optional[int]:
        """Trained lists; before training the requested count, or ``None`` (about sqrt(n))."""
    @property
    def nprobe(self) -> int:
        """Lists visited per query (default 1/8 of the lists, at least 8); settable."""
    @nprobe.setter
    def nprobe(self, value: _Int) -> None: ...
    @property
    def list_sizes(self) -> _IdArray:
        """Entries per list, in list order (an int64 copy); with ``spill=True``
        every vector counts in its two lists, so they sum to twice ``len``."""
