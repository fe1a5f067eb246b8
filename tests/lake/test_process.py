"""Interpreter exit with adapter callbacks in flight, and fork()."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

EXIT_SCRIPT = textwrap.dedent(
    """
    import asyncio, threading, time
    import numpy as np
    import ruvector_lake as rl

    class Slow(rl.BackendAdapter):
        def pull(self, collection):
            time.sleep(0.3)
            return np.arange(2, dtype=np.uint64), np.eye(2, dtype=np.float32)

        def generation(self, collection):
            return 1

    lake = rl.RuLake()
    lake.register_backend(Slow("slow"))

    async def main():
        asyncio.ensure_future(lake.search_one_async("slow", "c", np.ones(2, dtype=np.float32)))
        await asyncio.sleep(0.05)  # the loop closes while the callback runs

    asyncio.run(main())
    print("exiting", flush=True)
    """
)

FORK_SCRIPT = textwrap.dedent(
    """
    import asyncio, os
    import numpy as np
    import ruvector_lake as rl

    x = np.random.default_rng(0).standard_normal((3000, 16)).astype(np.float32)
    a, b = rl.LocalBackend("a"), rl.LocalBackend("b")
    a.upsert("c", np.arange(1500, dtype=np.uint64), x[:1500])
    b.upsert("c", np.arange(1500, 3000, dtype=np.uint64), x[1500:])
    lake = rl.RuLake()
    lake.register_backend(a)
    lake.register_backend(b)
    # Start the thread pool and the runtime in the parent.
    assert lake.search_federated("c", x[2000], k=1)[0].id == 2000
    assert asyncio.run(lake.search_one_async("a", "c", x[5], k=1))[0].id == 5
    pid = os.fork()
    if pid == 0:
        ok = lake.search_federated("c", x[2500], k=1)[0].id == 2500
        ids, _ = lake.search_batch("b", "c", x[1500:1600], k=1)
        ok = ok and ids[:, 0].tolist() == list(range(1500, 1600))
        ok = ok and asyncio.run(lake.search_one_async("b", "c", x[1600], k=1))[0].id == 1600
        os._exit(0 if ok else 3)
    _, status = os.waitpid(pid, 0)
    print("child", os.waitstatus_to_exitcode(status), flush=True)
    """
)


def test_exit_with_an_adapter_callback_in_flight() -> None:
    out = subprocess.run([sys.executable, "-c", EXIT_SCRIPT], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "exiting" in out.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="fork() is POSIX only")
def test_searches_work_in_a_forked_child() -> None:
    out = subprocess.run([sys.executable, "-c", FORK_SCRIPT], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "child 0" in out.stdout
