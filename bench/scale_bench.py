#!/usr/bin/env python3
"""10M x 384 on one machine (issue 16): build, save, ``load(lean=True)``, search.

The rows are sampled around the real MiniLM embeddings of ``bench/corpus.py``
exactly as its 1M set is (``corpus.split``: a random non-query embedding plus
N(0, (0.3/sqrt(384))^2 I) noise, re-normalised, the same seeded generator in
steps of 100,000 rows), but generated chunk by chunk and added to the index
as they come, so the float32 rows exist once, inside the index; the exact
top-10 of the held-out real queries is kept up to date chunk by chunk (float32
distances pick 30 candidates per query, float64 distances rank them).

Two processes, so the second starts from nothing but the file:

1. ``build``: ``IvfRabitqIndex(384, seed=42)`` (about sqrt(n) lists; spilled
   lists unless ``--no-spill``), rows added in chunks on 2 threads (timed:
   the build), then ``save`` (timed);
2. ``search``: ``IvfRabitqIndex.load(path, lean=True)`` (timed, RSS after),
   the fastest ``(nprobe, rerank_factor)`` of a grid reaching recall@10 >=
   ``--target`` on the tuning queries, then the evaluation queries one at a
   time on one thread (p50, p99, recall) and as one batch on 2 threads (QPS),
   and RSS after.

Then, for each ``--faiss`` factory string (``{nlist}`` is replaced by the
same list count), faiss beside it, also in two fresh processes: the build
reads the rows the first step wrote to ``rows.npy`` (read chunk by chunk
with plain reads, not mapped, so its RSS is faiss's own), trains on 64 rows a
list (10 k-means iterations) and adds them in the same chunks; the search
loads the index, takes ``k * k_factor`` candidates from faiss and reranks
them exactly with the float32 rows read from ``rows.npy`` on disk (a memory
map: refine from disk, faiss's ``IndexRefine`` would hold all the rows in
RAM), tuned on the same grid as ours (``nprobe``, ``k_factor`` for
``rerank_factor``).

Issue 16's 10M targets: build <= 10 minutes, p99 < 10 ms at recall@10 >=
0.95, resident memory < 6 GB. Needs ~21 GB of RAM for the build (the index
holds every float32 row while it builds) and the file's size (16.9 GB) on
disk, plus the rows file (15.4 GB) with ``--faiss``.

Usage::

    python bench/scale_bench.py --cache target/bench-data --dir target/bench-10m \
        --faiss 'IVF{nlist},RaBitQfs'
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import corpus  # noqa: E402

K = 10
CANDIDATES = 30
TIMES = "\u00d7"
GENERATOR_STEP = 100_000  # corpus.split's step: the same rows for the same n
ROWS_FILE = "rows.npy"  # the float32 rows, for faiss's build and refine
FAISS_TRAIN_ROWS_PER_LIST = 64
FAISS_TRAIN_ITERATIONS = 10


def status() -> Dict[str, int]:
    got = {}
    for line in open("/proc/self/status"):
        key, value = line.split(":", 1)
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            got[key] = int(value.split()[0]) * 1024
    return got


def gib(b: float) -> str:
    """Bytes in GiB (2³⁰ bytes; the 6 GB target is 5.59 GiB)."""
    return f"{b / 2**30:.2f} GiB"


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found.tolist(), truth.tolist())]))


class RunningTopK:
    """The exact top-K of each query over the rows seen so far."""

    def __init__(self, queries: np.ndarray) -> None:
        self.q = queries
        self.q_sq = (queries * queries).sum(1)
        nq, d = queries.shape
        self.ids = np.full((nq, 0), -1, np.int64)
        self.vecs = np.zeros((nq, 0, d), np.float32)

    def update(self, rows: np.ndarray, first_id: int, block: int = 50_000) -> None:
        for lo in range(0, len(rows), block):
            self._update(rows[lo : lo + block], first_id + lo)

    def _update(self, rows: np.ndarray, first_id: int) -> None:
        dist = self.q_sq[:, None] - 2.0 * (self.q @ rows.T) + (rows * rows).sum(1)[None, :]
        take = min(CANDIDATES, len(rows) - 1)
        part = np.argpartition(dist, take, axis=1)[:, : take + 1]
        ids = np.concatenate([self.ids, part + first_id], axis=1)
        vecs = np.concatenate([self.vecs, rows[part]], axis=1)
        d32 = ((vecs - self.q[:, None, :]) ** 2).sum(2)
        keep = np.argsort(d32, axis=1, kind="stable")[:, :CANDIDATES]
        self.ids = np.take_along_axis(ids, keep, axis=1)
        self.vecs = np.take_along_axis(vecs, keep[:, :, None], axis=1)

    def result(self) -> np.ndarray:
        q64 = self.q.astype(np.float64)[:, None, :]
        d64 = ((self.vecs.astype(np.float64) - q64) ** 2).sum(2)
        out = np.empty((len(self.q), K), np.int64)
        for r in range(len(self.q)):
            order = np.lexsort((self.ids[r], d64[r]))[:K]
            out[r] = self.ids[r][order]
        return out


def nlist_for(args: argparse.Namespace) -> int:
    """About sqrt(n) lists, as a build from all rows at once would choose
    (the first chunk alone would choose sqrt(chunk)); faiss gets the same."""
    return int(args.nlist or round(args.n**0.5))


def open_rows_file(path: Path, n: int, d: int) -> BinaryIO:
    """A ``.npy`` file of ``n x d`` float32 rows, open for the rows to be
    appended in order (plain writes: no mapped pages in this process)."""
    f = open(path, "wb")
    np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (n, d)})
    return f


def read_row_chunks(path: Path, chunk: int) -> Iterator[np.ndarray]:
    """The rows of ``open_rows_file``'s file, ``chunk`` at a time, read (not
    mapped) so they leave no file pages in the reader's RSS."""
    with open(path, "rb") as f:
        np.lib.format.read_magic(f)
        (n, d), _, _ = np.lib.format.read_array_header_1_0(f)
        for lo in range(0, n, chunk):
            rows = np.fromfile(f, dtype="<f4", count=min(chunk, n - lo) * d)
            yield rows.reshape(-1, d)


