"""Runs every fuzz target of the SDK for a while (``nox -s fuzz``).

Each ``fuzz_<part>.py`` next to this file exposes ``targets()`` (name →
callable taking the bytes of one file or frame) and ``seeds()`` (valid
inputs per target). A target returns normally for input it accepts or
refuses cleanly (a ``ruvector`` exception); anything else it raises is a
finding. This runner mutates the seeds (bit flips, byte overwrites,
truncations, insertions, splices of two seeds) for ``--seconds`` per target
and stops at the first finding, printing the input's path.

    python tests/fuzz/run_fuzz.py --seconds 30            # every target
    python tests/fuzz/run_fuzz.py --only rbpx-ivf --seed 7

Coverage-guided runs use atheris on one target instead (see each module's
``__main__``).
"""

from __future__ import annotations

import argparse
import importlib
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Tuple, Union

HERE = Path(__file__).resolve().parent
MODULES = ["fuzz_index", "fuzz_lake", "fuzz_embed", "fuzz_a2a"]

Target = Callable[[bytes], None]
Seeds = Dict[str, Union[bytes, List[bytes]]]


def mutate(rng: random.Random, data: bytes, corpus: List[bytes]) -> bytes:
    """One random mutation of ``data`` (never the identity on non-empty input)."""
    buf = bytearray(data)
    op = rng.randrange(6)
    if not buf or op == 0:  # insert random bytes
        at = rng.randint(0, len(buf))
        buf[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    elif op == 1:  # flip one bit
        i = rng.randrange(len(buf))
        buf[i] ^= 1 << rng.randrange(8)
    elif op == 2:  # overwrite a byte with an edge value
        buf[rng.randrange(len(buf))] = rng.choice([0, 1, 0x7F, 0x80, 0xFF])
    elif op == 3:  # truncate
        del buf[rng.randrange(len(buf)) :]
    elif op == 4:  # overwrite 4 bytes with an edge little-endian integer
        i = rng.randrange(len(buf))
        value = rng.choice([0, 1, 2**31 - 1, 2**31, 2**32 - 1]).to_bytes(4, "little")
        buf[i : i + 4] = value
    else:  # splice with another seed
        other = rng.choice(corpus)
        cut = rng.randint(0, len(buf))
        buf = buf[:cut] + other[rng.randint(0, len(other)) :]
    return bytes(buf)


def inputs(rng: random.Random, corpus: List[bytes]) -> Iterator[bytes]:
    """Endless mutations, 1 to 4 stacked, of the corpus's inputs."""
    while True:
        data = rng.choice(corpus)
        for _ in range(rng.randint(1, 4)):
            data = mutate(rng, data, corpus)
        yield data


def load_targets(only: List[str]) -> List[Tuple[str, Target, List[bytes]]]:
    sys.path.insert(0, str(HERE))
    found: List[Tuple[str, Target, List[bytes]]] = []
    for name in MODULES:
        module = importlib.import_module(name)
        targets: Dict[str, Target] = module.targets()
        seeds: Seeds = module.seeds()
        for target_name, target in targets.items():
            if only and target_name not in only:
                continue
            seed = seeds[target_name]
            corpus = [seed] if isinstance(seed, bytes) else list(seed)
            found.append((target_name, target, corpus))
    return found


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0, help="time per target (default 20)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", action="append", default=[], help="run only this target (repeatable)")
    args = ap.parse_args(argv)
    targets = load_targets(args.only)
    if not targets:
        print("no fuzz target matched", file=sys.stderr)
        return 2
    for name, target, corpus in targets:
        rng = random.Random(f"{args.seed}:{name}")
        for seed in corpus:  # the seeds themselves must pass
            target(seed)
        runs, deadline = 0, time.monotonic() + args.seconds
        for data in inputs(rng, corpus):
            if time.monotonic() > deadline:
                break
            runs += 1
            try:
                target(data)
            except Exception:
                with tempfile.NamedTemporaryFile(prefix=f"fuzz-{name}-", suffix=".bin", delete=False) as f:
                    f.write(data)
                traceback.print_exc()
                print(f"FINDING in {name} after {runs} inputs; input saved to {f.name}", file=sys.stderr)
                return 1
        print(f"{name}: {runs} inputs, no finding")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
