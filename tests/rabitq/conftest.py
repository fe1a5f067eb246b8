"""Shared fixtures of the ``ruvector_rabitq`` test suite.

Everything here is deterministic: data comes from seeded NumPy generators and
every index is built with an explicit seed, so a failure reproduces exactly.

The index-kind fixtures are parametrized so that one test body runs against
every kind it applies to:

* ``build_any``       — all six configurations below;
* ``build_with_vectors`` — the kinds that keep the original vectors (and so
  return exact squared L2 scores, support ``idx[id]``, iteration,
  ``numpy.asarray(idx)`` and ``save``);
* ``build_codes_only`` — the kinds that keep only 1-bit codes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import pytest

import ruvector_rabitq as rr

Builder = Callable[..., "rr.AnyIndex"]

#: Seed given to every seeded index in the suite (the wheel's default is 42).
SEED = 7


def _flat(x: np.ndarray, ids: Optional[object] = None) -> rr.AnyIndex:
    return rr.FlatF32Index.build(x, ids)


def _rabitq(x: np.ndarray, ids: Optional[object] = None) -> rr.AnyIndex:
    return rr.RabitqIndex.build(x, ids, seed=SEED)


def _plus(x: np.ndarray, ids: Optional[object] = None) -> rr.AnyIndex:
    return rr.RabitqPlusIndex.build(x, ids, seed=SEED, rerank_factor=5)


def _plus_hadamard(x: np.ndarray, ids: Optional[object] = None) -> rr.AnyIndex:
    return rr.RabitqPlusIndex.build(x, ids, seed=SEED, rerank_factor=5, rotation="hadamard")


def _asym(x: np.ndarray, ids: Optional[object] = None) -> rr.AnyIndex:
    return rr.RabitqAsymIndex.build(x, ids, seed=SEED)


def _asym_rerank(x: np.ndarray, ids: Optional[object] = None) -> rr.AnyIndex:
    return rr.RabitqAsymIndex.build(x, ids, seed=SEED, rerank_factor=4)


WITH_VECTORS: Dict[str, Builder] = {
    "flat": _flat,
    "plus-haar": _plus,
    "plus-hadamard": _plus_hadamard,
    "asym-rerank4": _asym_rerank,
}
CODES_ONLY: Dict[str, Builder] = {
    "rabitq": _rabitq,
    "asym-rerank1": _asym,
}
ALL_KINDS: Dict[str, Builder] = {**WITH_VECTORS, **CODES_ONLY}


@pytest.fixture(scope="session", params=list(ALL_KINDS), ids=list(ALL_KINDS))
def build_any(request: pytest.FixtureRequest) -> Builder:
    """``build(x, ids=None)`` for each of the six index configurations."""
    return ALL_KINDS[request.param]


@pytest.fixture(scope="session", params=list(WITH_VECTORS), ids=list(WITH_VECTORS))
def build_with_vectors(request: pytest.FixtureRequest) -> Builder:
    """``build(x, ids=None)`` for each configuration that keeps its vectors."""
    return WITH_VECTORS[request.param]


@pytest.fixture(scope="session", params=list(CODES_ONLY), ids=list(CODES_ONLY))
def build_codes_only(request: pytest.FixtureRequest) -> Builder:
    """``build(x, ids=None)`` for each configuration that keeps only codes."""
    return CODES_ONLY[request.param]


def make_clustered(
    n: int,
    dim: int,
    *,
    seed: int = 0,
    clusters: int = 16,
    spread: float = 0.3,
    queries: int = 0,
) -> np.ndarray | Tuple[np.ndarray, np.ndarray]:
    """``n`` float32 rows around ``clusters`` random centres in ``[-2, 2]^dim``,
    with Gaussian noise of standard deviation ``spread``.

    With ``queries > 0`` also returns that many extra rows drawn from the same
    clusters (not stored in the index, but from the same distribution).
    All rows are distinct with probability 1, so nearest neighbours have no
    ties.
    """
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-2.0, 2.0, size=(clusters, dim))
    rows = centres[rng.integers(0, clusters, size=n + queries)]
    data = (rows + rng.normal(0.0, spread, size=rows.shape)).astype(np.float32)
    if queries:
        return np.ascontiguousarray(data[:n]), np.ascontiguousarray(data[n:])
    return data


@pytest.fixture(scope="session")
def clustered() -> Callable[..., np.ndarray | Tuple[np.ndarray, np.ndarray]]:
    """The deterministic clustered-data generator :func:`make_clustered`."""
    return make_clustered


@pytest.fixture(scope="session")
def data() -> Tuple[np.ndarray, np.ndarray]:
    """A small read-only dataset: 400 stored rows and 25 queries, dim 32."""
    x, q = make_clustered(400, 32, seed=1, queries=25)
    x.setflags(write=False)
    q.setflags(write=False)
    return x, q


def exact_knn(x: np.ndarray, query: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """Brute-force ``(rows, squared distances)`` of the ``k`` nearest rows of
    ``x`` to ``query``, computed in float64."""
    d = ((x.astype(np.float64) - query.astype(np.float64)) ** 2).sum(axis=1)
    order = np.argsort(d, kind="stable")[:k]
    return order, d[order]


@pytest.fixture(scope="session")
def brute_force() -> Callable[[np.ndarray, np.ndarray, int], Tuple[np.ndarray, np.ndarray]]:
    """NumPy brute force :func:`exact_knn`."""
    return exact_knn


def squared_distances(x: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Squared L2 distances of every row of ``x`` to ``query`` in float64."""
    return ((np.atleast_2d(x).astype(np.float64) - query.astype(np.float64)) ** 2).sum(axis=1)


@pytest.fixture(scope="session")
def sq_dist() -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """:func:`squared_distances`, float64 reference distances."""
    return squared_distances


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    """A fresh, empty directory for index files (removed by pytest)."""
    d = tmp_path / "indexes"
    d.mkdir()
    return d