def build(args: argparse.Namespace) -> None:
    import ruvector_rabitq as rr

    x, about = corpus.embeddings(args.cache, log=lambda m: print(m, file=sys.stderr))
    _, queries, tune, _ = corpus.split(x, 1000, args.queries, args.tune)
    # corpus.split's pool and generator, without materialising all n rows.
    order = np.random.default_rng(corpus.SPLIT_SEED).permutation(len(x))
    pool = x[order[args.queries + args.tune :]]
    rng = np.random.default_rng(corpus.SPLIT_SEED + 1)
    truth = RunningTopK(np.concatenate([queries, tune]))
    rr.set_num_threads(2)
    nlist = nlist_for(args)
    index = rr.IvfRabitqIndex(x.shape[1], seed=42, nlist=nlist, spill=args.spill)
    # The rows on disk for faiss's build and its refine (written outside
    # the timed adds).
    on_disk = open_rows_file(args.dir / ROWS_FILE, args.n, x.shape[1]) if args.faiss else None
    build_s = 0.0
    generated = 0
    t_all = time.perf_counter()
    while generated < args.n:
        chunk = min(args.chunk, args.n - generated)
        rows = np.empty((chunk, x.shape[1]), np.float32)
        for lo in range(0, chunk, GENERATOR_STEP):
            hi = min(lo + GENERATOR_STEP, chunk)
            picked = pool[rng.integers(0, pool.shape[0], size=hi - lo)]
            noisy = picked + rng.normal(0.0, corpus.NOISE_STD, size=picked.shape).astype(np.float32)
            rows[lo:hi] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
        t0 = time.perf_counter()
        index.add_batch(rows)
        build_s += time.perf_counter() - t0
        truth.update(rows, generated)
        if on_disk is not None:
            on_disk.write(memoryview(rows))  # C-contiguous: no copy
        generated += chunk
        print(
            f"  {generated:,} rows: build {build_s:.0f} s, wall {time.perf_counter() - t_all:.0f} s, "
            f"RSS {gib(status()['VmRSS'])}",
            file=sys.stderr,
        )
    if on_disk is not None:
        on_disk.close()
    lists = np.asarray(index.list_sizes)
    t0 = time.perf_counter()
    index.save(args.dir / "index.rbpx")
    save_s = time.perf_counter() - t0
    gt = truth.result()
    np.save(args.dir / "queries.npy", queries)
    np.save(args.dir / "tune.npy", tune)
    np.save(args.dir / "truth.npy", gt[: len(queries)])
    np.save(args.dir / "tune-truth.npy", gt[len(queries) :])
    info = dict(
        n=args.n,
        spill=bool(index.spill),
        nlist=int(index.nlist or 0),
        build_s=build_s,
        save_s=save_s,
        peak_rss=status()["VmHWM"],
        file_bytes=(args.dir / "index.rbpx").stat().st_size,
        lists=[int(lists.min()), int(np.median(lists)), int(lists.max())],
        about=about,
    )
    (args.dir / "build.json").write_text(json.dumps(info))
    print(json.dumps(info), file=sys.stderr)


