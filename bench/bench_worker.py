"""Runs one library configuration in its own process and writes a JSON result.

Invoked by ``run_bench.py`` as ``python bench_worker.py TASK.json``. Each
worker is a fresh interpreter so that

* the RSS delta around ``build`` is not polluted by earlier indexes,
* thread pools that are sized once per process (``RUVECTOR_NUM_THREADS``,
  OpenMP) start from a known state,
* a crash or hang in one library cannot take the whole run down.

A task produces one or more *rows* sharing one build (e.g. one HNSW graph
measured at two ``ef`` values tuned to two recall targets).
"""

from __future__ import annotations

import gc
import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_data import recall_at_k

# ef / expansion values tried (ascending) when tuning a graph index to a recall target.
EF_GRID = [10, 12, 16, 20, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256, 320, 384, 512, 640, 768, 1024, 1536, 2048]
# nprobe values tried when tuning an IVF index (lists visited per query).
NPROBE_GRID = [
    *(1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64),
    *(80, 96, 112, 128, 160, 192, 256, 320, 384, 512),
]
# Refine factors tried for faiss's refined flat RaBitQ indexes.
K_FACTOR_GRID = [1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 32, 50, 100]
#: A build shorter than this is timed BUILD_REPEATS times in its process and
#: the median reported, for every library alike (one short build swings
#: ±25 % on this machine); the first is reported too.
REPEAT_BUILDS_UNDER_S = 5.0
BUILD_REPEATS = 3


def rss_bytes() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def percentile(sorted_vals: list[float], p: float) -> float:
    """Nearest-rank percentile; identical to the Rust bench's definition."""
    if not sorted_vals:
        return float("nan")
    import math

    rank = math.ceil(p / 100.0 * len(sorted_vals))
    rank = min(max(rank, 1), len(sorted_vals))
    return sorted_vals[rank - 1]


# ───────────────────────────── adapters ──────────────────────────────
#
# An adapter wraps one index behind a small uniform surface:
#   build(base)                 -> None (timed by the caller)
#   query_views(Q)              -> per-query objects passed to call_one (prepared untimed)
#   call_one(q, k)              -> the library's raw result (this call is what is timed)
#   ids_one(raw)                -> list[int]
#   batch(Q, k, threads)        -> (nq, k) int array, or raise NotImplementedError
#   knob_values / set_knob(v)   -> optional search-time parameter for recall tuning
#   lib_memory()                -> (bytes, source) or (None, None)


class Adapter:
    knob_name: Optional[str] = None
    batch_note: Optional[str] = None

    def knob_grid(self) -> list[int]:
        return {"nprobe": NPROBE_GRID, "k_factor": K_FACTOR_GRID}.get(self.knob_name or "", EF_GRID)

    def query_views(self, Q: np.ndarray) -> list:
        return [Q[i] for i in range(Q.shape[0])]

    def set_knob(self, value: int) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def lib_memory(self) -> tuple[Optional[int], Optional[str]]:
        return None, None

    def prepare_single(self) -> None:
        """Called before single-query timing (e.g. pin OpenMP to 1 thread)."""


