"""ruLake in a few lines: register backends, search (sync and asyncio),
publish a bundle, and restart warm.

Run: python examples/lake_quickstart.py
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any, List, Tuple

import numpy as np
import numpy.typing as npt

import ruvector_lake as rl


class DictStore(rl.BackendAdapter):
    """Your own store: ruLake calls pull() on a miss, generation() on checks."""

    def __init__(self, name: str, ids: npt.NDArray[np.uint64], vectors: npt.NDArray[np.float32]) -> None:
        super().__init__(name)
        self.ids, self.vectors, self.version = ids, vectors, 1

    def pull(self, collection: str) -> Tuple[Any, Any]:
        return self.ids, self.vectors

    def generation(self, collection: str) -> int:
        return self.version


def main() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((20_000, 128), dtype=np.float32)
    # Full unsigned 64-bit ids (unique).
    ids = np.unique(rng.integers(0, 2**64 - 1, size=40_000, dtype=np.uint64, endpoint=True))[:20_000]
    rng.shuffle(ids)

    hot = rl.LocalBackend("hot")
    hot.upsert("docs", ids[:10_000], vectors[:10_000])
    mine = DictStore("mine", ids[10_000:], vectors[10_000:])

    lake = (
        rl.RuLake.builder()
        .rerank_factor(20)
        .rotation_seed(42)
        .max_cache_entries(16)
        .consistency(rl.Consistency.FRESH)
        .build()
    )
    lake.register_backend(hot)
    lake.register_backend(mine)

    query = vectors[12_345]
    hits: List[rl.LakeHit] = lake.search_federated("docs", query, k=5)
    print("federated:", [(h.backend, h.id, round(h.score, 3)) for h in hits])
    assert hits[0].id == int(ids[12_345]) and hits[0].backend == "mine"

    async def many() -> List[List[rl.LakeHit]]:
        return await asyncio.gather(*(lake.search_one_async("hot", "docs", vectors[i], k=3) for i in range(100)))

    results = asyncio.run(many())
    print("async:", len(results), "searches, first top-1:", results[0][0].id)

    batch_ids, batch_scores = lake.search_batch("hot", "docs", vectors[:8], k=3)
    print("batch:", batch_ids.shape, batch_scores.dtype)

    with tempfile.TemporaryDirectory() as tmp:
        published = lake.publish_bundle("hot", "docs", Path(tmp) / "bundle")
        print("witness:", published.witness[:16], "...")
        hot.upsert("docs", ids[:1], vectors[1:2])  # the data moves on
        lake.publish_bundle("hot", "docs", Path(tmp) / "bundle")
        print("refresh:", lake.refresh_from_bundle_dir("hot", "docs", Path(tmp) / "bundle"))

        lake.search_one("hot", "docs", query)
        lake.save_cache_to_dir("hot", "docs", Path(tmp) / "cache")
        restarted = rl.RuLake()
        restarted.register_backend(hot)
        n = restarted.warm_from_dir("hot", "docs", Path(tmp) / "cache")
        print("warm restart:", n, "vectors;", restarted.cache_stats())

    print("stats:", lake.cache_stats_by_backend())


if __name__ == "__main__":
    main()