def tune_setting(
    search_one: Callable[[np.ndarray, int, int], List[int]], tune: np.ndarray, truth: np.ndarray, target: float
) -> Tuple[Dict[str, int], float]:
    """The fastest ``(nprobe, rerank_factor)`` of the grid reaching
    ``target`` on the tuning queries; ``search_one(query, nprobe, rf)``
    gives the ids of one query's top K."""
    best: Optional[Tuple[float, Dict[str, int], float]] = None
    for rf in (5, 10, 20):
        for nprobe in (16, 32, 64, 128, 256, 384, 512, 768, 1024):
            t0 = time.perf_counter()
            found = np.stack([search_one(v, nprobe, rf) for v in tune])
            per = (time.perf_counter() - t0) / len(tune)
            r = recall(found, truth)
            print(f"  nprobe {nprobe}, rerank_factor {rf}: recall {r:.3f}, {per * 1e3:.2f} ms", file=sys.stderr)
            if r >= target:
                if best is None or per < best[0]:
                    best = (per, {"nprobe": nprobe, "rerank_factor": rf}, r)
                break
    if best is None:
        raise RuntimeError(f"no setting of the grid reaches recall {target}")
    return best[1], best[2]


def measure(
    args: argparse.Namespace,
    search_one: Callable[[np.ndarray, int, int], List[int]],
    search_batch: Callable[[np.ndarray, int, int], np.ndarray],
    set_threads: Callable[[int], None],
) -> Dict[str, Any]:
    """One index's search figures, the same way for every index: the
    setting tuned on the tuning queries, then the evaluation queries one at
    a time on one thread and as one batch (``search_batch(queries, nprobe,
    rf)``, ids padded with -1) on two, and RSS after."""
    queries = np.load(args.dir / "queries.npy")
    truth = np.load(args.dir / "truth.npy")
    tune = np.load(args.dir / "tune.npy")
    set_threads(1)
    setting, tune_recall = tune_setting(search_one, tune, np.load(args.dir / "tune-truth.npy"), args.target)
    nprobe, rf = setting["nprobe"], setting["rerank_factor"]
    found = np.full((len(queries), K), -1, np.int64)
    lat: List[float] = []
    for i, v in enumerate(queries):
        t = time.perf_counter()
        hits = search_one(v, nprobe, rf)
        lat.append(time.perf_counter() - t)
        found[i, : len(hits)] = hits
    ms = np.array(lat) * 1e3
    set_threads(2)
    t = time.perf_counter()
    ids = search_batch(queries, nprobe, rf)
    batch_s = time.perf_counter() - t
    return dict(
        after=status(),
        setting=setting,
        tune_recall=tune_recall,
        recall=recall(found, truth),
        batch_recall=recall(ids, truth),
        p50=float(np.percentile(ms, 50)),
        p99=float(np.percentile(ms, 99)),
        qps=len(queries) / batch_s,
    )


