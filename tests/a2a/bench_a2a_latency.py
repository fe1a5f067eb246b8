"""Loopback latency and stream throughput: ruvector_a2a's client vs the
a2a-sdk's client against the same ruvector_a2a server (and optionally an
a2a-sdk server, e.g. ``python a2a_sdk_peer.py 18803``).

    python tests/a2a/bench_a2a_latency.py [N] [SDK_SERVER_URL]

Not collected by pytest. Client and server share one process and one event
loop, so the numbers include both sides.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import AsyncIterator, Awaitable, Callable, List

from a2a.client import ClientConfig, create_client
from a2a.types import GetTaskRequest, Message, Part, Role, SendMessageRequest

import ruvector_a2a as a2a

N = int(sys.argv[1]) if len(sys.argv) > 1 else 300


async def echo(m: a2a.Message, ctx: a2a.TaskContext) -> str:
    return m.text


async def statuses(m: a2a.Message, ctx: a2a.TaskContext) -> AsyncIterator[a2a.TaskState]:
    for _ in range(1000):
        yield a2a.TaskState.WORKING


def pct(xs: List[float]) -> str:
    xs = sorted(xs)
    return f"p50 {xs[len(xs) // 2] * 1e3:.2f} ms  p99 {xs[int(len(xs) * 0.99)] * 1e3:.2f} ms"


async def timed(fn: Callable[[], Awaitable[object]]) -> List[float]:
    out: List[float] = []
    for _ in range(N):
        t0 = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - t0)
    return out


async def bench_unary(url: str, label: str) -> None:
    c = await a2a.A2aClient.connect(url, allow_unsigned=True)
    t = await c.send_task("warm")
    print(f"{label:22} ruvector_a2a send {pct(await timed(lambda: c.send_task('x')))}")
    print(f"{label:22} ruvector_a2a get  {pct(await timed(lambda: c.get_task(t.id)))}")
    sdk = await create_client(url, client_config=ClientConfig(streaming=False))

    async def sdk_send() -> None:
        msg = Message(message_id="m", role=Role.ROLE_USER, parts=[Part(text="x")])
        async for _ in sdk.send_message(SendMessageRequest(message=msg)):
            pass

    print(f"{label:22} a2a-sdk      send {pct(await timed(sdk_send))}")
    print(f"{label:22} a2a-sdk      get  {pct(await timed(lambda: sdk.get_task(GetTaskRequest(id=t.id))))}")
    await sdk.close()


async def bench_stream(url: str) -> None:
    c = await a2a.A2aClient.connect(url, allow_unsigned=True)
    t0 = time.perf_counter()
    n = len([u async for u in c.stream_task("go")])
    dt = time.perf_counter() - t0
    print(f"stream ruvector_a2a: {n} events in {dt * 1e3:.0f} ms = {n / dt:,.0f} events/s")
    sdk = await create_client(url, client_config=ClientConfig(streaming=True))
    t0 = time.perf_counter()
    msg = Message(message_id="s", role=Role.ROLE_USER, parts=[Part(text="go")])
    n = len([e async for e in sdk.send_message(SendMessageRequest(message=msg))])
    dt = time.perf_counter() - t0
    print(f"stream a2a-sdk:      {n} events in {dt * 1e3:.0f} ms = {n / dt:,.0f} events/s")
    await sdk.close()


async def main() -> None:
    card = a2a.AgentCard(name="bench", description="b", capabilities=a2a.AgentCapabilities(streaming=True))
    async with a2a.A2aServer(card, echo) as s:
        await bench_unary(s.url, "server=ruvector_a2a")
    if len(sys.argv) > 2:
        await bench_unary(sys.argv[2], "server=a2a-sdk")
    async with a2a.A2aServer(card, statuses) as s:
        await bench_stream(s.url)


if __name__ == "__main__":
    asyncio.run(main())