def _loop_batch(call_one: Callable, ids_one: Callable, Q: np.ndarray, k: int, threads: int) -> np.ndarray:
    """Batch search for libraries without a batch API: a Python loop, or
    ``threads`` Python threads each looping over a contiguous slice
    (meaningful only if the library releases the GIL in ``search``)."""
    nq = Q.shape[0]
    out = np.full((nq, k), -1, dtype=np.int64)
    rows = [Q[i] for i in range(nq)]

    def work(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            ids = ids_one(call_one(rows[i], k))
            out[i, : len(ids)] = ids

    if threads <= 1:
        work(0, nq)
    else:
        bounds = np.linspace(0, nq, threads + 1).astype(int)
        ts = [threading.Thread(target=work, args=(int(bounds[t]), int(bounds[t + 1]))) for t in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    return out


class OursAdapter(Adapter):
    """ruvector_rabitq (this project's wheel)."""

    def __init__(self, params: dict):
        import ruvector_rabitq as rr

        self.rr = rr
        self.cls_name = params["cls"]
        self.build_kwargs = dict(params.get("build_kwargs", {}))
        self.index: Any = None
        if self.cls_name == "IvfRabitqIndex":
            self.knob_name = "nprobe"

    def set_knob(self, value: int) -> None:
        self.index.nprobe = int(value)

    def build(self, base: np.ndarray) -> None:
        cls = getattr(self.rr, self.cls_name)
        self.index = cls.build(base, None, **self.build_kwargs)

    def call_one(self, q, k):
        return self.index.search(q, k)

    def ids_one(self, raw) -> list[int]:
        return [h.id for h in raw]

    def batch(self, Q, k, threads):
        env = os.environ.get("RUVECTOR_NUM_THREADS")
        if env is None or int(env) != threads:
            raise RuntimeError(f"worker started with RUVECTOR_NUM_THREADS={env!r}, asked for {threads}")
        ids, _scores = self.index.search_batch(Q, k)
        return np.asarray(ids)

    def python_loop(self, Q, k) -> float:
        """Seconds for a plain Python loop of ``search`` over Q."""
        rows = [Q[i] for i in range(Q.shape[0])]
        search = self.index.search
        t0 = time.perf_counter_ns()
        for q in rows:
            search(q, k)
        return (time.perf_counter_ns() - t0) / 1e9

    def lib_memory(self):
        return int(self.index.memory_bytes), "memory_bytes"


class Ruvector014Adapter(Adapter):
    """`ruvector` 0.1.4 from PyPI (monolithic ``ruvector._native``)."""

    def __init__(self, params: dict):
        from ruvector import _native

        version = getattr(_native, "__version__", None)
        if version != "0.1.4":
            raise RuntimeError(f"expected PyPI ruvector 0.1.4, found ruvector._native {version!r}")
        self.native = _native
        self.kind = params["kind"]
        self.params = params
        self.index: Any = None
        self.ef: Optional[int] = None
        if self.kind == "hnsw":
            self.knob_name = "ef_search"
        self.batch_note = (
            "no batch API: 1 thr = Python loop of search(); 2 thr = 2 Python threads (search releases the GIL)"
        )

    def build(self, base: np.ndarray) -> None:
        if self.kind == "rabitq":
            self.index = self.native.RabitqIndex.build(
                base, rerank_factor=self.params["rerank_factor"], seed=self.params.get("seed", 42)
            )
        else:
            self.index = self.native.HnswIndex.create(
                base.shape[1],
                metric="euclidean",
                m=self.params["m"],
                ef_construction=self.params["ef_construction"],
            )
            self.index.insert_batch([str(i) for i in range(base.shape[0])], base)

    def set_knob(self, value: int) -> None:
        self.ef = int(value)

    def call_one(self, q, k):
        if self.kind == "hnsw":
            return self.index.search(q, k, ef_search=self.ef) if self.ef else self.index.search(q, k)
        return self.index.search(q, k)

    def ids_one(self, raw) -> list[int]:
        return [int(h[0]) for h in raw]

    def batch(self, Q, k, threads):
        return _loop_batch(self.call_one, self.ids_one, Q, k, threads)

    def lib_memory(self):
        if self.kind == "rabitq":
            return int(self.index.memory_bytes), "memory_bytes"
        return None, None


class FaissAdapter(Adapter):
    def __init__(self, params: dict):
        import faiss

        self.faiss = faiss
        self.kind = params["kind"]
        self.params = params
        self.index: Any = None
        if self.kind == "hnsw":
            self.knob_name = "efSearch"
        elif self.kind in ("rabitq_refine", "rabitq_fastscan_refine"):
            self.knob_name = "k_factor"
        elif self.kind == "ivf_rabitq_refine":
            self.knob_name = "nprobe"

    def build(self, base: np.ndarray) -> None:
        faiss = self.faiss
        d = base.shape[1]
        if self.kind == "flat":
            index = faiss.IndexFlatL2(d)
        elif self.kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, self.params["M"])
            index.hnsw.efConstruction = self.params["efConstruction"]
        elif self.kind == "rabitq":
            index = faiss.IndexRaBitQ(d, faiss.METRIC_L2)
        elif self.kind == "rabitq_refine":
            self._base = faiss.IndexRaBitQ(d, faiss.METRIC_L2)
            index = faiss.IndexRefineFlat(self._base)
        elif self.kind == "rabitq_fastscan_refine":
            self._base = faiss.IndexRaBitQFastScan(d, faiss.METRIC_L2)
            index = faiss.IndexRefineFlat(self._base)
        elif self.kind == "ivf_rabitq_refine":
            # IVF over RaBitQ codes with exact refine, as our IvfRabitqIndex:
            # the same list count (about sqrt(n)) and rerank factor (10).
            nlist = self.params.get("nlist") or max(1, round(base.shape[0] ** 0.5))
            self._quantizer = faiss.IndexFlatL2(d)
            self._base = faiss.IndexIVFRaBitQ(self._quantizer, d, nlist, faiss.METRIC_L2)
            index = faiss.IndexRefineFlat(self._base)
            index.k_factor = float(self.params.get("k_factor", 10))
        else:
            raise ValueError(self.kind)
        if not index.is_trained:
            index.train(base)
        index.add(base)
        self.index = index

    def set_knob(self, value: int) -> None:
        if self.kind == "hnsw":
            self.index.hnsw.efSearch = int(value)
        elif self.kind == "ivf_rabitq_refine":
            self._base.nprobe = int(value)
        else:
            self.index.k_factor = float(value)

    def prepare_single(self) -> None:
        self.faiss.omp_set_num_threads(1)

    def query_views(self, Q):
        return [Q[i : i + 1] for i in range(Q.shape[0])]

    def call_one(self, q, k):
        return self.index.search(q, k)

    def ids_one(self, raw) -> list[int]:
        return [int(x) for x in raw[1][0]]

    def batch(self, Q, k, threads):
        self.faiss.omp_set_num_threads(threads)
        _d, ids = self.index.search(Q, k)
        return ids

    def lib_memory(self):
        return len(self.faiss.serialize_index(self.index)), "serialize_index"


class HnswlibAdapter(Adapter):
    knob_name = "ef"

    def __init__(self, params: dict):
        import hnswlib

        self.hnswlib = hnswlib
        self.params = params
        self.index: Any = None

    def build(self, base):
        index = self.hnswlib.Index(space="l2", dim=base.shape[1])
        index.init_index(
            max_elements=base.shape[0],
            ef_construction=self.params["ef_construction"],
            M=self.params["M"],
            random_seed=100,
        )
        index.add_items(base, np.arange(base.shape[0]), num_threads=-1)
        self.index = index

    def set_knob(self, value):
        self.index.set_ef(int(value))

    def call_one(self, q, k):
        return self.index.knn_query(q, k, num_threads=1)

    def ids_one(self, raw):
        return [int(x) for x in raw[0][0]]

    def batch(self, Q, k, threads):
        labels, _d = self.index.knn_query(Q, k, num_threads=threads)
        return labels.astype(np.int64)

    def lib_memory(self):
        return int(self.index.index_file_size()), "index_file_size"


class UsearchAdapter(Adapter):
    knob_name = "expansion_search"

    def __init__(self, params: dict):
        from usearch.index import Index

        self.Index = Index
        self.params = params
        self.index: Any = None

    def build(self, base):
        index = self.Index(ndim=base.shape[1], metric="l2sq", dtype=self.params.get("dtype", "f32"))
        index.add(np.arange(base.shape[0], dtype=np.uint64), base)
        self.index = index

    def set_knob(self, value):
        self.index.expansion_search = int(value)

    def call_one(self, q, k):
        return self.index.search(q, k, threads=1)

    def ids_one(self, raw):
        return [int(x) for x in raw.keys]

    def batch(self, Q, k, threads):
        m = self.index.search(Q, k, threads=threads)
        return np.asarray(m.keys).astype(np.int64)

    def lib_memory(self):
        return int(self.index.memory_usage), "memory_usage"


ADAPTERS = {
    "ours": OursAdapter,
    "ruvector014": Ruvector014Adapter,
    "faiss": FaissAdapter,
    "hnswlib": HnswlibAdapter,
    "usearch": UsearchAdapter,
}


# ───────────────────────────── measurement ─────────────────────────────


def time_single(ad: Adapter, views: list, k: int, warmup: int) -> tuple[list[float], np.ndarray]:
    """Times each query alone from Python; returns (latencies_ms, ids)."""
    ad.prepare_single()
    call, ids_one = ad.call_one, ad.ids_one
    for i in range(warmup):
        call(views[i % len(views)], k)
    lat = []
    ids = np.full((len(views), k), -1, dtype=np.int64)
    clock = time.perf_counter_ns
    for i, q in enumerate(views):
        t0 = clock()
        raw = call(q, k)
        t1 = clock()
        lat.append((t1 - t0) / 1e6)
        got = ids_one(raw)
        ids[i, : len(got)] = got
    return lat, ids


def time_batch(ad: Adapter, Q: np.ndarray, k: int, threads: int, min_s: float) -> tuple[float, np.ndarray]:
    """Best-of-N wall time of one batch call over Q (repeats until ``min_s``
    seconds have been spent, at most 5 runs); returns (qps, ids)."""
    ids = ad.batch(Q, k, threads)  # first run doubles as warm-up for pools
    best = None
    spent = 0.0
    runs = 0
    while runs < 5 and (runs == 0 or spent < min_s):
        t0 = time.perf_counter_ns()
        ids = ad.batch(Q, k, threads)
        dt = (time.perf_counter_ns() - t0) / 1e9
        spent += dt
        runs += 1
        best = dt if best is None else min(best, dt)
    return Q.shape[0] / best, np.asarray(ids)


def tune_knob(ad: Adapter, Qt: np.ndarray, gt_t: np.ndarray, k: int, targets: list[float], threads: int) -> dict:
    """Smallest grid value reaching each target recall on the tuning queries."""
    chosen: dict[float, tuple[int, float, bool]] = {}
    sweep = []
    for v in ad.knob_grid():
        if ad.knob_name in ("ef", "efSearch", "expansion_search", "ef_search") and v < k:
            continue
        ad.set_knob(v)
        r = recall_at_k(ad.batch(Qt, k, threads), gt_t, k)
        sweep.append((v, r))
        for t in targets:
            if t not in chosen and r >= t:
                chosen[t] = (v, r, True)
        if len(chosen) == len(targets):
            break
    for t in targets:
        if t not in chosen:
            v, r = sweep[-1]
            chosen[t] = (v, r, False)
    return {"chosen": chosen, "sweep": sweep}


def timed_build(ad: Adapter, base: np.ndarray) -> tuple[float, float]:
    """Wall seconds of one `ad.build(base)` (it replaces any earlier index,
    which lives until then, so every build maps fresh memory), and the
    process's CPU seconds in the kernel meanwhile: mostly the page faults
    of that memory."""
    import psutil

    proc = psutil.Process()
    sys0 = proc.cpu_times().system
    t0 = time.perf_counter_ns()
    ad.build(base)
    return (time.perf_counter_ns() - t0) / 1e9, proc.cpu_times().system - sys0


def run_task(task: dict) -> dict:
    data = Path(task["data_dir"])
    k = task["k"]
    result: dict[str, Any] = {"rows": [], "label": task["label"]}
    try:
        ad = ADAPTERS[task["lib"]](task["params"])
    except Exception as e:  # import or construction failure
        result["error"] = f"{type(e).__name__}: {e}".splitlines()[0][:200]
        return result

    base = np.load(data / "base.npy")
    Q = np.load(data / "queries.npy")
    gt = np.load(data / "gt.npy")
    nq = task.get("nq") or Q.shape[0]
    Q, gt = np.ascontiguousarray(Q[:nq]), gt[:nq]

    gc.collect()
    rss0 = rss_bytes()
    builds = [timed_build(ad, base)]
    gc.collect()
    rss1 = rss_bytes()
    # The 1-thread process of ours reuses the main run's build figures.
    if task.get("mode") != "batch-only" and builds[0][0] < REPEAT_BUILDS_UNDER_S:
        builds += [timed_build(ad, base) for _ in range(BUILD_REPEATS - 1)]
    lib_bytes, lib_src = ad.lib_memory()
    common = {
        "build_s": float(np.median([wall for wall, _ in builds])),
        "build_first_s": builds[0][0],
        "build_sys_s": float(np.median([sys_s for _, sys_s in builds])),
        "builds": len(builds),
        "rss_delta_mb": (rss1 - rss0) / 2**20,
        "lib_mb": None if lib_bytes is None else lib_bytes / 2**20,
        "lib_mem_src": lib_src,
        "nq": nq,
        "batch_note": ad.batch_note,
    }

    if task.get("mode") == "batch-only":
        # One row per knob value given (the values the main run tuned), or one.
        for v in task.get("knob_values") or [None]:
            if v is not None:
                ad.set_knob(v)
            qps = {}
            for t in task["batch_threads"]:
                qps[str(t)], ids = time_batch(ad, Q, k, t, task["batch_min_s"])
            result["rows"].append(
                {**common, "config": task["configs"][0], "qps": qps, "recall_batch": recall_at_k(ids, gt, k)}
            )
        return result

    # Knob settings: one row per recall target, or a fixed list, or none.
    settings: list[tuple[str, Optional[int], dict]] = []
    if task.get("targets") and ad.knob_name:
        Qt = np.load(data / "tune.npy")
        gt_t = np.load(data / "tune_gt.npy")
        tuned = tune_knob(ad, Qt, gt_t, k, task["targets"], threads=max(task["batch_threads"]))
        for cfg, tgt in zip(task["configs"], task["targets"]):
            v, r, ok = tuned["chosen"][tgt]
            extra = {"tuned_target": tgt, "tune_recall": r, "target_reached": ok, "tune_sweep": tuned["sweep"]}
            settings.append((f"{cfg}, {ad.knob_name}={v}", v, {**extra, "knob_value": v}))
    elif task.get("knob_values"):
        for cfg, v in zip(task["configs"], task["knob_values"]):
            settings.append((cfg, v, {"knob_value": v}))
    else:
        settings.append((task["configs"][0], None, {}))

    for cfg, v, extra in settings:
        if v is not None:
            ad.set_knob(v)
        views = ad.query_views(Q)
        lat, ids = time_single(ad, views, k, task["warmup"])
        lat_sorted = sorted(lat)
        row = {
            **common,
            **extra,
            "config": cfg,
            "p50_ms": percentile(lat_sorted, 50),
            "p99_ms": percentile(lat_sorted, 99),
            "mean_ms": sum(lat) / len(lat),
            "recall": recall_at_k(ids, gt, k),
            "qps": {},
        }
        for t in task["batch_threads"]:
            try:
                row["qps"][str(t)], bids = time_batch(ad, Q, k, t, task["batch_min_s"])
                row["recall_batch_" + str(t)] = recall_at_k(bids, gt, k)
            except NotImplementedError:
                row["qps"][str(t)] = None
        if task.get("python_loop") and isinstance(ad, OursAdapter):
            secs = min(ad.python_loop(Q, k) for _ in range(2))
            row["python_loop_qps"] = nq / secs
        if task.get("save_ids"):
            np.save(task["save_ids"], ids)
            row["ids_path"] = task["save_ids"]
        result["rows"].append(row)
    return result


def main() -> int:
    task = json.loads(Path(sys.argv[1]).read_text())
    try:
        result = run_task(task)
    except Exception as e:
        result = {
            "rows": [],
            "label": task.get("label"),
            "error": f"{type(e).__name__}: {e}".splitlines()[0][:200],
            "traceback": traceback.format_exc(),
        }
    Path(task["out"]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
