"""Plain-Python types of ruvector_rabitq: search hits and the index protocol."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, Optional, Protocol, Tuple, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


class SearchHit(NamedTuple):
    """One search result: the stored ``id`` and its ``score``.

    ``score`` depends on the index's ``metric`` (exact after rerank,
    estimated from 1-bit codes otherwise): for ``"l2"`` the squared L2
    distance to the query, lower is closer; for ``"ip"`` the inner product
    and for ``"cosine"`` the cosine similarity, higher is closer. Hits come
    best first either way.

    >>> SearchHit(7, 0.25).id
    7
    """

    id: int
    score: float


@runtime_checkable
class AnyIndex(Protocol):
    """What every ruvector_rabitq index offers; ``isinstance(x, AnyIndex)`` works.

    >>> import numpy as np, ruvector_rabitq as rr
    >>> isinstance(rr.FlatF32Index(4), AnyIndex)
    True
    """

    @property
    def dim(self) -> int: ...

    @property
    def memory_bytes(self) -> int: ...

    def __len__(self) -> int: ...

    def search(
        self, query: npt.ArrayLike, k: int, *, rerank_factor: Optional[int] = None, filter: Optional[Any] = None
    ) -> list[SearchHit]: ...

    def search_batch(
        self, queries: npt.ArrayLike, k: int, *, rerank_factor: Optional[int] = None, filter: Optional[Any] = None
    ) -> Tuple[np.ndarray[Any, np.dtype[np.int64]], np.ndarray[Any, np.dtype[np.float32]]]: ...

    def remove(self, ids: npt.ArrayLike) -> int: ...

    def upsert(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None: ...

    def add(self, id: int, vector: npt.ArrayLike) -> None: ...

    def add_batch(self, vectors: npt.ArrayLike, ids: Optional[npt.ArrayLike] = None) -> None: ...

    def __contains__(self, id: object, /) -> bool: ...


__all__ = ["SearchHit", "AnyIndex"]
