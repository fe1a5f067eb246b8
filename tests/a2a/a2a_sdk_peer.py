"""A small agent served by the official ``a2a-sdk`` (the real peer in the tests).

Run as ``python a2a_sdk_peer.py PORT [--sign KEYFILE] [--compat]``; prints ``READY`` once
listening on 127.0.0.1. The agent:

* text ``slow`` — works until cancelled (status updates every 50 ms);
* text ``fail`` — ends in the failed state;
* anything else — emits ``working``, one artifact echoing the text, ``completed``.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any, Dict

import uvicorn
from a2a.helpers.proto_helpers import new_task_from_user_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    TaskState,
)
from starlette.applications import Starlette


class EchoAgent(AgentExecutor):
    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        msg = context.message
        assert msg is not None
        text = " ".join(p.text for p in msg.parts if p.HasField("text"))
        task = context.current_task
        if task is None:
            task = new_task_from_user_message(msg)
            await event_queue.enqueue_event(task)
        up = TaskUpdater(event_queue, task.id, task.context_id)
        await up.start_work()
        if text == "slow":
            while True:
                await asyncio.sleep(0.05)
                await up.update_status(TaskState.TASK_STATE_WORKING)
        if text == "fail":
            await up.failed()
            return
        await up.add_artifact([new_text_part("echo: " + text)], name="echo")
        await up.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        task = context.current_task
        assert task is not None
        up = TaskUpdater(event_queue, task.id, task.context_id)
        await up.cancel()


def make_card(port: int, compat: bool) -> Any:
    ifaces = [AgentInterface(url=f"http://127.0.0.1:{port}/", protocol_binding="JSONRPC", protocol_version="1.0")]
    if compat:
        ifaces.append(
            AgentInterface(url=f"http://127.0.0.1:{port}/", protocol_binding="JSONRPC", protocol_version="0.3")
        )
    return AgentCard(
        name="sdk-echo",
        description="echo agent on the official a2a-sdk",
        version="1.0.0",
        supported_interfaces=ifaces,
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[AgentSkill(id="echo", name="Echo", description="echoes", tags=["echo"])],
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--sign", help="PEM file of an Ed25519 private key; signs the card (EdDSA, kid=k1)")
    ap.add_argument("--compat", action="store_true", help="also serve A2A 0.3")
    ap.add_argument("--push", action="store_true", help="push notifications (loopback webhooks allowed, for tests)")
    args = ap.parse_args()
    card = make_card(args.port, args.compat)
    if args.push:
        card.capabilities.push_notifications = True
    if args.sign:
        from a2a.utils.signing import create_agent_card_signer

        with open(args.sign, "rb") as f:
            key = f.read()
        card = create_agent_card_signer(key, {"kid": "k1", "alg": "EdDSA", "jku": None, "typ": "JOSE"})(card)
    extra: Dict[str, Any] = {}
    if args.push:
        import httpx
        from a2a.server.tasks import BasePushNotificationSender, InMemoryPushNotificationConfigStore

        store = InMemoryPushNotificationConfigStore()
        extra = {
            "push_config_store": store,
            "push_sender": BasePushNotificationSender(httpx.AsyncClient(), store),
        }
    handler = DefaultRequestHandler(
        agent_executor=EchoAgent(), task_store=InMemoryTaskStore(), agent_card=card, **extra
    )
    routes = create_agent_card_routes(card) + create_jsonrpc_routes(handler, "/", enable_v0_3_compat=args.compat)
    app = Starlette(routes=routes)
    config = uvicorn.Config(app, host="127.0.0.1", port=args.port, log_level="warning")
    server = uvicorn.Server(config)

    async def run() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        print("READY", flush=True)
        await task

    asyncio.run(run())


if __name__ == "__main__":
    main()
