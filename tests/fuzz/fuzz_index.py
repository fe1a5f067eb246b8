"""Fuzz targets for the ``.rbpx`` index files of ``ruvector_rabitq``.

:func:`targets` maps a name to a function of the bytes of a candidate file:
it writes them to a temporary file, loads the file and, when it loads,
searches it, saves it again and loads that copy (which must equal it). A
clean ``ruvector_common.errors.RuVectorError`` is an accepted outcome;
anything else — another exception, a ``PanicException``, a crash, a hang —
is a finding. :func:`seeds` gives a valid file per target to mutate from.

* ``rbpx-sdk`` — the SDK's own layout (``rvpx0001`` + trailer): flat,
  asymmetric and Hadamard files, loaded with every class;
* ``rbpx-crate`` — the Rust crate's layout (``rbpx0001``, no trailer) and
  the SDK's crate-magic files (``rbpx0001`` + trailer), as
  ``RabitqPlusIndex``;
* ``rbpx-ivf`` — ``IvfRabitqIndex`` files (IVF block before the trailer);
* ``rbpx-vzip`` — files saved with ``compress=True`` (flag bit 4: a block
  table and packed byte planes instead of the vectors), loaded with every
  class.

Use with any byte fuzzer (atheris: ``atheris.Setup(sys.argv,
targets()["rbpx-sdk"]); atheris.Fuzz()``), or stand-alone::

    python tests/fuzz/fuzz_index.py [seconds per target] [seed]

which mutates the seeds at random (reproducibly) and exits 1 on a finding,
writing each finding's bytes next to the working directory.
"""

from __future__ import annotations

import random
import struct
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import numpy.typing as npt

import ruvector_rabitq as rr
from ruvector_common.errors import RuVectorError

Target = Callable[[bytes], None]

_workdir_path: Optional[Path] = None
CLASSES: List[Any] = [rr.FlatF32Index, rr.RabitqIndex, rr.RabitqPlusIndex, rr.RabitqAsymIndex, rr.IvfRabitqIndex]


def _workdir() -> Path:
    """One scratch directory per process (a fuzzer calls a target millions of times)."""
    global _workdir_path
    if _workdir_path is None:
        _workdir_path = Path(tempfile.mkdtemp(prefix="rvpy-fuzz-index-"))
    return _workdir_path


def _exercise(idx: Any) -> None:
    """Uses a loaded index the way a caller would; a loaded file must behave."""
    n, dim = len(idx), idx.dim
    assert dim >= 1 and n >= 0
    q = np.linspace(-1.0, 1.0, dim, dtype=np.float32)
    if n > 0:
        k = min(3, n)
        hits = idx.search(q, k)
        assert len(hits) == k and all(np.isfinite(h.score) for h in hits)
        ids, scores = idx.search_batch(np.stack([q, -q]), k)
        assert ids.shape == (2, k) and bool(np.isfinite(scores).all())
    if idx.keeps_vectors:
        copy = _workdir() / "copy.rbpx"
        idx.save(copy)
        cls: Any = idx.__class__
        again: Any = cls.load(copy)
        assert again == idx, "a loaded file does not round-trip"


def _load_with(classes: List[Any]) -> Target:
    def target(data: bytes) -> None:
        path = _workdir() / "input.rbpx"
        path.write_bytes(data)
        for cls in classes:
            try:
                idx = cls.load(path)
            except RuVectorError:
                continue
            _exercise(idx)

    return target


def targets() -> Dict[str, Target]:
    """One fuzz target per ``.rbpx`` layout (see the module docs)."""
    return {
        "rbpx-sdk": _load_with(CLASSES),
        "rbpx-crate": _load_with([rr.RabitqPlusIndex]),
        "rbpx-ivf": _load_with([rr.IvfRabitqIndex]),
        "rbpx-vzip": _load_with(CLASSES),
    }


