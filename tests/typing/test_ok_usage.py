"""Typed use of the public API: mypy --strict and pyright (strict) must pass.

Run by the nox ``typecheck`` session; also collected by ``pytest tests`` (hence
the test_ name) so it cannot rot.
"""

from __future__ import annotations

import asyncio
from typing import List, Tuple

import numpy as np
import numpy.typing as npt

import ruvector
import ruvector_lake
import ruvector_rabitq as rr


def build_and_search() -> Tuple[List[rr.SearchHit], npt.NDArray[np.int64]]:
    x = np.random.default_rng(0).standard_normal((500, 16)).astype(np.float32)
    idx: rr.RabitqPlusIndex = rr.RabitqPlusIndex.build(x, seed=1, rerank_factor=10)
    hits = idx.search(x[0], 5)
    first_id: int = hits[0].id
    score: float = hits[0].score
    assert first_id == 0 and score == 0.0
    ids, scores = idx.search_batch(x[:3], 2)
    assert scores.dtype == np.float32
    flat = ruvector.FlatF32Index.build(x)
    any_index: rr.AnyIndex = flat
    assert len(any_index) == 500 and any_index.dim == 16
    vec: npt.NDArray[np.float32] = idx[3]
    assert vec.shape == (16,)
    return hits, ids


async def search_async() -> List[rr.SearchHit]:
    x = np.ones((4, 8), dtype=np.float32) * np.arange(4, dtype=np.float32)[:, None]
    idx = rr.FlatF32Index.build(x)
    return await idx.search_async(x[2], 1)


def errors_are_shared() -> str:
    try:
        rr.RabitqPlusIndex(0)
    except ruvector.RuVectorError as err:
        assert isinstance(err, ruvector.InvalidArgument)
        return str(err)
    raise AssertionError("dim=0 was accepted")


def recommend() -> str:
    rec: rr.Recommendation = rr.recommend(4_000, 64, 0.9)
    return rec.index


def stubs_as_the_runtime_has_them() -> Tuple[int, List[int], int]:
    """Signatures stubtest holds to the wheels: constructors (``__new__``),
    iteration (``VectorIter``), ``IdSet``, options taken as ``None`` only, and
    the lake's ``k``/``metric`` defaulting to ``None``."""
    x = np.eye(4, 8, dtype=np.float32)
    flat = rr.FlatF32Index(8, seed=None, rerank_factor=None, rotation=None, metric="l2")
    flat.add_batch(x)
    pairs: List[Tuple[int, npt.NDArray[np.float32]]] = list(iter(flat))
    allowed = rr.IdSet([1, 2])
    found = [hit.id for hit in flat.search(x[2], 4, filter=allowed)]
    backend = ruvector_lake.LocalBackend("mem")
    backend.upsert("c", np.arange(4, dtype=np.uint64), x)
    lake = ruvector_lake.RuLake(rerank_factor=None)
    lake.register_backend(backend)
    nearest = lake.search_one("mem", "c", x[3], None, metric=None)[0].id
    return len(pairs), found, nearest


def test_typed_usage_runs() -> None:
    hits, ids = build_and_search()
    assert ids.shape == (3, 2)
    assert asyncio.run(search_async())[0].id == 2
    assert "dim" in errors_are_shared()
    assert recommend() == "FlatF32Index"
    assert hits[0] == rr.SearchHit(0, 0.0)
    assert stubs_as_the_runtime_has_them() == (4, [2, 1], 3)
