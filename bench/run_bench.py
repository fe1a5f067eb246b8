#!/usr/bin/env python3
"""Benchmark harness for the ``ruvector-rabitq`` wheel (``import ruvector_rabitq``).

Compares this project's indexes with faiss-cpu, hnswlib, usearch and the
``ruvector`` 0.1.4 wheel from PyPI on one deterministic, clustered, synthetic
float32 data set, side by side in one run, and prints a Markdown report
(also written to ``--out``).

Usage (what ``nox -s bench`` runs)::

    cargo build --locked --release -p rabitq-rust-bench
    pip install dist/*.whl numpy psutil faiss-cpu hnswlib usearch
    pip install --no-deps --target target/bench-peers ruvector==0.1.4
    python bench/run_bench.py --out bench/results.md --wheels-dir dist \\
        --rust-bench target/release/rabitq-rust-bench --ruvector-014-path target/bench-peers [--quick]

Full mode: n=100,000, d=128, 1,000 evaluation queries (about 4-5 minutes on
2 idle cores). ``--quick``: n=20,000 (same d and query count, about 1 minute).
``--only ours,faiss,...`` runs a subset; ``--keep-data DIR`` keeps the data set
and raw JSON results.

PyPI ``ruvector`` 0.1.4 and this repo's ``ruvector`` meta package share a
distribution and import name, hence the separate ``--target`` directory: only
the 0.1.4 workers get it on ``PYTHONPATH``.

Each library configuration runs in a fresh subprocess (``bench_worker.py``);
see the "Method" section of the report for what every column means. Every
peer is optional: a library that fails to import, crashes or times out is
reported in the table with the reason instead of stopping the run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Optional

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import corpus  # noqa: E402
from bench_data import DataSpec, generate, ground_truth, write_rust_dataset  # noqa: E402
from bench_worker import BUILD_REPEATS, REPEAT_BUILDS_UNDER_S  # noqa: E402

K = 10
TIMES = "\u00d7"  # multiplication sign, for ratios in the Markdown
DASH = "\u2013"  # en dash, for missing values
LIB_TITLES = {
    "ours": "ruvector-rabitq (this repo)",
    "ruvector014": "ruvector 0.1.4 (PyPI)",
    "faiss": "faiss-cpu",
    "hnswlib": "hnswlib",
    "usearch": "usearch",
}
DISTRIBUTIONS = {
    "ours": "ruvector-rabitq",
    "ruvector014": "ruvector",
    "faiss": "faiss-cpu",
    "hnswlib": "hnswlib",
    "usearch": "usearch",
}
REF_OURS = "RabitqPlusIndex rerank=20"
REF_THEIRS = "RabitqIndex rerank=20"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def dist_version(name: str) -> Optional[str]:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def locate_ruvector014(side_dir: Optional[str]) -> tuple[Optional[dict], str]:
    """Where the PyPI ``ruvector`` 0.1.4 wheel can be imported from.

    This repo's own ``ruvector`` meta package shares the distribution and
    import name, so the two cannot live in one environment. With
    ``--ruvector-014-path DIR`` (made by ``pip install --no-deps --target DIR
    ruvector==0.1.4``) the 0.1.4 workers get DIR first on ``PYTHONPATH``;
    otherwise an installed ``ruvector`` is used only if it *is* 0.1.4.

    Returns (extra environment for subprocesses, version) or (None, reason).
    """
    if side_dir:
        d = Path(side_dir).resolve()
        found = [x for x in metadata.distributions(path=[str(d)]) if (x.metadata["Name"] or "").lower() == "ruvector"]
        if not found:
            return None, f"no `ruvector` distribution in {d}"
        pp = os.environ.get("PYTHONPATH")
        return {"PYTHONPATH": str(d) + (os.pathsep + pp if pp else "")}, found[0].version
    ver = dist_version("ruvector")
    if ver == "0.1.4":
        return {}, ver
    return None, (
        f"`ruvector` 0.1.4 not available (installed `ruvector`: {ver or 'none'}); pass --ruvector-014-path DIR"
    )


# ───────────────────────────── task list ─────────────────────────────


#: Above this many vectors the graph indexes (minutes of build per 100k on
#: 2 cores), brute force and the ~100x slower asymmetric index are left out.
LARGE_N = 200_000
# The recall@10 levels every tuned index is measured at (issue 16).
LEVELS = (0.90, 0.95, 0.99)


def tuned(name: str) -> list[str]:
    """Row names of a configuration tuned to each of LEVELS."""
    return [f"{name} (~{t:.2f})" for t in LEVELS]


def build_tasks(quick: bool, nq: int, n: int) -> list[dict]:
    """Every configuration measured, in report order.

    Each dict: lib, label (joins the two halves of one of our configs),
    params, configs (row names), and optional targets / knob_values / nq.
    """
    asym_nq = 50  # RabitqAsymIndex is ~100x slower per query than RabitqPlus
    tasks: list[dict] = []
    large = n > LARGE_N

    def ours(label: str, cls: str, kwargs: dict, **extra: Any) -> None:
        tasks.append(
            {"lib": "ours", "label": label, "params": {"cls": cls, "build_kwargs": kwargs}, "configs": [label], **extra}
        )

    # The IVF index tuned (nprobe) to every target: its defaults (spilled
    # lists, rerank 10), a smaller rerank (spilled lists find the neighbours
    # in fewer lists, so fewer candidates need an exact score), and one copy
    # of every vector (spill=False) to show what spilling buys.
    for label, rf, spill in (
        ("IvfRabitqIndex", 10, True),
        ("IvfRabitqIndex-rerank5", 5, True),
        ("IvfRabitqIndex-nospill", 10, False),
    ):
        tasks.append(
            {
                "lib": "ours",
                "label": label,
                "params": {"cls": "IvfRabitqIndex", "build_kwargs": {"seed": 42, "rerank_factor": rf, "spill": spill}},
                "configs": tuned(f"IvfRabitqIndex nlist=√n rerank={rf}" + ("" if spill else " spill=False")),
                "targets": list(LEVELS),
                # The IVF default's own batch speed-up over a Python loop (issue 16).
                "python_loop": label == "IvfRabitqIndex",
            }
        )
    # faiss's RaBitQ with refine, each tuned to the two recall targets: the
    # flat FastScan scan and the IVF one (same list count and rerank as ours).
    faiss_rabitq_tuned = [
        {
            "lib": "faiss",
            "label": "faiss-rabitq-fastscan-refine",
            "params": {"kind": "rabitq_fastscan_refine"},
            "configs": tuned("IndexRefineFlat(IndexRaBitQFastScan)"),
            "targets": list(LEVELS),
        },
        {
            "lib": "faiss",
            "label": "faiss-ivf-rabitq-refine",
            "params": {"kind": "ivf_rabitq_refine", "k_factor": 10},
            "configs": tuned("IndexRefineFlat(IndexIVFRaBitQ nlist=√n) k_factor=10"),
            "targets": list(LEVELS),
        },
    ]
    if large:
        ours("RabitqPlusIndex rerank=20", "RabitqPlusIndex", {"seed": 42, "rerank_factor": 20, "rotation": "haar"})
        return tasks + faiss_rabitq_tuned

    ours("FlatF32Index", "FlatF32Index", {})
    ours("RabitqIndex (1-bit, no rerank)", "RabitqIndex", {"seed": 42, "rotation": "haar"})
    for rf in (5, 20, 100):
        extra: dict[str, Any] = {"python_loop": True, "save_ids": True} if rf == 20 else {}
        ours(
            f"RabitqPlusIndex rerank={rf}",
            "RabitqPlusIndex",
            {"seed": 42, "rerank_factor": rf, "rotation": "haar"},
            **extra,
        )
    ours(
        f"RabitqAsymIndex rerank=1 (nq={asym_nq})",
        "RabitqAsymIndex",
        {"seed": 42, "rerank_factor": 1},
        nq=asym_nq,
        warmup=3,
    )

    tasks.append(
        {
            "lib": "ruvector014",
            "label": "rv014-rabitq",
            "params": {"kind": "rabitq", "rerank_factor": 20, "seed": 42},
            "configs": [REF_THEIRS],
        }
    )
    tasks.append(
        {
            "lib": "ruvector014",
            "label": "rv014-hnsw",
            "params": {"kind": "hnsw", "m": 32, "ef_construction": 200},
            "configs": tuned("HnswIndex m=32 efC=200"),
            "targets": list(LEVELS),
        }
    )

    tasks.append({"lib": "faiss", "label": "faiss-flat", "params": {"kind": "flat"}, "configs": ["IndexFlatL2"]})
    tasks.append(
        {
            "lib": "faiss",
            "label": "faiss-hnsw",
            "params": {"kind": "hnsw", "M": 32, "efConstruction": 40},
            "configs": tuned("IndexHNSWFlat M=32 efC=40"),
            "targets": list(LEVELS),
        }
    )
    tasks.append(
        {
            "lib": "faiss",
            "label": "faiss-rabitq",
            "params": {"kind": "rabitq"},
            "configs": ["IndexRaBitQ (qb=4, no refine)"],
        }
    )
    tasks.append(
        {
            "lib": "faiss",
            "label": "faiss-rabitq-refine",
            "params": {"kind": "rabitq_refine"},
            "configs": ["IndexRefineFlat(IndexRaBitQ) k_factor=5", "IndexRefineFlat(IndexRaBitQ) k_factor=20"],
            "knob_values": [5, 20],
        }
    )
    tasks += faiss_rabitq_tuned

    for m in (16, 32):
        tasks.append(
            {
                "lib": "hnswlib",
                "label": f"hnswlib-M{m}",
                "params": {"M": m, "ef_construction": 200},
                "configs": tuned(f"M={m} efC=200"),
                "targets": list(LEVELS),
            }
        )

    tasks.append(
        {
            "lib": "usearch",
            "label": "usearch",
            "params": {"dtype": "f32"},
            "configs": tuned("Index l2sq f32, default connectivity"),
            "targets": list(LEVELS),
        }
    )
    return tasks


# ───────────────────────────── running workers ─────────────────────────────


def run_worker(task: dict, workdir: Path, env_extra: dict, timeout: float) -> dict:
    idx = len(list(workdir.glob("task-*.json")))
    task_path = workdir / f"task-{idx:03d}.json"
    out_path = workdir / f"result-{idx:03d}.json"
    task = {**task, "out": str(out_path)}
    task_path.write_text(json.dumps(task))
    env = {**os.environ, **env_extra}
    if "RUVECTOR_NUM_THREADS" not in env_extra:
        env.pop("RUVECTOR_NUM_THREADS", None)
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, str(HERE / "bench_worker.py"), str(task_path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"rows": [], "error": f"timed out after {timeout:.0f} s"}
    wall = time.monotonic() - t0
    if out_path.exists():
        res = json.loads(out_path.read_text())
        res["wall_s"] = wall
        if res.get("traceback"):
            log(f"{task['label']}: {res['traceback'].strip().splitlines()[-1]}")
        return res
    tail = (proc.stderr or "").strip().splitlines()[-1:] or [""]
    reason = f"worker exited with code {proc.returncode}"
    if proc.returncode < 0:
        reason += f" (signal {-proc.returncode})"
    if tail[0]:
        reason += f": {tail[0][:160]}"
    return {"rows": [], "error": reason, "wall_s": wall}


def run_all(
    tasks: list[dict],
    data_dir: Path,
    workdir: Path,
    only: Optional[set],
    quick: bool,
    timeout: float,
    rv014: tuple[Optional[dict], str],
    warm_up: bool = True,
) -> list[dict]:
    """Returns report rows: dicts with lib, config and measurements or error."""
    report: list[dict] = []
    common = {"data_dir": str(data_dir), "k": K, "warmup": 100, "batch_min_s": 0.5 if quick else 1.0}
    first = next((t for t in tasks if not only or t["lib"] in only), None)
    if warm_up and first is not None and first["lib"] != "ruvector014":
        # The first worker of a run measured slow (the identical default
        # IVF build: 0.78 s, then 0.54 s in the next process; p50 up to
        # 1.8x): one untimed run of it first, its results dropped.
        log(f"warm-up: {LIB_TITLES[first['lib']]} / {first['label']} (not reported) ...")
        ours = first["lib"] == "ours"
        threads, env = ([2], {"RUVECTOR_NUM_THREADS": "2"}) if ours else ([1, 2], {})
        warm = run_worker({**common, **first, "batch_threads": threads, "save_ids": None}, workdir, env, timeout)
        if warm.get("error"):
            log(f"  warm-up failed: {warm['error']}")
    for task in tasks:
        lib = task["lib"]
        if only and lib not in only:
            continue
        task = {**common, **task}
        if task.get("save_ids"):
            task["save_ids"] = str(workdir / "ours_rerank20_ids.npy")
        log(f"{LIB_TITLES[lib]} / {task['label']} ...")
        if lib == "ours":
            main = run_worker({**task, "batch_threads": [2]}, workdir, {"RUVECTOR_NUM_THREADS": "2"}, timeout)
            if not main.get("error"):
                # The 1-thread process measures the same settings the main
                # run tuned (one row per knob value).
                knobs = [row.get("knob_value") for row in main["rows"]]
                one = run_worker(
                    {
                        **task,
                        "batch_threads": [1],
                        "mode": "batch-only",
                        "python_loop": False,
                        "save_ids": None,
                        "knob_values": knobs if any(v is not None for v in knobs) else None,
                    },
                    workdir,
                    {"RUVECTOR_NUM_THREADS": "1"},
                    timeout,
                )
                for i, row in enumerate(main["rows"]):
                    if one.get("error") or len(one["rows"]) <= i:
                        row["qps"]["1"] = None
                        row.setdefault("notes", []).append(f"1-thread batch failed: {one.get('error')}")
                    else:
                        row["qps"]["1"] = one["rows"][i]["qps"]["1"]
                        row["recall_batch_1"] = one["rows"][i]["recall_batch"]
            res = main
        elif lib == "ruvector014" and rv014[0] is None:
            res = {"rows": [], "error": rv014[1]}
        else:
            env = rv014[0] if lib == "ruvector014" else {}
            res = run_worker({**task, "batch_threads": [1, 2]}, workdir, env, timeout)
        if res.get("error"):
            for cfg in task["configs"]:
                report.append({"lib": lib, "config": cfg, "error": res["error"], "label": task["label"]})
            log(f"  failed: {res['error']}")
            continue
        for row in res["rows"]:
            row.update({"lib": lib, "label": task["label"]})
            report.append(row)
            log(
                f"  {row['config']}: recall={row.get('recall', float('nan')):.4f} "
                f"p50={row.get('p50_ms', float('nan')):.3f} ms build={row['build_s']:.2f} s"
            )
    return report


#: Measurements that are the median over rounds (`--rounds`); `qps` per thread count too.
ROUND_MEDIANS = (
    "build_s",
    "build_first_s",
    "build_sys_s",
    "p50_ms",
    "p99_ms",
    "mean_ms",
    "python_loop_qps",
    "rss_delta_mb",
)


def round_key(row: dict) -> tuple:
    """What a row measures, the same in every round: a tuned row by its
    recall target (its knob can differ between rounds when a build is not
    deterministic), any other by its configuration."""
    target = row.get("tuned_target")
    return (row["lib"], row.get("label"), target if target is not None else row["config"])


def merge_rounds(rounds: list[list[dict]]) -> list[dict]:
    """One report from several runs of the same tasks: each row of the
    first round with the median of every timing over the rounds that
    measured it (`rounds` counts them). A tuned row keeps the first
    round's knob and recall, and lists every round's configuration when
    they differ."""
    if len(rounds) == 1:
        return rounds[0]
    index = [{round_key(r): r for r in rows if not r.get("error")} for rows in rounds]
    merged = []
    for row in rounds[0]:
        if row.get("error"):
            merged.append(row)
            continue
        same = [i[round_key(row)] for i in index if round_key(row) in i]
        out = {**row, "rounds": len(same)}
        for field in ROUND_MEDIANS:
            values = [r[field] for r in same if r.get(field) is not None]
            if values:
                out[field] = float(np.median(values))
        out["qps"] = {}
        for t, v in row.get("qps", {}).items():
            values = [r["qps"][t] for r in same if r.get("qps", {}).get(t) is not None]
            out["qps"][t] = float(np.median(values)) if values else v
        configs = list(dict.fromkeys(r["config"] for r in same))
        if len(configs) > 1:
            out.setdefault("notes", []).append("configuration by round: " + " / ".join(configs))
        merged.append(out)
    return merged


# ───────────────────────────── other measurements ─────────────────────────────


def _importtime_lines(
    code: str, env_extra: Optional[dict] = None
) -> tuple[Optional[list[tuple[str, int]]], Optional[str]]:
    """Top-level (non-nested) modules and their cumulative µs from ``-X importtime``."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        env={**os.environ, **(env_extra or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        return None, (proc.stderr.strip().splitlines() or ["?"])[-1][:160]
    rows = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S+)\s*$", line)
        if m and len(m.group(3)) <= 1:  # one separator space = not nested under another import
            rows.append((m.group(4), int(m.group(2))))
    return rows, None


