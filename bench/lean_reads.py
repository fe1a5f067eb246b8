#!/usr/bin/env python3
"""How many float32 rows ``IvfRabitqIndex.load(path, lean=True)`` reads per search.

A NumPy replay of the rule in ``crates/ruvector-py-index/src/lean.rs`` on the
bench's real MiniLM embeddings (``bench/corpus.py``): 8-bit codes with a
per-dimension range, candidates ordered by their 8-bit estimate of squared L2
(with the exact row norms), rows read in that order until the k-th best
exact distance is below the next candidate's estimate minus the error bound
``2 * sum(|q_i| * step_i / 2)``. The candidates stand in for an IVF search's
``k * rerank_factor`` (here the exact top ``k * rerank_factor``, the hardest
case: every candidate is close).

Usage::

    python bench/lean_reads.py --cache target/bench-data
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import corpus  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=HERE.parent / "target" / "bench-data")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--rerank-factor", type=int, default=5)
    args = ap.parse_args()
    x, about = corpus.embeddings(args.cache, log=lambda m: print(m, file=sys.stderr))
    base, queries, _, _ = corpus.split(x, args.n, 1000, 500)
    lo, hi = base.min(0), base.max(0)
    step = (hi - lo) / 255
    codes = np.clip(np.round((base - lo) / step), 0, 255).astype(np.uint8)
    decoded = lo + step * codes
    norms = (base * base).sum(1)
    k, want = args.k, args.k * args.rerank_factor
    reads = []
    for q in queries[: args.queries]:
        exact = ((base - q) ** 2).sum(1)
        cand = np.argsort(exact)[:want]
        estimate = (q * q).sum() - 2 * (decoded[cand] @ q) + norms[cand]
        order = np.argsort(estimate)
        bound = 2 * (np.abs(q) * step / 2).sum()
        held: list[float] = []
        n = 0
        for i, c in enumerate(order):
            held.append(float(exact[cand[c]]))
            n += 1
            if len(held) >= k and i + 1 < len(order):
                if sorted(held)[k - 1] < estimate[order[i + 1]] - bound:
                    break
        reads.append(n)
    r = np.array(reads)
    print(
        f"{about}\nk {k}, {want} candidates: rows read per search p50 {np.percentile(r, 50):.0f}, "
        f"p90 {np.percentile(r, 90):.0f}, max {r.max()} (mean {r.mean():.1f})"
    )


if __name__ == "__main__":
    main()
