"""Connection limits of A2aServer (issue 10): idle sockets and slow senders
cannot make the server unavailable; SSE streams outlive the limits."""

from __future__ import annotations

import asyncio
import json
import select
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, AsyncIterator, Dict, Iterator, List, Optional, Tuple

import pytest

import ruvector_a2a as a2a

HERE = Path(__file__).parent
TOOLS = str(HERE / "a2a_conn_tools.py")
CARD = a2a.AgentCard(name="limits", capabilities=a2a.AgentCapabilities(streaming=True))

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses resource limits and raw sockets")


async def echo(m: a2a.Message, ctx: a2a.TaskContext) -> Any:
    if m.text == "ticks":
        async for t in ticks():
            await ctx.add_artifact(t, name="tick")
        return "done"
    if m.text == "slow":
        while True:
            await asyncio.sleep(0.05)
    return "echo: " + m.text


async def ticks() -> AsyncIterator[str]:
    for i in range(15):
        await asyncio.sleep(0.1)
        yield f"t{i}"


def _port(url: str) -> int:
    return int(url.rstrip("/").rsplit(":", 1)[1])


def _closed_within(sock: socket.socket, seconds: float, trickle: Optional[bytes] = None) -> Tuple[bool, bytes]:
    """Waits (sending ``trickle`` one byte every 0.1 s) until the server closes
    the connection; returns (closed, what it sent)."""
    got = b""
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        if trickle is not None:
            try:
                sock.send(trickle[i % len(trickle) : i % len(trickle) + 1])
            except OSError:
                return True, got
            i += 1
        r, _, _ = select.select([sock], [], [], 0.1)
        if r:
            try:
                chunk = sock.recv(65536)
            except OSError:
                return True, got
            if not chunk:
                return True, got
            got += chunk
    return False, got


# ---------------------------------------------------------------- 1,000 idle sockets, low descriptor limit


