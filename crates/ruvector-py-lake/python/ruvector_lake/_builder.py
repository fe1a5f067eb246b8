"""``RuLake.builder()``: a chainable way to configure a lake."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional

from ._types import Consistency

if TYPE_CHECKING:
    from ._native import RuLake


class RuLakeBuilder:
    """Collects settings, then :meth:`build` makes the lake (and checks them).

    >>> import ruvector_lake as rl
    >>> lake = rl.RuLake.builder().rerank_factor(10).consistency(rl.Consistency.FROZEN).build()
    >>> lake.rerank_factor, lake.consistency
    (10, <Consistency.FROZEN: 'frozen'>)
    """

    def __init__(self) -> None:
        self._settings: Dict[str, Any] = {}

    def rerank_factor(self, value: int) -> RuLakeBuilder:
        """Exact-rerank width of every cached index (1..1024, default 20)."""
        self._settings["rerank_factor"] = value
        return self

    def rotation_seed(self, value: int) -> RuLakeBuilder:
        """Seed of the random rotation (0..2**64-1, default 42)."""
        self._settings["rotation_seed"] = value
        return self

    def max_cache_entries(self, value: Optional[int]) -> RuLakeBuilder:
        """Most cached indexes; the least recently used is evicted (default: no limit)."""
        self._settings["max_cache_entries"] = value
        return self

    def consistency(self, mode: Consistency, *, ttl_ms: Optional[int] = None) -> RuLakeBuilder:
        """Coherence mode; ``ttl_ms`` is required for ``Consistency.EVENTUAL`` only."""
        self._settings["consistency"] = mode
        self._settings["ttl_ms"] = ttl_ms
        return self

    def build(self) -> RuLake:
        """The configured lake (``InvalidArgument`` names a bad setting)."""
        from ._native import RuLake

        return RuLake(**self._settings)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._settings.items())
        return f"RuLakeBuilder({args})"


__all__ = ["RuLakeBuilder"]
