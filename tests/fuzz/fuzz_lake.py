"""Fuzz targets for the files ``ruvector_lake`` reads.

:func:`targets` maps a name to a function of the bytes of a candidate file:
it writes them where the lake reads that file, has a fresh lake read it and,
when it loads, searches. A clean ``ruvector_common.errors.RuVectorError`` is
an accepted outcome; anything else — another exception, a
``PanicException``, a crash, a hang — is a finding. A cache that loads must
answer exactly as the lake it was saved from. :func:`seeds` gives valid
files to mutate from.

* ``lake-cache`` — ``lake.cache`` (``warm_from_dir``), next to the valid
  sidecar of its save;
* ``bundle`` — ``table.rulake.json``, the bundle sidecar (``Bundle.read``,
  ``refresh_from_bundle_dir``, ``warm_from_dir`` with the valid cache file,
  and ``Bundle.from_json`` of the bytes as text);
* ``ruvec`` — a ``ruvec1`` file of an ``FsBackend`` (a prime, then search).

Use with any byte fuzzer (atheris: ``atheris.Setup(sys.argv,
targets()["lake-cache"]); atheris.Fuzz()``), or stand-alone::

    python tests/fuzz/fuzz_lake.py [seconds per target] [seed]

which mutates the seeds at random (reproducibly) and exits 1 on a finding.
"""

from __future__ import annotations

import random
import struct
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
import numpy.typing as npt

import ruvector_lake as rl
from ruvector_common.errors import RuVectorError

Target = Callable[[bytes], None]

DIM = 8
KEY = ("hot", "docs")