@pytest.fixture()
def limited_server() -> Iterator[Tuple[str, subprocess.Popen[str]]]:
    proc = subprocess.Popen(
        [sys.executable, TOOLS, "server", "256", json.dumps({})],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if len(line) != 2 or line[0] != "READY":
        proc.kill()
        pytest.fail(f"the limited server did not start: {line!r}")
    try:
        yield line[1], proc
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_thousand_idle_connections_do_not_lock_out_a_client(limited_server: Tuple[str, subprocess.Popen[str]]) -> None:
    url, server = limited_server
    flood = subprocess.Popen(
        [sys.executable, TOOLS, "flood", str(_port(url)), "1000"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert flood.stdout is not None
        held = flood.stdout.readline().split()
        assert held[0] == "HELD" and int(held[1]) >= 900, held
        t0 = time.monotonic()
        c = a2a.A2aClient.connect_sync(url, allow_unsigned=True, timeout=10)
        t = c.send_task_sync("still here")
        assert t.state is a2a.TaskState.COMPLETED and t.status.message is not None
        assert t.status.message.text == "echo: still here"
        assert time.monotonic() - t0 < 10, "served within a bounded time"
        # ... and again, on a new client, while the flood still holds its sockets.
        assert (
            a2a.A2aClient.connect_sync(url, allow_unsigned=True, timeout=10).send_task_sync("again").state.is_terminal
        )
        assert server.poll() is None
    finally:
        assert flood.stdin is not None
        flood.stdin.close()
        try:
            flood.wait(10)
        except subprocess.TimeoutExpired:
            flood.kill()


# ---------------------------------------------------------------- deadlines


def test_slowloris_headers_are_cut_off() -> None:
    with a2a.A2aServer(CARD, echo, header_read_timeout=1.0) as s:
        sock = socket.create_connection(("127.0.0.1", _port(s.url)))
        try:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            t0 = time.monotonic()
            closed, got = _closed_within(sock, 8.0, trickle=b"X-Slow: aaaaaaaaaaaaaaaa\r\n")
            assert closed, "a peer trickling its headers was not disconnected"
            assert 0.5 < time.monotonic() - t0 < 6
            assert b"200" not in got
        finally:
            sock.close()
        # A silent connection is cut off as well.
        sock = socket.create_connection(("127.0.0.1", _port(s.url)))
        try:
            assert _closed_within(sock, 6.0)[0]
        finally:
            sock.close()
        c = a2a.A2aClient.connect_sync(s.url, allow_unsigned=True)
        assert c.send_task_sync("ok").state is a2a.TaskState.COMPLETED


def test_slow_body_gets_408_and_idle_keepalive_is_closed() -> None:
    with a2a.A2aServer(CARD, echo, body_read_timeout=1.0, keep_alive_timeout=1.0) as s:
        port = _port(s.url)
        sock = socket.create_connection(("127.0.0.1", port))
        try:
            sock.sendall(
                b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"
            )
            closed, got = _closed_within(sock, 8.0, trickle=b" ")
            assert got.startswith(b"HTTP/1.1 408"), got[:100]
            assert b"body_read_timeout" in got
        finally:
            sock.close()
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ListTasks", "params": {}}).encode()
        sock = socket.create_connection(("127.0.0.1", port))
        try:
            sock.sendall(
                b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )
            closed, got = _closed_within(sock, 6.0)
            assert got.startswith(b"HTTP/1.1 200"), got[:100]
            assert closed, "an idle kept-alive connection was not closed"
        finally:
            sock.close()


def test_streams_outlive_the_limits() -> None:
    async def main() -> List[a2a.TaskUpdate]:
        async with a2a.A2aServer(
            CARD, echo, header_read_timeout=0.3, body_read_timeout=0.3, keep_alive_timeout=0.3
        ) as s:
            c = await a2a.A2aClient.connect(s.url, allow_unsigned=True)
            return [u async for u in c.stream_task("ticks")]

    ups = asyncio.run(main())
    arts = [u.artifact.text for u in ups if u.artifact is not None]
    assert arts == [f"t{i}" for i in range(15)]
    assert ups[-1].state is a2a.TaskState.COMPLETED


def test_connection_cap_evicts_idle_and_refuses_when_all_busy() -> None:
    async def main() -> None:
        async with a2a.A2aServer(CARD, echo, max_connections=2) as s:
            port = _port(s.url)
            idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
            try:
                await asyncio.sleep(0.2)
                c = await a2a.A2aClient.connect(s.url, allow_unsigned=True)
                assert (await c.send_task("in")).state is a2a.TaskState.COMPLETED
            finally:
                for x in idle:
                    x.close()
            # Two busy streams fill the cap: a third connection is refused at once.
            c1 = await a2a.A2aClient.connect(s.url, allow_unsigned=True)
            c2 = await a2a.A2aClient.connect(s.url, allow_unsigned=True)
            s1, s2 = c1.stream_task("slow"), c2.stream_task("slow")
            await s1.__anext__()
            await s2.__anext__()
            loop = asyncio.get_running_loop()

            def third() -> bytes:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as x:
                    x.sendall(b"GET /.well-known/agent-card.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                    return _closed_within(x, 5.0)[1]

            got = await loop.run_in_executor(None, third)
            assert got.startswith(b"HTTP/1.1 503"), got[:100]
            assert b"max_connections = 2" in got
            await s1.aclose()
            await s2.aclose()

    asyncio.run(main())


def test_limit_options_are_checked() -> None:
    bads: List[Dict[str, Any]] = [
        {"max_connections": 0},
        {"header_read_timeout": 0.0},
        {"keep_alive_timeout": float("nan")},
    ]
    for bad in bads:
        with pytest.raises(a2a.InvalidArgument):
            a2a.A2aServer(CARD, echo, **bad)
    assert 8 <= a2a.default_max_connections() <= 1024


def test_oversized_body_gets_413_not_a_reset() -> None:
    import urllib.error
    import urllib.request

    with a2a.A2aServer(CARD, echo, max_body_bytes=64 * 1024) as s:
        for size in (100_000, 3 * 1024 * 1024, 3 * 1024 * 1024, 500_000, 3 * 1024 * 1024):
            req = urllib.request.Request(s.url, data=b" " * size, headers={"content-type": "application/json"})
            with pytest.raises(urllib.error.HTTPError) as ei:
                urllib.request.urlopen(req, timeout=10)
            assert ei.value.code == 413
            assert b"max_body_bytes = 65536" in ei.value.read()