def import_time_ms(
    module: str, repeats: int = 5, env_extra: Optional[dict] = None
) -> tuple[Optional[float], Optional[str]]:
    """Best-of-N cost of ``import module`` in a fresh interpreter: the summed
    cumulative ``-X importtime`` figures of every top-level module that the
    statement imported beyond what interpreter start-up already imports."""
    startup, err = _importtime_lines("pass", env_extra)
    if startup is None:
        return None, err
    already = {name for name, _ in startup}
    best = None
    for _ in range(repeats):
        rows, err = _importtime_lines(f"import {module}", env_extra)
        if rows is None:
            return None, err
        names = [name for name, _ in rows]
        if module not in names:
            return None, "module not found in -X importtime output"
        us = sum(cum for name, cum in rows if name not in already)
        best = us if best is None else min(best, us)
    return best / 1000.0, None


def _import_tree(module: str, env_extra: Optional[dict]) -> Optional[tuple]:
    """``(name, cumulative_us, children)`` tree of one ``import module`` run."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        env={**os.environ, **(env_extra or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
    # -X importtime prints children before their parent, indented two spaces per level.
    pending: dict[int, list] = {}
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+\d+\s+\|\s+(\d+)\s+\|( *)(\S+)\s*$", line)
        if not m:
            continue
        depth = (len(m.group(2)) - 1) // 2
        node = (m.group(3), int(m.group(1)), pending.pop(depth + 1, []))
        pending.setdefault(depth, []).append(node)
        if depth == 0 and node[0] == module:
            return node
    return None


def heavy_dependencies(module: str, env_extra: Optional[dict] = None, top: int = 4, repeats: int = 5) -> str:
    """The costliest modules that ``module``'s own (``ruvector*``) modules import directly,
    e.g. ``asyncio 45.1 ms (from ruvector_common._aio)``, from the fastest of ``repeats``
    runs; empty string if none is above 1 ms."""
    trees = [t for t in (_import_tree(module, env_extra) for _ in range(repeats)) if t is not None]
    roots = [min(trees, key=lambda t: t[1])] if trees else []
    found: list[tuple[int, str, str]] = []

    def walk(node: tuple) -> None:
        name, _cum, children = node
        for child in children:
            if child[0].split(".")[0].startswith("ruvector"):
                walk(child)
            else:
                found.append((child[1], child[0], name))

    for r in roots:
        walk(r)
    found.sort(reverse=True)
    return ", ".join(f"{n} {us / 1000:.1f} ms (from `{p}`)" for us, n, p in found[:top] if us >= 1000)


def find_rust_bench(explicit: Optional[str]) -> Optional[Path]:
    if explicit:
        return Path(explicit)
    candidates = []
    if os.environ.get("CARGO_TARGET_DIR"):
        candidates.append(Path(os.environ["CARGO_TARGET_DIR"]) / "release" / "rabitq-rust-bench")
    candidates.append(REPO / "target" / "release" / "rabitq-rust-bench")
    for c in candidates:
        if c.exists():
            return c
    return None


def run_rust_bench(binary: Optional[Path], data_file: Path, timeout: float) -> dict:
    if binary is None or not binary.exists():
        return {"error": "binary not found (build it with `cargo build --release -p rabitq-rust-bench`)"}
    try:
        proc = subprocess.run(
            [str(binary), str(data_file), "--k", str(K), "--rerank", "20", "--seed", "42", "--warmup", "100"],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        return {"error": f"exit code {proc.returncode}: {proc.stderr.strip()[:200]}"}
    return json.loads(proc.stdout)


class ForeignCpu:
    """How much CPU *other* processes used while the harness ran: system-wide busy
    time minus this process's and its waited-for workers' CPU time. On a 2-core
    machine any sizeable share of it skews latencies and especially 2-thread QPS."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.busy0, self.steal0 = self._system()
        self.own0 = self._own()

    @staticmethod
    def _system() -> tuple[float, float]:
        import psutil

        ct = psutil.cpu_times()
        idle = ct.idle + getattr(ct, "iowait", 0.0)
        steal = getattr(ct, "steal", 0.0)
        total = sum(ct)
        # guest time is already counted in user on Linux
        total -= getattr(ct, "guest", 0.0) + getattr(ct, "guest_nice", 0.0)
        return total - idle - steal, steal

    @staticmethod
    def _own() -> float:
        import resource

        a = resource.getrusage(resource.RUSAGE_SELF)
        b = resource.getrusage(resource.RUSAGE_CHILDREN)
        return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime

    def summary(self) -> tuple[float, str]:
        wall = time.monotonic() - self.t0
        busy, steal = self._system()
        other = max(0.0, (busy - self.busy0) - (self._own() - self.own0))
        capacity = wall * (os.cpu_count() or 1)
        share = other / capacity if capacity else 0.0
        text = (
            f"other processes used {other:.0f} core-seconds = {100 * share:.0f}% of the machine's CPU "
            f"during the run; hypervisor steal {steal - self.steal0:.0f} core-seconds"
        )
        return share, text


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def ours_info() -> dict:
    code = (
        "import json, ruvector_rabitq as rr; "
        "print(json.dumps({'version': rr.__version__, 'cpu_features': rr.cpu_features()}, default=str))"
    )
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return {"error": "timed out"}
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1][:200]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ───────────────────────────── formatting ─────────────────────────────


