#!/usr/bin/env python3
"""ruvector.ray on a local Ray cluster: a ``ShardedIndex`` of 1, 2 and 4
shards next to one in-process index over the same vectors.

Per row: build time (for a sharded index: starting the actors, shipping each
its vectors through the object store and building), single-query p50/p99,
batch QPS (one ``search_batch`` of every query), recall@10 against the exact
top 10, and the index memory per shard (``memory_bytes``, next to what
``recommend()`` predicted for that shard size). Each shard count uses
``recommend(n / shards, dim, 0.95)``'s settings, as a user sizing shards
would; for each one an in-process index over one shard's part is measured
too, so the cost of the Ray hop per query is the sharded p50 minus that
part's p50 (every shard searches its part in parallel, then the driver
merges). The bare hop, a call to an actor method that does nothing but
return a small dict, is timed as well.

Data (``--data wordnet``, what ``nox -s bench`` runs): the 1M x 384 set of
bench/results-1m.md, sampled around the real MiniLM embeddings of WordNet
glosses (``bench/corpus.py``; the embeddings are read from ``--cache``,
computed once if missing), with the first ``--queries`` of its held-out real
queries. ``--data synthetic``: clustered Gaussians (``bench/bench_data.py``).

    python bench/ray_bench.py --cache target/bench-data --n 1000000 --out bench/results-ray.md

Prints the JSON of every figure, and writes a Markdown table to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

K = 10
TIMES = "\u00d7"
RECALL_TARGET = 0.95


def _log(msg: str) -> None:
    print(f"[ray-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _data(args: argparse.Namespace) -> Tuple[np.ndarray, np.ndarray, str]:
    if args.data == "wordnet":
        import corpus

        x, about_x = corpus.embeddings(Path(args.cache), _log)
        # The split of run_bench.py's --data wordnet runs (1,000 evaluation
        # and 500 tuning queries held out), so the base is bench/results-1m.md's.
        base, queries, _tune, about_split = corpus.split(x, args.n, 1000, 500)
        return base, queries[: args.queries], f"{about_x}; {about_split}; the first {args.queries} queries are used"
    from bench_data import DataSpec, generate

    spec = DataSpec(n=args.n, d=args.dim, n_queries=args.queries, n_tune=0)
    base, queries, _ = generate(spec)
    return base, queries, spec.describe()


def _exact_top_k(base: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k ids by squared L2 (float32 BLAS, chunked over the base)."""
    best_d = np.full((queries.shape[0], k), np.inf, dtype=np.float32)
    best_i = np.full((queries.shape[0], k), -1, dtype=np.int64)
    q_sq = np.einsum("ij,ij->i", queries, queries)[:, None]
    step = 100_000
    for lo in range(0, base.shape[0], step):
        chunk = base[lo : lo + step]
        d = q_sq - 2.0 * (queries @ chunk.T) + np.einsum("ij,ij->i", chunk, chunk)[None, :]
        d_all = np.concatenate([best_d, d], axis=1)
        i_all = np.concatenate([best_i, np.arange(lo, lo + chunk.shape[0])[None, :].repeat(len(queries), 0)], axis=1)
        part = np.argpartition(d_all, k - 1, axis=1)[:, :k]
        best_d = np.take_along_axis(d_all, part, axis=1)
        best_i = np.take_along_axis(i_all, part, axis=1)
    return best_i


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth))
    return hits / truth.size


def _latency(search: Callable[[np.ndarray, int], Any], queries: np.ndarray) -> Dict[str, float]:
    search(queries[0], K)  # warm
    times: List[float] = []
    cpu: List[float] = []
    for q in queries:
        c = time.process_time()
        t = time.perf_counter()
        search(q, K)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    ms = np.array(times) * 1e3
    # CPU time of this process per query: what the search costs, whatever
    # else the machine runs (wall-clock p50/p99 grow with the load, this does not).
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "cpu_ms_p50": float(np.percentile(np.array(cpu) * 1e3, 50)),
    }


def _batch(
    search_batch: Callable[[np.ndarray, int], Tuple[np.ndarray, np.ndarray]], queries: np.ndarray
) -> Tuple[float, np.ndarray]:
    search_batch(queries[:8], K)  # warm
    best = np.inf
    ids = np.empty(0)
    for _ in range(3):
        t = time.perf_counter()
        ids, _ = search_batch(queries, K)
        best = min(best, time.perf_counter() - t)
    return len(queries) / best, ids


