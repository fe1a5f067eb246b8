"""Lone surrogates (issue 10): text no UTF-8 can hold, passed where the a2a
API takes text, raises InvalidArgument naming the argument — never
UnicodeEncodeError — for every str argument of the native module and of the
Python API over it."""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest
from a2a_hostile_peer import HostilePeer

import ruvector_a2a as a2a
from ruvector_a2a import _native  # pyright: ignore[reportPrivateUsage]

BAD = "a\ud800b"
KEY = a2a.generate_private_key()
LIMITS: Dict[str, Any] = dict(
    max_body_bytes=1 << 20,
    max_event_bytes=1 << 20,
    max_tasks=10,
    max_task_bytes=1 << 20,
    max_streams=4,
    max_connections=8,
    header_read_timeout=5.0,
    body_read_timeout=5.0,
    keep_alive_timeout=5.0,
)


def transport(**kw: Any) -> Any:
    opts: Dict[str, Any] = dict(
        headers=[],
        timeout=5.0,
        max_response_bytes=1 << 20,
        max_event_bytes=1 << 20,
        stream_idle_timeout=5.0,
        user_agent="t",
    )
    opts.update(kw)
    return _native.HttpTransport(**opts)


def _await(x: Any) -> Any:
    async def main() -> Any:
        return await x

    return asyncio.run(main())


@pytest.fixture(scope="module")
def core() -> Iterator[Any]:
    c = _native.ServerCore({"name": "s"}, **LIMITS)
    yield c


def native_cases(core: Any) -> List[Tuple[str, Callable[[], Any]]]:
    t = transport()
    url = "http://127.0.0.1:9/"
    return [
        ("headers", lambda: transport(headers=[("X-A", BAD)])),
        ("headers", lambda: transport(headers=[(BAD, "v")])),
        ("user_agent", lambda: transport(user_agent=BAD)),
        ("method", lambda: t.request_sync(BAD, url)),
        ("url", lambda: t.request_sync("GET", url + BAD)),
        ("headers", lambda: t.request_sync("GET", url, None, [("X", BAD)])),
        ("url", lambda: t.request("GET", BAD)),
        ("method", lambda: t.request(BAD, url)),
        ("url", lambda: t.open_stream_sync(BAD, None)),
        ("headers", lambda: t.open_stream_sync(url, None, [("X", BAD)])),
        ("url", lambda: t.open_stream(BAD, None)),
        ("card", lambda: _native.ServerCore({"name": BAD}, **LIMITS)),
        ("card", lambda: _native.ServerCore({BAD: "x"}, **LIMITS)),
        ("kid", lambda: _native.ServerCore({"name": "s"}, kid=BAD, **LIMITS)),
        ("host", lambda: core.start(BAD, 0, None, print, print)),
        ("task_id", lambda: core.update_status(BAD, "TASK_STATE_WORKING")),
        ("state", lambda: core.update_status("t", BAD)),
        ("message", lambda: core.update_status("t", "TASK_STATE_WORKING", {"parts": [{"text": BAD}]})),
        ("task_id", lambda: core.add_artifact(BAD, {"parts": []})),
        ("artifact", lambda: core.add_artifact("t", {"parts": [{"text": BAD}]})),
        ("task_id", lambda: core.get_task(BAD)),
        ("card", lambda: _native.verify_card({"name": BAD}, allow_unsigned=True)),
        ("expected_agent_id", lambda: _native.verify_card({"name": "x"}, expected_agent_id=BAD)),
        ("trusted_keys", lambda: _native.verify_card({"name": "x"}, trusted_keys=[{"kty": BAD}])),
        ("card", lambda: _native.sign_card({"name": BAD}, KEY)),
        ("kid", lambda: _native.sign_card({"name": "x"}, KEY, BAD)),
        ("kid", lambda: _native.public_key_jwk(KEY, BAD)),
        ("key", lambda: _native.agent_id_of(BAD)),
        ("key", lambda: _native.agent_id_of({"kty": BAD})),
        ("value", lambda: _native.canonical_json({"a": [BAD]})),
    ]