def fmt(v: Any, spec: str, missing: str = DASH) -> str:
    if v is None:
        return missing
    try:
        if v != v:  # NaN
            return missing
    except TypeError:
        pass
    return format(v, spec)


def fmt_qps(v: Optional[float]) -> str:
    if v is None:
        return "n/a"
    return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}"


def main_table(report: list[dict]) -> list[str]:
    out = [
        "| library | config | build s | p50 ms | p99 ms | QPS 1 thr | QPS 2 thr | recall@10 | RSS Δ MB | lib MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report:
        lib = LIB_TITLES[r["lib"]]
        if r.get("error"):
            out.append(f"| {lib} | {r['config']} | **not run: {r['error'].replace('|', '/')}** | | | | | | | |")
            continue
        marks = ""
        if r.get("target_reached") is False:
            marks += " ⚠target not reached"
        if r.get("batch_note"):
            marks += " †"
        lib_mb = fmt(r.get("lib_mb"), ".1f")
        if r.get("lib_mem_src") and r.get("lib_mb") is not None:
            lib_mb += {"memory_bytes": "", "serialize_index": " ˢ", "index_file_size": " ˢ", "memory_usage": ""}.get(
                r["lib_mem_src"], ""
            )
        out.append(
            f"| {lib} | {r['config']}{marks} | {fmt(r.get('build_s'), '.2f')} | {fmt(r.get('p50_ms'), '.3f')} | "
            f"{fmt(r.get('p99_ms'), '.3f')} | {fmt_qps(r['qps'].get('1'))} | {fmt_qps(r['qps'].get('2'))} | "
            f"{fmt(r.get('recall'), '.4f')} | {fmt(r.get('rss_delta_mb'), '.1f')} | {lib_mb} |"
        )
    return out


def verdict(ours: Optional[float], theirs: Optional[float], higher_better: bool, tol: float = 0.02) -> tuple[str, str]:
    if ours is None or theirs is None or theirs == 0:
        return "n/a", "n/a"
    ratio = ours / theirs
    better = ratio > 1 + tol if higher_better else ratio < 1 - tol
    worse = ratio < 1 - tol if higher_better else ratio > 1 + tol
    return f"{ratio:.2f}{TIMES}", ("**win**" if better else "**loss**" if worse else "tie (±2%)")


def best_section(report: list[dict]) -> list[str]:
    """Fastest single query per library at each recall level."""
    out = [
        "## Best p50 per library at recall@10 ≥ " + ", ≥ ".join(f"{t:.2f}" for t in LEVELS),
        "",
        "| library | recall ≥ | config | p50 ms | p99 ms | QPS 2 thr | recall@10 | build s |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for level in LEVELS:
        for lib in LIB_TITLES:
            rows = [r for r in report if r["lib"] == lib and not r.get("error") and r.get("recall", 0) >= level]
            if not rows:
                tried = any(r["lib"] == lib and not r.get("error") for r in report)
                if tried:
                    out.append(f"| {LIB_TITLES[lib]} | {level} | none reached it | | | | | |")
                continue
            b = min(rows, key=lambda r: r["p50_ms"])
            out.append(
                f"| {LIB_TITLES[lib]} | {level} | {b['config']} | {b['p50_ms']:.3f} | {b['p99_ms']:.3f} | "
                f"{fmt_qps(b['qps'].get('2'))} | {b['recall']:.4f} | {b['build_s']:.2f} |"
            )
    return out


def _best(report: list[dict], libs: set, level: float, key: str = "p50_ms", config_has: str = "") -> Optional[dict]:
    rows = [
        r
        for r in report
        if r["lib"] in libs and not r.get("error") and r.get("recall", 0) >= level and config_has in r["config"]
    ]
    if not rows:
        return None
    if key == "qps2":
        return max(rows, key=lambda r: r["qps"].get("2") or 0)
    return min(rows, key=lambda r: r[key])


def issue6_section(report: list[dict], n: int) -> list[str]:
    """The targets of issue 6, checked on this run's numbers."""
    out = ["## Targets (issue 6), on this run", ""]

    def verdict_line(name: str, ok: Optional[bool], detail: str) -> None:
        mark = "n/a" if ok is None else "**PASS**" if ok else "**FAIL**"
        out.append(f"| {name} | {detail} | {mark} |")

    out += ["| target | measured | verdict |", "|---|---|---|"]
    if n > LARGE_N:
        ivf = _best(report, {"ours"}, 0.95, config_has="IvfRabitqIndex")
        if ivf is None:
            verdict_line("p99 < 10 ms at recall ≥ 0.95", False, "no IvfRabitqIndex row reached 0.95")
        else:
            verdict_line(
                "p99 < 10 ms at recall ≥ 0.95",
                ivf["p99_ms"] < 10,
                f"{ivf['config']}: p99 {ivf['p99_ms']:.3f} ms, recall {ivf['recall']:.4f}, "
                f"build {ivf['build_s']:.1f} s, `memory_bytes` {fmt(ivf.get('lib_mb'), '.0f')} MB, "
                f"RSS Δ {fmt(ivf.get('rss_delta_mb'), '.0f')} MB",
            )
        return out
    ours = _best(report, {"ours"}, 0.99)
    peers = _best(report, {"faiss", "hnswlib"}, 0.99)
    if ours and peers:
        verdict_line(
            "single-query p50 at recall ≥ 0.99 ≤ best of faiss-cpu and hnswlib",
            ours["p50_ms"] <= peers["p50_ms"],
            f"ours {ours['p50_ms']:.3f} ms ({ours['config']}) vs {peers['p50_ms']:.3f} ms "
            f"({LIB_TITLES[peers['lib']]} {peers['config']}): {ours['p50_ms'] / peers['p50_ms']:.2f}{TIMES}",
        )
    else:
        verdict_line("single-query p50 at recall ≥ 0.99", None, "a side reached no 0.99 row")
    ours_q = _best(report, {"ours"}, 0.99, key="qps2")
    peers_q = _best(report, {"faiss", "hnswlib"}, 0.99, key="qps2")
    if ours_q and peers_q and ours_q["qps"].get("2") and peers_q["qps"].get("2"):
        a, b = ours_q["qps"]["2"], peers_q["qps"]["2"]
        verdict_line(
            "batch QPS on 2 cores at recall ≥ 0.99 ≥ theirs",
            a >= b,
            f"ours {a:,.0f} ({ours_q['config']}) vs {b:,.0f} ({LIB_TITLES[peers_q['lib']]} "
            f"{peers_q['config']}): {a / b:.2f}{TIMES}",
        )
    ivf = next((r for r in report if r.get("label") == "IvfRabitqIndex" and not r.get("error")), None)
    faiss_rq = next((r for r in report if r.get("label") == "faiss-rabitq" and not r.get("error")), None)
    if ivf and faiss_rq:
        verdict_line(
            f"build ≤ 2{TIMES} faiss `IndexRaBitQ` build",
            ivf["build_s"] <= 2 * faiss_rq["build_s"],
            f"IvfRabitqIndex {ivf['build_s']:.2f} s vs IndexRaBitQ {faiss_rq['build_s']:.2f} s: "
            f"{ivf['build_s'] / faiss_rq['build_s']:.2f}{TIMES}{first_builds(ivf, faiss_rq)}",
        )
    return out


def first_builds(ours: dict, theirs: dict) -> str:
    """`(first build in the process: a s vs b s, r times; kernel CPU: ...)`:
    the first build's figures when the build figures are medians of
    several builds, and the kernel CPU time of each build where measured."""
    parts = []
    a, b = ours.get("build_first_s"), theirs.get("build_first_s")
    if a is not None and b is not None and max(ours.get("builds", 1), theirs.get("builds", 1)) > 1:
        parts.append(f"first build in the process: {a:.2f} s vs {b:.2f} s, {a / b:.2f}{TIMES}")
    a, b = ours.get("build_sys_s"), theirs.get("build_sys_s")
    if a is not None and b is not None:
        parts.append(f"kernel CPU a build, page faults mostly: {a:.2f} s vs {b:.2f} s")
    return f" ({'; '.join(parts)})" if parts else ""


# The peers issue 16 compares with: every graph and faiss's IVF-RaBitQ.
ISSUE16_PEERS = {"faiss", "hnswlib", "usearch"}


def issue16_section(report: list[dict]) -> list[str]:
    """Issue 16's targets at each recall level: our best single-query p50
    and 2-thread batch QPS against the best peer's at the same level."""
    out = [
        "## Targets (issue 16), on this run",
        "",
        f"p50 target ≤ 0.75{TIMES} and batch QPS target ≥ 1.3{TIMES} the best peer at the same recall "
        "(hnswlib, faiss HNSW and IVF-RaBitQ + refine, usearch).",
        "",
        "| recall ≥ | ours p50 ms | best peer p50 ms | p50 ratio | ours QPS 2 thr | best peer QPS | QPS ratio "
        "| verdict |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for level in LEVELS:
        ours = _best(report, {"ours"}, level, config_has="IvfRabitqIndex")
        peer = _best(report, ISSUE16_PEERS, level)
        ours_q = _best(report, {"ours"}, level, key="qps2", config_has="IvfRabitqIndex")
        peer_q = _best(report, ISSUE16_PEERS, level, key="qps2")
        if not (ours and peer and ours_q and peer_q):
            out.append(f"| {level:.2f} | a side reached no row at this level | | | | | | n/a |")
            continue
        p = ours["p50_ms"] / peer["p50_ms"]
        a, b = ours_q["qps"].get("2") or 0, peer_q["qps"].get("2") or 0
        q = a / b if b else float("nan")
        ok = p <= 0.75 and q >= 1.3
        out.append(
            f"| {level:.2f} | {ours['p50_ms']:.3f} | {peer['p50_ms']:.3f} ({LIB_TITLES[peer['lib']]} {peer['config']}) "
            f"| {p:.2f}{TIMES} | {a:,.0f} | {b:,.0f} ({LIB_TITLES[peer_q['lib']]} {peer_q['config']}) "
            f"| {q:.2f}{TIMES} | {'**PASS**' if ok else '**FAIL**'} |"
        )
    faiss_rq = next((r for r in report if r.get("label") == "faiss-rabitq" and not r.get("error")), None)
    builds = {
        r["config"].split(" (~")[0]: r
        for label in ("IvfRabitqIndex", "IvfRabitqIndex-nospill")
        for r in report
        if r.get("label") == label and not r.get("error")
    }
    loops = [
        r
        for r in report
        if r.get("label") == "IvfRabitqIndex" and not r.get("error") and r.get("python_loop_qps") and r["qps"].get("2")
    ]
    if loops:
        head = "`IvfRabitqIndex.search_batch` on 2 threads vs a Python loop of `search` (same queries, same index):"
        out += ["", head, ""]
        for r in loops:
            b2, loop = r["qps"]["2"], r["python_loop_qps"]
            out.append(f"- {r['config']}: {b2:,.0f} QPS vs {loop:,.0f} QPS = {b2 / loop:.2f}{TIMES}")
    if faiss_rq and builds:
        f = faiss_rq["build_s"]
        head = (
            f"Build (target ≤ 2{TIMES} faiss `IndexRaBitQ`, {f:.2f} s on this run; each library's median of "
            f"up to {BUILD_REPEATS} builds in a fresh process):"
        )
        out += ["", head, ""]
        for config, r in builds.items():
            b = r["build_s"]
            verdict = "**PASS**" if b <= 2 * f else "**FAIL**"
            out.append(f"- {config}: {b:.2f} s = {b / f:.2f}{TIMES} → {verdict}{first_builds(r, faiss_rq)}")
    return out


def ratios_section(report: list[dict]) -> list[str]:
    ours = next((r for r in report if r["lib"] == "ours" and r["config"] == REF_OURS), None)
    theirs = next((r for r in report if r["lib"] == "ruvector014" and r["config"] == REF_THEIRS), None)
    out = ["## Ratios: our `RabitqPlusIndex` (rerank 20) vs `ruvector` 0.1.4 `RabitqIndex` (rerank 20)", ""]
    if not ours or ours.get("error") or not theirs or theirs.get("error"):
        why = [
            f"ours: {ours.get('error') if ours else 'not run'}" if not ours or ours.get("error") else None,
            f"ruvector 0.1.4: {theirs.get('error') if theirs else 'not run'}"
            if not theirs or theirs.get("error")
            else None,
        ]
        out.append("Not available (" + "; ".join(w for w in why if w) + ").")
        return out
    out += [
        "Ratio = ours / theirs. Lower is better for time and memory, higher for QPS and recall; "
        "within ±2% counts as a tie.",
        "",
        "| figure | ours | ruvector 0.1.4 | ratio | verdict |",
        "|---|---:|---:|---:|---|",
    ]
    figs = [
        ("build s", ours.get("build_s"), theirs.get("build_s"), False, ".3f"),
        ("single-query p50 ms", ours.get("p50_ms"), theirs.get("p50_ms"), False, ".3f"),
        ("single-query p99 ms", ours.get("p99_ms"), theirs.get("p99_ms"), False, ".3f"),
        ("QPS, 1 thread (theirs: Python loop)", ours["qps"].get("1"), theirs["qps"].get("1"), True, ",.0f"),
        ("QPS, 2 threads (theirs: 2 Python threads)", ours["qps"].get("2"), theirs["qps"].get("2"), True, ",.0f"),
        ("RSS Δ around build, MB", ours.get("rss_delta_mb"), theirs.get("rss_delta_mb"), False, ".1f"),
        ("`memory_bytes`, MB", ours.get("lib_mb"), theirs.get("lib_mb"), False, ".1f"),
    ]
    for name, a, b, hb, spec in figs:
        ratio, v = verdict(a, b, hb)
        out.append(f"| {name} | {fmt(a, spec)} | {fmt(b, spec)} | {ratio} | {v} |")
    ratio, v = verdict(ours.get("python_loop_qps"), theirs["qps"].get("1"), True)
    out.append(
        f"| QPS, Python loop of `search()` (both) | {fmt(ours.get('python_loop_qps'), ',.0f')} | "
        f"{fmt(theirs['qps'].get('1'), ',.0f')} | {ratio} | {v} |"
    )
    ra, rb = ours.get("recall"), theirs.get("recall")
    diff = ra - rb
    v = "**win**" if diff > 0.002 else "**loss**" if diff < -0.002 else "tie (±0.002)"
    out.append(f"| recall@10 | {ra:.4f} | {rb:.4f} | {diff:+.4f} (difference) | {v} |")
    return out


def overhead_section(report: list[dict], rust: dict, ids_path: Optional[Path]) -> list[str]:
    out = ["## Python overhead vs Rust (`RabitqPlusIndex`, rerank 20, seed 42, Haar rotation)", ""]
    ours = next((r for r in report if r["lib"] == "ours" and r["config"] == REF_OURS), None)
    if not ours or ours.get("error"):
        out.append(f"Our RabitqPlusIndex was not measured ({ours.get('error') if ours else 'not run'}).")
        return out
    if rust.get("error"):
        out.append(f"Rust baseline not run: {rust['error']}.")
    else:
        out += [
            "Same base vectors and queries; the Rust side is `tools/rabitq-rust-bench` "
            "(`RabitqPlusIndex::from_vectors_parallel` + `AnnIndex::search`, one query at a time, timed "
            "with `std::time::Instant`, 100 warm-up queries, nearest-rank percentiles as in Python).",
            "",
            "| figure | Python | Rust | Python / Rust |",
            "|---|---:|---:|---:|",
        ]
        for name, a, b in [
            ("build s", ours["build_s"], rust["build_s"]),
            ("p50 ms", ours["p50_ms"], rust["p50_ms"]),
            ("p99 ms", ours["p99_ms"], rust["p99_ms"]),
            ("mean ms", ours["mean_ms"], rust["mean_ms"]),
        ]:
            out.append(f"| {name} | {a:.4f} | {b:.4f} | {a / b:.2f}{TIMES} |")
        out.append(f"| per-query overhead (mean) | | | {1000 * (ours['mean_ms'] - rust['mean_ms']):+.1f} µs |")
        if ours.get("lib_mb") is not None and rust.get("memory_bytes"):
            rmb = rust["memory_bytes"] / 2**20
            out.append(f"| `memory_bytes`, MB | {ours['lib_mb']:.2f} | {rmb:.2f} | {ours['lib_mb'] / rmb:.3f}{TIMES} |")
        if ids_path and ids_path.exists():
            py_ids = np.load(ids_path)
            rs_ids = np.asarray(rust["ids"], dtype=np.int64)
            if py_ids.shape == rs_ids.shape:
                same = int(np.sum(np.all(py_ids == rs_ids, axis=1)))
                same_set = sum(set(a) == set(b) for a, b in zip(py_ids.tolist(), rs_ids.tolist()))
                out += [
                    "",
                    f"Identical top-10 id lists (same order) from Python and Rust: **{same} / {len(py_ids)}** "
                    f"queries ({same_set} / {len(py_ids)} as sets).",
                ]
            else:
                out += ["", f"Cannot compare ids: Python {py_ids.shape} vs Rust {rs_ids.shape}."]
    p99 = ours["p99_ms"]
    out += [
        "",
        f"**Gate G1** (single-query p99 from Python < 10 ms): p99 = {p99:.3f} ms → "
        f"**{'PASS' if p99 < 10 else 'FAIL'}**",
    ]
    loop, b2 = ours.get("python_loop_qps"), ours["qps"].get("2")
    if loop and b2:
        ratio = b2 / loop
        out += [
            "",
            f"**`RabitqPlusIndex.search_batch` on 2 threads vs a Python loop of `search`**: "
            f"{b2:,.0f} QPS vs {loop:,.0f} QPS = "
            f"**{ratio:.2f}{TIMES}** (target ≥ 1.7{TIMES}: **{'PASS' if ratio >= 1.7 else 'FAIL'}**)",
        ]
    return out


def import_section(rv014: tuple[Optional[dict], str]) -> list[str]:
    out = [
        "## Import time (fresh interpreter, `python -X importtime`, best of 5)",
        "",
        "Cost of the statement alone: the cumulative times of every top-level module it imports, "
        "excluding what interpreter start-up already imported (e.g. numpy pulled in by an extension "
        "module is included).",
        "",
        "| statement | package | ms |",
        "|---|---|---:|",
    ]

    def row(stmt: str, module: str, label: Optional[str], missing: str, env: Optional[dict] = None) -> None:
        if label is None:
            out.append(f"| `{stmt}` | {missing} | {DASH} |")
            return
        ms, err = import_time_ms(module, env_extra=env)
        out.append(f"| `{stmt}` | {label} | {fmt(ms, '.1f') if err is None else 'failed: ' + err} |")

    rr = dist_version("ruvector-rabitq")
    row(
        "import ruvector_rabitq",
        "ruvector_rabitq",
        rr and f"ruvector-rabitq {rr} (this repo)",
        "`ruvector-rabitq` not installed",
    )
    meta = dist_version("ruvector")
    if meta == "0.1.4" and rv014[0] == {}:
        meta = None  # the installed `ruvector` is the PyPI one, measured below
    row(
        "import ruvector",
        "ruvector",
        meta and f"ruvector {meta} (this repo's meta package)",
        "this repo's `ruvector` meta package is not installed",
    )
    env, ver = rv014
    label = f"ruvector {ver} (PyPI)" if env is not None else None
    row("import ruvector", "ruvector", label, f"PyPI `ruvector` 0.1.4: {ver}", env)
    row("import ruvector._native", "ruvector._native", label, f"PyPI `ruvector` 0.1.4: {ver}", env)
    if rr:
        heavy = heavy_dependencies("ruvector_rabitq")
        if heavy:
            out += [
                "",
                "Heaviest modules imported directly by `ruvector_rabitq`'s own modules "
                f"(fastest of 5 separate runs): {heavy}.",
            ]
    if env is not None:
        out += [
            "",
            "PyPI `ruvector` 0.1.4's `__init__` is lazy (its native module loads on first attribute "
            "access), hence the separate `ruvector._native` row.",
        ]
    return out


def wheels_section(wheels_dir: Optional[str]) -> list[str]:
    if not wheels_dir:
        return []
    out = [f"## Wheel sizes (`{wheels_dir}`)", ""]
    p = Path(wheels_dir)
    wheels = sorted(p.glob("*.whl")) if p.is_dir() else []
    if not wheels:
        return [*out, f"No `.whl` files found in `{wheels_dir}`."]
    out += ["| wheel | KB |", "|---|---:|"]
    for w in wheels:
        out.append(f"| `{w.name}` | {w.stat().st_size / 1024:,.1f} |")
    return out


def tuning_notes(report: list[dict]) -> list[str]:
    """One line per tuned build: the sweep and the value picked for each target."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in report:
        if r.get("tuned_target") is not None and "tune_sweep" in r:
            groups.setdefault((r["lib"], r["label"]), []).append(r)
    lines = []
    for (lib, label), rows in groups.items():
        sweep = ", ".join(f"{v}→{rec:.3f}" for v, rec in rows[0]["tune_sweep"])
        picks = "; ".join(
            f"target {r['tuned_target']}: {r['config'].rsplit(', ', 1)[-1]}"
            f"{'' if r.get('target_reached') else ' (not reached)'}"
            for r in rows
        )
        lines.append(f"- {LIB_TITLES[lib]} `{label}`: {sweep}. Picked {picks}.")
    return lines


# ───────────────────────────── main ─────────────────────────────


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(HERE / "results.md"), help="Markdown report path (default bench/results.md)")
    ap.add_argument("--quick", action="store_true", help="n=20,000 instead of 100,000")
    ap.add_argument("--n", type=int, help="override the number of base vectors")
    ap.add_argument("--dim", type=int, default=128, help="dimension of the synthetic data (the corpora: 384)")
    ap.add_argument(
        "--data",
        choices=["synthetic", *corpus.CORPORA],
        default="synthetic",
        help="synthetic clustered Gaussians, or real MiniLM embeddings of WordNet glosses or of Debian "
        "package descriptions (see bench/corpus.py)",
    )
    ap.add_argument(
        "--cache",
        default=str(REPO / "target" / "bench-data"),
        help="where the corpora and their embeddings are cached (default target/bench-data)",
    )
    ap.add_argument("--queries", type=int, default=1000, help="evaluation queries (default 1000)")
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every configuration this many times, one round after another, and report medians",
    )
    ap.add_argument("--wheels-dir", help="list the size of every .whl in this directory")
    ap.add_argument(
        "--rust-bench",
        help="path of the rabitq-rust-bench binary (default: $CARGO_TARGET_DIR or <repo>/target, release profile)",
    )
    ap.add_argument("--only", help="comma-separated subset of: " + ",".join(LIB_TITLES))
    ap.add_argument("--timeout", type=float, help="per-worker timeout in seconds (default 420 full, 180 quick)")
    ap.add_argument(
        "--ruvector-014-path",
        "--ruvector014-dir",
        dest="ruvector014_dir",
        help="directory made by `pip install --no-deps --target DIR "
        "ruvector==0.1.4` (needed when this repo's `ruvector` meta "
        "package is installed, since both are named `ruvector`)",
    )
    ap.add_argument("--keep-data", help="keep the generated data set and raw results in this directory")
    args = ap.parse_args(argv)

    t_start = time.monotonic()
    try:
        foreign: Optional[ForeignCpu] = ForeignCpu()
    except Exception:  # psutil missing or /proc unreadable: just skip the check
        foreign = None
    n = args.n or (20_000 if args.quick else 100_000)
    n_tune = 200 if args.quick else 500
    spec = DataSpec(n=n, d=args.dim, n_queries=args.queries, n_tune=n_tune)
    timeout = args.timeout or (180.0 if args.quick else 420.0)
    only = set(args.only.split(",")) if args.only else None
    if only and not only <= set(LIB_TITLES):
        ap.error(f"--only: unknown names {sorted(only - set(LIB_TITLES))}")

    if args.keep_data:
        workdir = Path(args.keep_data)
        workdir.mkdir(parents=True, exist_ok=True)
        for old in workdir.glob("task-*.json"):
            old.unlink()
    else:
        workdir = Path(tempfile.mkdtemp(prefix="ruvector-bench-"))
    try:
        t0 = time.monotonic()
        if args.data == "synthetic":
            log(f"generating data n={spec.n} d={spec.d} queries={spec.n_queries} tune={spec.n_tune}")
            base, queries, tune = generate(spec)
            about_data = spec.describe()
        else:
            x, about_x = corpus.embeddings(Path(args.cache), log, args.data)
            base, queries, tune, about_split = corpus.split(x, n, args.queries, n_tune)
            del x
            about_data = (
                f"{about_x}; {about_split}. Ground truth: exact top-10 squared-L2 neighbours by float64 "
                f"brute force in numpy."
            )
        dim = base.shape[1]
        log(f"ground truth for n={n:,} d={dim} ...")
        gt = ground_truth(base, queries, K)
        gt_t = ground_truth(base, tune, K)
        np.save(workdir / "base.npy", base)
        np.save(workdir / "queries.npy", queries)
        np.save(workdir / "tune.npy", tune)
        np.save(workdir / "gt.npy", gt)
        np.save(workdir / "tune_gt.npy", gt_t)
        rust_data = workdir / "rust.rvbench"
        write_rust_dataset(rust_data, base, queries)
        data_s = time.monotonic() - t0
        del base, queries, tune
        log(f"data + ground truth in {data_s:.1f} s")

        info = ours_info() if (not only or "ours" in only) else {"error": "skipped (--only)"}
        rv014 = locate_ruvector014(args.ruvector014_dir)
        tasks = build_tasks(args.quick, args.queries, n)
        rounds = []
        for r in range(args.rounds):
            if args.rounds > 1:
                log(f"round {r + 1} of {args.rounds}")
            rounds.append(run_all(tasks, workdir, workdir, only, args.quick, timeout, rv014, warm_up=r == 0))
        report = merge_rounds(rounds)

        rust: dict = {"error": "skipped (--only)"}
        if not only or "ours" in only:
            log("Rust baseline ...")
            rust = run_rust_bench(find_rust_bench(args.rust_bench), rust_data, timeout)
            if rust.get("error"):
                log(f"  Rust baseline: {rust['error']}")
        log("import times ...")
        imports = import_section(rv014)
        total_s = time.monotonic() - t_start

        md = ["# RuVector Python SDK benchmark: `ruvector-rabitq` vs peers", ""]
        md += [
            f"- Mode: **{'quick' if args.quick else 'full'}**, data **{args.data}** — n={n:,}, d={dim}, "
            f"{args.queries:,} evaluation queries, k={K}"
            + (f", {args.rounds} rounds (medians)" if args.rounds > 1 else ""),
            f"- Date (UTC): {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M')}; total harness time "
            f"{total_s / 60:.1f} min",
            f"- Machine: {cpu_model()}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, numpy {np.__version__}",
        ]
        vers = ", ".join(
            f"{d} {dist_version(d) or 'not installed'}"
            for d in ["ruvector-rabitq", "ruvector", "faiss-cpu", "hnswlib", "usearch", "psutil"]
        )
        vers += f"; PyPI ruvector 0.1.4 for comparison: {rv014[1] if rv014[0] is not None else 'unavailable'}"
        if rv014[0]:
            vers += f" (from `{args.ruvector014_dir}`)"
        md.append(f"- Packages: {vers}")
        if info.get("error"):
            md.append(f"- `ruvector_rabitq` info: {info['error']}")
        else:
            md.append(
                f"- `ruvector_rabitq.__version__` = {info['version']}; `cpu_features()` = "
                f"`{json.dumps(info['cpu_features'], sort_keys=True)}`"
            )
        if foreign is not None:
            share, text = foreign.summary()
            warn = " — **the machine was busy: timings, especially 2-thread QPS, are skewed**" if share > 0.1 else ""
            md.append(f"- Machine load: {text}{warn}")
        md += [f"- Data: {about_data}", ""]
        md += ["## Results", "", *main_table(report), ""]
        md += [
            '† `ruvector` 0.1.4 has no batch API: "QPS 1 thr" is a Python loop of `search()`, '
            '"QPS 2 thr" is two Python threads each looping over half the queries (its `search` '
            "releases the GIL). ˢ = size of the serialized index (the library has no in-memory report). "
            "⚠ = tuning grid exhausted before the recall target.",
            "",
        ]
        md += [*best_section(report), ""]
        if n <= LARGE_N:
            md += [*issue16_section(report), ""]
        if args.data == "wordnet":
            md += [*issue6_section(report, n), ""]
        md += [*ratios_section(report), ""]
        ids_path = workdir / "ours_rerank20_ids.npy"
        md += [*overhead_section(report, rust, ids_path), ""]
        md += [*imports, ""]
        w = wheels_section(args.wheels_dir)
        if w:
            md += [*w, ""]
        md += [
            "## Method",
            "",
            "- Every configuration runs in a fresh Python subprocess that loads the data set, then builds "
            "the index (default thread count of each library = all cores; ours with "
            "`RUVECTOR_NUM_THREADS=2`), so builds and memory figures do not disturb each other. "
            "The first configuration also runs once before, untimed (a run's first process measured slow).",
            "- `--rounds N` (N > 1): the whole list of configurations runs N times, one round after "
            "another (so slow spells of the machine fall on every library alike), and every timing is "
            "the median over the rounds; a tuned row is matched across rounds by its recall target.",
            "- **build s**: wall time of the build call(s) (for faiss RaBitQ this includes `train`). A build "
            f"under {REPEAT_BUILDS_UNDER_S:.0f} s is run {BUILD_REPEATS} times in its process, for every "
            "library, and the median given (one short build swings ±25 % here). Every build maps fresh "
            "memory (the previous index lives until the new one replaces it), and page faults are dear in "
            "this VM (0.1 to 0.3 s of kernel CPU for the 150 MB copy of 100k x 384 vectors), so the build "
            "targets give each side's kernel CPU time a build, and the first build's ratio.",
            "- **p50/p99 ms**: each evaluation query searched alone from Python (`time.perf_counter_ns` "
            "around the search call only), after 100 warm-up queries; nearest-rank percentiles. Peers are "
            "held to one thread for this (faiss `omp_set_num_threads(1)`, hnswlib/usearch `threads=1`).",
            "- **QPS**: one batch call over all evaluation queries, best of up to 5 runs after one warm-up "
            "run. faiss via `omp_set_num_threads`, hnswlib `num_threads`, usearch `threads`; ours via "
            "`search_batch` in two separate subprocesses started with `RUVECTOR_NUM_THREADS=1` / `=2` "
            "(the pool size is read once per process; the 1-thread process rebuilds the index).",
            "- **recall@10**: from the single-query results against exact float64 brute force.",
            "- **RSS Δ MB**: process RSS after build minus before (psutil, after `gc.collect()`), with the "
            "data set already loaded. It counts the index's copy of the vectors, graph/codes and any "
            "allocator slack or thread-pool stacks created during build, and misses memory freed "
            "before the second reading (build-time peaks). Treat differences below ~5 MB as noise.",
            "- **lib MB**: the library's own figure: ours and `ruvector` 0.1.4 `memory_bytes`, usearch "
            "`memory_usage`; ˢ faiss `serialize_index` length / hnswlib `index_file_size()` as a proxy.",
            "- ef/expansion values are tuned on a separate set of tuning queries to the smallest grid "
            "value reaching the target recall; the table's recall is measured on the evaluation queries, "
            "so it can land slightly below or above the target.",
            f"- `RabitqAsymIndex` is ~100{TIMES} slower per query, so it is measured on the first 50 "
            f"evaluation queries only (3 warm-up queries); its recall is over those 50.",
            "- usearch is pinned to `dtype='f32'` (its default would pick bf16/f16 storage) so that every "
            "graph index stores full-precision vectors.",
        ]
        tn = tuning_notes(report)
        if tn:
            md += ["", "### Tuning sweeps (value → recall@10 on tuning queries)", "", *tn]
        noted = [r for r in report if r.get("notes")]
        if noted:
            md += ["", "### Notes", ""] + [
                f"- {LIB_TITLES[r['lib']]} {r['config']}: {'; '.join(r['notes'])}" for r in noted
            ]
        failed = [r for r in report if r.get("error")]
        if failed:
            md += ["", "### Not run", ""] + [f"- {LIB_TITLES[r['lib']]} {r['config']}: {r['error']}" for r in failed]
        text = "\n".join(md) + "\n"
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        print(text)
        (workdir / "raw.json").write_text(
            json.dumps({"report": report, "rust": {k: v for k, v in rust.items() if k != "ids"}}, default=str)
        )
        log(f"done in {total_s / 60:.1f} min; report written to {args.out}")
        return 0
    finally:
        if not args.keep_data:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
