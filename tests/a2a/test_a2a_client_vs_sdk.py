"""ruvector_a2a.A2aClient against the official a2a-sdk server (A2A 1.0)."""

from __future__ import annotations

import asyncio
import time
from typing import Dict, List, cast

import pytest
from a2a_peers import SdkPeer

import ruvector_a2a as a2a


def test_unsigned_card_is_refused_by_default(sdk_peer: SdkPeer) -> None:
    with pytest.raises(a2a.CardSignatureInvalid, match="unsigned"):
        a2a.A2aClient.connect_sync(sdk_peer.url)


def test_unsigned_card_with_pin_is_refused(sdk_peer: SdkPeer) -> None:
    with pytest.raises(a2a.CardSignatureInvalid):
        a2a.A2aClient.connect_sync(sdk_peer.url, allow_unsigned=True, expected_agent_id="00" * 32)


def test_send_get_list_cancel_async(sdk_peer: SdkPeer) -> None:
    async def main() -> None:
        c = await a2a.A2aClient.connect(sdk_peer.url, allow_unsigned=True)
        assert c.card.name == "sdk-echo"
        assert c.card.capabilities.streaming
        assert [s.id for s in c.card.skills] == ["echo"]
        assert c.card.verification is not None and c.card.verification.scheme == "none"
        t = await c.send_task("hello")
        assert t.state is a2a.TaskState.COMPLETED
        assert t.artifacts[0].text == "echo: hello"
        assert t.history[0].text == "hello"
        got = await c.get_task(t.id)
        assert got.id == t.id and got.state is a2a.TaskState.COMPLETED
        page = await c.list_tasks()
        assert t.id in {x.id for x in page.tasks}
        slow = await c.send_task("slow", return_immediately=True)
        assert not slow.state.is_final
        await asyncio.sleep(0.1)
        assert (await c.get_task(slow.id)).state is a2a.TaskState.WORKING
        cancelled = await c.cancel_task(slow.id)
        assert cancelled.state is a2a.TaskState.CANCELED
        with pytest.raises(a2a.A2aError) as ei:
            await c.get_task("no-such-task")
        assert vars(ei.value)["code"] == -32001
        failed = await c.send_task("fail")
        assert failed.state is a2a.TaskState.FAILED

    asyncio.run(main())


def test_stream_ends_at_final_state(sdk_peer: SdkPeer) -> None:
    async def main() -> List[a2a.TaskUpdate]:
        c = await a2a.A2aClient.connect(sdk_peer.url, allow_unsigned=True)
        return [u async for u in c.stream_task("streamed")]

    ups = asyncio.run(main())
    kinds = [u.kind for u in ups]
    assert kinds[0] == "task" and kinds[-1] == "status"
    assert "artifact" in kinds
    art = next(u for u in ups if u.kind == "artifact")
    assert art.artifact is not None and art.artifact.text == "echo: streamed"
    assert ups[-1].state is a2a.TaskState.COMPLETED and ups[-1].is_final
    assert len({u.task_id for u in ups}) == 1


def test_stream_cancel_and_resubscribe(sdk_peer: SdkPeer) -> None:
    async def main() -> None:
        c = await a2a.A2aClient.connect(sdk_peer.url, allow_unsigned=True)
        s = c.stream_task("slow")
        n = 0
        async for _ in s:
            n += 1
            if n == 3:
                break
        await s.aclose()
        tid = s.task_id
        assert tid is not None
        r = c.resubscribe(tid)
        first = await r.__anext__()
        assert first.kind == "task" and first.task_id == tid
        second = await r.__anext__()
        assert second.state is a2a.TaskState.WORKING
        await c.cancel_task(tid)
        rest = [u async for u in r]
        assert rest and rest[-1].state is a2a.TaskState.CANCELED

    asyncio.run(main())


def test_asyncio_cancel_closes_stream(sdk_peer: SdkPeer) -> None:
    async def main() -> None:
        c = await a2a.A2aClient.connect(sdk_peer.url, allow_unsigned=True)
        s = c.stream_task("slow")

        async def consume() -> None:
            async for _ in s:
                pass

        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(StopAsyncIteration):
            await s.__anext__()
        assert s.task_id is not None
        await c.cancel_task(s.task_id)

    asyncio.run(main())


def test_sync_siblings(sdk_peer: SdkPeer) -> None:
    c = a2a.A2aClient.connect_sync(sdk_peer.url, allow_unsigned=True)
    t = c.send_task_sync("sync")
    assert t.state is a2a.TaskState.COMPLETED
    assert c.get_task_sync(t.id).artifacts[0].text == "echo: sync"
    assert c.list_tasks_sync(page_size=5).tasks
    with c.stream_task_sync("sync stream") as s:
        ups = list(s)
    assert ups[-1].state is a2a.TaskState.COMPLETED
    slow = c.send_task_sync("slow", return_immediately=True)
    assert c.cancel_task_sync(slow.id).state is a2a.TaskState.CANCELED