def search(args: argparse.Namespace) -> None:
    import ruvector_rabitq as rr

    rr.set_num_threads(2)
    before = status()
    t0 = time.perf_counter()
    index = rr.IvfRabitqIndex.load(args.dir / "index.rbpx", lean=True)
    load_s = time.perf_counter() - t0
    loaded = status()

    def search_one(v: np.ndarray, nprobe: int, rf: int) -> List[int]:
        return [h.id for h in index.search(v, K, nprobe=nprobe, rerank_factor=rf)]

    def search_batch(queries: np.ndarray, nprobe: int, rf: int) -> np.ndarray:
        return np.asarray(index.search_batch(queries, K, nprobe=nprobe, rerank_factor=rf)[0])

    figures = measure(args, search_one, search_batch, rr.set_num_threads)
    info = dict(load_s=load_s, before=before, loaded=loaded, lean=bool(index.lean), **figures)
    (args.dir / "search.json").write_text(json.dumps(info))
    print(json.dumps(info), file=sys.stderr)


def faiss_file(args: argparse.Namespace, name: str) -> Path:
    return args.dir / f"faiss-{args.faiss_at}.{name}"


def faiss_factory(args: argparse.Namespace) -> str:
    return str(args.faiss[args.faiss_at]).format(nlist=nlist_for(args))