def _in_process(
    rr: Any, base: np.ndarray, ids: Optional[np.ndarray], queries: np.ndarray, params: Dict[str, Any], seed: int
) -> Dict[str, Any]:
    c = time.process_time()
    t = time.perf_counter()
    index = rr.IvfRabitqIndex.build(base, ids, seed=seed, **params)
    row: Dict[str, Any] = {
        "build_s": time.perf_counter() - t,
        "build_cpu_s": time.process_time() - c,
        "memory_bytes": int(index.memory_bytes),
    }
    row.update(_latency(index.search, queries))
    row["batch_qps"], row["_ids"] = _batch(index.search_batch, queries)
    return row


def _hop(actor: Any, ray: Any, rounds: int) -> Dict[str, float]:
    """A call to a shard actor's ``info`` (a small dict, no search) from the driver."""
    ray.get(actor.info.remote())
    times: List[float] = []
    for _ in range(rounds):
        t = time.perf_counter()
        ray.get(actor.info.remote())
        times.append(time.perf_counter() - t)
    ms = np.array(times) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def _load() -> str:
    try:
        return " / ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def run(args: argparse.Namespace) -> Dict[str, Any]:
    import ray

    import ruvector_rabitq as rr
    from ruvector.ray import ShardedIndex, shard_of

    base, queries, about = _data(args)
    n, dim = base.shape
    _log(f"data {n:,} x {dim}, {len(queries)} queries; exact top {K} ...")
    truth = _exact_top_k(base, queries, K)
    out: Dict[str, Any] = {
        "n": n,
        "dim": dim,
        "k": K,
        "queries": len(queries),
        "data": about,
        "machine": (
            f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, Ray {ray.__version__}"
        ),
        "num_cpus": args.num_cpus,
        "load_before": _load(),
        "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    rec = rr.recommend(n, dim, RECALL_TARGET)
    _log(f"in-process IvfRabitqIndex {rec.params} ...")
    one = _in_process(rr, base, None, queries, dict(rec.params), args.seed)
    one["recall"] = _recall(one.pop("_ids"), truth)
    one["params"] = dict(rec.params)
    one["recommended_bytes"] = int(rec.memory_bytes)
    out["in_process"] = one
    ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    ids = np.arange(n, dtype=np.int64)
    rows: Dict[str, Any] = {}
    for shards in args.shards:
        part_rec = rr.recommend(-(-n // shards), dim, RECALL_TARGET)
        params = dict(part_rec.params)
        row: Dict[str, Any] = {"params": params, "recommended_bytes_per_shard": int(part_rec.memory_bytes)}
        if shards > 1:
            # What each actor does for a query, without Ray: one shard's part in this process.
            mask = shard_of(ids, shards) == 0
            _log(f"{shards} shards: in-process index over shard 0's {int(mask.sum()):,} rows ...")
            part = _in_process(rr, np.ascontiguousarray(base[mask]), ids[mask], queries, params, args.seed)
            part.pop("_ids")
            row["part"] = part
        else:
            row["part"] = {
                k: v
                for k, v in one.items()
                if k in ("build_s", "build_cpu_s", "memory_bytes", "p50_ms", "p99_ms", "cpu_ms_p50", "batch_qps")
            }
        _log(f"{shards} shards: ShardedIndex.build {params} ...")
        t = time.perf_counter()
        sharded = ShardedIndex.build(base, shards=shards, kind="IvfRabitqIndex", seed=args.seed, **params)
        row["build_s"] = time.perf_counter() - t
        infos = sharded.info()
        row["memory_bytes_per_shard"] = [int(i["memory_bytes"]) for i in infos]
        row["rows_per_shard"] = [int(i["len"]) for i in infos]
        row.update(_latency(sharded.search, queries))
        row["batch_qps"], found = _batch(sharded.search_batch, queries)
        row["recall"] = _recall(found, truth)
        row["hop_ms_p50"] = row["p50_ms"] - row["part"]["p50_ms"]
        row["bare_call"] = _hop(sharded.actors[0], ray, len(queries))
        rows[str(shards)] = row
        _log(f"{shards} shards: {json.dumps({k: v for k, v in row.items() if k != 'part'})}")
        sharded.shutdown()
    ray.shutdown()
    out["sharded"] = rows
    out["load_after"] = _load()
    return out


def markdown(r: Dict[str, Any]) -> str:
    gb = 1e9
    one = r["in_process"]
    lines = [
        "# ruvector.ray: a ShardedIndex on a local Ray cluster",
        "",
        f"Generated by `bench/ray_bench.py` on {r['started']}; {r['machine']}; "
        f"`ray.init(num_cpus={r['num_cpus']})` on loopback, shard actors `num_cpus=0`, "
        f"the driver in the same machine. Load average (1/5/15 min) {r['load_before']} before, "
        f"{r['load_after']} after (Ray's own processes add about one; a load well above the "
        f"{r['num_cpus']} cores means other jobs shared them: then compare rows, not runs).",
        "",
        f"Data: {r['n']:,} {TIMES} {r['dim']}. {r['data']}.",
        "",
        f"`IvfRabitqIndex` everywhere, k = {r['k']}, {r['queries']} single queries timed from Python "
        f"(p50/p99), batch QPS = one `search_batch` of all {r['queries']} (best of 3); recall@10 "
        "against the exact top 10. Each shard count uses `recommend(n / shards, dim, 0.95)`'s "
        "settings (nlist, nprobe, rerank_factor). CPU ms: p50 of this process's CPU time per single "
        "query (in-process: the search itself; sharded: the driver's side of the Ray calls and the "
        "merge, the shards' CPU not included).",
        "",
        "| index | settings | build s | p50 ms | p99 ms | CPU ms | batch QPS | recall@10 | GB per shard (recommend) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
        f"| one in-process index | {_params(one['params'])} | {one['build_s']:.1f} | {one['p50_ms']:.2f} | "
        f"{one['p99_ms']:.2f} | {one['cpu_ms_p50']:.2f} | {one['batch_qps']:,.0f} | {one['recall']:.3f} | "
        f"{one['memory_bytes'] / gb:.2f} ({one['recommended_bytes'] / gb:.2f}) |",
    ]
    for shards, row in r["sharded"].items():
        per = row["memory_bytes_per_shard"]
        lines.append(
            f"| `ShardedIndex`, {shards} shard{'s' if shards != '1' else ''} | {_params(row['params'])} | "
            f"{row['build_s']:.1f} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {row['cpu_ms_p50']:.2f} | "
            f"{row['batch_qps']:,.0f} | "
            f"{row['recall']:.3f} | {max(per) / gb:.2f} ({row['recommended_bytes_per_shard'] / gb:.2f}) |"
        )
    lines += [
        "",
        "The Ray hop: each shard count's sharded p50 minus the p50 of one in-process index over one "
        "shard's part with the same settings (what each actor computes per query); and a bare actor "
        "call (`info`, a small dict, no search) from the driver. CPU ms per query: the p50 of the "
        "process CPU time of one in-process single query, which the machine's load does not inflate.",
        "",
        "| shards | rows per shard | in-process part: build s (CPU s), p50 ms, CPU ms per query, batch QPS "
        "| sharded p50 - part p50, ms | bare call p50 / p99 ms |",
        "|---:|---|---|---:|---|",
    ]
    for shards, row in r["sharded"].items():
        part = row["part"]
        lines.append(
            f"| {shards} | {', '.join(f'{x:,}' for x in row['rows_per_shard'])} | "
            f"{part['build_s']:.1f} ({part['build_cpu_s']:.1f}), {part['p50_ms']:.2f}, "
            f"{part['cpu_ms_p50']:.2f}, {part['batch_qps']:,.0f} | "
            f"{row['hop_ms_p50']:.2f} | "
            f"{row['bare_call']['p50_ms']:.2f} / {row['bare_call']['p99_ms']:.2f} |"
        )
    lines += [
        "",
        "Every shard is on this one machine: more shards add hops and share the same cores, so the "
        "rows above measure the cost of the fan-out, not the gain of more machines.",
        "",
    ]
    return "\n".join(lines)


def _params(p: Dict[str, Any]) -> str:
    return f"nlist {p['nlist']}, nprobe {p['nprobe']}, rerank {p['rerank_factor']}"


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", choices=["wordnet", "synthetic"], default="wordnet")
    parser.add_argument(
        "--cache", default=str(HERE.parent / "target" / "bench-data"), help="embeddings cache (bench/corpus.py)"
    )
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384, help="--data synthetic only (wordnet is 384)")
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=None, help="Markdown table to write (e.g. bench/results-ray.md)")
    parser.add_argument("--json", default=None, help="also write the raw figures as JSON here")
    args = parser.parse_args(argv)
    result = run(args)
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).write_text(markdown(result))
        _log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
