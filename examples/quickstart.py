"""Quickstart: build an IVF RaBitQ index over 100k vectors, search it, save it.

Run with ``nox -s demo`` (builds and installs the wheels first), or
``python examples/quickstart.py`` once ``ruvector[rabitq]`` is installed.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

import ruvector


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray[tuple[int, int], np.dtype[np.float32]]:
    """Gaussian clusters: a stand-in for real embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-2.0, 2.0, size=(100, dim))
    rows = centres[rng.integers(0, 100, size=n)] + rng.normal(0.0, 0.3, size=(n, dim))
    return rows.astype(np.float32)


def main() -> None:
    n, dim, k = 100_000, 128, 10
    data = clustered(n + 200, dim)
    vectors, queries = data[:n], data[n:]

    t0 = time.perf_counter()
    index = ruvector.IvfRabitqIndex.build(vectors, seed=42)
    print(f"built {index!r} in {time.perf_counter() - t0:.2f} s")

    hits = index.search(queries[0], k=k)
    print("top 3:", [(h.id, round(h.score, 3)) for h in hits[:3]])

    t0 = time.perf_counter()
    ids, _scores = index.search_batch(queries, k=k)
    batch_s = time.perf_counter() - t0
    exact = ruvector.FlatF32Index.build(vectors)
    truth, _ = exact.search_batch(queries, k=k)
    recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(ids.tolist(), truth.tolist())])
    print(f"{len(queries)} queries in {batch_s * 1000:.1f} ms, recall@{k} = {recall:.3f}")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "index.rbpx"
        index.save(path)
        loaded = ruvector.IvfRabitqIndex.load(path)
        same = loaded.search(queries[0], k=k) == hits
        print(f"saved {path.stat().st_size / 1e6:.1f} MB; reloaded index gives identical results: {same}")

    try:
        index.search(queries[0].astype(np.float64), k=k)
    except ruvector.RuVectorError as err:
        print(f"bad input is refused clearly: {type(err).__name__}: {err}")

    rec = ruvector.recommend(1_000_000, 384, recall_target=0.95)
    print(f"for 1M x 384 at recall 0.95: {rec.index}({rec.params}), ~{rec.memory_bytes / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
