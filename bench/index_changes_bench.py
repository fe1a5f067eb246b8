"""Indexes for changing data (issue 12): filtered search and churn.

Filtered search at selectivity 50 %, 10 %, 1 % and 0.1 % (random allowed
ids, and allowed ids forming one cluster: the rows nearest to one random
row), recall@10 against the exact filtered top-10 and single-query p50/p99,
for ``IvfRabitqIndex`` (``filter=IdSet``) and ``FlatF32Index`` next to faiss
(``IDSelectorBatch`` through ``SearchParametersIVF`` on ``IndexIVFFlat`` and
``SearchParametersHNSW`` on ``IndexHNSWFlat``) and hnswlib (``filter=``).

Churn: five rounds of removing 10 % of the ids and upserting as many new
vectors into an ``IvfRabitqIndex``; after each round recall@10, p50 and
``memory_bytes`` (after ``compact()``) next to a fresh build of the same
rows.

    python bench/index_changes_bench.py --data wordnet --cache target/bench-data
    python bench/index_changes_bench.py --data synthetic --n 100000 --dim 384

``--data wordnet`` uses the real sentence embeddings of ``bench/corpus.py``
(computed once with the ruvector-embed wheel and cached); ``synthetic`` is
clustered Gaussian data, unit-normalised. Peers that are not installed are
skipped.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np

import ruvector_rabitq as rr

K = 10
SELECTIVITIES = [0.5, 0.1, 0.01, 0.001]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def synthetic(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(16, n // 500), dim))
    x = centres[rng.integers(0, len(centres), n)] + 0.35 * rng.standard_normal((n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


def load_data(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, str]:
    """``(base, queries, description)``; base holds ``n`` rows plus a reserve
    for the churn's new vectors."""
    need = args.n + args.n // 2 + args.nq
    if args.data == "wordnet":
        sys.path.insert(0, str(Path(__file__).parent))
        import corpus

        x, desc = corpus.embeddings(Path(args.cache), log=log)
        if len(x) < need:
            raise SystemExit(f"the corpus has {len(x)} rows, {need} needed")
        x = x[np.random.default_rng(1).permutation(len(x))[:need]]
    else:
        x = synthetic(need, args.dim)
        desc = f"synthetic clustered, {args.dim}-d, unit norm"
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x[: -args.nq], np.ascontiguousarray(x[-args.nq :]), desc


