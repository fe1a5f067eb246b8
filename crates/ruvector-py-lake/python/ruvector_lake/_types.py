"""Plain-Python types of ruvector_lake: hits, statistics and enums."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, NamedTuple, Optional, Union

if TYPE_CHECKING:
    import numpy.typing as npt


class Consistency(enum.Enum):
    """How strictly a lake checks a backend before answering from its cache.

    * ``FRESH`` — ask the backend for its current bundle on every search;
      re-prime when its witness changed (the default).
    * ``EVENTUAL`` — trust a checked entry for ``ttl_ms`` milliseconds
      (give ``ttl_ms`` to the lake or builder).
    * ``FROZEN`` — check once, at the first search; afterwards only
      ``refresh_from_bundle_dir`` or ``invalidate_cache`` change the entry.

    >>> Consistency.FRESH.value
    'fresh'
    """

    FRESH = "fresh"
    EVENTUAL = "eventual"
    FROZEN = "frozen"


class RefreshResult(enum.Enum):
    """Outcome of ``RuLake.refresh_from_bundle_dir``."""

    UP_TO_DATE = "up_to_date"
    """The published bundle names the cached entry (or nothing is cached)."""
    INVALIDATED = "invalidated"
    """The published bundle differs: the cached entry was dropped."""
    BUNDLE_MISSING = "bundle_missing"
    """No ``table.rulake.json`` in the directory."""


class LakeHit(NamedTuple):
    """One search result: the stored ``id``, its ``score`` (squared L2
    distance, lower is closer) and where it came from.

    The first two fields match ``ruvector_rabitq.SearchHit``.

    >>> LakeHit(7, 0.5, "hot", "docs").backend
    'hot'
    """

    id: int
    score: float
    backend: str
    collection: str


class CacheStats(NamedTuple):
    """Counters of a lake's cache (``RuLake.cache_stats()``)."""

    hits: int
    """Searches answered from an entry that was current (or trusted)."""
    misses: int
    """Coherence checks that found the entry missing or stale."""
    primes: int
    """Entries built from pulled vectors."""
    invalidations: int
    """Entries dropped because no pair pointed at them any more."""
    shared_hits: int
    """Misses resolved by an entry another pair already had (same witness)."""
    evictions: int
    """Entries evicted to honour ``max_cache_entries``."""
    warm_installs: int
    """Entries installed by ``warm_from_dir``."""
    total_prime_ms: float
    """Time spent building entries, in milliseconds."""
    last_prime_ms: float
    """Duration of the latest build, in milliseconds."""
    entries: int
    """Entries cached now."""
    refreshes: int = 0
    """Entries built by applying a backend's ``changes_since`` delta to the
    previous entry (an incremental refresh) instead of a full pull."""
    total_refresh_ms: float = 0.0
    """Time spent applying deltas, in milliseconds."""
    last_refresh_ms: float = 0.0
    """Duration of the latest delta refresh, in milliseconds."""

    @property
    def hit_rate(self) -> Optional[float]:
        """``hits / (hits + misses)``, or ``None`` before the first search."""
        total = self.hits + self.misses
        return None if total == 0 else self.hits / total


class Changes(NamedTuple):
    """What ``BackendAdapter.changes_since`` returns: what changed in a
    collection since a generation.

    ``upserted_ids`` (``n`` unique ids) are the rows inserted or updated
    since then, with their current vectors ``upserted_vectors`` (an
    ``(n, dim)`` float32 array; any empty array when ``n`` is 0);
    ``removed_ids`` the ids deleted since then (ids the lake does not hold
    are ignored; an id may not be both upserted and removed);
    ``generation`` the collection's generation after these changes, exactly
    the token ``generation()`` returns for that state.

    >>> import numpy as np
    >>> c = Changes(np.array([7], dtype=np.uint64), np.ones((1, 4), np.float32), [3], 12)
    >>> c.generation
    12
    """

    upserted_ids: npt.ArrayLike
    upserted_vectors: npt.ArrayLike
    removed_ids: npt.ArrayLike
    generation: Union[int, str]


class BackendStats(NamedTuple):
    """Counters for one backend or one ``(backend, collection)`` pair."""

    hits: int
    misses: int
    primes: int
    invalidations: int
    shared_hits: int

    @property
    def hit_rate(self) -> Optional[float]:
        """``hits / (hits + misses)``, or ``None`` before the first search."""
        total = self.hits + self.misses
        return None if total == 0 else self.hits / total


__all__ = ["BackendStats", "CacheStats", "Changes", "Consistency", "LakeHit", "RefreshResult"]
