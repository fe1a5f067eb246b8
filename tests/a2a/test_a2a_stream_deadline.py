"""The client's total stream deadline (issue 10): a peer that sends an
event now and then (or trickles bytes) holds a stream only until
``stream_timeout``; ``stream_idle_timeout`` alone (300 s by default) would
let it hold the stream indefinitely."""

from __future__ import annotations

import asyncio
import time
from typing import Callable, Iterator, List

import pytest
from a2a_hostile_peer import HostilePeer

import ruvector_a2a as a2a


@pytest.fixture(scope="module")
def peer() -> Iterator[HostilePeer]:
    p = HostilePeer()
    yield p
    p.close()


def test_slow_events_outlive_the_idle_timeout_without_a_deadline(peer: HostilePeer) -> None:
    # The problem: each event resets the idle deadline, so the stream goes on.
    c = a2a.A2aClient.connect_sync(peer.url("sse-slow-events"), allow_unsigned=True, stream_idle_timeout=0.5)
    t0 = time.monotonic()
    n = 0
    with c.stream_task_sync("x") as s:
        for _ in s:
            n += 1
            if time.monotonic() - t0 > 1.2:
                break
    assert n >= 4


@pytest.mark.parametrize("mode", ["sse-slow-events", "sse-trickle"])
def test_stream_timeout_ends_a_hostile_stream(peer: HostilePeer, mode: str) -> None:
    async def main() -> List[a2a.TaskUpdate]:
        # The default idle timeout (300 s): only the total deadline can stop it.
        c = await a2a.A2aClient.connect(peer.url(mode), allow_unsigned=True)
        got: List[a2a.TaskUpdate] = []
        with pytest.raises(a2a.TransportError, match=r"stream_timeout \(1\.000 s\)"):
            async for u in c.stream_task("x", stream_timeout=1.0):
                got.append(u)
        return got

    t0 = time.monotonic()
    got = asyncio.run(main())
    assert 0.9 < time.monotonic() - t0 < 4
    if mode == "sse-slow-events":
        assert got and all(u.state is a2a.TaskState.WORKING for u in got)


def test_stream_timeout_sync_resubscribe_and_client_default(peer: HostilePeer) -> None:
    c = a2a.A2aClient.connect_sync(peer.url("sse-slow-events"), allow_unsigned=True, stream_timeout=0.8)
    makers: List[Callable[[], a2a.TaskStreamSync]] = [lambda: c.stream_task_sync("x"), lambda: c.resubscribe_sync("t1")]
    for make in makers:
        t0 = time.monotonic()
        with pytest.raises(a2a.TransportError, match="stream_timeout"):
            with make() as s:
                for _ in s:
                    pass
        assert time.monotonic() - t0 < 4

    async def main() -> None:
        ac = await a2a.A2aClient.connect(peer.url("sse-slow-events"), allow_unsigned=True)
        with pytest.raises(a2a.TransportError, match="stream_timeout"):
            async for _ in ac.resubscribe("t1", stream_timeout=0.5):
                pass
        # A per-call value overrides the client's default.
        c2 = await a2a.A2aClient.connect(peer.url("sse-slow-events"), allow_unsigned=True, stream_timeout=30)
        t0 = time.monotonic()
        with pytest.raises(a2a.TransportError, match=r"stream_timeout \(0\.500 s\)"):
            async for _ in c2.stream_task("x", stream_timeout=0.5):
                pass
        assert time.monotonic() - t0 < 4

    asyncio.run(main())
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(a2a.InvalidArgument, match="stream_timeout"):
            c.stream_task_sync("x", stream_timeout=bad)
        with pytest.raises(a2a.InvalidArgument, match="stream_timeout"):
            a2a.A2aClient.connect_sync(peer.url("sse-slow-events"), allow_unsigned=True, stream_timeout=bad)
