"""ruLake for Python: a cache-first vector fabric over your backends, backed
by the Rust crate ``ruvector-rulake``.

Register backends (:class:`LocalBackend`, :class:`FsBackend`,
:class:`ParquetBackend`, :class:`PostgresBackend`, or your own
:class:`BackendAdapter` subclass), then search them through a cache of
RaBitQ indexes kept as fresh as the chosen :class:`Consistency` demands —
from plain code or from asyncio.

>>> import numpy as np, ruvector_lake as rl
>>> x = np.random.default_rng(0).standard_normal((500, 16), dtype=np.float32)
>>> hot = rl.LocalBackend("hot")
>>> hot.upsert("docs", np.arange(500, dtype=np.uint64), x)
>>> lake = rl.RuLake.builder().rerank_factor(20).build()
>>> lake.register_backend(hot)
>>> lake.search_one("hot", "docs", x[3], k=1)[0].id
3

Errors are the shared classes of ``ruvector_common.errors`` (also exported
here): ``LakeError`` and its subclasses, ``InvalidArgument``,
``DimensionMismatch``.
"""

# The native module first: if ruvector-common is missing or too old, its
# ImportError names the distribution to install.
from . import _native  # loaded first on purpose

# isort: split
from ruvector_common.errors import (
    BackendError,
    CacheMissError,
    DimensionMismatch,
    InvalidArgument,
    LakeError,
    NotFound,
    RuVectorError,
    WitnessMismatch,
)

from ._adapter import BackendAdapter
from ._native import (
    Bundle,
    FsBackend,
    LakeSession,
    LocalBackend,
    RuLake,
    RuLakeBuilder,
    __version__,
    cpu_features,
    get_num_threads,
    runtime_info,
    set_num_threads,
)
from ._parquet import ParquetBackend
from ._postgres import PostgresBackend
from ._types import BackendStats, CacheStats, Changes, Consistency, LakeHit, RefreshResult

MAX_DIM: int = _native.MAX_DIM
MAX_RERANK_FACTOR: int = _native.MAX_RERANK_FACTOR
MAX_K: int = _native.MAX_K
MAX_ID: int = _native.MAX_ID
PAD_ID: int = _native.PAD_ID

__all__ = [
    "BackendAdapter",
    "BackendError",
    "BackendStats",
    "Bundle",
    "CacheMissError",
    "CacheStats",
    "Changes",
    "Consistency",
    "DimensionMismatch",
    "FsBackend",
    "InvalidArgument",
    "LakeError",
    "LakeHit",
    "LakeSession",
    "LocalBackend",
    "MAX_DIM",
    "MAX_ID",
    "MAX_K",
    "MAX_RERANK_FACTOR",
    "NotFound",
    "PAD_ID",
    "ParquetBackend",
    "PostgresBackend",
    "RefreshResult",
    "RuLake",
    "RuLakeBuilder",
    "RuVectorError",
    "WitnessMismatch",
    "__version__",
    "cpu_features",
    "get_num_threads",
    "runtime_info",
    "set_num_threads",
]
