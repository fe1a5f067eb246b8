"""``recommend(n, dim, recall_target)``: which index to build, and how.

The rules come from measurements of the upstream crate (see the package
README): the exact flat scan is cheap up to a few tens of thousands of
vectors; beyond that, ``RabitqPlusIndex`` reaches a recall target by
reranking more 1-bit candidates exactly; ``RabitqIndex`` alone is for memory
budgets that accept low recall.
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Any, Dict, NamedTuple, Optional, SupportsFloat, SupportsIndex

from ruvector_common.errors import InvalidArgument

if TYPE_CHECKING:
    import numpy.typing as npt

    from ._types import AnyIndex

#: Up to this many vectors an exact scan answers in a few milliseconds.
FLAT_MAX_N = 20_000
#: Above this dimension the dense Haar rotation is slow to build: use Hadamard.
HAAR_COMFORT_DIM = 1024
#: (largest recall target, rerank factor) for RabitqPlusIndex, from measurements
#: at n = 100k (clustered 128-d: rerank 20 gives recall@10 1.00; real 384-d
#: sentence embeddings: rerank 20 gives 0.97 and rerank 100 gives 0.996).
RERANK_STEPS = ((0.85, 5), (0.95, 20), (0.98, 40), (0.995, 100))


class Recommendation(NamedTuple):
    """An index class name and the keyword arguments to build it with.

    >>> import ruvector_rabitq as rr
    >>> rec = rr.recommend(1_000_000, 384, 0.95)
    >>> rec.index, rec.params["rerank_factor"]
    ('RabitqPlusIndex', 20)
    """

    index: str
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
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise InvalidArgument(f"{name} must be an integer, got {type(value).__name__}")
    v = value.__index__()  # type: ignore[attr-defined]
    if not lo <= v <= hi:
        raise InvalidArgument(f"{name} must be between {lo} and {hi}, got {v}")
    return int(v)


def recommend(n: SupportsIndex, dim: SupportsIndex, recall_target: SupportsFloat = 0.95) -> Recommendation:
    """Recommends an index for ``n`` vectors of dimension ``dim`` that should
    find a ``recall_target`` share of the true 10 nearest neighbours.

    >>> recommend(5_000, 128, 0.99).index
    'FlatF32Index'
    """
    from . import _native

    n = _check_int("n", n, 1, _native.MAX_VECTORS)
    dim = _check_int("dim", dim, 1, _native.MAX_DIM)
    if isinstance(recall_target, bool) or not isinstance(recall_target, numbers.Real):
        raise InvalidArgument(f"recall_target must be a number, got {type(recall_target).__name__}")
    target = float(recall_target)
    if not (math.isfinite(target) and 0.0 < target <= 1.0):
        raise InvalidArgument(f"recall_target must be in (0, 1], got {recall_target!r}")

    vectors = n * dim * 4
    ids = n * 8 + n * 17
    if n <= FLAT_MAX_N or target > RERANK_STEPS[-1][0]:
        why = (
            f"{n} vectors are few enough for an exact scan"
            if n <= FLAT_MAX_N
            else f"recall {target} needs exact search"
        )
        return Recommendation("FlatF32Index", {}, vectors + ids, why + " (recall 1.0).")
    rotation = "haar" if dim <= HAAR_COMFORT_DIM else "hadamard"
    codes = n * (math.ceil(dim / 64) * 8 + 8)
    rotation_bytes = 2 * dim * dim * 4 if rotation == "haar" else 3 * dim * 4
    if target <= 0.3:
        return Recommendation(
            "RabitqIndex",
            {"rotation": rotation},
            codes + ids + rotation_bytes,
            "1-bit codes alone fit a recall target this low at about 1/32 of the float memory.",
        )
    rerank = next(rf for limit, rf in RERANK_STEPS if target <= limit)
    return Recommendation(
        "RabitqPlusIndex",
        {"rerank_factor": rerank, "rotation": rotation},
        codes + vectors + ids + rotation_bytes,
        f"1-bit scan, then exact rerank of {rerank}x k candidates reaches recall@10 of about "
        f"{target} on measured data; raise rerank_factor if your data is harder.",
    )


__all__ = ["Recommendation", "recommend"]