class _State:
    """A scratch directory, a saved cache and what it answers (built once)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="rvpy-fuzz-lake-"))
        rng = np.random.default_rng(7)
        self.x: npt.NDArray[np.float32] = rng.standard_normal((40, DIM)).astype(np.float32)
        self.ids: npt.NDArray[np.uint64] = np.arange(40, dtype=np.uint64) * 3 + 2**40
        hot = rl.LocalBackend("hot")
        hot.upsert("docs", self.ids, self.x)
        lake = rl.RuLake(rerank_factor=4)
        lake.register_backend(hot)
        self.queries: npt.NDArray[np.float32] = np.ascontiguousarray(self.x[:4])
        self.want = [a.tolist() for a in lake.search_batch(*KEY, self.queries, 5)]
        self.saved = self.root / "saved"
        lake.save_cache_to_dir(*KEY, self.saved)
        self.cache = (self.saved / "lake.cache").read_bytes()
        self.sidecar = (self.saved / "table.rulake.json").read_bytes()
        self.work = self.root / "work"
        self.work.mkdir()
        fs = rl.FsBackend("fs", self.root / "fs")
        fs.write("docs", self.ids, self.x, filename="docs.ruvec")
        self.ruvec = (self.root / "fs" / "docs.ruvec").read_bytes()


_state_once: Optional[_State] = None


def _state() -> _State:
    global _state_once
    if _state_once is None:
        _state_once = _State()
    return _state_once


def _warm_and_check(s: _State, cache: bytes, sidecar: bytes) -> None:
    (s.work / "lake.cache").write_bytes(cache)
    (s.work / "table.rulake.json").write_bytes(sidecar)
    lake = rl.RuLake(rerank_factor=4, consistency=rl.Consistency.FROZEN)
    try:
        n = lake.warm_from_dir(*KEY, s.work)
    except RuVectorError:
        assert lake.cache_entry_count == 0, "a refused cache was installed"
        return
    assert n == len(s.ids)
    got = [a.tolist() for a in lake.search_batch(*KEY, s.queries, 5)]
    assert got == s.want, "a cache that loaded answers differently from the one saved"


def _lake_cache(data: bytes) -> None:
    s = _state()
    _warm_and_check(s, data, s.sidecar)


def _bundle(data: bytes) -> None:
    s = _state()
    _warm_and_check(s, s.cache, data)
    try:
        b = rl.Bundle.read(s.work)
        assert b.verify() and b.dim == DIM
    except RuVectorError:
        pass
    lake = rl.RuLake(rerank_factor=4)
    hot = rl.LocalBackend("hot")
    hot.upsert("docs", s.ids, s.x)
    lake.register_backend(hot)
    lake.search_one(*KEY, s.x[0])
    try:
        result = lake.refresh_from_bundle_dir(*KEY, s.work)
        assert result in (rl.RefreshResult.UP_TO_DATE, rl.RefreshResult.INVALIDATED)
    except RuVectorError:
        pass
    try:
        rl.Bundle.from_json(data.decode("utf-8", "surrogateescape"))
    except RuVectorError:
        pass


def _ruvec(data: bytes) -> None:
    s = _state()
    root = s.work / "fs"
    root.mkdir(exist_ok=True)
    (root / "docs.ruvec").write_bytes(data)
    fs = rl.FsBackend("fs", root)
    fs.register("docs", "docs.ruvec")
    lake = rl.RuLake(rerank_factor=4)
    lake.register_backend(fs)
    try:
        hits = lake.search_one("fs", "docs", s.x[0], k=3)
    except RuVectorError:
        return
    assert all(np.isfinite(h.score) for h in hits)


def targets() -> Dict[str, Target]:
    """One fuzz target per file the lake reads (see the module docs)."""
    return {"lake-cache": _lake_cache, "bundle": _bundle, "ruvec": _ruvec}


def seeds() -> Dict[str, List[bytes]]:
    """Valid files to start from, per target."""
    s = _state()
    return {"lake-cache": [s.cache], "bundle": [s.sidecar], "ruvec": [s.ruvec]}


INTERESTING = [0, 1, 2, 3, 7, 8, 9, 63, 64, 65, 2**31, 2**32 - 1, 2**63, 2**64 - 1]


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One random edit: bit flips, byte values, little-endian integer fields
    set to edge values, JSON-ish token swaps, truncation, added or removed
    bytes."""
    b = bytearray(data)
    how = rng.randrange(7)
    if how == 0 and b:
        for _ in range(rng.randrange(1, 4)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    elif how == 1 and b:
        b[rng.randrange(len(b))] = rng.randrange(256)
    elif how == 2 and len(b) >= 8:
        at = rng.randrange(len(b) - 7)
        value = rng.choice(INTERESTING)
        if value < 2**32 and rng.random() < 0.5:
            b[at : at + 4] = struct.pack("<I", value)
        else:
            b[at : at + 8] = struct.pack("<Q", value)
    elif how == 3:
        del b[rng.randrange(len(b) + 1) :]
    elif how == 4:
        b += bytes(rng.randrange(256) for _ in range(rng.choice([1, 4, 8])))
    elif how == 5 and b:
        at = rng.randrange(len(b))
        del b[at : at + rng.choice([1, 4, 8])]
    else:
        tokens = [b"8", b"0", b"-1", b"1e999", b"null", b'"x"', b"[]", b"{}", b"18446744073709551616", b"\xed\xa0\x80"]
        at = rng.randrange(len(b) + 1)
        b[at:at] = rng.choice(tokens)
    return bytes(b)


def run(seconds: float, seed: int) -> int:
    """Mutates each target's seeds for ``seconds``; returns the number of findings."""
    findings = 0
    all_seeds = seeds()
    for name, target in targets().items():
        rng = random.Random(f"{seed} {name}")
        corpus: List[bytes] = list(all_seeds[name])
        deadline = time.monotonic() + seconds
        runs = 0
        while time.monotonic() < deadline:
            data = mutate(rng.choice(corpus), rng)
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
                    corpus.append(data)
        print(f"{name}: {runs} inputs, {findings} findings so far")
    return findings


def main(argv: List[str]) -> int:
    seconds = float(argv[1]) if len(argv) > 1 else 10.0
    seed = int(argv[2]) if len(argv) > 2 else 0
    return 1 if run(seconds, seed) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
