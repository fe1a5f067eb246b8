#!/usr/bin/env python3
"""Gate G2 ("asyncio without thread fights", from the design study the SDK grew
from, kept outside this repo): one asyncio loop
consumes a stream of 1,000 A2A status updates while two ``search_one_async``
calls run on ruLake; no blocked-loop warnings, and the whole takes < 1.2x
the longest of the three run alone. Under the default asyncio loop and under
uvloop.

The gated searches are cache hits, the everyday call. The same scenario with
two cold searches (each priming its collection on all cores) is reported
too: two CPU-bound primes on a 2-core machine share the cores, so they
cannot finish in the time of one — that is arithmetic, not a thread fight.

The A2A peer is this repo's ``A2aServer`` on 127.0.0.1, running in its own
process (as a separate service would); the client, the stream and both lake
searches share the measured loop, which runs in debug mode with a 50 ms
slow-callback threshold so that anything blocking it is logged.

    python bench/gate_g2.py --out bench/results-g2.md

Also imported by ``tests/a2a/test_gate_g2.py`` (same scenario, smaller, with
a lenient bound: timing limits belong here, not in the test suite).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Optional

import numpy as np

SLOW_CALLBACK_S = 0.05
TIMES = "\u00d7"


@dataclass
class Scenario:
    """What one run of the gate needs: a running server and a primed-able lake."""

    url: str
    lake: Any
    queries: np.ndarray
    updates: int
    cold: bool = False


class SlowCallbacks(logging.Handler):
    """Collects asyncio's 'Executing ... took N seconds' debug warnings."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if "took" in msg and "seconds" in msg:
            self.records.append(msg)


def serve(updates: int) -> None:
    """Runs the agent until stdin closes: ``updates`` WORKING status updates
    per task, then completed. Prints ``READY <url>`` once listening."""
    import ruvector_a2a as a2a

    async def chatty(message: a2a.Message, ctx: a2a.TaskContext) -> str:
        for i in range(updates):
            await ctx.working(f"step {i}")
        return "done"

    card = a2a.AgentCard(name="chatty", capabilities=a2a.AgentCapabilities(streaming=True))
    with a2a.A2aServer(card, chatty, max_event_bytes=1 << 16) as server:
        print("READY", server.url, flush=True)
        sys.stdin.read()


