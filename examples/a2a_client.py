"""Talk to any A2A 1.0 agent (for example one built on the official a2a-sdk).

    python examples/a2a_client.py http://127.0.0.1:9999 --agent-id <hex>   # pinned, verified card
    python examples/a2a_client.py http://127.0.0.1:9999 --unsigned         # test agents only

Sends one task and streams a second one; Ctrl-C while streaming closes the
HTTP stream cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Optional

import ruvector_a2a as a2a


async def main(url: str, agent_id: Optional[str], unsigned: bool, text: str) -> None:
    client = await a2a.A2aClient.connect(
        url,
        expected_agent_id=agent_id,
        allow_unsigned=unsigned,
        timeout=10.0,
        budget=a2a.Budget(max_tasks=10),
    )
    card = client.card
    signer = card.verification.scheme if card.verification else "?"
    print(f"{card.name} v{card.version} — skills: {[s.id for s in card.skills]} — card signature: {signer}")

    reply = await client.send_message(text)
    if isinstance(reply, a2a.Task):
        print("task", reply.id, reply.state.value, [a.text for a in reply.artifacts])
    else:
        print("message:", reply.text)

    if card.capabilities.streaming:
        async with client.stream_task(text) as stream:
            async for update in stream:
                print(
                    f"  {update.kind:8} {update.state.value if update.state else ''}",
                    update.artifact.text if update.artifact else "",
                )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--agent-id", help="pin the card's signing key (hex SHAKE-256 agent id)")
    ap.add_argument("--unsigned", action="store_true", help="accept an unsigned card (tests only)")
    ap.add_argument("--text", default="hello")
    args = ap.parse_args()
    asyncio.run(main(args.url, args.agent_id, args.unsigned, args.text))
