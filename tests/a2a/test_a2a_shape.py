"""API shape (issue 11): the 0.3 method table is kept once (in Rust) and the
client derives it; the sync/stream siblings take explicit keywords, so a
misspelt option is an error instead of being ignored."""

from __future__ import annotations

import inspect
import json
import urllib.request
from typing import Any, Callable, Dict, Iterator, List

import pytest
from a2a_hostile_peer import HostilePeer

import ruvector_a2a as a2a
from ruvector_a2a import _compat03, _native  # pyright: ignore[reportPrivateUsage]


def test_compat03_table_is_derived_from_the_native_one() -> None:
    native = dict(_native.compat03_methods())
    assert _compat03.METHODS == native
    assert _compat03.METHODS_FROM_03 == {v: k for k, v in native.items()}
    assert native["SendMessage"] == "message/send"
    assert native["GetExtendedAgentCard"] == "agent/getAuthenticatedExtendedCard"
    src = inspect.getsource(_compat03)
    assert '"message/send"' not in src and '"tasks/resubscribe"' not in src, "no second copy in Python"


def test_server_knows_every_03_method_of_the_table() -> None:
    async def h(m: a2a.Message, ctx: a2a.TaskContext) -> str:
        return "x"

    with a2a.A2aServer(a2a.AgentCard(name="t"), h) as s:
        for new, old in _native.compat03_methods():
            body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": old, "params": {}}).encode()
            req = urllib.request.Request(s.url, data=body, headers={"content-type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as r:
                ans: Dict[str, Any] = json.loads(r.read()) if "json" in r.headers["content-type"] else {}
            assert ans.get("error", {}).get("code") != -32601, (new, old, ans)


@pytest.fixture(scope="module")
def client() -> Iterator[a2a.A2aClient]:
    p = HostilePeer()
    yield a2a.A2aClient.connect_sync(p.url("ok"), allow_unsigned=True)
    p.close()


def _kw(f: Callable[..., Any]) -> Dict[str, Any]:
    return {
        n: (p.default, p.annotation)
        for n, p in inspect.signature(f).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def test_siblings_have_the_same_explicit_keywords(client: a2a.A2aClient) -> None:
    base = _kw(a2a.A2aClient.send_message)
    assert "policy" in base and "metadata" in base
    sends: List[Callable[..., Any]] = [
        a2a.A2aClient.send_message_sync,
        a2a.A2aClient.send_task,
        a2a.A2aClient.send_task_sync,
    ]
    for f in sends:
        assert _kw(f) == base, f.__name__
    stream = {k: v for k, v in base.items() if k != "return_immediately"}
    streams: List[Callable[..., Any]] = [a2a.A2aClient.stream_task, a2a.A2aClient.stream_task_sync]
    for f in streams:
        kw = _kw(f)
        assert kw.pop("stream_timeout")[0] is None
        assert kw == stream, f.__name__
    assert _kw(a2a.A2aClient.connect_sync) == _kw(a2a.A2aClient.connect)
    for f in sends + streams:
        params: List[inspect.Parameter] = list(inspect.signature(f).parameters.values())
        assert all(p.kind is not inspect.Parameter.VAR_KEYWORD for p in params), f.__name__


def test_misspelt_keywords_raise(client: a2a.A2aClient) -> None:
    policy = a2a.TaskPolicy(max_tokens=1)
    calls: List[Callable[[], Any]] = [
        lambda: client.send_message_sync("x", polciy=policy),  # type: ignore[call-arg]
        lambda: client.send_task_sync("x", contxt_id="c"),  # type: ignore[call-arg]
        lambda: client.stream_task("x", polciy=policy),  # type: ignore[call-arg]
        lambda: client.stream_task_sync("x", stream_timout=1.0),  # type: ignore[call-arg]
        lambda: client.resubscribe_sync("t", stream_timout=1.0),  # type: ignore[call-arg]
        lambda: a2a.A2aClient.connect_sync("http://127.0.0.1:9/", allow_unsinged=True),  # type: ignore[call-arg]
    ]
    for call in calls:
        with pytest.raises(TypeError, match="unexpected keyword"):
            call()
