"""RaBitQ vector indexes for Python, backed by the Rust crate ``ruvector-rabitq``.

Five index kinds share one protocol (:class:`AnyIndex`):

* :class:`FlatF32Index` — exact brute force over float32 vectors.
* :class:`RabitqIndex` — 1-bit codes only: smallest, fastest, low recall.
* :class:`RabitqPlusIndex` — 1-bit scan, then exact rerank: the default.
* :class:`RabitqAsymIndex` — float query against 1-bit codes: slower scan,
  better estimates; optional rerank.
* :class:`IvfRabitqIndex` — k-means lists over 1-bit residual codes, exact
  rerank: sub-linear search for large sets (the SDK's own algorithm).

>>> import numpy as np, ruvector_rabitq as rr
>>> x = np.random.default_rng(0).standard_normal((1000, 32), dtype=np.float32)
>>> idx = rr.RabitqPlusIndex.build(x, seed=42, rerank_factor=20)
>>> idx.search(x[3], k=1)[0].id
3

Errors are the shared classes of ``ruvector_common.errors`` (also exported
here), so ``except ruvector.RuVectorError`` catches every one of them.
"""

# The native module first: if ruvector-common is missing or too old, its
# ImportError names the distribution to install.
from . import _native  # loaded first on purpose

# isort: split
from ruvector_common.errors import (
    DimensionMismatch,
    EmptyIndex,
    InvalidArgument,
    NotFound,
    PersistError,
    RuVectorError,
    VectorIndexError,
)

from ._native import (
    FlatF32Index,
    IdSet,
    IvfRabitqIndex,
    RabitqAsymIndex,
    RabitqIndex,
    RabitqPlusIndex,
    __version__,
    cpu_features,
    get_num_threads,
    runtime_info,
    set_num_threads,
)
from ._recommend import Recommendation, recommend
from ._types import AnyIndex, SearchHit

MAX_DIM: int = _native.MAX_DIM
MAX_HAAR_DIM: int = _native.MAX_HAAR_DIM
MAX_RERANK_FACTOR: int = _native.MAX_RERANK_FACTOR
MAX_VECTORS: int = _native.MAX_VECTORS
MAX_NLIST: int = _native.MAX_NLIST
MAX_K: int = _native.MAX_K

__all__ = [
    "AnyIndex",
    "DimensionMismatch",
    "EmptyIndex",
    "FlatF32Index",
    "IdSet",
    "InvalidArgument",
    "IvfRabitqIndex",
    "MAX_DIM",
    "MAX_HAAR_DIM",
    "MAX_K",
    "MAX_NLIST",
    "MAX_RERANK_FACTOR",
    "MAX_VECTORS",
    "NotFound",
    "PersistError",
    "RabitqAsymIndex",
    "RabitqIndex",
    "RabitqPlusIndex",
    "Recommendation",
    "RuVectorError",
    "SearchHit",
    "VectorIndexError",
    "__version__",
    "cpu_features",
    "get_num_threads",
    "recommend",
    "runtime_info",
    "set_num_threads",
]
