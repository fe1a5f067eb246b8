"""Host a Python agent over A2A 1.0 with a signed card.

    python examples/a2a_server.py --port 9999

Prints the URL and the agent id clients should pin. Stop with Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import threading

import ruvector_a2a as a2a


async def count(message: a2a.Message, ctx: a2a.TaskContext) -> str:
    """Counts the words of the message, reporting progress on the way."""
    words = message.text.split()
    await ctx.working(f"counting {len(words)} words")
    for i, word in enumerate(words, 1):
        await ctx.add_artifact(f"{i}: {word}", name="words", append=i > 1)
        await asyncio.sleep(0.01)
    return f"{len(words)} words"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    key = a2a.generate_private_key()
    card = a2a.AgentCard(
        name="word-counter",
        description="counts words",
        capabilities=a2a.AgentCapabilities(streaming=True),
        skills=[a2a.AgentSkill(id="count", name="Count", description="counts words", tags=["text"])],
    )
    stop = threading.Event()

    def on_sigint(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_sigint)
    with a2a.A2aServer(card, count, port=args.port, private_key=key) as server:
        print("serving", server.url)
        print("agent id", server.card.agent_id)
        stop.wait()


if __name__ == "__main__":
    main()
