"""``ruvector.Collection`` next to chromadb and lancedb on the same documents.

Data: the real WordNet sentence texts of ``bench/corpus.py`` (the same
corpus as the index benchmark), embedded once with ``all-MiniLM-L6-v2`` by
this repo's ``ruvector-embed`` and cached, so every store ingests the same
precomputed vectors and embedding speed hides nothing. Each document gets a
``bucket`` in 0..99 (seeded), so ``bucket < 10`` selects 10 % and
``bucket == 0`` 1 %.

Measured per store, in one process each (so no store warms another's
caches): ingest time (open an empty directory, add texts + metadata +
vectors, durable), single-query latency p50/p99 with ``k=10`` without a
filter and with the 10 % and 1 % filters, recall@10 against exact cosine
search over the matching documents, the directory's size on disk, reopen
time (open the directory again and answer one query) and the installed size
of the store's distributions. Reopen is timed twice, as the median of
``REOPENS`` closes and reopens: "open" (the directory opened, nothing asked
yet: what a store defers, such as mapping its index, is not in it) and
"open + query" (opened and one query answered: everything a first answer
needs). Also ``ruvector --help`` start time next to
ruvector 0.1.4's CLI.

Run: ``python bench/collection_bench.py --n 20000`` (``nox -s bench`` runs
it at 100k). Stores that are not installed are reported as such.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

HERE = Path(__file__).resolve().parent
K = 10
SEED = 20241130
#: name -> (a filter in the ruvector/chroma where language, the same in lance SQL, the bucket test)
FILTERS: Dict[str, Tuple[Optional[Dict[str, Any]], Optional[str], Callable[[np.ndarray], np.ndarray]]] = {
    "none": (None, None, lambda b: np.ones(len(b), dtype=bool)),
    "10%": ({"bucket": {"$lt": 10}}, "bucket < 10", lambda b: b < 10),
    "1%": ({"bucket": {"$eq": 0}}, "bucket = 0", lambda b: b == 0),
}
#: ``ruvector`` is the default (``index="auto"``: exact below the size
#: ``recommend()`` picks, IVF above); ``ruvector-ivf`` forces the IVF index;
#: ``ruvector-recall`` is the default store queried with ``nprobe=RECALL_NPROBE``
#: (more IVF lists visited: the recall of the peers' tuned queries, or above).
STORES = ("ruvector", "ruvector-ivf", "ruvector-recall", "chromadb", "lancedb")
RECALL_NPROBE = 128
#: Close-and-reopen rounds whose median is reported.
REOPENS = 5
#: The distributions that make up each store (their required dependencies are added).
DISTS = {
    "ruvector": ["ruvector", "ruvector-rabitq", "ruvector-common"],
    "ruvector-ivf": ["ruvector", "ruvector-rabitq", "ruvector-common"],
    "ruvector-recall": ["ruvector", "ruvector-rabitq", "ruvector-common"],
    "chromadb": ["chromadb"],
    "lancedb": ["lancedb"],
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- data -----------------------------------------------------------------------------


def load_data(cache: Path, n: int, nq: int) -> Dict[str, Any]:
    """``n`` base and ``nq`` held-out query texts of the WordNet corpus with
    their MiniLM embeddings (only these are embedded; cached by content)."""
    sys.path.insert(0, str(HERE))
    import corpus

    texts = corpus.wordnet_texts(corpus.fetch_wordnet(cache))
    if n + nq > len(texts):
        raise SystemExit(f"--n {n} + --queries {nq} exceeds the {len(texts):,} corpus texts")
    order = np.random.default_rng(SEED).permutation(len(texts))
    chosen = [texts[i] for i in order[: n + nq]]
    digest = hashlib.sha256("\n".join(chosen).encode()).hexdigest()[:16]
    # Rows of the whole corpus embedded once (the cache the index benchmark
    # shares), so no size re-embeds anything.
    every, _ = corpus.embeddings(cache, log)
    vectors = np.ascontiguousarray(every[order[: n + nq]], dtype=np.float32)
    buckets = np.random.default_rng(SEED + 2).integers(0, 100, size=n)
    return {
        "texts": chosen[nq:],
        "vectors": vectors[nq:],
        "queries": vectors[:nq],
        "buckets": buckets,
        "about": f"{n:,} WordNet texts + {nq:,} held-out queries (SHA-256 prefix {digest}), all-MiniLM-L6-v2, 384-d",
    }


def exact(data: Dict[str, Any]) -> Dict[str, List[List[int]]]:
    """Exact top-k by cosine (unit vectors: inner product) per filter."""
    base = data["vectors"] / np.linalg.norm(data["vectors"], axis=1, keepdims=True)
    qs = data["queries"] / np.linalg.norm(data["queries"], axis=1, keepdims=True)
    out: Dict[str, List[List[int]]] = {}
    for name, (_, _, test) in FILTERS.items():
        rows = np.flatnonzero(test(data["buckets"]))
        sims = qs @ base[rows].T
        top = np.argsort(-sims, axis=1)[:, :K]
        out[name] = [[int(rows[j]) for j in row] for row in top]
    return out


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def installed_size(names: Sequence[str]) -> Tuple[int, int]:
    """Bytes of these distributions' files, and of them plus their required
    dependency closure (extras left out; numpy is counted too)."""
    import re

    def files_size(dist: metadata.Distribution) -> int:
        total = 0
        for f in dist.files or []:
            try:
                total += os.path.getsize(f.locate())
            except OSError:
                pass
        return total

    own = 0
    seen: set[str] = set()
    todo = list(names)
    closure = 0
    while todo:
        name = re.split(r"[\s<>=!~;\[(]", todo.pop(), maxsplit=1)[0].lower().replace("_", "-")
        if not name or name in seen:
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        size = files_size(dist)
        closure += size
        if name in names:
            own += size
        for req in dist.requires or []:
            if "extra ==" not in req:
                todo.append(req)
    return own, closure


# -- the stores -----------------------------------------------------------------------


class Store:
    name = ""

    def create(self, path: Path, data: Dict[str, Any]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def reopen(self, path: Path) -> None:
        raise NotImplementedError

    def query(self, q: np.ndarray, flt: str) -> List[int]:
        raise NotImplementedError


class RuVector(Store):
    name = "ruvector"
    index = "auto"
    nprobe: Optional[int] = None

    def create(self, path: Path, data: Dict[str, Any]) -> None:
        import ruvector

        self.coll = ruvector.Collection.open(path, embedder=None, metric="cosine", index=self.index)
        meta = [{"bucket": int(b)} for b in data["buckets"]]
        self.coll.add(data["texts"], ids=list(range(len(meta))), metadata=meta, vectors=data["vectors"])
        self.coll.save()  # the index file too (the store is already durable)

    def close(self) -> None:
        self.coll.close()

    def reopen(self, path: Path) -> None:
        import ruvector

        self.coll = ruvector.Collection.open(path, embedder=None)

    def query(self, q: np.ndarray, flt: str) -> List[int]:
        return [int(h.id) for h in self.coll.query(q, k=K, where=FILTERS[flt][0], nprobe=self.nprobe)]


class RuVectorIvf(RuVector):
    name = "ruvector-ivf"
    index = "ivf"


class RuVectorRecall(RuVector):
    name = "ruvector-recall"
    nprobe = RECALL_NPROBE


class Chroma(Store):
    name = "chromadb"

    def create(self, path: Path, data: Dict[str, Any]) -> None:
        import chromadb

        self.client = chromadb.PersistentClient(path=str(path))
        self.coll = self.client.create_collection("bench", metadata={"hnsw:space": "cosine"})
        step = self.client.get_max_batch_size()
        n = len(data["texts"])
        for lo in range(0, n, step):
            hi = min(lo + step, n)
            self.coll.add(
                ids=[str(i) for i in range(lo, hi)],
                embeddings=data["vectors"][lo:hi],
                documents=data["texts"][lo:hi],
                metadatas=[{"bucket": int(b)} for b in data["buckets"][lo:hi]],
            )

    def close(self) -> None:
        from chromadb.api.client import SharedSystemClient

        del self.coll, self.client
        SharedSystemClient.clear_system_cache()

    def reopen(self, path: Path) -> None:
        import chromadb

        self.client = chromadb.PersistentClient(path=str(path))
        self.coll = self.client.get_collection("bench")

    def query(self, q: np.ndarray, flt: str) -> List[int]:
        where = FILTERS[flt][0]
        got = self.coll.query(query_embeddings=q[None, :], n_results=K, where=where)
        return [int(i) for i in got["ids"][0]]


class Lance(Store):
    name = "lancedb"

    def create(self, path: Path, data: Dict[str, Any]) -> None:
        import lancedb
        import pyarrow as pa

        self.db = lancedb.connect(str(path))
        n, dim = data["vectors"].shape
        table = pa.table(
            {
                "id": pa.array(np.arange(n, dtype=np.int64)),
                "text": pa.array(data["texts"]),
                "bucket": pa.array(data["buckets"].astype(np.int64)),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(data["vectors"].reshape(-1)), dim),
            }
        )
        self.table = self.db.create_table("bench", table)
        # An ANN index as lancedb recommends above ~100k rows (IVF-PQ), and a
        # scalar index on the filter column.
        self.indexed = n >= 10_000
        if self.indexed:
            self.table.create_index(metric="cosine", vector_column_name="vector")
        self.table.create_scalar_index("bucket")

    def close(self) -> None:
        del self.table, self.db

    def reopen(self, path: Path) -> None:
        import lancedb

        self.db = lancedb.connect(str(path))
        self.table = self.db.open_table("bench")
        self.indexed = bool(self.table.list_indices())

    def query(self, q: np.ndarray, flt: str) -> List[int]:
        search = self.table.search(q).metric("cosine").limit(K).select(["id"])
        if self.indexed:  # tuned for recall: more lists visited, exact rerank of 10x k
            search = search.nprobes(32).refine_factor(10)
        sql = FILTERS[flt][1]
        if sql is not None:
            search = search.where(sql, prefilter=True)
        return [int(i) for i in search.to_arrow()["id"].to_pylist()]


def run_store(name: str, data: Dict[str, Any], truth: Dict[str, List[List[int]]], workdir: Path) -> Dict[str, Any]:
    classes = {"ruvector": RuVector, "ruvector-ivf": RuVectorIvf, "ruvector-recall": RuVectorRecall}
    store = {**classes, "chromadb": Chroma, "lancedb": Lance}[name]()
    path = workdir / name
    out: Dict[str, Any] = {"store": name}
    try:
        version = metadata.version(DISTS[name][0])
    except metadata.PackageNotFoundError:
        return {"store": name, "error": "not installed"}
    out["version"] = version
    t0 = time.perf_counter()
    store.create(path, data)
    out["ingest_s"] = time.perf_counter() - t0
    for flt in FILTERS:
        lat: List[float] = []
        hits = 0
        try:
            for qi, q in enumerate(data["queries"]):
                t = time.perf_counter()
                got = store.query(q, flt)
                lat.append(time.perf_counter() - t)
                hits += len(set(got) & set(truth[flt][qi]))
        except Exception as error:  # a store that cannot run this filter
            out[flt] = {"error": f"{type(error).__name__}: {error}"}
            continue
        lat_ms = sorted(x * 1e3 for x in lat)
        out[flt] = {
            "p50_ms": statistics.median(lat_ms),
            "p99_ms": lat_ms[min(len(lat_ms) - 1, int(0.99 * len(lat_ms)))],
            "recall": hits / (K * len(data["queries"])),
        }
    store.close()
    out["disk_bytes"] = dir_size(path)
    opens: List[float] = []
    reopens: List[float] = []
    for _ in range(REOPENS):
        t0 = time.perf_counter()
        store.reopen(path)
        opens.append(time.perf_counter() - t0)
        store.query(data["queries"][0], "none")
        reopens.append(time.perf_counter() - t0)
        store.close()
    out["open_s"] = statistics.median(opens)
    out["reopen_s"] = statistics.median(reopens)
    out["installed_own"], out["installed_closure"] = installed_size(DISTS[name])
    return out


# -- CLI start time --------------------------------------------------------------------


def cli_start(peer: Optional[str], repeats: int = 7) -> Dict[str, Optional[float]]:
    """Median wall time of ``ruvector --help`` (ours: the console script next
    to this Python) and of 0.1.4's ``ruvector.cli:main --help`` from ``peer``."""

    def median_run(cmd: List[str], env: Optional[Dict[str, str]] = None) -> Optional[float]:
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, env=env, check=False)
            times.append(time.perf_counter() - t)
            if done.returncode != 0:
                log(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr.decode()[-300:]}")
                return None
        return statistics.median(times) * 1e3

    ours = shutil.which("ruvector", path=str(Path(sys.executable).parent))
    result: Dict[str, Optional[float]] = {"ours_ms": None if ours is None else median_run([ours, "--help"])}
    result["v014_ms"] = None
    if peer:
        env = {**os.environ, "PYTHONPATH": str(Path(peer).resolve())}
        code = "import sys; sys.argv = ['ruvector', '--help']; from ruvector.cli import main; main()"
        result["v014_ms"] = median_run([sys.executable, "-c", code], env)
    return result


