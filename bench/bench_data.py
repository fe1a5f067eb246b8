"""Synthetic data set and exact ground truth for the benchmark harness.

Everything here is deterministic: the same (n, d, seed, ...) always gives
byte-identical arrays, so two runs of the harness (or the Python and the
Rust side of one run) see the same data.
"""

from __future__ import annotations

import struct
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

RUST_MAGIC = b"RVBENCH1"


@dataclass(frozen=True)
class DataSpec:
    """Parameters of the clustered Gaussian data set."""

    n: int = 100_000
    d: int = 128
    n_queries: int = 1_000
    n_tune: int = 500
    n_clusters: int = 100
    center_std: float = 1.0
    noise_std_min: float = 0.25
    noise_std_max: float = 0.6
    seed: int = 20240601

    def describe(self) -> str:
        """One paragraph saying exactly how the data was made."""
        total = self.n + self.n_queries + self.n_tune
        return (
            f"`numpy.random.default_rng({self.seed})`; {self.n_clusters} cluster centres "
            f"~ N(0, {self.center_std}²·I_{self.d}); each cluster gets its own isotropic noise "
            f"std drawn U[{self.noise_std_min}, {self.noise_std_max}]; {total:,} points, each "
            f"assigned a uniformly random cluster, x = centre + std·N(0, I); cast to float32. "
            f"Rows are then shuffled with the same generator and split into "
            f"{self.n:,} base vectors, {self.n_queries:,} evaluation queries and "
            f"{self.n_tune:,} tuning queries (used only to pick ef/expansion values, never "
            f"to score). Ground truth: exact top-10 squared-L2 neighbours by float64 brute "
            f"force in numpy, 100 queries per chunk."
        )

    def as_dict(self) -> dict:
        return asdict(self)


def generate(spec: DataSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns (base, queries, tune) as C-contiguous float32 arrays."""
    rng = np.random.default_rng(spec.seed)
    total = spec.n + spec.n_queries + spec.n_tune
    centers = rng.standard_normal((spec.n_clusters, spec.d)) * spec.center_std
    noise_std = rng.uniform(spec.noise_std_min, spec.noise_std_max, size=spec.n_clusters)
    labels = rng.integers(0, spec.n_clusters, size=total)
    points = np.empty((total, spec.d), dtype=np.float32)
    step = 50_000  # bounded float64 temporaries
    for lo in range(0, total, step):
        hi = min(lo + step, total)
        lab = labels[lo:hi]
        noise = rng.standard_normal((hi - lo, spec.d))
        points[lo:hi] = centers[lab] + noise * noise_std[lab, None]
    order = rng.permutation(total)
    points = points[order]
    base = np.ascontiguousarray(points[: spec.n])
    queries = np.ascontiguousarray(points[spec.n : spec.n + spec.n_queries])
    tune = np.ascontiguousarray(points[spec.n + spec.n_queries :])
    return base, queries, tune


def ground_truth(base: np.ndarray, queries: np.ndarray, k: int = 10, chunk: int = 100) -> np.ndarray:
    """Exact top-k ids by squared L2, computed in float64, chunked over queries.

    Ties are broken by the smaller id (stable sort over the candidate set),
    which only matters for duplicate points (none are expected here).
    """
    base64 = base.astype(np.float64)
    base_sq = np.einsum("ij,ij->i", base64, base64)
    out = np.empty((queries.shape[0], k), dtype=np.int64)
    for lo in range(0, queries.shape[0], chunk):
        q = queries[lo : lo + chunk].astype(np.float64)
        dist = base_sq[None, :] - 2.0 * (q @ base64.T) + np.einsum("ij,ij->i", q, q)[:, None]
        kth = min(k, base.shape[0] - 1)
        part = np.argpartition(dist, kth, axis=1)[:, : kth + 1]
        for r in range(q.shape[0]):
            cand = np.sort(part[r])
            order = np.argsort(dist[r, cand], kind="stable")
            out[lo + r] = cand[order[:k]]
    return out


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    """Mean |found[:k] ∩ truth[:k]| / k over queries; -1 padding never matches."""
    hits = 0
    for f, t in zip(found, truth):
        hits += len(set(int(x) for x in f[:k]) & set(int(x) for x in t[:k]))
    return hits / (k * len(truth))


def write_rust_dataset(path: Path, base: np.ndarray, queries: np.ndarray) -> None:
    """Writes the RVBENCH1 file that `tools/rabitq-rust-bench` reads.

    Layout (little-endian): 8-byte magic, u64 n, u64 nq, u64 dim, then the
    base rows and the query rows as f32, row-major.
    """
    n, d = base.shape
    nq = queries.shape[0]
    with open(path, "wb") as f:
        f.write(RUST_MAGIC)
        f.write(struct.pack("<QQQ", n, nq, d))
        f.write(np.ascontiguousarray(base, dtype="<f4").tobytes())
        f.write(np.ascontiguousarray(queries, dtype="<f4").tobytes())
