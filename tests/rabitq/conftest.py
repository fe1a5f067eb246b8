"""Shared fixtures of the ``ruvector_rabitq`` test suite.

Everything here is deterministic: data comes from seeded NumPy generators and
every index is built with an explicit seed, so a failure reproduces exactly.

The index-kind fixtures are parametrized so that one test body runs against
every kind it applies to:

* ``build_any``       — all seven configurations below;
* ``build_with_vectors`` — the kinds that keep the original vectors (and so
  return exact squared L2 scores, support ``idx[id]``, iteration,
  ``numpy.asarray(idx)`` and ``save``);
* ``build_codes_only`` — the kinds that keep only 1-bit codes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Literal, Optional, Protocol, Tuple, Type, Union, overload

import numpy as np
import numpy.typing as npt
import pytest

import ruvector_rabitq as rr

#: A float32 matrix or vector, as the suite's data generators return.
F32 = npt.NDArray[np.float32]
#: A float64 array (reference distances computed by NumPy).
F64 = npt.NDArray[np.float64]
#: Row positions, as ``np.argsort`` returns them.
Rows = npt.NDArray[np.intp]
#: ``(ids, scores)`` as ``search_batch`` returns them.
Batch = Tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]
#: ``(stored rows, query rows)``.
Data = Tuple[F32, F32]
#: Any of the five concrete index classes (all share ``_IndexBase``).
Index = Union[rr.FlatF32Index, rr.RabitqIndex, rr.RabitqPlusIndex, rr.RabitqAsymIndex, rr.IvfRabitqIndex]
#: Any of the five index classes.
IndexClass = Type[Index]
#: Any of the three seeded (RaBitQ) index classes.
SeededIndexClass = Type[Union[rr.RabitqIndex, rr.RabitqPlusIndex, rr.RabitqAsymIndex]]


class Builder(Protocol):
    """``build(x, ids=None)`` of one index configuration."""

    def __call__(self, x: npt.ArrayLike, ids: Optional[npt.ArrayLike] = None) -> Index: ...


class Clustered(Protocol):
    """The signature of :func:`make_clustered`."""

    @overload
    def __call__(
        self, n: int, dim: int, *, seed: int = ..., clusters: int = ..., spread: float = ..., queries: int
    ) -> Tuple[F32, F32]: ...
    @overload
    def __call__(
        self, n: int, dim: int, *, seed: int = ..., clusters: int = ..., spread: float = ..., queries: Literal[0] = ...
    ) -> F32: ...


class BruteForce(Protocol):
    """The signature of :func:`exact_knn`."""

    def __call__(self, x: npt.NDArray[Any], query: npt.NDArray[Any], k: int) -> Tuple[Rows, F64]: ...


class SqDist(Protocol):
    """The signature of :func:`squared_distances`."""

    def __call__(self, x: npt.NDArray[Any], query: npt.NDArray[Any]) -> F64: ...


#: Seed given to every seeded index in the suite (the wheel's default is 42).
SEED = 7


def _flat(x: npt.ArrayLike, ids: Optional[npt.ArrayLike] = None) -> Index:
    return rr.FlatF32Index.build(x, ids)


def _rabitq(x: npt.ArrayLike, ids: Optional[npt.ArrayLike] = None) -> Index:
    return rr.RabitqIndex.build(x, ids, seed=SEED)


def _plus(x: npt.ArrayLike, ids: Optional[npt.ArrayLike] = None) -> Index:
    return rr.RabitqPlusIndex.build(x, ids, seed=SEED, rerank_factor=5)


def _plus_hadamard(x: npt.ArrayLike, ids: Optional[npt.ArrayLike] = None) -> Index:
    return rr.RabitqPlusIndex.build(x, ids, seed=SEED, rerank_factor=5, rotation="hadamard")


def _asym(x: npt.ArrayLike, ids: Optional[npt.ArrayLike] = None) -> Index:
    return rr.RabitqAsymIndex.build(x, ids, seed=SEED)


def _asym_rerank(x: npt.ArrayLike, ids: Optional[npt.ArrayLike] = None) -> Index:
    return rr.RabitqAsymIndex.build(x, ids, seed=SEED, rerank_factor=4)


def _ivf(x: npt.ArrayLike, ids: Optional[npt.ArrayLike] = None) -> Index:
    return rr.IvfRabitqIndex.build(x, ids, seed=SEED, nlist=8, nprobe=4, rerank_factor=5)


WITH_VECTORS: Dict[str, Builder] = {
    "flat": _flat,
    "plus-haar": _plus,
    "plus-hadamard": _plus_hadamard,
    "asym-rerank4": _asym_rerank,
    "ivf": _ivf,
}
CODES_ONLY: Dict[str, Builder] = {
    "rabitq": _rabitq,
    "asym-rerank1": _asym,
}
ALL_KINDS: Dict[str, Builder] = {**WITH_VECTORS, **CODES_ONLY}


@pytest.fixture(scope="session", params=list(ALL_KINDS), ids=list(ALL_KINDS))
def build_any(request: pytest.FixtureRequest) -> Builder:
    """``build(x, ids=None)`` for each of the seven index configurations."""
    return ALL_KINDS[request.param]


@pytest.fixture(scope="session", params=list(WITH_VECTORS), ids=list(WITH_VECTORS))
def build_with_vectors(request: pytest.FixtureRequest) -> Builder:
    """``build(x, ids=None)`` for each configuration that keeps its vectors."""
    return WITH_VECTORS[request.param]


@pytest.fixture(scope="session", params=list(CODES_ONLY), ids=list(CODES_ONLY))
def build_codes_only(request: pytest.FixtureRequest) -> Builder:
    """``build(x, ids=None)`` for each configuration that keeps only codes."""
    return CODES_ONLY[request.param]


@overload
def make_clustered(
    n: int, dim: int, *, seed: int = ..., clusters: int = ..., spread: float = ..., queries: int
) -> Tuple[F32, F32]: ...
@overload
def make_clustered(
    n: int, dim: int, *, seed: int = ..., clusters: int = ..., spread: float = ..., queries: Literal[0] = ...
) -> F32: ...
def make_clustered(
    n: int,
    dim: int,
    *,
    seed: int = 0,
    clusters: int = 16,
    spread: float = 0.3,
    queries: int = 0,
) -> Union[F32, Tuple[F32, F32]]:
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
def clustered() -> Clustered:
    """The deterministic clustered-data generator :func:`make_clustered`."""
    return make_clustered


@pytest.fixture(scope="session")
def data() -> Data:
    """A small read-only dataset: 400 stored rows and 25 queries, dim 32."""
    x, q = make_clustered(400, 32, seed=1, queries=25)
    x.setflags(write=False)
    q.setflags(write=False)
    return x, q


def exact_knn(x: npt.NDArray[Any], query: npt.NDArray[Any], k: int) -> Tuple[Rows, F64]:
    """Brute-force ``(rows, squared distances)`` of the ``k`` nearest rows of
    ``x`` to ``query``, computed in float64."""
    d = ((x.astype(np.float64) - query.astype(np.float64)) ** 2).sum(axis=1)
    order = np.argsort(d, kind="stable")[:k]
    return order, d[order]


@pytest.fixture(scope="session")
def brute_force() -> BruteForce:
    """NumPy brute force :func:`exact_knn`."""
    return exact_knn


def squared_distances(x: npt.NDArray[Any], query: npt.NDArray[Any]) -> F64:
    """Squared L2 distances of every row of ``x`` to ``query`` in float64."""
    d: F64 = ((np.atleast_2d(x).astype(np.float64) - query.astype(np.float64)) ** 2).sum(axis=1)
    return d


@pytest.fixture(scope="session")
def sq_dist() -> SqDist:
    """:func:`squared_distances`, float64 reference distances."""
    return squared_distances


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    """A fresh, empty directory for index files (removed by pytest)."""
    d = tmp_path / "indexes"
    d.mkdir()
    return d
