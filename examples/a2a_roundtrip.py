"""Host an A2A agent and talk to it, in one process (A2A 1.0 over loopback).

    python examples/a2a_roundtrip.py

The server signs its card with a fresh Ed25519 key; the client pins the
agent id of that key, so a card signed by anyone else would be refused.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, Union

import ruvector_a2a as a2a


async def shout(message: a2a.Message, ctx: a2a.TaskContext) -> AsyncIterator[Union[str, a2a.TaskState]]:
    """Streams the message back word by word, upper-cased."""
    yield a2a.TaskState.WORKING
    for word in message.text.split():
        await asyncio.sleep(0.01)
        yield word.upper()


async def main() -> None:
    key = a2a.generate_private_key()
    card = a2a.AgentCard(
        name="shouter",
        description="repeats what you say, louder",
        capabilities=a2a.AgentCapabilities(streaming=True),
        skills=[a2a.AgentSkill(id="shout", name="Shout", description="upper-cases text", tags=["text"])],
    )
    async with a2a.A2aServer(card, shout, private_key=key) as server:
        agent_id = a2a.agent_id_of(a2a.public_key_jwk(key))
        client = await a2a.A2aClient.connect(server.url, expected_agent_id=agent_id)
        print(f"connected to {client.card.name!r} at {client.endpoint} (agent id {agent_id[:16]}…)")

        task = await client.send_task("hello a2a world", skill="shout", policy=a2a.TaskPolicy(max_duration_ms=5_000))
        print("task", task.id[:8], task.state.value, "→", [a.text for a in task.artifacts])

        async for update in client.stream_task("stream me please"):
            if update.kind == "artifact" and update.artifact is not None:
                print("  artifact chunk:", update.artifact.text)
            elif update.state is not None:
                print("  state:", update.state.value)

        page = await client.list_tasks()
        print(f"the agent holds {page.total_size} tasks")


if __name__ == "__main__":
    asyncio.run(main())