def test_every_native_str_argument(core: Any) -> None:
    for arg, call in native_cases(core):
        with pytest.raises(a2a.InvalidArgument, match=rf"^{arg}\b.*(lone surrogate|not valid Unicode)") as ei:
            r = call()
            if asyncio.iscoroutine(r) or hasattr(r, "__await__"):
                _await(r)
        assert not isinstance(ei.value, UnicodeError), arg


def test_python_api(core: Any) -> None:
    peer = HostilePeer()
    try:
        c = a2a.A2aClient.connect_sync(peer.url("ok"), allow_unsigned=True)
        cases: List[Tuple[str, Callable[[], Any]]] = [
            ("url", lambda: a2a.A2aClient.connect_sync("http://127.0.0.1:9/" + BAD)),
            ("bearer_token", lambda: a2a.A2aClient.connect_sync(peer.url("ok"), bearer_token=BAD)),
            ("api_key", lambda: a2a.A2aClient.connect_sync(peer.url("ok"), api_key=BAD)),
            ("headers", lambda: a2a.A2aClient.connect_sync(peer.url("ok"), headers={"X": BAD})),
            ("expected_agent_id", lambda: a2a.A2aClient.connect_sync(peer.url("ok"), expected_agent_id=BAD)),
            ("message", lambda: c.send_task_sync(BAD)),
            ("Part.text", lambda: c.send_task_sync(["ok", BAD])),
            ("Part.text", lambda: a2a.Message.user(BAD)),
            ("Part.data", lambda: a2a.Part(data={"k": [BAD]})),
            ("Part.url", lambda: a2a.Part(url=BAD)),
            ("metadata", lambda: c.send_task_sync("ok", metadata={"a": BAD})),
            ("context_id", lambda: c.send_task_sync("ok", context_id=BAD)),
            ("task_id", lambda: c.send_task_sync("ok", task_id=BAD)),
            ("skill", lambda: c.send_task_sync("ok", skill=BAD)),
            ("task_id", lambda: c.get_task_sync(BAD)),
            ("task_id", lambda: c.cancel_task_sync(BAD)),
            ("context_id", lambda: c.list_tasks_sync(context_id=BAD)),
            ("task_id", lambda: c.resubscribe_sync(BAD)),
            ("message", lambda: c.stream_task_sync(BAD)),
            ("config", lambda: c.set_push_config_sync("t", "http://127.0.0.1/" + BAD)),
            ("config_id", lambda: c.get_push_config_sync("t", BAD)),
            ("task_id", lambda: c.list_push_configs_sync(BAD)),
            ("card", lambda: a2a.A2aServer(a2a.AgentCard(name=BAD), _handler)),
            ("host", lambda: a2a.A2aServer(a2a.AgentCard(name="x"), _handler, host=BAD).start()),
        ]
        for arg, call in cases:
            with pytest.raises(a2a.InvalidArgument, match=rf"^{arg}\b") as ei:
                call()
            assert "surrogate" in str(ei.value) or "Unicode" in str(ei.value), (arg, ei.value)
    finally:
        peer.close()


async def _handler(m: a2a.Message, ctx: a2a.TaskContext) -> str:
    return "x"


def test_handler_reports_with_surrogates_fail_the_task_cleanly() -> None:
    async def bad(m: a2a.Message, ctx: a2a.TaskContext) -> str:
        try:
            await ctx.working(a2a.Message(role=a2a.Role.AGENT, parts=[a2a.Part(text="x")], metadata={"k": BAD}))
        except a2a.InvalidArgument as e:
            return f"refused: {type(e).__name__}: {'message' in str(e)}"
        return "accepted"

    with a2a.A2aServer(a2a.AgentCard(name="s"), bad) as s:
        t = a2a.A2aClient.connect_sync(s.url, allow_unsigned=True).send_task_sync("go")
        assert t.status.message is not None
        assert t.status.message.text == "refused: InvalidArgument: True"
