#!/usr/bin/env python3
"""Benchmark of the ``ruvector-a2a`` wheel on loopback, side by side with the
official ``a2a-sdk`` client against the same servers.

* request round trip (``SendMessage`` of a one-word echo, ``GetTask``), p50
  and p99 over N calls, against this wheel's ``A2aServer`` and against the
  a2a-sdk's own server (``tests/a2a/a2a_sdk_peer.py``);
* streamed events per second (a task emitting 1,000 status updates);
* wheel size and ``import`` time, next to ``import a2a.client``.

Each server runs in its own process, so a client is timed alone on its loop.

    python bench/a2a_bench.py --wheels-dir dist --out bench/results-a2a.md
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable, Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
SDK_PEER = HERE.parent / "tests" / "a2a" / "a2a_sdk_peer.py"
STREAM_EVENTS = 1000
TIMES = "\u00d7"


# ── our server, in its own process ─────────────────────────────────────────
def serve() -> None:
    import ruvector_a2a as a2a

    async def handler(m: a2a.Message, ctx: a2a.TaskContext) -> AsyncIterator[a2a.TaskState]:
        if m.text == "stream":
            for _ in range(STREAM_EVENTS):
                yield a2a.TaskState.WORKING
        else:
            await ctx.add_artifact("echo: " + m.text)

    async def main() -> None:
        card = a2a.AgentCard(name="bench", description="b", capabilities=a2a.AgentCapabilities(streaming=True))
        async with a2a.A2aServer(card, handler) as s:
            print("READY", s.url, flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    asyncio.run(main())


def spawn(args: List[str]) -> Tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if not line or line[0] != "READY":
        proc.kill()
        raise RuntimeError(f"{args[1]} did not start: {line}")
    return proc, line[1] if len(line) > 1 else ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# ── clients ─────────────────────────────────────────────────────────────────
def pct(xs: List[float]) -> Tuple[float, float]:
    xs = sorted(xs)
    return xs[len(xs) // 2] * 1e3, xs[min(len(xs) - 1, int(len(xs) * 0.99))] * 1e3


async def timed(n: int, fn: Callable[[], Awaitable[object]]) -> Tuple[float, float]:
    for _ in range(max(10, n // 20)):  # warm-up: connections, caches
        await fn()
    out: List[float] = []
    for _ in range(n):
        t0 = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - t0)
    return pct(out)


async def unary(url: str, n: int) -> Dict[str, Tuple[float, float]]:
    from a2a.client import ClientConfig, create_client
    from a2a.types import GetTaskRequest, Message, Part, Role, SendMessageRequest

    import ruvector_a2a as a2a

    c = await a2a.A2aClient.connect(url, allow_unsigned=True)
    t = await c.send_task("warm")
    res = {
        "ours send": await timed(n, lambda: c.send_task("x")),
        "ours get": await timed(n, lambda: c.get_task(t.id)),
    }
    sdk = await create_client(url, client_config=ClientConfig(streaming=False))

    async def sdk_send() -> None:
        msg = Message(message_id=os.urandom(8).hex(), role=Role.ROLE_USER, parts=[Part(text="x")])
        async for _ in sdk.send_message(SendMessageRequest(message=msg)):
            pass

    res["sdk send"] = await timed(n, sdk_send)
    res["sdk get"] = await timed(n, lambda: sdk.get_task(GetTaskRequest(id=t.id)))
    await sdk.close()
    return res


async def stream(url: str, rounds: int = 5) -> Dict[str, float]:
    from a2a.client import ClientConfig, create_client
    from a2a.types import Message, Part, Role, SendMessageRequest

    import ruvector_a2a as a2a

    c = await a2a.A2aClient.connect(url, allow_unsigned=True)
    sdk = await create_client(url, client_config=ClientConfig(streaming=True))
    best: Dict[str, float] = {"ours": 0.0, "sdk": 0.0}
    for _ in range(rounds):
        t0 = time.perf_counter()
        n = len([u async for u in c.stream_task("stream")])
        best["ours"] = max(best["ours"], n / (time.perf_counter() - t0))
        msg = Message(message_id=os.urandom(8).hex(), role=Role.ROLE_USER, parts=[Part(text="stream")])
        t0 = time.perf_counter()
        n = len([e async for e in sdk.send_message(SendMessageRequest(message=msg))])
        best["sdk"] = max(best["sdk"], n / (time.perf_counter() - t0))
    await sdk.close()
    return best


def import_ms(module: str) -> Optional[float]:
    sys.path.insert(0, str(HERE))
    from run_bench import import_time_ms

    ms, _err = import_time_ms(module)
    return ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("-n", type=int, default=500, help="calls per round-trip measurement")
    ap.add_argument("--wheels-dir")
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.serve:
        serve()
        return

    ours, ours_url = spawn([sys.executable, __file__, "--serve"])
    port = free_port()
    sdk, _ = spawn([sys.executable, str(SDK_PEER), str(port)])
    try:
        on_ours = asyncio.run(unary(ours_url, a.n))
        on_sdk = asyncio.run(unary(f"http://127.0.0.1:{port}/", a.n))
        ev = asyncio.run(stream(ours_url))
    finally:
        for p in (ours, sdk):
            assert p.stdin is not None
            p.stdin.close()
            p.terminate()
            p.wait(10)

    def row(label: str, res: Dict[str, Tuple[float, float]], call: str) -> str:
        o, s = res[f"ours {call}"], res[f"sdk {call}"]
        return f"| {label} | {o[0]:.2f} / {o[1]:.2f} | {s[0]:.2f} / {s[1]:.2f} | {o[0] / s[0]:.2f}{TIMES} |"

    wheel = ""
    if a.wheels_dir:
        found = sorted(Path(a.wheels_dir).glob("ruvector_a2a-*.whl"))
        if found:
            wheel = f"{found[-1].stat().st_size / 1e6:.2f} MB"
    ims, sdk_ims = import_ms("ruvector_a2a"), import_ms("a2a.client")
    md = [
        "# ruvector-a2a benchmark (loopback)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}. "
        f"Servers in their own processes; {a.n} calls per row after a warm-up; p50 / p99 in ms.",
        "",
        "| round trip | ruvector-a2a client | a2a-sdk client | p50 ratio |",
        "|---|---:|---:|---:|",
        row("SendMessage → ruvector-a2a server", on_ours, "send"),
        row("GetTask → ruvector-a2a server", on_ours, "get"),
        row("SendMessage → a2a-sdk server", on_sdk, "send"),
        row("GetTask → a2a-sdk server", on_sdk, "get"),
        "",
        f"Streaming {STREAM_EVENTS:,} status updates from the ruvector-a2a server (best of 5): "
        f"ruvector-a2a client **{ev['ours']:,.0f} events/s**, a2a-sdk client {ev['sdk']:,.0f} events/s "
        f"({ev['ours'] / ev['sdk']:.2f}{TIMES}).",
        "",
        "| | ruvector-a2a | a2a-sdk |",
        "|---|---:|---:|",
        f"| import (ms, best of 5) | {ims if ims is None else f'{ims:.1f}'} | "
        f"{sdk_ims if sdk_ims is None else f'{sdk_ims:.1f}'} (`a2a.client`) |",
        f"| wheel | {wheel or 'n/a'} (budget 22 MB, aim ≤ 6 MB) | pure Python + deps |",
        "",
    ]
    text = "\n".join(md)
    print(text)
    if a.out:
        Path(a.out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
