"""Helpers shared by the store backends (Parquet, PostgreSQL)."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import numpy.typing as npt

from ruvector_common.errors import MissingComponentError

Ids = npt.NDArray[np.uint64]
"""A pull's ids: ``n`` uint64 values."""
Vectors = npt.NDArray[np.float32]
"""A pull's vectors: an ``(n, dim)`` float32 array."""


def optional_import(module: str, extra: str, dist: str, what: str) -> Any:
    """Import an optional dependency; a clear error naming the extra if absent."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        missing = MissingComponentError(what, extra, dist, module.split(".")[0])
        missing.args = (
            f"{what} needs the optional {dist!r} package, which is not installed; "
            f"install it with: pip install 'ruvector-lake[{extra}]' (or: pip install {dist})",
        )
        missing.message = missing.args[0]
        raise missing from error
