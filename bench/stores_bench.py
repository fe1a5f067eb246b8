"""ruLake over real stores (issue 18): cold prime of a ParquetBackend and a
PostgresBackend collection next to reading the same data with pyarrow /
psycopg alone, and next to the index build from NumPy arrays in memory.

Each measurement runs in a fresh Python process, so its peak resident memory
(``ru_maxrss``) is its own. PostgreSQL is a throwaway cluster started from
Debian's binaries (skipped if there are none), on a Unix socket, fsync off.

Then, in PostgreSQL, refresh after changing 0.1 %, 1 % and 10 % of the rows:
the delta (``changes_since``) against a full re-pull and encode of the same
data, and the first search after the refresh.

    python bench/stores_bench.py [--n 1000000] [--dim 384] [--out bench/results-stores.md] [--only refresh]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np


def _data(n: int, dim: int) -> Any:
    return np.random.default_rng(0).standard_normal((n, dim), dtype=np.float32)


def _case(case: str, where: str, n: int, dim: int) -> Dict[str, Any]:
    """One measurement, in this (fresh) process."""
    import ruvector_lake as rl

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    if case == "parquet-bare":
        import pyarrow.parquet as pq

        col = pq.read_table(f"{where}/docs.parquet", columns=["id", "embedding"]).column("embedding")
        x = np.concatenate([c.flatten().to_numpy().reshape(len(c), -1) for c in col.chunks])
        assert x.shape == (n, dim)
    elif case == "parquet-pull":
        _, x = rl.ParquetBackend("b", where).pull("docs")
        assert x.shape == (n, dim)
    elif case in ("parquet-prime", "postgres-prime", "index-build"):
        lake = rl.RuLake()
        if case == "parquet-prime":
            lake.register_backend(rl.ParquetBackend("b", where))
        elif case == "postgres-prime":
            lake.register_backend(rl.PostgresBackend("b", where, statement_timeout=0))
        else:
            x = _data(n, dim)
            local = rl.LocalBackend("b")
            local.upsert("docs", np.arange(n, dtype=np.uint64), x)
            del x
            lake.register_backend(local)
            t = time.perf_counter()
        lake.search_one("b", "docs", np.ones(dim, dtype=np.float32))
    elif case == "postgres-refresh":
        fractions = tuple(float(f) for f in os.environ.get("RV_BENCH_FRACTIONS", "").split(",") if f)
        return _refresh(where, n, dim, fractions or FRACTIONS)
    elif case == "postgres-bare":
        import psycopg

        size = 0
        with psycopg.connect(where) as conn, conn.cursor() as cur:
            with cur.copy("COPY (SELECT id, embedding FROM docs) TO STDOUT (FORMAT BINARY)") as copy:
                for block in copy:
                    size += len(block)
        assert size > n * dim * 8
    else:
        raise SystemExit(f"unknown case {case}")
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": seconds, "peak_mb": peak / 1024, "delta_mb": (peak - base) / 1024}


FRACTIONS = (0.001, 0.01, 0.1)


def _search_ms(lake: Any, q: Any, repeat: int = 1) -> float:
    t = time.perf_counter()
    for _ in range(repeat):
        lake.search_one("b", "docs", q, 10)
    return (time.perf_counter() - t) * 1000 / repeat


def _refresh(dsn: str, n: int, dim: int, fractions: Tuple[float, ...] = FRACTIONS) -> Dict[str, Any]:
    """Prime once, then for each fraction: change that share of the rows
    (90 % updated in one statement, 5 % deleted, 5 % inserted), time the
    search that refreshes by delta, the next search, and a full re-prime
    of the same data (invalidate + search), whose witness must match."""
    import psycopg

    import ruvector_lake as rl

    lake = rl.RuLake()
    lake.register_backend(rl.PostgresBackend("b", dsn, statement_timeout=0))
    rng = np.random.default_rng(1)
    q = rng.standard_normal(dim, dtype=np.float32)
    lake.search_one("b", "docs", q, 10)
    steady = _search_ms(lake, q, 50)
    out: Dict[str, Any] = {"steady_search_ms": steady}
    next_id = n
    for frac in fractions:
        m = max(1, int(n * frac))
        held = rng.choice(n, size=m, replace=False)
        upd, dele = held[: m * 9 // 10], held[m * 9 // 10 : m * 19 // 20]
        new_ids = np.arange(next_id, next_id + (m - len(upd) - len(dele)))
        next_id += len(new_ids)
        with psycopg.connect(dsn) as conn, conn.cursor() as cur:
            cur.execute("CREATE TEMP TABLE fresh (id bigint, embedding real[])")
            with cur.copy("COPY fresh FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "float4[]"])
                for i in np.concatenate([upd, new_ids]).tolist():
                    copy.write_row((i, rng.standard_normal(dim, dtype=np.float32).tolist()))
            cur.execute("UPDATE docs SET embedding = f.embedding FROM fresh f WHERE docs.id = f.id")
            cur.execute("DELETE FROM docs WHERE id = ANY(%s)", (dele.tolist(),))
            cur.execute(
                "INSERT INTO docs SELECT id, embedding FROM fresh WHERE id >= %s",
                (int(new_ids[0]) if len(new_ids) else n,),
            )
        before = lake.cache_stats().refreshes
        delta = _search_ms(lake, q)
        assert lake.cache_stats().refreshes == before + 1
        first = _search_ms(lake, q)
        witness = lake.witness("b", "docs")
        lake.invalidate_cache("b", "docs")
        full = _search_ms(lake, q)
        assert lake.witness("b", "docs") == witness
        out[str(frac)] = {
            "rows": m,
            "delta_ms": delta,
            "apply_ms": lake.cache_stats().last_refresh_ms,
            "first_search_ms": first,
            "full_ms": full,
        }
    return out


def _run(case: str, where: str, n: int, dim: int) -> Dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--case", case, "--where", where, "--n", str(n), "--dim", str(dim)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: Dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _pg_bin() -> Optional[str]:
    for cand in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(f"{cand}/initdb"):
            return cand
    found = shutil.which("initdb")
    return os.path.dirname(os.path.realpath(found)) if found else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--out", default="bench/results-stores.md")
    ap.add_argument("--only", choices=["refresh"], help="only the PostgreSQL refresh measurement")
    ap.add_argument("--fractions", default="", help="refresh fractions, e.g. 0.001,0.01 (default: 0.001,0.01,0.1)")
    ap.add_argument(
        "--row-group-rows",
        type=int,
        default=65_536,
        help="rows per Parquet row group of the written file (writers such as Spark and DuckDB keep groups small)",
    )
    ap.add_argument("--case")
    ap.add_argument("--where", default="")
    args = ap.parse_args()
    if args.case:
        print(json.dumps(_case(args.case, args.where, args.n, args.dim)))
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    n, dim = args.n, args.dim
    rows: List[str] = []
    x = _data(n, dim)
    ids = np.arange(n, dtype=np.uint64)
    only_refresh = args.only == "refresh"
    if args.fractions:
        os.environ["RV_BENCH_FRACTIONS"] = args.fractions
    root = tempfile.mkdtemp(prefix="rvpq")
    if not only_refresh:
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), dim)
        pq.write_table(
            pa.table({"id": ids, "embedding": vectors}), f"{root}/docs.parquet", row_group_size=args.row_group_rows
        )
        del vectors
    results: Dict[str, Dict[str, Any]] = {} if only_refresh else {"index-build": _run("index-build", "", n, dim)}
    refresh: Optional[Dict[str, Any]] = None
    for case in () if only_refresh else ("parquet-bare", "parquet-pull", "parquet-prime"):
        results[case] = _run(case, root, n, dim)
    shutil.rmtree(root, ignore_errors=True)
    bindir = _pg_bin()
    if bindir is not None:
        import psycopg

        base = tempfile.mkdtemp(prefix="rvpgb")
        pre: List[str] = []
        if os.geteuid() == 0:
            shutil.chown(base, user="postgres")
            pre = ["runuser", "-u", "postgres", "--"]
        data = f"{base}/d"
        subprocess.run(
            [*pre, f"{bindir}/initdb", "-D", data, "-U", "postgres", "--auth=trust"], check=True, capture_output=True
        )
        opts = f"-k {base} -c listen_addresses='' -c fsync=off"
        start = [*pre, f"{bindir}/pg_ctl", "-D", data, "-o", opts, "-l", f"{base}/log", "-w", "start"]
        subprocess.run(start, check=True, capture_output=True)
        try:
            dsn = f"host={base} dbname=postgres user=postgres"
            with psycopg.connect(dsn) as conn, conn.cursor() as cur:
                cur.execute("CREATE TABLE docs (id bigint PRIMARY KEY, embedding real[])")
                with cur.copy("COPY docs FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(["int8", "float4[]"])
                    for i in range(n):
                        copy.write_row((i, x[i].tolist()))
            del x
            import ruvector_lake as rl

            rl.PostgresBackend("pg", dsn).install_change_counter("docs")
            for case in () if only_refresh else ("postgres-bare", "postgres-prime"):
                results[case] = _run(case, dsn, n, dim)
            refresh = _run("postgres-refresh", dsn, n, dim)
        finally:
            subprocess.run([*pre, f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True)
            shutil.rmtree(base, ignore_errors=True)
    labels = {
        "index-build": "index build alone (arrays already in memory)",
        "parquet-bare": "pyarrow alone: read_table -> NumPy (n, dim)",
        "parquet-pull": "ParquetBackend pull alone -> NumPy (n, dim)",
        "parquet-prime": "ParquetBackend cold prime (pull + encode)",
        "postgres-bare": "psycopg alone: binary COPY transfer, not decoded",
        "postgres-prime": "PostgresBackend cold prime (pull + encode)",
    }
    rows.append(f"# ruLake over real stores: {n} x {dim} float32\n")
    if results:
        rows.append("| step | seconds | peak RSS of its process (MB) |")
        rows.append("|---|---:|---:|")
    for case, r in results.items():
        rows.append(f"| {labels[case]} | {r['seconds']:.2f} | {r['peak_mb']:.0f} |")
    build = results["index-build"]["seconds"] if results else 0.0
    for store in ("parquet", "postgres"):
        if f"{store}-prime" in results:
            ratio = results[f"{store}-prime"]["seconds"] / (results[f"{store}-bare"]["seconds"] + build)
            rows.append(f"\n{store}: prime / (bare read + index build) = {ratio:.2f} (target <= 1.5)")
    if refresh is not None:
        rows.append("\n## PostgresBackend refresh after changing a share of the rows\n")
        rows.append(
            "90 % of the changed rows updated, 5 % deleted, 5 % inserted; steady cache-hit search: "
            f"{refresh['steady_search_ms']:.2f} ms (k=10).\n"
        )
        rows.append(
            "| rows changed | delta refresh: search that refreshes (ms) | of which applying the delta (ms) "
            "| first search after it (ms) | full re-pull + encode (ms) | speed-up |"
        )
        rows.append("|---|---:|---:|---:|---:|---:|")
        for frac in FRACTIONS:
            if str(frac) not in refresh:
                continue
            r = refresh[str(frac)]
            rows.append(
                f"| {frac * 100:g} % ({r['rows']}) | {r['delta_ms']:.0f} | {r['apply_ms']:.0f} "
                f"| {r['first_search_ms']:.2f} | {r['full_ms']:.0f} | {r['full_ms'] / r['delta_ms']:.1f}x |"
            )
        rows.append("\ntarget: delta >= 20x faster than the full re-pull at 0.1 %")
    text = "\n".join(rows) + "\n"
    print(text)
    with open(args.out, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
