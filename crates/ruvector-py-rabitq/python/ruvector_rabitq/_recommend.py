"""``recommend(n, dim, recall_target)``: which index to build, and how.

The rules come from measurements (``nox -s bench`` and
``bench/collection_bench.py``) on real 384-d MiniLM sentence embeddings,
single queries, k=10, two cores: the exact flat scan costs about 0.12 ms
per 1,000 vectors (0.6 ms at 5,000, 1.2-1.5 ms at 10,000, 2.6-6.6 ms at
20,000), while ``IvfRabitqIndex`` with sqrt(n) lists answers in 0.04-0.1 ms
at every size from 1,500 to 20,000 once it visits about 24 lists (recall@10
0.96-0.98 there). So above 5,000 vectors IVF is recommended: it is 8x faster
at that size and the gap grows linearly, at recall@10 >= 0.95 against
exact. Small collections need a floor on the lists visited (a share of
sqrt(n) lists alone is too few there: 10 % of 71 lists gives 0.88);
``RabitqIndex`` alone is for memory budgets that accept low recall.

``IvfRabitqIndex`` keeps every vector in two lists for ``l2`` and
``cosine`` (``spill=True``, its default there), which needs far fewer lists
visited than one copy (``ip``): the steps below are measured for each.
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Any, Dict, NamedTuple, Optional, SupportsFloat, SupportsIndex

from ruvector_common.errors import InvalidArgument

if TYPE_CHECKING:
    import numpy.typing as npt

    from ._types import AnyIndex

#: Up to this many vectors the exact scan is recommended (about 0.6 ms per
#: 384-d query at this size; IVF takes 0.07 ms there at recall@10 0.97).
FLAT_MAX_N = 5_000
#: Above this dimension the dense Haar rotation is slow to build: use Hadamard.
HAAR_COMFORT_DIM = 1024
#: (largest recall target, share of the lists to visit, fewest lists to
#: visit) for IvfRabitqIndex with one copy of each vector (``ip``), sqrt(n)
#: lists and rerank 10, from measurements on real 384-d sentence
#: embeddings: at n = 100k (316 lists) nprobe 24 gives recall@10 0.95, 64
#: gives 0.985, 96 gives 0.992, 128 gives 0.995; at n = 5k-20k (71-141
#: lists) nprobe 24 gives 0.96-0.97, 48 gives 0.985-0.998, 80 gives
#: 0.995-0.999. The share governs large n, the floor small n; both with a
#: margin.
NPROBE_STEPS = (
    (0.85, 0.04, 8),
    (0.95, 0.10, 24),
    (0.98, 0.20, 48),
    (0.99, 0.33, 80),
    (0.995, 0.45, 110),
)
#: The same for spilled lists (``l2``, ``cosine``). Measured with sqrt(n)
#: lists and rerank 10 on both real 100k corpora of ``nox -s bench`` at
#: n = 5k-100k, the lists needed hardly grow with n: on the harder one
#: (Debian package descriptions) 13-16 for recall@10 0.95, 21-32 for 0.98,
#: 28-49 for 0.99, 35-75 for 0.995 (WordNet: 8-9, 15-16, 20-23, 26-36); at
#: 1M rows sampled around the WordNet embeddings 8, 16, 35 and 58 of 1,000.
#: The floors carry a margin over the Debian needs; the shares keep large
#: collections, which are not measured on real text, well above them.
SPILLED_NPROBE_STEPS = (
    (0.85, 0.02, 8),
    (0.95, 0.04, 20),
    (0.98, 0.08, 40),
    (0.99, 0.12, 60),
    (0.995, 0.20, 90),
)
#: Metrics an index is recommended for; ``ip`` keeps one copy of each vector.
METRICS = ("l2", "cosine", "ip")
#: Rerank factor of the recommended IvfRabitqIndex (its default).
IVF_RERANK = 10


class Recommendation(NamedTuple):
    """An index class name and the keyword arguments to build it with.

    >>> import ruvector_rabitq as rr
    >>> rec = rr.recommend(1_000_000, 384, 0.95)
    >>> rec.index, rec.params["nlist"], rec.params["nprobe"]
    ('IvfRabitqIndex', 1000, 40)
    """

    # The public field name shadows tuple.index (a method); NamedTuple allows
    # it at run time, and every caller reads ``rec.index`` as the class name.
    index: str  # type: ignore[assignment]
    params: Dict[str, Any]
    memory_bytes: int
    reason: str

    def build(self, vectors: npt.ArrayLike, ids: Optional[npt.ArrayLike] = None) -> AnyIndex:
        """Builds the recommended index over ``vectors``."""
        from . import _native

        cls = getattr(_native, self.index)
        index: AnyIndex = cls.build(vectors, ids, **self.params)
        return index


def _check_int(name: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, SupportsIndex):
        raise InvalidArgument(f"{name} must be an integer, got {type(value).__name__}")
    v = value.__index__()
    if not lo <= v <= hi:
        raise InvalidArgument(f"{name} must be between {lo} and {hi}, got {v}")
    return int(v)


def recommend(
    n: SupportsIndex, dim: SupportsIndex, recall_target: SupportsFloat = 0.95, *, metric: str = "l2"
) -> Recommendation:
    """Recommends an index for ``n`` vectors of dimension ``dim`` that should
    find a ``recall_target`` share of the true 10 nearest neighbours by
    ``metric`` (``"l2"``, ``"cosine"`` or ``"ip"``; ``params`` name it
    unless it is ``"l2"``, so ``build`` uses it).

    >>> recommend(5_000, 128, 0.99).index
    'FlatF32Index'
    >>> recommend(1_000_000, 384, metric="ip").params["nprobe"]  # one copy a vector
    100
    """
    from . import _native

    n = _check_int("n", n, 1, _native.MAX_VECTORS)
    dim = _check_int("dim", dim, 1, _native.MAX_DIM)
    if isinstance(recall_target, bool) or not isinstance(recall_target, numbers.Real):
        raise InvalidArgument(f"recall_target must be a number, got {type(recall_target).__name__}")
    target = float(recall_target)
    if not (math.isfinite(target) and 0.0 < target <= 1.0):
        raise InvalidArgument(f"recall_target must be in (0, 1], got {recall_target!r}")
    if not isinstance(metric, str) or metric not in METRICS:
        raise InvalidArgument(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    named = {} if metric == "l2" else {"metric": metric}
    spilled = metric != "ip"

    vectors = n * dim * 4
    ids = n * 8 + n * 17
    if n <= FLAT_MAX_N or target > NPROBE_STEPS[-1][0]:
        why = (
            f"{n} vectors are few enough for an exact scan"
            if n <= FLAT_MAX_N
            else f"recall {target} needs exact search"
        )
        return Recommendation("FlatF32Index", dict(named), vectors + ids, why + " (recall 1.0).")
    rotation = "haar" if dim <= HAAR_COMFORT_DIM else "hadamard"
    codes = n * (math.ceil(dim / 64) * 8 + 8)
    rotation_bytes = 2 * dim * dim * 4 if rotation == "haar" else 3 * dim * 4
    if target <= 0.3 and metric != "ip":  # RabitqIndex ranks by L2 only
        return Recommendation(
            "RabitqIndex",
            {"rotation": rotation, **named},
            codes + ids + rotation_bytes,
            "1-bit codes alone fit a recall target this low at about 1/32 of the float memory.",
        )
    steps = SPILLED_NPROBE_STEPS if spilled else NPROBE_STEPS
    share, floor = next((share, floor) for limit, share, floor in steps if target <= limit)
    nlist = max(1, round(math.sqrt(n)))
    nprobe = max(1, min(nlist, max(floor, math.ceil(share * nlist))))
    padded = 1 << (dim - 1).bit_length()
    # Per vector: the float32 vector and, in each of its lists, 1-bit codes
    # of the padded rotation, two estimator floats, a row number and a list
    # label; plus centroids.
    copies = 2 if spilled else 1
    ivf = n * (dim * 4 + copies * (padded // 8 + 16)) + ids + 2 * nlist * (dim + padded) * 4 + 3 * padded * 4
    return Recommendation(
        "IvfRabitqIndex",
        {"nlist": nlist, "nprobe": nprobe, "rerank_factor": IVF_RERANK, **named},
        ivf,
        f"{nlist} k-means lists{' (each vector in two)' if spilled else ''}, of which a query visits "
        f"{nprobe}, then an exact rerank of "
        f"{IVF_RERANK}x k candidates: recall@10 of about {target} on measured data; raise nprobe if "
        f"your data is harder.",
    )


__all__ = ["Recommendation", "recommend"]
