"""Many threads searching while another upserts; the GIL is released."""

from __future__ import annotations

import functools
import threading
import time

import numpy as np

import ruvector_lake as rl

from .conftest import clustered, run_threads


def test_many_threads_search_while_another_upserts() -> None:
    x = clustered(3000, 32, seed=6)
    hot = rl.LocalBackend("hot")
    hot.upsert("docs", np.arange(2000, dtype=np.uint64), x[:2000])
    lake = rl.RuLake()
    lake.register_backend(hot)
    stop = threading.Event()
    started = threading.Barrier(5)

    def writer() -> None:
        started.wait()
        for start in range(2000, 3000, 100):
            time.sleep(0.002)  # pacing only: lets searches interleave with upserts
            hot.upsert("docs", np.arange(start, start + 100, dtype=np.uint64), x[start : start + 100])
        stop.set()

    def reader(offset: int) -> None:
        started.wait()
        i = offset
        while not stop.is_set() or i < offset + 50:
            j = i % 2000  # always present
            hits = lake.search_one("hot", "docs", x[j], k=3)
            assert hits[0].id == j and hits[0].score == 0.0
            ids, _ = lake.search_batch("hot", "docs", x[j : j + 2], k=1)
            assert ids[:, 0].tolist() == [j, j + 1]
            i += 37

    assert run_threads([writer] + [functools.partial(reader, o) for o in range(4)]) == []
    assert hot.count("docs") == 3000
    assert lake.search_one("hot", "docs", x[2999], k=1)[0].id == 2999
    assert lake.cache_stats().primes >= 1


def test_searches_release_the_gil() -> None:
    """A pure-Python thread keeps running while searches run in others."""
    x = clustered(20_000, 64, seed=7)
    hot = rl.LocalBackend("hot")
    hot.upsert("docs", np.arange(20_000, dtype=np.uint64), x)
    lake = rl.RuLake()
    lake.register_backend(hot)
    lake.search_one("hot", "docs", x[0])
    ticks = [0]
    done = threading.Event()

    def ticker() -> None:
        while not done.is_set():
            ticks[0] += 1
            time.sleep(0)

    def searcher() -> None:
        lake.search_batch("hot", "docs", x[:400], k=10)

    t = threading.Thread(target=ticker, daemon=True)
    t.start()
    assert run_threads([searcher, searcher]) == []
    done.set()
    t.join(10)
    assert ticks[0] > 10
