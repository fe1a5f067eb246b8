"""Process-level robustness, tested in child processes: interpreter exit with
async work in flight, ``fork()`` after the thread pools have started, and
the lazily started runtime with its environment settings.

A hang fails the test through a timeout instead of blocking the suite.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

import numpy as np
import pytest

import ruvector_rabitq as rr

if TYPE_CHECKING:
    from conftest import Batch, Data

CHILD_TIMEOUT = 60.0

PRELUDE = """
import asyncio, os, sys
import numpy as np
import ruvector_rabitq as rr
x = np.random.default_rng(0).standard_normal((300, 16)).astype(np.float32)
idx = rr.RabitqPlusIndex.build(x, seed=1)
"""

EXIT_SCRIPTS: Dict[str, str] = {
    # await one search, return from asyncio.run, exit normally
    "await then exit": """
async def main():
    hits = await idx.search_async(x[5], 3)
    print(hits[0].id)
asyncio.run(main())
""",
    # leave batch searches running on the runtime while the interpreter exits
    "exit with searches in flight": """
async def main():
    pending = [asyncio.ensure_future(idx.search_batch_async(x, 10)) for _ in range(8)]
    hits = await idx.search_async(x[5], 3)
    print(hits[0].id)
asyncio.run(main())
""",
    # exit from inside the coroutine, the loop never closed
    "sys.exit inside the loop": """
async def main():
    for _ in range(8):
        asyncio.ensure_future(idx.search_batch_async(x, 10))
    hits = await idx.search_async(x[5], 3)
    print(hits[0].id, flush=True)
    sys.exit(0)
asyncio.new_event_loop().run_until_complete(main())
""",
}


def run_children(
    scripts: List[str], env: Optional[Dict[str, str]] = None, parallel: int = 6
) -> List[subprocess.CompletedProcess[str]]:
    """Runs ``python -c script`` for every script, ``parallel`` at a time."""
    full_env = {**os.environ, **(env or {})}
    done: List[subprocess.CompletedProcess[str]] = []
    for start in range(0, len(scripts), parallel):
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", s], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env
            )
            for s in scripts[start : start + parallel]
        ]
        for p, s in zip(procs, scripts[start : start + parallel]):
            try:
                out, err = p.communicate(timeout=CHILD_TIMEOUT)
            except subprocess.TimeoutExpired:
                p.kill()
                out, err = p.communicate()
                pytest.fail(f"child hung:\n{s}\n{err}")
            done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return done


def describe(rc: int) -> str:
    return f"killed by {signal.Signals(-rc).name}" if rc < 0 else f"exit code {rc}"


def test_exiting_right_after_an_await_never_crashes() -> None:
    names = list(EXIT_SCRIPTS) * 10  # 30 children
    results = run_children([PRELUDE + EXIT_SCRIPTS[n] for n in names])
    failures = [(n, describe(r.returncode), r.stderr[-2000:]) for n, r in zip(names, results) if r.returncode != 0]
    assert failures == []
    assert all(r.stdout.split() == ["5"] for r in results), [r.stdout for r in results]


def wait_with_timeout(pid: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail("the forked child hung")


def test_a_forked_child_can_search_batch_and_search_async(data: Data) -> None:
    x, q = data
    idx = rr.RabitqPlusIndex.build(x, seed=2)
    # Start both the batch thread pool and the async runtime in the parent.
    want_batch = idx.search_batch(q, 10)
    want_async = asyncio.run(idx.search_async(q[0], 5))
    assert rr.runtime_info()["started"] is True and rr.runtime_info()["pool_threads"]

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 1
        try:
            os.close(read_end)
            got_batch = idx.search_batch(q, 10)

            async def gathered() -> Tuple[List[rr.SearchHit], Batch]:
                return await asyncio.gather(idx.search_async(q[0], 5), idx.search_batch_async(q, 10))

            got_async, got_batch_async = asyncio.run(gathered())
            idx.add_batch(q)  # the child's copy is its own
            payload = pickle.dumps((got_batch, got_async, got_batch_async, len(idx), rr.runtime_info()))
            os.write(write_end, payload)
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    status = wait_with_timeout(pid, CHILD_TIMEOUT)
    chunks: List[bytes] = []
    while select.select([read_end], [], [], 0)[0]:
        chunk = os.read(read_end, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_end)
    assert os.waitstatus_to_exitcode(status) == 0
    got_batch, got_async, got_batch_async, child_len, child_info = pickle.loads(b"".join(chunks))
    for a, b in zip(got_batch, want_batch):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(got_batch_async, want_batch):
        np.testing.assert_array_equal(a, b)
    assert got_async == want_async
    assert child_len == len(x) + len(q)
    assert child_info["started"] is True
    assert len(idx) == len(x), "the parent's index is unchanged"


def test_a_multiprocessing_fork_child_gets_correct_results(data: Data) -> None:
    import multiprocessing as mp

    x, q = data
    idx = rr.RabitqPlusIndex.build(x, seed=2)
    want = idx.search_batch(q, 10)
    asyncio.run(idx.search_async(q[0], 1))

    ctx = mp.get_context("fork")
    parent_end, child_end = ctx.Pipe()

    def child() -> None:
        ids, scores = idx.search_batch(q, 10)
        hits = asyncio.run(idx.search_async(q[3], 10))
        child_end.send((ids, scores, hits))

    proc = ctx.Process(target=child, daemon=True)
    proc.start()
    proc.join(CHILD_TIMEOUT)
    if proc.is_alive():
        proc.kill()
        pytest.fail("the fork child hung")
    assert proc.exitcode == 0
    ids, scores, hits = parent_end.recv()
    np.testing.assert_array_equal(ids, want[0])
    np.testing.assert_array_equal(scores, want[1])
    assert [h.id for h in hits] == want[0][3].tolist()


LAZY_SCRIPT = """
import asyncio, json, os
import numpy as np  # may start BLAS threads of its own
def threads():
    return len(os.listdir("/proc/self/task"))
