"""A2aServer on its own: lifecycle, handler styles, limits, protocol errors."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.error
import urllib.request
from typing import Any, AsyncIterator, Dict

import pytest

import ruvector_a2a as a2a

CARD = a2a.AgentCard(name="t", description="test", capabilities=a2a.AgentCapabilities(streaming=True))


def rpc(url: str, method: str, params: Dict[str, Any], raw: bytes = b"") -> Dict[str, Any]:
    body = raw or json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    req = urllib.request.Request(url, data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        out: Dict[str, Any] = json.loads(r.read())
        return out


def msg(text: str) -> Dict[str, Any]:
    return {"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": text}]}}


async def echo(m: a2a.Message, ctx: a2a.TaskContext) -> str:
    return m.text


def test_binds_loopback_and_stops() -> None:
    s = a2a.A2aServer(CARD, echo).start()
    try:
        assert s.url.startswith("http://127.0.0.1:")
        r = rpc(s.url, "SendMessage", msg("a"))
        assert r["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
    finally:
        s.stop()
    s.stop()  # idempotent
    with pytest.raises(a2a.InvalidArgument):
        _ = s.url


def test_async_lifecycle_and_generator_handler() -> None:
    async def streamer(m: a2a.Message, ctx: a2a.TaskContext) -> AsyncIterator[Any]:
        yield a2a.TaskState.WORKING
        yield "x"
        yield "y"
        yield a2a.Artifact.of("whole", name="other")

    async def main() -> None:
        async with a2a.A2aServer(CARD, streamer) as s:
            c = await a2a.A2aClient.connect(s.url, allow_unsigned=True)
            t = await c.send_task("go")
            assert t.state is a2a.TaskState.COMPLETED
            names = {a.name: a.text for a in t.artifacts}
            assert names["output"] == "x\ny" and names["other"] == "whole"

    asyncio.run(main())


def test_protocol_errors() -> None:
    with a2a.A2aServer(CARD, echo) as s:
        assert rpc(s.url, "", {}, raw=b"{not json")["error"]["code"] == -32700
        assert rpc(s.url, "", {}, raw=b"[1,2]")["error"]["code"] == -32600
        assert rpc(s.url, "Nope", {})["error"]["code"] == -32601
        assert rpc(s.url, "GetTask", {"id": "x"})["error"]["code"] == -32001
        assert rpc(s.url, "SendMessage", {"message": {"parts": []}})["error"]["code"] == -32602
        assert rpc(s.url, "CreateTaskPushNotificationConfig", {})["error"]["code"] == -32003
        t = rpc(s.url, "SendMessage", msg("a"))["result"]["task"]
        assert rpc(s.url, "CancelTask", {"id": t["id"]})["error"]["code"] == -32002
        with pytest.raises(urllib.error.HTTPError) as ei:
            rpc(s.url, "", {}, raw=b" " * (2 * 1024 * 1024))
        assert ei.value.code == 413


def test_deep_json_is_a_parse_error() -> None:
    with a2a.A2aServer(CARD, echo) as s:
        deep = b'{"jsonrpc":"2.0","id":1,"method":"GetTask","params":' + b"[" * 5000 + b"]" * 5000 + b"}"
        assert rpc(s.url, "", {}, raw=deep)["error"]["code"] == -32700


def test_task_store_is_bounded() -> None:
    with a2a.A2aServer(CARD, echo, max_tasks=3) as s:
        ids = [rpc(s.url, "SendMessage", msg(str(i)))["result"]["task"]["id"] for i in range(6)]
        assert s.stats()["tasks"] == 3
        assert rpc(s.url, "GetTask", {"id": ids[0]})["error"]["code"] == -32001
        assert rpc(s.url, "GetTask", {"id": ids[-1]})["result"]["id"] == ids[-1]


def test_running_tasks_are_never_evicted() -> None:
    async def forever(m: a2a.Message, ctx: a2a.TaskContext) -> None:
        await asyncio.sleep(3600)

    with a2a.A2aServer(CARD, forever, max_tasks=2) as s:
        p = msg("x")
        p["configuration"] = {"returnImmediately": True}
        rpc(s.url, "SendMessage", p)
        rpc(s.url, "SendMessage", p)
        r = rpc(s.url, "SendMessage", p)
        assert r["error"]["code"] == -32603 and "capacity" in r["error"]["message"]


def test_get_task_sees_running_task_and_cancel_stops_handler() -> None:
    seen: Dict[str, bool] = {}

    async def slow(m: a2a.Message, ctx: a2a.TaskContext) -> None:
        try:
            await ctx.working("started")
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            seen["cancelled"] = True
            raise

    with a2a.A2aServer(CARD, slow) as s:
        c = a2a.A2aClient.connect_sync(s.url, allow_unsigned=True)
        t = c.send_task_sync("x", return_immediately=True)
        import time

        time.sleep(0.2)
        assert c.get_task_sync(t.id).state is a2a.TaskState.WORKING
        assert c.cancel_task_sync(t.id).state is a2a.TaskState.CANCELED
        time.sleep(0.2)
        assert seen.get("cancelled") is True
        assert s.stats()["running"] == 0


def test_stream_limit_and_shutdown_closes_streams() -> None:
    async def forever(m: a2a.Message, ctx: a2a.TaskContext) -> None:
        await asyncio.sleep(3600)

    async def main() -> None:
        s = a2a.A2aServer(CARD, forever, max_streams=2)
        await s.start_async()
        c = await a2a.A2aClient.connect(s.url, allow_unsigned=True)
        s1, s2 = c.stream_task("a"), c.stream_task("b")
        await s1.__anext__()
        await s2.__anext__()
        assert s.stats()["streams"] == 2
        with pytest.raises(a2a.A2aError, match="too many open streams"):
            await c.stream_task("c").__anext__()
        await s.stop_async()
        # Stopping cancels running handlers: open streams see the final
        # state (or, if the server closed first, a transport error).
        try:
            rest = [u async for u in s1]
            assert rest[-1].state is a2a.TaskState.CANCELED
        except a2a.TransportError:
            pass
        assert s.stats()["streams"] == 0

    asyncio.run(main())


def test_oversized_artifact_is_refused_to_the_handler() -> None:
    async def big(m: a2a.Message, ctx: a2a.TaskContext) -> None:
        await ctx.add_artifact("x" * 5000)

    with a2a.A2aServer(CARD, big, max_event_bytes=1000) as s:
        t = rpc(s.url, "SendMessage", msg("a"))["result"]["task"]
        assert t["status"]["state"] == "TASK_STATE_FAILED"
        assert "max_event_bytes" in t["status"]["message"]["parts"][0]["text"]


def test_port_in_use() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(a2a.TransportError, match="could not listen"):
            a2a.A2aServer(CARD, echo, port=port).start()