def _rows(n: int, dim: int, seed: int) -> npt.NDArray[np.float32]:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def seeds() -> Dict[str, List[bytes]]:
    """Valid files to start from, per target (small, so mutations land often
    in headers and trailers)."""
    out: Dict[str, List[bytes]] = {"rbpx-sdk": [], "rbpx-crate": [], "rbpx-ivf": [], "rbpx-vzip": []}
    path = _workdir() / "seed.rbpx"

    def saved(idx: Any, compress: bool = False) -> bytes:
        idx.save(path, compress=compress)
        return path.read_bytes()

    for dim in (1, 3, 8):
        x = _rows(5, dim, dim)
        plus = saved(rr.RabitqPlusIndex.build(x, seed=3, rerank_factor=2))
        out["rbpx-crate"] += [plus, plus[:-16]]
        out["rbpx-sdk"] += [
            saved(rr.FlatF32Index.build(x, np.arange(5) + 2**40)),
            saved(rr.RabitqAsymIndex.build(x, rerank_factor=2)),
            saved(rr.RabitqPlusIndex.build(x, rotation="hadamard")),
        ]
        out["rbpx-ivf"] += [
            saved(rr.IvfRabitqIndex.build(x, nlist=2)),
            saved(rr.IvfRabitqIndex.build(x, np.arange(5) + 2**40, nlist=3, rotation="haar")),
        ]
    out["rbpx-crate"].append(saved(rr.RabitqPlusIndex(2048)))  # a large claim, no rows
    for n, dim in ((5, 3), (40, 8)):
        x = _rows(n, dim, n)
        x /= np.linalg.norm(x, axis=1, keepdims=True)  # unit rows: the exponent plane packs
        out["rbpx-vzip"] += [
            saved(rr.FlatF32Index.build(x, np.arange(n) + 2**40), compress=True),
            saved(rr.RabitqPlusIndex.build(x, rotation="hadamard"), compress=True),
            saved(rr.IvfRabitqIndex.build(x, nlist=2), compress=True),
        ]
    return out


INTERESTING = [0, 1, 2, 3, 4, 5, 6, 15, 16, 17, 255, 256, 2**15, 2**16 - 1, 2**31 - 1, 2**31, 2**32 - 1]


def mutate(data: bytes, rng: random.Random, pool: List[bytes]) -> bytes:
    """One random edit: bit flips, byte values, u32 fields set to edge values,
    truncation, appended or removed bytes, or a splice with another seed."""
    b = bytearray(data)
    how = rng.randrange(7)
    if how == 0 and b:
        for _ in range(rng.randrange(1, 4)):
            at = rng.randrange(len(b))
            b[at] ^= 1 << rng.randrange(8)
    elif how == 1 and b:
        b[rng.randrange(len(b))] = rng.randrange(256)
    elif how == 2 and len(b) >= 4:
        at = rng.choice([8, 12, 24, 28, len(b) - 16, len(b) - 12, rng.randrange(len(b) - 3)])
        at = max(0, min(at, len(b) - 4))
        b[at : at + 4] = struct.pack("<I", rng.choice(INTERESTING))
    elif how == 3:
        del b[rng.randrange(len(b) + 1) :]
    elif how == 4:
        b += bytes(rng.randrange(256) for _ in range(rng.choice([1, 4, 8, 16, 17])))
    elif how == 5 and b:
        at = rng.randrange(len(b))
        del b[at : at + rng.choice([1, 4, 16])]
    else:
        other = rng.choice(pool)
        cut = rng.randrange(min(len(b), len(other)) + 1)
        b = b[:cut] + bytearray(other[cut:])
    return bytes(b)


def run(seconds: float, seed: int, fuzz_targets: Dict[str, Target], fuzz_seeds: Dict[str, List[bytes]]) -> int:
    """Mutates each target's seeds for ``seconds``; returns the number of findings."""
    findings = 0
    for name, target in fuzz_targets.items():
        rng = random.Random(f"{seed} {name}")
        pool = fuzz_seeds[name]
        corpus = list(pool)
        deadline = time.monotonic() + seconds
        runs = 0
        while time.monotonic() < deadline:
            data = mutate(rng.choice(corpus), rng, pool)
            runs += 1
            try:
                target(data)
            except Exception as e:  # a finding: anything but a clean RuVectorError
                findings += 1
                out = Path(f"finding-{name}-{findings}.bin")
                out.write_bytes(data)
                print(f"FINDING {name}: {type(e).__name__}: {e} (input in {out})", file=sys.stderr)
                traceback.print_exc()
            else:
                if len(corpus) < 200:
                    corpus.append(data)  # keep inputs that loaded or failed cleanly
        print(f"{name}: {runs} inputs, {findings} findings so far")
    return findings


def main(argv: List[str]) -> int:
    seconds = float(argv[1]) if len(argv) > 1 else 10.0
    seed = int(argv[2]) if len(argv) > 2 else 0
    return 1 if run(seconds, seed, targets(), seeds()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
