"""The rvAgent dialect against a real rvAgent peer: ``tools/rvagent-peer``
serves the upstream ``rvagent-a2a`` 0.1.0 server (its runner: ``echo X``,
``stream N``, ``sleep MS``). Card verification (Ed25519, agent id = SHAKE-256
of the key), send, get, stream over the SSE side channel, resubscribe, cancel
— and the crate's defects kept away from the caller."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List

import pytest
from conftest import RvAgentPeer

import ruvector_a2a as a2a


def texts(parts: List[a2a.Part]) -> List[str]:
    return [p.text for p in parts if p.text is not None]


def test_connect_verifies_the_ed25519_card_and_picks_the_dialect(rvagent_peer: RvAgentPeer) -> None:
    c = a2a.A2aClient.connect_sync(rvagent_peer.url, expected_agent_id=rvagent_peer.agent_id)
    assert c.protocol_version == "rvagent"
    assert c.card.name == "rvagent-peer"
    assert c.card.agent_id == rvagent_peer.agent_id
    assert c.card.verification is not None and c.card.verification.scheme == "rvagent"
    assert [s.id for s in c.card.skills] == ["echo"]
    # "auto" finds it at agent.json after agent-card.json answers 404.
    assert a2a.A2aClient.connect_sync(rvagent_peer.url).card.agent_id == rvagent_peer.agent_id


def test_a_pinned_agent_id_of_another_key_is_refused(rvagent_peer: RvAgentPeer) -> None:
    with pytest.raises(a2a.CardSignatureInvalid):
        a2a.A2aClient.connect_sync(rvagent_peer.url, expected_agent_id="ab" * 32)


def test_an_unsigned_rvagent_card_needs_allow_unsigned(unsigned_rvagent_peer: RvAgentPeer) -> None:
    with pytest.raises(a2a.CardSignatureInvalid, match="unsigned"):
        a2a.A2aClient.connect_sync(unsigned_rvagent_peer.url)
    c = a2a.A2aClient.connect_sync(unsigned_rvagent_peer.url, allow_unsigned=True)
    assert c.protocol_version == "rvagent" and c.card.agent_id is None


@pytest.fixture()
def card_server() -> Iterator[Dict[str, Any]]:
    """Serves whatever card JSON the test puts in ``state["card"]`` at agent.json."""
    state: Dict[str, Any] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            body = json.dumps(state["card"]).encode() if self.path == "/.well-known/agent.json" else b""
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{srv.server_address[1]!s}"
    yield state
    srv.shutdown()
    srv.server_close()


def _real_card(peer: RvAgentPeer) -> Dict[str, Any]:
    with urllib.request.urlopen(peer.url + "/.well-known/agent.json", timeout=10) as r:
        card: Dict[str, Any] = json.loads(r.read())
    return card


def test_a_tampered_rvagent_card_is_refused(rvagent_peer: RvAgentPeer, card_server: Dict[str, Any]) -> None:
    card = _real_card(rvagent_peer)
    card_server["card"] = card
    assert a2a.A2aClient.connect_sync(card_server["url"]).card.agent_id == rvagent_peer.agent_id
    card_server["card"] = dict(card, description="now does something else")
    with pytest.raises(a2a.CardSignatureInvalid, match="tampered"):
        a2a.A2aClient.connect_sync(card_server["url"])
    forged = json.loads(json.dumps(card))
    forged["metadata"]["ruvector"]["signature"]["signature"] = "00" * 64
    card_server["card"] = forged
    with pytest.raises(a2a.CardSignatureInvalid):
        a2a.A2aClient.connect_sync(card_server["url"])
    # rvagent-a2a's own client takes an unparseable signature for a missing
    # one and accepts the card; here it is refused.
    garbled = json.loads(json.dumps(card))
    garbled["metadata"]["ruvector"]["signature"] = "garbage"
    card_server["card"] = garbled
    with pytest.raises(a2a.CardSignatureInvalid):
        a2a.A2aClient.connect_sync(card_server["url"])


def test_send_and_get(rvagent_peer: RvAgentPeer) -> None:
    c = a2a.A2aClient.connect_sync(rvagent_peer.url)
    t = c.send_task_sync("echo hello", metadata={"trace": "t1"})
    assert t.state is a2a.TaskState.COMPLETED
    assert t.status.message is not None and texts(t.status.message.parts) == ["echo: hello"]
    assert [texts(a.parts) for a in t.artifacts] == [["echo: hello"]]
    assert t.artifacts[0].name == "echo" and t.artifacts[0].artifact_id
    assert t.metadata == {"trace": "t1"}
    got = c.get_task_sync(t.id)
    assert (got.id, got.state, [texts(a.parts) for a in got.artifacts]) == (t.id, t.state, [["echo: hello"]])
    with pytest.raises(a2a.A2aError) as ei:
        c.get_task_sync("no-such-task")
    assert vars(ei.value)["code"] == -32010


def test_async_send_with_a_chosen_task_id(rvagent_peer: RvAgentPeer) -> None:
    async def main() -> a2a.Task:
        c = await a2a.A2aClient.connect(rvagent_peer.url)
        return await c.send_task("echo async", task_id="rv-async-1")

    t = asyncio.run(main())
    assert (t.id, t.state, texts(t.artifacts[0].parts)) == ("rv-async-1", a2a.TaskState.COMPLETED, ["echo: async"])


def _check_stream_3(ups: List[a2a.TaskUpdate]) -> None:
    states = [u.state for u in ups if u.kind == "status"]
    assert states == [a2a.TaskState.SUBMITTED] + [a2a.TaskState.WORKING] * 3 + [a2a.TaskState.COMPLETED]
    arts = [u for u in ups if u.kind == "artifact"]
    assert [texts(u.artifact.parts) for u in arts if u.artifact is not None] == [
        ["chunk 1/3"],
        ["chunk 2/3"],
        ["chunk 3/3"],
    ]
    assert [u.append for u in arts] == [False, True, True] and arts[-1].last_chunk
    assert ups[-1].is_final and ups[-1].kind == "status"
    assert len({u.task_id for u in ups}) == 1


def test_stream_over_the_side_channel(rvagent_peer: RvAgentPeer) -> None:
    async def main() -> List[a2a.TaskUpdate]:
        c = await a2a.A2aClient.connect(rvagent_peer.url)
        s = c.stream_task("stream 3")
        assert s.task_id  # chosen by the client before anything is sent
        ups = await s.collect()
        assert ups[0].task_id == s.task_id
        return ups

    _check_stream_3(asyncio.run(main()))


def test_stream_sync(rvagent_peer: RvAgentPeer) -> None:
    c = a2a.A2aClient.connect_sync(rvagent_peer.url)
    with c.stream_task_sync("stream 3") as s:
        ups = list(s)
    _check_stream_3(ups)
    # The task is stored once it has finished.
    assert c.get_task_sync(ups[0].task_id or "").state is a2a.TaskState.COMPLETED


def test_a_sync_stream_inside_a_running_loop_is_refused(rvagent_peer: RvAgentPeer) -> None:
    c = a2a.A2aClient.connect_sync(rvagent_peer.url)

    async def main() -> None:
        with pytest.raises(a2a.A2aError, match="running event loop"):
            next(iter(c.stream_task_sync("echo x")))

    asyncio.run(main())


def test_cancel_a_running_task(rvagent_peer: RvAgentPeer) -> None:
    async def main() -> None:
        c = await a2a.A2aClient.connect(rvagent_peer.url)
        running = asyncio.ensure_future(c.send_task("sleep 20000", task_id="rv-sleep-1"))
        await asyncio.sleep(0.3)
        t = await c.cancel_task("rv-sleep-1")
        assert t.state is a2a.TaskState.CANCELED
        finished = await asyncio.wait_for(running, 10)
        assert finished.state is a2a.TaskState.CANCELED

    asyncio.run(main())


def test_cancel_a_stream_midway(rvagent_peer: RvAgentPeer) -> None:
    async def main() -> List[a2a.TaskUpdate]:
        c = await a2a.A2aClient.connect(rvagent_peer.url)
        ups: List[a2a.TaskUpdate] = []
        async with c.stream_task("stream 100") as s:
            async for u in s:
                ups.append(u)
                if len(ups) == 4:
                    await c.cancel_task(s.task_id or "")
        return ups

    ups = asyncio.run(main())
    assert ups[-1].state is a2a.TaskState.CANCELED and ups[-1].is_final
    assert len(ups) < 100


def test_the_crates_cancel_defects_do_not_reach_the_caller(rvagent_peer: RvAgentPeer) -> None:
    """rvagent-a2a answers ``canceled`` for any id and flips a completed task
    to canceled; the client refuses both before sending."""
    c = a2a.A2aClient.connect_sync(rvagent_peer.url)
    with pytest.raises(a2a.A2aError, match="not found") as ei:
        c.cancel_task_sync("never-sent")
    assert vars(ei.value)["code"] == -32001
    done = c.send_task_sync("echo x")
    with pytest.raises(a2a.A2aError, match="completed") as ei:
        c.cancel_task_sync(done.id)
    assert vars(ei.value)["code"] == -32002
    assert c.get_task_sync(done.id).state is a2a.TaskState.COMPLETED


def test_resubscribe_replays_a_finished_task(rvagent_peer: RvAgentPeer) -> None:
    c = a2a.A2aClient.connect_sync(rvagent_peer.url)
    t = c.send_task_sync("stream 2")
    with c.resubscribe_sync(t.id) as s:
        ups = list(s)
    assert [u.state for u in ups] == [a2a.TaskState.SUBMITTED] + [a2a.TaskState.WORKING] * 2 + [a2a.TaskState.COMPLETED]


def test_what_the_dialect_lacks_is_refused_before_sending(rvagent_peer: RvAgentPeer) -> None:
    c = a2a.A2aClient.connect_sync(rvagent_peer.url)
    with pytest.raises(a2a.A2aError, match="ListTasks"):
        c.list_tasks_sync()
    with pytest.raises(a2a.A2aError, match="return_immediately"):
        c.send_task_sync("echo x", return_immediately=True)
    with pytest.raises(a2a.A2aError, match="PushNotificationConfig"):
        c.set_push_config_sync("t", "https://example.invalid/hook")
    with pytest.raises(a2a.PolicyViolation, match="skill"):
        c.send_task_sync("echo x", skill="no-such-skill")


def test_policy_travels_and_the_peer_enforces_its_skill_list(rvagent_peer: RvAgentPeer) -> None:
    c = a2a.A2aClient.connect_sync(rvagent_peer.url)
    ok = c.send_task_sync("echo p", policy=a2a.TaskPolicy(max_tokens=100, max_duration_ms=10_000))
    assert ok.state is a2a.TaskState.COMPLETED
    # The client checks allowed_skills first; with the card's skill allowed
    # the peer's own check (snake_case policy) passes too.
    ok = c.send_task_sync("echo q", skill="echo", policy=a2a.TaskPolicy(allowed_skills=frozenset({"echo"})))
    assert texts(ok.artifacts[0].parts) == ["echo: q"]