before = threads()
import ruvector_rabitq as rr
report = {"after_import": rr.runtime_info(), "threads_started_by_import": threads() - before}
x = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
idx = rr.RabitqPlusIndex.build(x)
idx.search(x[0], 3)
report["after_search"] = rr.runtime_info()
idx.search_batch(x, 3)
report["after_batch"] = rr.runtime_info()
try:
    asyncio.run(idx.search_async(x[0], 3))
    report["async"] = "ok"
except rr.InvalidArgument as e:
    report["async"] = "InvalidArgument: " + str(e)
report["after_async"] = rr.runtime_info()
print(json.dumps(report))
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_importing_starts_no_threads_and_the_runtime_starts_on_first_async_use() -> None:
    env = {"RUVECTOR_RABITQ_NUM_THREADS": "3", "RUVECTOR_RABITQ_WORKER_THREADS": "2"}
    (result,) = run_children([LAZY_SCRIPT], env=env)
    assert result.returncode == 0, result.stderr
    import json

    report = json.loads(result.stdout)
    assert report["threads_started_by_import"] == 0
    assert report["after_import"]["started"] is False and report["after_import"]["pool_threads"] is None
    assert report["after_search"]["started"] is False and report["after_search"]["pool_threads"] is None
    assert report["after_batch"]["pool_threads"] == 3
    assert report["async"] == "ok"
    assert report["after_async"]["started"] is True
    assert report["after_async"]["worker_threads"] == 2
    assert report["after_async"]["component"] == "rabitq"


def test_a_bad_thread_setting_is_an_invalid_argument_naming_the_variable() -> None:
    (result,) = run_children([LAZY_SCRIPT], env={"RUVECTOR_RABITQ_WORKER_THREADS": "zero"})
    assert result.returncode == 0, result.stderr
    import json

    report = json.loads(result.stdout)
    assert report["async"].startswith("InvalidArgument: ")
    assert "RUVECTOR_RABITQ_WORKER_THREADS" in report["async"] and '"zero"' in report["async"]
    assert report["after_async"]["started"] is False
