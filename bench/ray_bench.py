"""ruvector.ray on a local Ray cluster: build time, single-query p50/p99 and
batch QPS of a ShardedIndex of 1, 2 and 4 shards next to one in-process
index over the same vectors, and so the cost of the Ray hop per query.

    python bench/ray_bench.py --n 1000000 --dim 384 --shards 1 2 4

Vectors are synthetic (clustered Gaussian, seed 0): the figures are about
the fan-out and the merge, not about recall on real data (see the README's
IvfRabitqIndex figures for that). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any, Dict, List

import numpy as np
import ray

import ruvector_rabitq as rr
from ruvector.ray import ShardedIndex


def _data(n: int, dim: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((256, dim)).astype(np.float32)
    x = centres[rng.integers(0, 256, n)] + 0.5 * rng.standard_normal((n, dim)).astype(np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)


def _latency(search: Any, queries: np.ndarray[Any, Any], k: int) -> Dict[str, float]:
    times: List[float] = []
    for q in queries:
        t = time.perf_counter()
        search(q, k)
        times.append(time.perf_counter() - t)
    ms = np.array(times) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--num-cpus", type=int, default=2)
    args = parser.parse_args()
    x = _data(args.n, args.dim)
    q = x[: args.queries] + 0.1
    opts: Dict[str, Any] = {"seed": 1, "nprobe": 32}
    k = 10
    out: Dict[str, Any] = {"n": args.n, "dim": args.dim, "k": k, "index": "IvfRabitqIndex", **opts}
    t = time.perf_counter()
    one = rr.IvfRabitqIndex.build(x, **opts)
    out["in_process"] = {"build_s": time.perf_counter() - t, **_latency(one.search, q, k)}
    t = time.perf_counter()
    one.search_batch(q, k)
    out["in_process"]["batch_qps"] = len(q) / (time.perf_counter() - t)
    ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    for shards in args.shards:
        t = time.perf_counter()
        sharded = ShardedIndex.build(x, shards=shards, kind="IvfRabitqIndex", **opts)
        row: Dict[str, Any] = {"build_s": time.perf_counter() - t}
        sharded.search(q[0], k)  # warm the actors
        row.update(_latency(sharded.search, q, k))
        t = time.perf_counter()
        sharded.search_batch(q, k)
        row["batch_qps"] = len(q) / (time.perf_counter() - t)
        row["hop_ms_p50"] = row["p50_ms"] - out["in_process"]["p50_ms"]
        out[f"shards_{shards}"] = row
        sharded.shutdown()
    ray.shutdown()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