def faiss_build(args: argparse.Namespace) -> None:
    """faiss's index of the rows on disk, trained and filled in chunks."""
    import faiss

    faiss.omp_set_num_threads(2)
    rows_path = args.dir / ROWS_FILE
    index = faiss.index_factory(384, faiss_factory(args))
    ivf = faiss.extract_index_ivf(index)
    ivf.cp.niter = FAISS_TRAIN_ITERATIONS
    ivf.cp.max_points_per_centroid = FAISS_TRAIN_ROWS_PER_LIST
    # A uniform sample of the rows (the first rows would do as well: they
    # are shuffled), read from the file chunk by chunk.
    want = FAISS_TRAIN_ROWS_PER_LIST * ivf.nlist
    keep = max(1, args.n // want)
    t0 = time.perf_counter()
    # Copies: a strided view would keep its whole chunk alive.
    sample = np.concatenate([c[::keep].copy() for c in read_row_chunks(rows_path, args.chunk)])[:want]
    index.train(sample)
    train_s = time.perf_counter() - t0
    del sample
    add_s, added = 0.0, 0
    for rows in read_row_chunks(rows_path, args.chunk):
        t = time.perf_counter()
        index.add(rows)
        add_s += time.perf_counter() - t
        added += len(rows)
        print(f"  faiss {added:,} rows: add {add_s:.0f} s, RSS {gib(status()['VmRSS'])}", file=sys.stderr)
    lists = np.array([ivf.get_list_size(i) for i in range(ivf.nlist)])
    t0 = time.perf_counter()
    faiss.write_index(index, str(faiss_file(args, "index")))
    save_s = time.perf_counter() - t0
    info = dict(
        factory=faiss_factory(args),
        version=faiss.__version__,
        train_s=train_s,
        build_s=train_s + add_s,
        save_s=save_s,
        peak_rss=status()["VmHWM"],
        file_bytes=faiss_file(args, "index").stat().st_size,
        lists=[int(lists.min()), int(np.median(lists)), int(lists.max())],
    )
    faiss_file(args, "build.json").write_text(json.dumps(info))
    print(json.dumps(info), file=sys.stderr)


def faiss_search(args: argparse.Namespace) -> None:
    """faiss's candidates reranked with the float32 rows read from disk."""
    import faiss

    before = status()
    t0 = time.perf_counter()
    index = faiss.read_index(str(faiss_file(args, "index")))
    load_s = time.perf_counter() - t0
    loaded = status()
    ivf = faiss.extract_index_ivf(index)
    rows = np.load(args.dir / ROWS_FILE, mmap_mode="r")

    def refine(q: np.ndarray, candidates: np.ndarray) -> List[int]:
        ids = np.sort(candidates[candidates >= 0])
        d = ((rows[ids] - q) ** 2).sum(1)
        return [int(i) for i in ids[np.argsort(d, kind="stable")[:K]]]

    def search_one(v: np.ndarray, nprobe: int, rf: int) -> List[int]:
        ivf.nprobe = nprobe
        _, found = index.search(v[None, :], K * rf)
        return refine(v, found[0])

    def search_batch(queries: np.ndarray, nprobe: int, rf: int) -> np.ndarray:
        ivf.nprobe = nprobe
        _, candidates = index.search(queries, K * rf)
        hits = [refine(v, c) for v, c in zip(queries, candidates)]
        return np.array([h + [-1] * (K - len(h)) for h in hits])

    figures = measure(args, search_one, search_batch, faiss.omp_set_num_threads)
    # faiss's name for the rerank factor.
    figures["setting"] = {"nprobe": figures["setting"]["nprobe"], "k_factor": figures["setting"]["rerank_factor"]}
    info = dict(load_s=load_s, before=before, loaded=loaded, **figures)
    faiss_file(args, "search.json").write_text(json.dumps(info))
    print(json.dumps(info), file=sys.stderr)


def search_lines(args: argparse.Namespace, s: Dict[str, Any], batch: str) -> List[str]:
    """The table rows of one index's ``measure`` figures."""
    setting = ", ".join(f"{k} {v}" for k, v in s["setting"].items())
    return [
        f"| setting (fastest reaching recall {args.target} on the tuning queries) | {setting} "
        f"(tuning recall {s['tune_recall']:.3f}) |",
        f"| {args.queries:,} queries one at a time, 1 thread | recall@10 {s['recall']:.4f}, "
        f"p50 {s['p50']:.2f} ms, p99 {s['p99']:.2f} ms |",
        f"| the same as {batch} | {s['qps']:,.0f} QPS, recall@10 {s['batch_recall']:.4f} |",
        f"| RSS after the queries | {gib(s['after']['VmRSS'])} ({gib(s['after']['RssAnon'])} private, "
        f"{gib(s['after']['RssFile'])} file pages) |",
    ]


def report(args: argparse.Namespace) -> str:
    b = json.loads((args.dir / "build.json").read_text())
    s = json.loads((args.dir / "search.json").read_text())
    return "\n".join(
        [
            f"# {b['n']:,} x 384 on one machine (issue 16)",
            "",
            f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} CPUs, "
            f"Linux {platform.release()}, Python {platform.python_version()}.",
            "",
            f"Data: {b['n']:,} rows sampled around {b['about']} (as `corpus.split` samples its 1M set, "
            f"chunk by chunk); {args.queries:,} held-out real queries, {args.tune} tuning queries; exact "
            f"top-10 kept chunk by chunk.",
            "",
            "| step | result |",
            "|---|---|",
            f"| build ({'spilled lists' if b.get('spill') else 'one copy a row'}, add in chunks of "
            f"{args.chunk:,}, 2 threads) | {b['build_s']:.0f} s, "
            f"{b['nlist']:,} lists (min / median / max rows {b['lists'][0]:,} / {b['lists'][1]:,} / "
            f"{b['lists'][2]:,}), peak RSS {gib(b['peak_rss'])} |",
            f"| save | {b['save_s']:.0f} s, {gib(b['file_bytes'])} |",
            f"| `load(path, lean=True)`, fresh process | {s['load_s']:.0f} s, RSS {gib(s['loaded']['VmRSS'])} "
            f"({gib(s['loaded']['RssAnon'])} private) |",
            *search_lines(args, s, "one batch, 2 threads"),
            "",
            *faiss_report(args, s),
        ]
    )