class Server:
    """The agent of :func:`serve` in its own process, as a separate service
    would be: its Python handler does not share the measured process's GIL."""

    def __init__(self, updates: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(updates)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "READY":
            self.proc.kill()
            raise RuntimeError(f"the A2A agent did not start: {line}")
        self.url = line[1]

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def make_server(updates: int) -> Server:
    """An A2A agent, in its own process, that reports ``updates`` WORKING
    status updates, then completes."""
    return Server(updates)


def make_lake(n: int, dim: int, seed: int = 5) -> tuple[Any, np.ndarray]:
    """A lake with two collections (each search primes its own, off the loop)."""
    import ruvector_lake as rl

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    hot = rl.LocalBackend("hot")
    hot.upsert("a", np.arange(n, dtype=np.uint64), x)
    hot.upsert("b", np.arange(n, dtype=np.uint64), x[::-1].copy())
    lake = rl.RuLake(rerank_factor=20)
    lake.register_backend(hot)
    return lake, rng.standard_normal((2, dim)).astype(np.float32)


async def consume_stream(url: str, updates: int) -> int:
    import ruvector_a2a as a2a

    client = await a2a.A2aClient.connect(url, allow_unsigned=True)
    seen = 0
    async for update in client.stream_task("go"):
        status = update.status
        # The agent's own "step i" updates, in order (the server also
        # reports WORKING once by itself when the handler starts).
        if update.kind == "status" and status is not None and status.message is not None:
            if status.message.text == f"step {seen}":
                seen += 1
    return seen


async def search(lake: Any, collection: str, query: np.ndarray, cold: bool) -> List[int]:
    if cold:
        lake.invalidate_cache("hot", collection)  # this call primes the cache
    hits = await lake.search_one_async("hot", collection, query, k=10)
    return [int(h.id) for h in hits]


async def timed(make: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = await make()
    return time.perf_counter() - t0, out


def run_on(loop_kind: str, body: Callable[[], Awaitable[Any]]) -> tuple[Any, List[str]]:
    """Runs ``body`` on a fresh loop of ``loop_kind`` in debug mode; returns its
    result and the slow-callback warnings logged meanwhile."""
    handler = SlowCallbacks()
    logger = logging.getLogger("asyncio")
    logger.addHandler(handler)
    try:
        loop: asyncio.AbstractEventLoop
        if loop_kind == "uvloop":
            import uvloop

            loop = uvloop.new_event_loop()
        else:
            loop = asyncio.new_event_loop()
        loop.set_debug(True)
        loop.slow_callback_duration = SLOW_CALLBACK_S
        try:
            return loop.run_until_complete(body()), handler.records
        finally:
            loop.close()
    finally:
        logger.removeHandler(handler)


def measure(sc: Scenario, loop_kind: str) -> Dict[str, Any]:
    """Each of the three alone, then all three together, on one loop kind."""
    if not sc.cold:
        # Prime both collections here, outside the measured loops.
        for collection, query in zip("ab", sc.queries):
            sc.lake.search_one("hot", collection, query, k=10)

    async def alone() -> Dict[str, Any]:
        stream_s, seen = await timed(lambda: consume_stream(sc.url, sc.updates))
        a_s, ids_a = await timed(lambda: search(sc.lake, "a", sc.queries[0], sc.cold))
        b_s, ids_b = await timed(lambda: search(sc.lake, "b", sc.queries[1], sc.cold))
        return {"stream": stream_s, "a": a_s, "b": b_s, "seen": seen, "ids": (ids_a, ids_b)}

    async def together() -> Dict[str, Any]:
        t0 = time.perf_counter()
        seen, ids_a, ids_b = await asyncio.gather(
            consume_stream(sc.url, sc.updates),
            search(sc.lake, "a", sc.queries[0], sc.cold),
            search(sc.lake, "b", sc.queries[1], sc.cold),
        )
        return {"total": time.perf_counter() - t0, "seen": seen, "ids": (ids_a, ids_b)}

    solo, slow_solo = run_on(loop_kind, alone)
    both, slow_both = run_on(loop_kind, together)
    longest = max(solo["stream"], solo["a"], solo["b"])
    return {
        "loop": loop_kind,
        "stream_s": solo["stream"],
        "search_a_s": solo["a"],
        "search_b_s": solo["b"],
        "longest_s": longest,
        "together_s": both["total"],
        "ratio": both["total"] / longest,
        "updates_alone": solo["seen"],
        "updates_together": both["seen"],
        "same_ids": solo["ids"] == both["ids"],
        "slow_callbacks": slow_solo + slow_both,
    }


def loops_available() -> List[str]:
    kinds = ["asyncio"]
    try:
        import uvloop  # noqa: F401

        kinds.append("uvloop")
    except ImportError:
        pass
    return kinds


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results-g2.md"))
    ap.add_argument("--updates", type=int, default=1000)
    ap.add_argument("--n", type=int, default=200_000, help="vectors per lake collection (sets the search time)")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--runs", type=int, default=5, help="runs per loop kind (median reported)")
    ap.add_argument("--serve", type=int, metavar="UPDATES", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve is not None:
        serve(args.serve)
        return 0
    lake, queries = make_lake(args.n, args.dim)
    rows = []
    with make_server(args.updates) as server:
        for cold in (False, True):
            sc = Scenario(server.url, lake, queries, args.updates, cold)
            for kind in loops_available():
                runs = [measure(sc, kind) for _ in range(args.runs)]
                med = statistics.median(r["ratio"] for r in runs)
                ok = all(r["updates_alone"] == r["updates_together"] == args.updates and r["same_ids"] for r in runs)
                slow = sum(len(r["slow_callbacks"]) for r in runs)
                pick = sorted(runs, key=lambda r: r["ratio"])[len(runs) // 2]
                gate = "**PASS**" if med < 1.2 and slow == 0 and ok else "**FAIL**"
                rows.append(
                    f"| {'cold (primes)' if cold else 'cache hits'} | {kind} | {pick['stream_s']:.3f} | "
                    f"{pick['search_a_s']:.3f} | {pick['search_b_s']:.3f} | {pick['together_s']:.3f} | "
                    f"{med:.2f}{TIMES} | {slow} | {ok} | {'not gated' if cold else gate} |"
                )
                ratios = [round(r["ratio"], 3) for r in runs]
                print(f"{kind} cold={cold}: ratios {ratios}, slow callbacks {slow}", file=sys.stderr)
    text = "\n".join(
        [
            "# Gate G2: an A2A stream and two ruLake searches on one asyncio loop",
            "",
            f"{args.updates:,} status updates streamed from a local `A2aServer` (its own process) while two "
            f"`search_one_async` calls run over collections of {args.n:,} {TIMES} {args.dim} vectors: cache "
            "hits (gated), then cold calls that each prime their collection on all cores (reported). Loop in "
            f"debug mode, slow-callback threshold {SLOW_CALLBACK_S * 1000:.0f} ms. Seconds; median of "
            f"{args.runs} runs per row (the row shows the median run).",
            "",
            "| searches | loop | stream alone | search A alone | search B alone | all three together "
            f"| together / longest | slow callbacks | every update, same ids | G2 (< 1.2{TIMES}, none blocked) |",
            "|---|---|---:|---:|---:|---:|---:|---:|---|---|",
            *rows,
            "",
        ]
    )
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
