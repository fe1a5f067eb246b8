"""Shared helpers of the ``ruvector_lake`` test suite.

Data comes from seeded NumPy generators, so a failure reproduces exactly.
"""

from __future__ import annotations

import threading
from typing import Callable, List, Tuple

import numpy as np
import numpy.typing as npt
import pytest

import ruvector_lake as rl

F32 = npt.NDArray[np.float32]
U64 = npt.NDArray[np.uint64]


def clustered(n: int, dim: int, *, seed: int = 0, clusters: int = 16, spread: float = 0.3) -> F32:
    """``n`` float32 rows around ``clusters`` random centres (distinct rows)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-2.0, 2.0, size=(clusters, dim))
    rows = centres[rng.integers(0, clusters, size=n)]
    return np.ascontiguousarray((rows + rng.normal(0.0, spread, size=rows.shape)).astype(np.float32))


def sparse_ids(n: int, *, seed: int = 0) -> U64:
    """``n`` unique ids spread over the whole range of lake ids (0 to ``MAX_ID``)."""
    rng = np.random.default_rng(seed)
    ids = np.unique(rng.integers(0, 2**64 - 2, size=n * 2, dtype=np.uint64, endpoint=True))
    rng.shuffle(ids)
    out = np.ascontiguousarray(ids[:n])
    assert len(out) == n
    return out


def exact_top(x: F32, ids: U64, query: F32, k: int) -> List[int]:
    """Brute-force ids of the ``k`` nearest rows (float64)."""
    d = ((x.astype(np.float64) - query.astype(np.float64)) ** 2).sum(axis=1)
    return [int(ids[i]) for i in np.argsort(d, kind="stable")[:k]]


def run_threads(targets: List[Callable[[], None]], timeout: float = 120.0) -> List[BaseException]:
    """Runs each target on its own thread; returns the exceptions they raised."""
    errors: List[BaseException] = []
    lock = threading.Lock()

    def guard(target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as e:
            with lock:
                errors.append(e)

    threads = [threading.Thread(target=guard, args=(t,), daemon=True) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        assert not t.is_alive(), "a thread hung"
    return errors


@pytest.fixture
def small() -> Tuple[F32, U64]:
    """300 rows of dimension 16 with sparse 64-bit ids."""
    return clustered(300, 16, seed=3), sparse_ids(300, seed=3)


@pytest.fixture
def lake_with_local(small: Tuple[F32, U64]) -> Tuple[rl.RuLake, rl.LocalBackend]:
    """A FRESH lake with one LocalBackend ``"hot"`` holding ``small`` as ``"docs"``."""
    x, ids = small
    hot = rl.LocalBackend("hot")
    hot.upsert("docs", ids, x)
    lake = rl.RuLake.builder().rerank_factor(20).rotation_seed(42).build()
    lake.register_backend(hot)
    return lake, hot
