"""ruvector_a2a.A2aServer against the official a2a-sdk client (A2A 1.0)."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Iterator, List

import pytest
from a2a.client import ClientConfig, create_client
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    SubscribeToTaskRequest,
    TaskState,
)
from a2a.utils.signing import SignatureVerificationError, create_signature_verifier
from jwt import PyJWK

import ruvector_a2a as a2a


async def agent(msg: a2a.Message, ctx: a2a.TaskContext) -> Any:
    if msg.text == "slow":
        while True:
            await asyncio.sleep(0.05)
            await ctx.working("tick")
    if msg.text == "boom":
        raise RuntimeError("boom")
    if msg.text == "gen":
        return gen(msg)
    await ctx.add_artifact("echo: " + msg.text, name="echo")
    return "done"


async def gen(msg: a2a.Message) -> AsyncIterator[Any]:
    for w in ("a", "b", "c"):
        yield w


async def handler(msg: a2a.Message, ctx: a2a.TaskContext) -> Any:
    if msg.text == "gen":
        # an async generator handler is detected by the server; emulate via helper
        out: List[str] = []
        async for w in gen(msg):
            out.append(w)
            await ctx.add_artifact(w, name="chunk")
        return "".join(out)
    return await agent(msg, ctx)


KEY = a2a.generate_private_key()
JWK = a2a.public_key_jwk(KEY)
CARD = a2a.AgentCard(
    name="rv-echo",
    description="echo agent on ruvector_a2a",
    capabilities=a2a.AgentCapabilities(streaming=True),
    skills=[a2a.AgentSkill(id="echo", name="Echo", description="echoes", tags=["echo"])],
)


@pytest.fixture(scope="module")
def server() -> Iterator[a2a.A2aServer]:
    with a2a.A2aServer(CARD, handler, private_key=KEY) as s:
        yield s


def _msg(text: str, mid: str = "") -> SendMessageRequest:
    return SendMessageRequest(
        message=Message(message_id=mid or f"m-{text}", role=Role.ROLE_USER, parts=[Part(text=text)])
    )


def _verifier() -> Any:
    return create_signature_verifier(lambda kid, jku: PyJWK(JWK), ["EdDSA"])


def test_sdk_verifies_our_signed_card(server: a2a.A2aServer) -> None:
    async def main() -> None:
        c = await create_client(server.url, signature_verifier=_verifier())
        await c.close()
        other = a2a.public_key_jwk(a2a.generate_private_key())
        with pytest.raises(SignatureVerificationError):
            await create_client(
                server.url, signature_verifier=create_signature_verifier(lambda kid, jku: PyJWK(other), ["EdDSA"])
            )

    asyncio.run(main())
    assert server.url.startswith("http://127.0.0.1:")
    assert server.card.agent_id == a2a.agent_id_of(JWK)


def test_sdk_send_get_list_cancel(server: a2a.A2aServer) -> None:
    async def main() -> None:
        c = await create_client(server.url, client_config=ClientConfig(streaming=False), signature_verifier=_verifier())
        events = [e async for e in c.send_message(_msg("hi"))]
        assert len(events) == 1
        task = events[0].task
        assert task.status.state == TaskState.TASK_STATE_COMPLETED
        assert task.artifacts[0].parts[0].text == "echo: hi"
        assert task.status.message.parts[0].text == "done"
        got = await c.get_task(GetTaskRequest(id=task.id))
        assert got.id == task.id and got.status.state == TaskState.TASK_STATE_COMPLETED
        lt = await c.list_tasks(ListTasksRequest())
        assert task.id in [t.id for t in lt.tasks]
        (only,) = [e async for e in c.send_message(_msg("boom"))]
        boom = only.task
        assert boom.status.state == TaskState.TASK_STATE_FAILED
        assert "boom" in boom.status.message.parts[0].text
        await c.close()

    asyncio.run(main())


def test_sdk_stream_and_cancel(server: a2a.A2aServer) -> None:
    async def main() -> None:
        c = await create_client(server.url, client_config=ClientConfig(streaming=True), signature_verifier=_verifier())
        events = [e async for e in c.send_message(_msg("yo"))]
        kinds = [e.WhichOneof("payload") for e in events]
        assert kinds[0] == "task" and "artifact_update" in kinds
        assert events[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
        tid = None
        async for e in c.send_message(_msg("slow")):
            tid = e.task.id if e.HasField("task") else e.status_update.task_id
            break
        assert tid
        await asyncio.sleep(0.2)
        sub_events: List[Any] = []

        async def subscribe() -> None:
            async for e in c.subscribe(SubscribeToTaskRequest(id=tid)):
                sub_events.append(e)

        st = asyncio.ensure_future(subscribe())
        await asyncio.sleep(0.2)
        ct = await c.cancel_task(CancelTaskRequest(id=tid))
        assert ct.status.state == TaskState.TASK_STATE_CANCELED
        await asyncio.wait_for(st, 5)
        assert sub_events[0].HasField("task")
        assert sub_events[-1].status_update.status.state == TaskState.TASK_STATE_CANCELED
        await c.close()

    asyncio.run(main())
    assert server.stats()["streams"] == 0


def test_our_client_against_our_server(server: a2a.A2aServer) -> None:
    async def main() -> None:
        c = await a2a.A2aClient.connect(server.url, expected_agent_id=a2a.agent_id_of(JWK))
        t = await c.send_task("x")
        assert t.artifacts[0].text == "echo: x" and t.status.message is not None
        ups = [u async for u in c.stream_task("gen")]
        assert [u.artifact.text for u in ups if u.artifact is not None] == ["a", "b", "c"]
        assert ups[-1].status is not None and ups[-1].status.message is not None
        assert ups[-1].status.message.text == "abc"

    asyncio.run(main())
