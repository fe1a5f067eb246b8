"""Shared foundations of the RuVector Python packages.

``ruvector-common`` is a small pure-Python distribution that every compiled
RuVector wheel depends on. It holds the one exception hierarchy they all
raise, so a single handler catches errors from any of them::

    import ruvector_common

    try:
        index.search(query, k=10)
    except ruvector_common.DimensionMismatch as e:
        print("wrong length:", e.got, "expected", e.expected)
    except ruvector_common.RuVectorError as e:
        print("RuVector failed:", e)

The classes live in :mod:`ruvector_common.errors` and are re-exported here.
Most users reach them through the ``ruvector`` meta package instead.
"""

import typing as _typing

# The one list of classes is errors.__all__: everything in it is re-exported.
from .errors import (
    ERRORS_ABI,
    A2aError,
    BackendError,
    BudgetExceeded,
    CacheMissError,
    CardSignatureInvalid,
    DimensionMismatch,
    EmbedError,
    EmptyIndex,
    InvalidArgument,
    LakeError,
    MissingComponentError,
    NotFound,
    PersistError,
    PolicyViolation,
    RuVectorError,
    TransportError,
    VectorIndexError,
    WitnessMismatch,
)

# Every name of errors.__all__ (the one list of classes), written out so that
# type checkers and stubtest see what Python sees; tests/common/test_errors.py
# checks the two lists agree.
__all__ = [
    "__version__",
    "ERRORS_ABI",
    "RuVectorError",
    "InvalidArgument",
    "DimensionMismatch",
    "NotFound",
    "VectorIndexError",
    "EmptyIndex",
    "PersistError",
    "LakeError",
    "BackendError",
    "CacheMissError",
    "WitnessMismatch",
    "EmbedError",
    "A2aError",
    "CardSignatureInvalid",
    "PolicyViolation",
    "BudgetExceeded",
    "TransportError",
    "MissingComponentError",
]

_DIST_NAME = "ruvector-common"
_UNKNOWN_VERSION = "0+unknown"

if _typing.TYPE_CHECKING:
    __version__: str
    """The installed version of the ``ruvector-common`` distribution."""
else:

    def __getattr__(name: str) -> object:
        """Compute ``__version__`` on first access.

        Every compiled wheel imports this package at load time, so the
        comparatively slow :mod:`importlib.metadata` is only imported when
        the version is actually asked for.
        """
        if name == "__version__":
            version = _read_version()
            globals()["__version__"] = version
            return version
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _read_version() -> str:
    """Return the installed distribution's version, or ``"0+unknown"`` when
    the package runs without installed metadata (e.g. from a source tree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(_DIST_NAME)
    except PackageNotFoundError:
        return _UNKNOWN_VERSION
