"""Ctrl-C during the lake's long calls, tested in child processes: a prime
(the first search of a collection), a re-prime after the backend's data
changed, and ``search_batch``. ``KeyboardInterrupt`` arrives while the work
is still going, and an interrupted prime installs nothing (a re-prime leaves
the previous entry in place).

Each child builds its data, prints ``go`` and starts the call; the parent
sends SIGINT about 0.4 s later. Uninterrupted, each call runs several times
longer than the generous bound.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX")

BOUND = 4.0
SIGNAL_AFTER = 0.4

CHILD = """
import json, signal, sys, time
# Ctrl-C raises KeyboardInterrupt here even when the test run started with
# SIGINT ignored (a background job of a non-interactive shell): a child
# inherits an ignored SIGINT, and Python then installs no handler for it.
signal.signal(signal.SIGINT, signal.default_int_handler)
import numpy as np
import ruvector_lake as rl
rng = np.random.default_rng(0)
{setup}
print("go", flush=True)
t0 = time.monotonic()
try:
    {call}
except KeyboardInterrupt:
    out = {{"interrupted": True, "took": time.monotonic() - t0}}
    s = lake.cache_stats()
    out["entries"], out["primes"] = lake.cache_entry_count, s.primes
    out["witness"], out["old"] = lake.witness(*KEY), globals().get("old")
    print(json.dumps(out), flush=True)
else:
    print(json.dumps({{"interrupted": False, "took": time.monotonic() - t0}}), flush=True)
"""


def _interrupt_once(setup: str, call: str, tmp_path: Path) -> Dict[str, Any]:
    script = CHILD.format(setup=textwrap.dedent(setup).strip(), call=call)
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "go", (line, child.stderr.read() if child.stderr else "")
        time.sleep(SIGNAL_AFTER)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=120)
    except BaseException:
        child.kill()
        child.communicate()
        raise
    assert child.returncode == 0, err
    report: Dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    assert report["interrupted"], f"the call finished after {report['took']:.1f} s instead of being interrupted"
    return report


def interrupt_child(setup: str, call: str, tmp_path: Path) -> Dict[str, Any]:
    """The child's report of an interrupted call that returned within the
    bound; a run that a loaded machine slowed past it is tried again (at
    most three runs; every run must have been interrupted)."""
    took: List[float] = []
    for _ in range(3):
        report = _interrupt_once(setup, call, tmp_path)
        if report["took"] < SIGNAL_AFTER + BOUND:
            return report
        took.append(round(report["took"], 1))
    raise AssertionError(f"KeyboardInterrupt came {took} s into the call (three runs)")


# 60k rows of dim 1024 in a ruvec1 file: a prime encodes them (dim² each).
BIG_FS = """
KEY = ("fs", "docs")
fs = rl.FsBackend("fs", "data")
x = rng.standard_normal((60_000, 1024), dtype=np.float32)
ids = np.arange(60_000, dtype=np.uint64)
"""


def test_ctrl_c_interrupts_a_prime_and_installs_nothing(tmp_path: Path) -> None:
    setup = (
        BIG_FS
        + """
fs.write("docs", ids, x)
lake = rl.RuLake()
lake.register_backend(fs)
"""
    )
    report = interrupt_child(setup, "lake.search_one(*KEY, x[0])", tmp_path)
    assert (report["entries"], report["primes"], report["witness"]) == (0, 0, None)


def test_ctrl_c_interrupts_a_re_prime_and_keeps_the_old_entry(tmp_path: Path) -> None:
    setup = (
        BIG_FS
        + """
fs.write("docs", ids[:500], x[:500])
lake = rl.RuLake()
lake.register_backend(fs)
lake.search_one(*KEY, x[0])
old = lake.witness(*KEY)
fs.write("docs", ids, x)  # the backend moves on: the next search re-primes
"""
    )
    report = interrupt_child(setup, "lake.search_one(*KEY, x[0])", tmp_path)
    assert (report["entries"], report["primes"]) == (1, 1)
    assert report["witness"] == report["old"] is not None


def test_ctrl_c_interrupts_search_batch(tmp_path: Path) -> None:
    setup = """
    KEY = ("hot", "docs")
    x = rng.standard_normal((200_000, 128), dtype=np.float32)
    queries = rng.standard_normal((100_000, 128), dtype=np.float32)
    hot = rl.LocalBackend("hot")
    hot.upsert("docs", np.arange(200_000, dtype=np.uint64), x)
    lake = rl.RuLake()
    lake.register_backend(hot)
    lake.search_one(*KEY, x[0])
    """
    report = interrupt_child(setup, "lake.search_batch(*KEY, queries, 10)", tmp_path)
    assert (report["entries"], report["primes"]) == (1, 1)


def test_ctrl_c_interrupts_a_session_search_batch(tmp_path: Path) -> None:
    setup = """
    KEY = ("hot", "docs")
    x = rng.standard_normal((200_000, 128), dtype=np.float32)
    queries = rng.standard_normal((100_000, 128), dtype=np.float32)
    hot = rl.LocalBackend("hot")
    hot.upsert("docs", np.arange(200_000, dtype=np.uint64), x)
    lake = rl.RuLake()
    lake.register_backend(hot)
    lake.search_one(*KEY, x[0])
    session = lake.session()
    """
    report = interrupt_child(setup, "session.search_batch(*KEY, queries, 10)", tmp_path)
    assert (report["entries"], report["primes"]) == (1, 1)