# -- report ------------------------------------------------------------------------------


def _f(value: Optional[float], spec: str) -> str:
    return "—" if value is None else format(value, spec)


def report(data_about: str, results: List[Dict[str, Any]], cli: Dict[str, Optional[float]], args: Any) -> str:
    lines = [
        "# ruvector.Collection vs chromadb and lancedb",
        "",
        f"Data: {data_about}; {args.queries} queries, k={K}, single-query latency, cosine.",
        f"Machine: {os.cpu_count()} CPUs visible; command: "
        f"`python bench/collection_bench.py {' '.join(sys.argv[1:])}`.",
        "",
        "| store | version | ingest s | p50 ms | p99 ms | recall@10 | p50 10% | p99 10% | recall 10% "
        "| p50 1% | p99 1% | recall 1% | disk MB | open s | open + query s | installed MB (with deps) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes: List[str] = []
    for r in results:
        if "error" in r:
            lines.append(f"| {r['store']} | {r['error']} |" + " |" * 14)
            continue
        cells = [r["store"], r["version"], _f(r["ingest_s"], ".2f")]
        for flt in FILTERS:
            row = r.get(flt, {})
            if "error" in row:
                if row["error"] not in notes:
                    notes.append(row["error"])
                cells += [f"n/a [{notes.index(row['error']) + 1}]", "", ""]
            else:
                cells += [_f(row["p50_ms"], ".2f"), _f(row["p99_ms"], ".2f"), _f(row["recall"], ".3f")]
        cells += [
            _f(r["disk_bytes"] / 1e6, ".1f"),
            _f(r.get("open_s"), ".4f"),
            _f(r["reopen_s"], ".3f"),
            f"{r['installed_own'] / 1e6:.1f} ({r['installed_closure'] / 1e6:.0f})",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [""] + [f"[{i + 1}] {note}" for i, note in enumerate(notes)]
    for ours in [r for r in results if r["store"].startswith("ruvector") and "error" not in r]:
        lines += ["", f"Ratios to {ours['store']} (theirs / ours; > 1 means ruvector is faster or smaller):", ""]
        for r in results:
            if r["store"].startswith("ruvector") or "error" in r:
                continue
            parts = [f"ingest {r['ingest_s'] / ours['ingest_s']:.2f}x"]
            for flt in FILTERS:
                a, b = ours.get(flt, {}), r.get(flt, {})
                if "p50_ms" in a and "p50_ms" in b:
                    parts.append(
                        f"p50 {flt} {b['p50_ms'] / a['p50_ms']:.2f}x (recall {b['recall']:.3f} vs {a['recall']:.3f})"
                    )
            parts.append(f"disk {r['disk_bytes'] / ours['disk_bytes']:.2f}x")
            parts.append(f"open {r['open_s'] / ours['open_s']:.2f}x")
            parts.append(f"open + query {r['reopen_s'] / ours['reopen_s']:.2f}x")
            parts.append(f"installed {r['installed_closure'] / ours['installed_closure']:.2f}x")
            lines.append(f"- {r['store']}: " + ", ".join(parts))
    lines += [
        "",
        f"`ruvector --help` start: {_f(cli['ours_ms'], '.0f')} ms; "
        f"ruvector 0.1.4's CLI: {_f(cli['v014_ms'], '.0f')} ms (median of 7 runs).",
        "",
    ]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="documents (default 100,000)")
    ap.add_argument("--queries", type=int, default=500, help="evaluation queries (default 500)")
    ap.add_argument("--cache", default=str(HERE.parent / "target" / "bench-data"), help="data cache directory")
    ap.add_argument("--out", default=str(HERE / "results-collection.md"), help="Markdown report path")
    ap.add_argument("--only", help="comma-separated subset of: " + ",".join(STORES))
    ap.add_argument("--ruvector-014-path", help="a --target directory holding ruvector==0.1.4 (for its CLI)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    cache = Path(args.cache)
    data = load_data(cache, args.n, args.queries)
    if args.worker:  # one store, in this process; JSON on stdout
        truth = json.loads(Path(args.worker).read_text())
        name = truth.pop("store")
        with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
            print(json.dumps(run_store(name, data, truth, Path(tmp))))
        return 0
    truth = exact(data)
    results = []
    stores = args.only.split(",") if args.only else list(STORES)
    with tempfile.TemporaryDirectory(prefix="collection-bench-") as tmp:
        for name in stores:
            log(f"{name} ...")
            spec = Path(tmp) / f"{name}.json"
            spec.write_text(json.dumps({"store": name, **truth}))
            cmd = [sys.executable, __file__, "--worker", str(spec), "--n", str(args.n), "--queries", str(args.queries)]
            done = subprocess.run([*cmd, "--cache", str(cache)], capture_output=True, text=True, check=False)
            if done.returncode != 0:
                log(done.stderr[-2000:])
                results.append({"store": name, "error": f"worker exited {done.returncode}"})
                continue
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
            log(f"  {results[-1]}")
    cli = cli_start(args.ruvector_014_path)
    text = report(data["about"], results, cli, args)
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
