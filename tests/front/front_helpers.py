"""Shared helpers of the front-door tests (ruvector.Collection, CLI, MCP, adapters)."""

from __future__ import annotations

import hashlib
import importlib.util
import re
from typing import Any, List, Sequence

import numpy as np
import pytest

import ruvector_rabitq as rr

DIM = 32


class HashEmbedder:
    """A deterministic bag-of-words embedder: texts sharing words get close
    vectors. Fast, so most tests need no model."""

    name = "test-hash-embedder"

    def __init__(self, dim: int = DIM) -> None:
        self.dim = dim

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray[Any, np.dtype[np.float32]]:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                digest = hashlib.sha256(word.encode()).digest()
                out[row, digest[0] % self.dim] += 1.0
                out[row, digest[1] % self.dim] += 0.5
            out[row, self.dim - 1] += 0.01  # never all zeros
        return out


def _has_filter() -> bool:
    index = rr.FlatF32Index.build(np.ones((1, 2), np.float32))
    try:
        index.search(np.ones(2, np.float32), 1, filter=np.zeros(1, np.int64))
        return True
    except TypeError:
        return False


#: The index API of issue 12 (filtered search, remove/upsert, metrics).
HAS_FILTER = _has_filter()
HAS_CHANGES = hasattr(rr.FlatF32Index, "remove") and hasattr(rr.FlatF32Index, "upsert")
needs_filter = pytest.mark.skipif(not HAS_FILTER, reason="waits for the index API of issue 12: search(filter=)")
needs_changes = pytest.mark.skipif(not HAS_CHANGES, reason="waits for the index API of issue 12: remove/upsert")


def minilm_available() -> bool:
    if importlib.util.find_spec("ruvector_embed") is None:
        return False
    import ruvector_embed

    try:
        ruvector_embed.resolve_model("all-MiniLM-L6-v2", download=False)
        return True
    except Exception:
        return False


needs_minilm = pytest.mark.skipif(not minilm_available(), reason="all-MiniLM-L6-v2 weights not installed")


def random_vectors(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray[Any, np.dtype[np.float32]]:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def ids_of(hits: List[Any]) -> List[Any]:
    return [h.id for h in hits]
