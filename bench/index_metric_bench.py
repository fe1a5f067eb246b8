"""Inner-product (MIPS) and cosine search next to faiss and hnswlib, one run.

Data: the real MiniLM sentence embeddings of bench/corpus.py (unit length),
and the same rows scaled by random norms in [0.5, 2] so that inner product,
cosine and L2 rank differently (real MIPS, not "normalise and hope").
Queries are held-out real embeddings. Ground truth: exact top-10 by the
metric in float64 NumPy. For each library and setting: recall@10 and the
p50/p99 latency of one query at a time (single thread for everyone, so the
comparison is per query, not per core count).

    python bench/index_metric_bench.py --cache target/bench-data --n 100000 --out bench/results-metric.md
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import corpus

K = 10


def exact(base: np.ndarray, queries: np.ndarray, metric: str) -> np.ndarray:
    b, q = base.astype(np.float64), queries.astype(np.float64)
    if metric == "cosine":
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
    out = np.empty((len(q), K), np.int64)
    for lo in range(0, len(q), 256):
        sims = q[lo : lo + 256] @ b.T
        top = np.argpartition(-sims, K, axis=1)[:, :K]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1)
        out[lo : lo + 256] = np.take_along_axis(top, order, axis=1)
    return out


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found.tolist(), truth.tolist())]))


def timed(search: Callable[[np.ndarray], np.ndarray], queries: np.ndarray) -> Dict[str, Any]:
    found = np.full((len(queries), K), -1, np.int64)
    lat = []
    for i, q in enumerate(queries):
        t0 = time.perf_counter()
        ids = search(q)
        lat.append(time.perf_counter() - t0)
        found[i, : len(ids)] = ids[:K]
    ms = np.array(lat) * 1e3
    return {"found": found, "p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99))}


def ours(base: np.ndarray, metric: str, nprobes: Sequence[int]) -> List[Dict[str, Any]]:
    import ruvector_rabitq as rr

    if hasattr(rr, "set_num_threads"):
        rr.set_num_threads(1)
    t0 = time.perf_counter()
    index = rr.IvfRabitqIndex.build(base, metric=metric)
    build = time.perf_counter() - t0
    rows = []
    for nprobe in nprobes:
        # The setting is bound per row: rows run after this loop.
        def search(q: np.ndarray, nprobe: int = nprobe) -> np.ndarray:
            return np.array([h.id for h in index.search(q, K, nprobe=nprobe)], np.int64)

        rows.append({"lib": "ruvector IvfRabitqIndex", "setting": f"nprobe={nprobe}", "build_s": build, "run": search})
    return rows


def faiss_rows(base: np.ndarray, metric: str, nprobes: Sequence[int], efs: Sequence[int]) -> List[Dict[str, Any]]:
    try:
        import faiss
    except ImportError:
        return []
    faiss.omp_set_num_threads(1)
    x = base if metric == "ip" else base / np.linalg.norm(base, axis=1, keepdims=True)
    x = np.ascontiguousarray(x, np.float32)
    d, n = x.shape[1], x.shape[0]
    rows = []
    nlist = round(float(np.sqrt(n)))
    t0 = time.perf_counter()
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.train(x)
    ivf.add(x)
    build = time.perf_counter() - t0
    for nprobe in nprobes:

        def search_ivf(q: np.ndarray, nprobe: int = nprobe) -> np.ndarray:
            ivf.nprobe = nprobe
            return ivf.search(prep(q), K)[1][0]

        rows.append(
            {"lib": "faiss IndexIVFFlat IP", "setting": f"nprobe={nprobe}", "build_s": build, "run": search_ivf}
        )
    t0 = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 200
    hnsw.add(x)
    build = time.perf_counter() - t0
    for ef in efs:

        def search_hnsw(q: np.ndarray, ef: int = ef) -> np.ndarray:
            hnsw.hnsw.efSearch = ef
            return hnsw.search(prep(q), K)[1][0]

        rows.append({"lib": "faiss IndexHNSWFlat IP", "setting": f"ef={ef}", "build_s": build, "run": search_hnsw})

    def prep(q: np.ndarray) -> np.ndarray:
        q = q.reshape(1, -1).astype(np.float32)
        return q if metric == "ip" else q / np.linalg.norm(q)

    return rows


def hnswlib_rows(base: np.ndarray, metric: str, efs: Sequence[int]) -> List[Dict[str, Any]]:
    try:
        import hnswlib
    except ImportError:
        return []
    n, d = base.shape
    index = hnswlib.Index(space=metric, dim=d)
    t0 = time.perf_counter()
    index.init_index(max_elements=n, ef_construction=200, M=16, random_seed=1)
    index.set_num_threads(1)
    index.add_items(base, np.arange(n))
    build = time.perf_counter() - t0
    rows = []
    for ef in efs:

        def search(q: np.ndarray, ef: int = ef) -> np.ndarray:
            index.set_ef(ef)
            return index.knn_query(q, k=K)[0][0].astype(np.int64)

        rows.append({"lib": f"hnswlib {metric}", "setting": f"ef={ef}", "build_s": build, "run": search})
    return rows


def table(title: str, rows: List[Dict[str, Any]]) -> List[str]:
    out = [
        f"### {title}",
        "",
        "| library | setting | recall@10 | p50 ms | p99 ms | build s |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['lib']} | {r['setting']} | {r['recall']:.3f} | {r['p50']:.3f} | {r['p99']:.3f} "
            f"| {r['build_s']:.1f} |"
        )
    out.append("")
    for level in (0.9, 0.95, 0.99):
        at = [r for r in rows if r["recall"] >= level]
        mine = [r for r in at if r["lib"].startswith("ruvector")]
        theirs = [r for r in at if not r["lib"].startswith("ruvector")]
        if mine and theirs:
            m = min(mine, key=lambda r: r["p50"])
            t = min(theirs, key=lambda r: r["p50"])
            out.append(
                f"- recall ≥ {level}: ruvector p50 {m['p50']:.3f} ms ({m['setting']}) vs best peer "
                f"{t['lib']} {t['p50']:.3f} ms ({t['setting']}): ratio {m['p50'] / t['p50']:.2f}x"
            )
        elif mine:
            out.append(f"- recall ≥ {level}: only ruvector reaches it here")
        elif theirs:
            out.append(f"- recall ≥ {level}: ruvector does not reach it at these settings")
    out.append("")
    return out


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", default="target/bench-data")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--out", default="bench/results-metric.md")
    args = ap.parse_args(argv)
    x, about = corpus.embeddings(Path(args.cache))
    base, queries, _, about_split = corpus.split(x, args.n, args.queries, 0)
    rng = np.random.default_rng(7)
    scaled = (base * rng.uniform(0.5, 2.0, size=(len(base), 1))).astype(np.float32)
    lines = [
        "# Metrics: inner product (MIPS) and cosine",
        "",
        f"Data: {about}; {about_split}. `ip` runs on the rows scaled by random norms in [0.5, 2] "
        "(numpy.random.default_rng(7)); `cosine` on the same scaled rows (each library normalises). "
        f"Single-thread, one query at a time, {len(queries)} queries, k={K}; CPU count {os.cpu_count()}.",
        "",
    ]
    for metric in ("ip", "cosine"):
        truth = exact(scaled, queries, metric)
        rows = ours(scaled, metric, [8, 16, 32, 64, 128])
        rows += faiss_rows(scaled, metric, [8, 16, 32, 64], [32, 64, 128])
        rows += hnswlib_rows(scaled, metric, [32, 64, 128, 256])
        for r in rows:
            r.update(timed(r.pop("run"), queries))
            r["recall"] = recall(r.pop("found"), truth)
            print(
                f"{metric:6} {r['lib']:28} {r['setting']:10} recall {r['recall']:.3f} p50 {r['p50']:.3f} ms", flush=True
            )
        lines += table(f"metric={metric!r}, n={len(base):,}", rows)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