def test_policy_checked_before_sending(sdk_peer: SdkPeer) -> None:
    c = a2a.A2aClient.connect_sync(sdk_peer.url, allow_unsigned=True)
    before = len(c.list_tasks_sync(page_size=100).tasks)
    with pytest.raises(a2a.PolicyViolation, match="max_tokens"):
        c.send_task_sync("x", policy=a2a.TaskPolicy(max_tokens=10), estimated_tokens=11)
    with pytest.raises(a2a.PolicyViolation, match="skill"):
        c.send_task_sync("x", policy=a2a.TaskPolicy(allowed_skills=frozenset({"other"})), skill="echo")
    with pytest.raises(a2a.PolicyViolation, match="no skill"):
        c.send_task_sync("x", skill="translate")
    with pytest.raises(a2a.InvalidArgument):
        a2a.TaskPolicy(max_cost_usd=-1.0)
    assert len(c.list_tasks_sync(page_size=100).tasks) == before  # nothing was sent
    t = c.send_task_sync("ok", policy=a2a.TaskPolicy(max_tokens=100, allowed_skills=frozenset({"echo"})), skill="echo")
    assert t.state is a2a.TaskState.COMPLETED


def test_policy_duration_cancels_stream(sdk_peer: SdkPeer) -> None:
    async def main() -> None:
        c = await a2a.A2aClient.connect(sdk_peer.url, allow_unsigned=True)
        t0 = time.monotonic()
        s = c.stream_task("slow", policy=a2a.TaskPolicy(max_duration_ms=400))
        with pytest.raises(a2a.PolicyViolation, match="max_duration_ms"):
            async for _ in s:
                pass
        assert time.monotonic() - t0 < 3
        assert s.task_id is not None
        assert (await c.get_task(s.task_id)).state is a2a.TaskState.CANCELED

    asyncio.run(main())


def test_budget(sdk_peer: SdkPeer) -> None:
    budget = a2a.Budget(max_tasks=2, max_cost_usd=1.0)
    c = a2a.A2aClient.connect_sync(sdk_peer.url, allow_unsigned=True, budget=budget)
    pol = a2a.TaskPolicy(max_cost_usd=0.4)
    c.send_task_sync("1", policy=pol)
    c.send_task_sync("2", policy=pol)
    with pytest.raises(a2a.BudgetExceeded):
        c.send_task_sync("3", policy=pol)
    b2 = a2a.Budget(max_cost_usd=0.5)
    c2 = a2a.A2aClient.connect_sync(sdk_peer.url, allow_unsigned=True, budget=b2)
    c2.send_task_sync("1", policy=pol)
    with pytest.raises(a2a.BudgetExceeded, match="max_cost_usd"):
        c2.send_task_sync("2", policy=pol)
    with pytest.raises(a2a.BudgetExceeded):
        c2.send_task_sync("3")  # no cost declared under a cost budget
    assert b2.tasks == 1


def test_signed_sdk_card(signed_sdk_peer: SdkPeer, sdk_key: Dict[str, object]) -> None:
    jwk = cast(Dict[str, str], sdk_key["jwk"])
    c = a2a.A2aClient.connect_sync(signed_sdk_peer.url, trusted_keys=[jwk])
    assert c.card.verification is not None
    assert c.card.verification.scheme == "jws" and c.card.verification.alg == "EdDSA"
    assert c.card.agent_id == a2a.agent_id_of(jwk)
    a2a.A2aClient.connect_sync(signed_sdk_peer.url, trusted_keys={"k1": jwk}, expected_agent_id=c.card.agent_id)
    # The card names kid k1 but does not embed the key: without trusted keys it cannot verify.
    with pytest.raises(a2a.CardSignatureInvalid, match="trusted_keys"):
        a2a.A2aClient.connect_sync(signed_sdk_peer.url)
    other = a2a.public_key_jwk(a2a.generate_private_key(), kid="k1")
    with pytest.raises(a2a.CardSignatureInvalid):
        a2a.A2aClient.connect_sync(signed_sdk_peer.url, trusted_keys=[other])
    with pytest.raises(a2a.CardSignatureInvalid):
        a2a.A2aClient.connect_sync(signed_sdk_peer.url, trusted_keys=[jwk], expected_agent_id="ab" * 32)
    assert c.send_task_sync("signed").state is a2a.TaskState.COMPLETED