def faiss_report(args: argparse.Namespace, ours: Dict[str, Any]) -> List[str]:
    """One table per faiss factory run, then ours and theirs side by side."""
    out: List[str] = []
    rows: List[Tuple[str, Dict[str, Any], Dict[str, Any]]] = []
    for at in range(len(args.faiss)):
        args.faiss_at = at
        if not faiss_file(args, "search.json").exists():
            out += [f"faiss `{faiss_factory(args)}`: not run.", ""]
            continue
        b = json.loads(faiss_file(args, "build.json").read_text())
        s = json.loads(faiss_file(args, "search.json").read_text())
        rows.append((b["factory"], b, s))
        out += [
            f"## faiss {b['version']} `{b['factory']}`, refine from the rows on disk",
            "",
            "| step | result |",
            "|---|---|",
            f"| build (train on {FAISS_TRAIN_ROWS_PER_LIST} rows a list, {FAISS_TRAIN_ITERATIONS} iterations: "
            f"{b['train_s']:.0f} s; add in chunks of {args.chunk:,}; 2 threads) | {b['build_s']:.0f} s "
            f"(lists min / median / max {b['lists'][0]:,} / {b['lists'][1]:,} / {b['lists'][2]:,}), "
            f"peak RSS {gib(b['peak_rss'])} |",
            f"| save | {b['save_s']:.0f} s, {gib(b['file_bytes'])} (plus the rows file for the refine) |",
            f"| `read_index`, fresh process | {s['load_s']:.0f} s, RSS {gib(s['loaded']['VmRSS'])} |",
            *search_lines(args, s, "one batch, 2 threads (refine in a Python loop)"),
            "",
        ]
    if rows:
        b_ours = json.loads((args.dir / "build.json").read_text())
        out += [
            "## Side by side (ratios ours / faiss)",
            "",
            "RSS after the queries counts the file pages each search mapped: the kernel maps up to 64 KiB "
            "around every row read from a file (fault-around), so a refine that reads many rows from disk "
            "shows most of the file as resident (clean, shared and reclaimable); private memory is what "
            "the index itself holds.",
            "",
            "| faiss | build | p50 | p99 | batch QPS | private memory after the queries | RSS after the queries |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for factory, b, s in rows:
            ratios = [
                b_ours["build_s"] / b["build_s"],
                ours["p50"] / s["p50"],
                ours["p99"] / s["p99"],
                ours["qps"] / s["qps"],
                ours["after"]["RssAnon"] / s["after"]["RssAnon"],
                ours["after"]["VmRSS"] / s["after"]["VmRSS"],
            ]
            out.append(f"| `{factory}` | " + " | ".join(f"{r:.2f}{TIMES}" for r in ratios) + " |")
        out.append("")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=HERE.parent / "target" / "bench-data")
    ap.add_argument("--dir", type=Path, default=HERE.parent / "target" / "bench-10m")
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--chunk", type=int, default=500_000)
    ap.add_argument("--nlist", type=int, default=None)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=200)
    ap.add_argument("--target", type=float, default=0.955)
    ap.add_argument("--spill", action=argparse.BooleanOptionalAction, default=True, help="spilled lists (default)")
    ap.add_argument(
        "--faiss",
        action="append",
        default=[],
        metavar="FACTORY",
        help="a faiss index_factory string to run beside ours, '{nlist}' for the list count (repeatable)",
    )
    ap.add_argument("--faiss-at", type=int, default=0, help=argparse.SUPPRESS)
    steps = {"build": build, "search": search, "faiss-build": faiss_build, "faiss-search": faiss_search}
    ap.add_argument("--step", choices=["all", "report", *steps], default="all")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    if args.step in steps:
        steps[args.step](args)
        return
    if args.step == "all":
        # A fresh process each: a search starts from its file alone.
        for step in ("build", "search"):
            subprocess.run([sys.executable, __file__, *sys.argv[1:], "--step", step], check=True)
        for at in range(len(args.faiss)):
            for step in ("faiss-build", "faiss-search"):
                run = [sys.executable, __file__, *sys.argv[1:], "--step", step, "--faiss-at", str(at)]
                subprocess.run(run, check=True)
    text = report(args)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
