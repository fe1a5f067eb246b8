"""Gate G2 (sdk-plan/06), the functional half: one asyncio loop consumes
1,000 A2A status updates while two ruLake ``search_one_async`` calls run,
under asyncio and uvloop, and nothing blocks the loop.

The timing bound of the gate (< 1.2x the longest part alone) is measured by
``bench/gate_g2.py`` (``nox -s bench``); here the scenario must deliver every
update and give the searches the results they give alone; with cache hits
(the gated case) it must log no slow callback (> 50 ms) in debug mode and
the three together must take about as long as the stream alone; with cold
searches (each priming on all cores) they must still overlap: less than one
after another.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import gate_g2


@pytest.fixture(scope="module")
def scenario() -> Iterator[gate_g2.Scenario]:
    lake, queries = gate_g2.make_lake(60_000, 128)
    with gate_g2.make_server(1000) as server:
        yield gate_g2.Scenario(server.url, lake, queries, 1000)


@pytest.mark.parametrize("cold", [False, True], ids=["cache-hits", "cold-primes"])
@pytest.mark.parametrize("loop_kind", gate_g2.loops_available())
def test_a_stream_and_two_searches_share_one_loop(scenario: gate_g2.Scenario, loop_kind: str, cold: bool) -> None:
    scenario.cold = cold
    # Wall time and slow callbacks on a shared machine: a run that another
    # process slowed down (a step descheduled for > 50 ms is logged as slow)
    # is measured again, at most three runs, and one must be clean; every
    # run must pass the functional checks. Blocking the loop in our code
    # would show in all three. Cold primes keep both cores of a 2-core
    # machine busy, so the loop's own thread waits for a core: slow steps
    # are then the scheduler's, and (as in the bench) not gated.
    r: dict[str, Any] = {}
    for _attempt in range(3):
        r = gate_g2.measure(scenario, loop_kind)
        assert r["updates_alone"] == r["updates_together"] == 1000
        assert r["same_ids"]
        if r["slow_callbacks"] and not cold:
            continue
        if cold:
            # Overlap: all three together take less than one after another
            # (two cold primes each use every core, so on 2 cores only the
            # stream can overlap them, and it is short: ~50 ms of ~300).
            sequential = r["stream_s"] + r["search_a_s"] + r["search_b_s"]
            ok = r["together_s"] < 0.95 * sequential
        else:
            # Cache hits must not slow the stream down (the bench holds this
            # to 1.2x; a loaded test machine gets some slack here).
            ok = r["together_s"] < 1.5 * r["longest_s"]
        if ok:
            return
    pytest.fail(f"slow callbacks or the timing bound in all three runs; last: {r}")


def test_uvloop_is_covered_where_it_installs() -> None:
    if sys.platform != "win32":
        assert "uvloop" in gate_g2.loops_available()