def exact_filtered(x: np.ndarray, allowed: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    """Exact filtered top-k ids (rows of ``x`` are ids) for every query."""
    sub = x[allowed]
    d = (sub * sub).sum(1)[None, :] - 2.0 * q @ sub.T
    kk = min(k, len(allowed))
    part = np.argpartition(d, kk - 1, axis=1)[:, :kk]
    order = np.take_along_axis(d, part, 1).argsort(1)
    return allowed[np.take_along_axis(part, order, 1)]


def recall(got: List[np.ndarray], truth: np.ndarray) -> float:
    hits = sum(len(set(g.tolist()) & set(t.tolist())) for g, t in zip(got, truth))
    return hits / truth.size


def timed(search: Callable[[np.ndarray], np.ndarray], q: np.ndarray) -> tuple[List[np.ndarray], float, float]:
    out, times = [], []
    for qi in q:
        t = time.perf_counter()
        out.append(np.asarray(search(qi)))
        times.append(time.perf_counter() - t)
    ms = np.array(times) * 1e3
    return out, float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def peers(x: np.ndarray, threads: int) -> Dict[str, Any]:
    found: Dict[str, Any] = {}
    try:
        import faiss

        faiss.omp_set_num_threads(threads)
        n, d = x.shape
        nlist = round(float(np.sqrt(n)))
        quant = faiss.IndexFlatL2(d)
        ivf = faiss.IndexIVFFlat(quant, d, nlist)
        ivf.train(x)
        ivf.add(x)
        found["faiss-ivfflat"] = (faiss, ivf, max(1, nlist // 8))
        hnsw = faiss.IndexHNSWFlat(d, 32)
        hnsw.hnsw.efConstruction = 200
        hnsw.add(x)
        found["faiss-hnsw"] = (faiss, hnsw, 128)
    except ImportError:
        log("faiss-cpu not installed: skipped")
    try:
        import hnswlib

        h = hnswlib.Index(space="l2", dim=x.shape[1])
        h.init_index(max_elements=len(x), ef_construction=200, M=32)
        h.set_num_threads(threads)
        h.add_items(x, np.arange(len(x)))
        h.set_ef(128)
        h.set_num_threads(1)
        found["hnswlib"] = h
    except ImportError:
        log("hnswlib not installed: skipped")
    return found


def filtered(x: np.ndarray, q: np.ndarray, threads: int) -> List[Dict[str, Any]]:
    n = len(x)
    rng = np.random.default_rng(7)
    t = time.perf_counter()
    ivf = rr.IvfRabitqIndex.build(x, seed=1)
    log(f"IvfRabitqIndex built in {time.perf_counter() - t:.1f} s ({ivf!r})")
    flat = rr.FlatF32Index.build(x)
    others = peers(x, threads)
    rows: List[Dict[str, Any]] = []
    centre = x[rng.integers(n)]
    by_distance = np.argsort(((x - centre) ** 2).sum(1))
    for kind in ["random", "cluster"]:
        for sel in SELECTIVITIES:
            m = max(1, int(n * sel))
            allowed = np.sort(rng.choice(n, m, replace=False) if kind == "random" else by_distance[:m])
            truth = exact_filtered(x, allowed, q, K)
            ids = rr.IdSet(allowed)
            cands: Dict[str, Callable[[np.ndarray], np.ndarray]] = {
                "ruvector-ivf": lambda qi, ids=ids: np.array([h.id for h in ivf.search(qi, K, filter=ids)]),
                "ruvector-flat": lambda qi, ids=ids: np.array([h.id for h in flat.search(qi, K, filter=ids)]),
            }
            if "faiss-ivfflat" in others:
                faiss, fivf, nprobe = others["faiss-ivfflat"]
                sel_ivf = faiss.IDSelectorBatch(allowed.astype(np.int64))
                p_ivf = faiss.SearchParametersIVF(sel=sel_ivf, nprobe=nprobe)
                cands["faiss-ivfflat"] = lambda qi, f=fivf, p=p_ivf: f.search(qi[None, :], K, params=p)[1][0]
                _, fh, ef = others["faiss-hnsw"]
                p_h = faiss.SearchParametersHNSW(sel=sel_ivf, efSearch=ef)
                cands["faiss-hnsw"] = lambda qi, f=fh, p=p_h: f.search(qi[None, :], K, params=p)[1][0]
            if "hnswlib" in others:
                h = others["hnswlib"]
                allowed_set = set(allowed.tolist())
                cands["hnswlib"] = lambda qi, h=h, s=allowed_set: h.knn_query(
                    qi, k=min(K, len(s)), filter=lambda i: i in s
                )[0][0]
            for name, fn in cands.items():
                got, p50, p99 = timed(fn, q)
                got = [g[g >= 0] for g in got]
                rows.append(dict(kind=kind, sel=sel, lib=name, recall=recall(got, truth), p50=p50, p99=p99))
                log(
                    f"{kind:7s} {sel:6.3f} {name:14s} recall {rows[-1]['recall']:.3f} p50 {p50:.3f} ms p99 {p99:.3f} ms"
                )
    return rows


def churn(x: np.ndarray, q: np.ndarray, n: int, rounds: int = 5) -> List[Dict[str, Any]]:
    rng = np.random.default_rng(11)
    base, reserve = x[:n], x[n:]
    idx = rr.IvfRabitqIndex.build(base, seed=1)
    held = {i: i for i in range(n)}  # id -> row of x
    next_id, next_reserve = n, 0
    rows: List[Dict[str, Any]] = []

    def measure(index: rr.IvfRabitqIndex, ids: np.ndarray) -> tuple[float, float]:
        truth_rows = exact_filtered(x, np.array([held[int(i)] for i in ids]), q, K)
        row_to_id = {r: i for i, r in held.items()}
        truth = np.vectorize(row_to_id.get)(truth_rows)
        got, p50, _ = timed(lambda qi: np.array([h.id for h in index.search(qi, K)]), q)
        return recall(got, truth), p50

    r0, p0 = measure(idx, idx.ids)
    rows.append(
        dict(
            round=0, recall=r0, p50=p0, mem=idx.memory_bytes, fresh_recall=r0, fresh_p50=p0, fresh_mem=idx.memory_bytes
        )
    )
    for r in range(1, rounds + 1):
        step = len(held) // 10
        gone = rng.choice(np.array(list(held)), step, replace=False)
        t = time.perf_counter()
        assert idx.remove(gone) == step
        t_remove = time.perf_counter() - t
        for g in gone:
            del held[int(g)]
        take = min(step, len(reserve) - next_reserve)
        new_ids = np.arange(next_id, next_id + take)
        new_rows = n + next_reserve + np.arange(take)
        t = time.perf_counter()
        idx.upsert(new_ids, x[new_rows])
        t_upsert = time.perf_counter() - t
        held.update({int(i): int(w) for i, w in zip(new_ids, new_rows)})
        next_id += take
        next_reserve += take
        idx.compact()
        rec, p50 = measure(idx, idx.ids)
        fresh = rr.IvfRabitqIndex.build(x[[held[int(i)] for i in idx.ids]], idx.ids, seed=1)
        frec, fp50 = measure(fresh, fresh.ids)
        rows.append(
            dict(
                round=r,
                recall=rec,
                p50=p50,
                mem=idx.memory_bytes,
                fresh_recall=frec,
                fresh_p50=fp50,
                fresh_mem=fresh.memory_bytes,
                remove_s=t_remove,
                upsert_s=t_upsert,
            )
        )
        log(
            f"churn round {r}: recall {rec:.3f} (fresh {frec:.3f}) p50 {p50:.3f} ms (fresh {fp50:.3f}) "
            f"mem {idx.memory_bytes / 1e6:.1f} MB (fresh {fresh.memory_bytes / 1e6:.1f}) "
            f"remove {t_remove * 1e3:.0f} ms upsert {t_upsert * 1e3:.0f} ms"
        )
    return rows


def report(desc: str, n: int, nq: int, frows: List[Dict[str, Any]], crows: List[Dict[str, Any]]) -> str:
    out = [f"# Indexes for changing data\n\n{n} vectors ({desc}), {nq} queries, k = {K}, single-query latency.\n"]
    out.append(
        "## Filtered search\n\n| allowed | selectivity | library | recall@10 | p50 ms | p99 ms |\n"
        "|---|---|---|---|---|---|"
    )
    for r in frows:
        out.append(
            f"| {r['kind']} | {r['sel']:.1%} | {r['lib']} | {r['recall']:.3f} | {r['p50']:.3f} | {r['p99']:.3f} |"
        )
    out.append("\n## Churn (IvfRabitqIndex: remove 10 %, upsert 10 %, compact)\n")
    out.append(
        "| round | recall@10 | fresh | p50 ms | fresh | memory MB | fresh | ratio |\n|---|---|---|---|---|---|---|---|"
    )
    for r in crows:
        out.append(
            f"| {r['round']} | {r['recall']:.3f} | {r['fresh_recall']:.3f} | {r['p50']:.3f} | {r['fresh_p50']:.3f} "
            f"| {r['mem'] / 1e6:.1f} | {r['fresh_mem'] / 1e6:.1f} | {r['mem'] / r['fresh_mem']:.3f} |"
        )
    return "\n".join(out) + "\n"


def main(argv: Optional[List[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=["synthetic", "wordnet"], default="synthetic")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384, help="synthetic data only")
    ap.add_argument("--nq", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", default="target/bench-data")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    x, q, desc = load_data(args)
    frows = filtered(x[: args.n], q, args.threads)
    crows = churn(x, q, args.n)
    text = report(desc, args.n, len(q), frows, crows)
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
