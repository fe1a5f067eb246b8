"""A short sampled byte-flip / truncation sweep (issue 10) over a real
signed agent card and a real SSE task stream of this SDK, through the fuzz
targets of ``fuzz_a2a``: every mutation gives a clean RuVectorError or the
identical parse (the signed card's own; the reference parse of the stream)."""

from __future__ import annotations

import http.client
import json
import random
from typing import Callable, List

import fuzz_a2a
import pytest

import ruvector_a2a as a2a


def mutations(data: bytes, rng: random.Random, flips: int, cuts: int) -> List[bytes]:
    out: List[bytes] = []
    for _ in range(flips):
        i = rng.randrange(len(data))
        b = bytearray(data)
        b[i] ^= 1 << rng.randrange(8)
        out.append(bytes(b))
    for _ in range(cuts):
        out.append(data[: rng.randrange(len(data))])
    return out


def real_sse_stream() -> bytes:
    """The raw SSE answer of this SDK's server to SendStreamingMessage."""
    p = fuzz_a2a.Peers.get()
    port = int(p.server.url.rstrip("/").rsplit(":", 1)[1])
    req = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "SendStreamingMessage",
        "params": {"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "héllo"}]}},
    }
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/", body=json.dumps(req), headers={"Content-Type": "application/json"})
        body = conn.getresponse().read()
    finally:
        conn.close()
    assert body.count(b"data: ") >= 4, body
    return body.replace(b'"id":7', b'"id":' + fuzz_a2a.ID_TOKEN)


def test_targets_accept_their_seeds() -> None:
    targets = fuzz_a2a.targets()
    seeds = fuzz_a2a.seeds()
    assert set(targets) == set(seeds) == {"card_json", "card_signed", "rpc_response", "rpc_request", "sse_stream"}
    for name, target in targets.items():
        for seed in seeds[name]:
            target(seed)
        target(b"")
        target(b"\xff\xfe{")


def test_signed_card_sweep() -> None:
    raw = fuzz_a2a.seeds()["card_signed"][0]
    _, ref = fuzz_a2a._signed_reference(fuzz_a2a.Peers.get().url)  # pyright: ignore[reportPrivateUsage]
    assert ref.security_requirements == [{"bearer": []}] and ref.agent_id == a2a.agent_id_of(fuzz_a2a.JWK)
    for m in mutations(raw, random.Random(10), flips=60, cuts=20):
        fuzz_a2a.card_signed(m)  # clean refusal, or the signed card's own parse


def test_sse_stream_sweep() -> None:
    body = real_sse_stream()
    got: List[a2a.TaskUpdate] = []
    p = fuzz_a2a.Peers.get()
    fuzz_a2a._Replay.body, fuzz_a2a._Replay.ctype = body, "text/event-stream"  # pyright: ignore[reportPrivateUsage]
    with p.client.stream_task_sync("x") as s:
        got.extend(s)
    assert got[-1].state is a2a.TaskState.COMPLETED
    assert any(u.artifact is not None and u.artifact.text == "echo: héllo" for u in got)
    for m in mutations(body, random.Random(11), flips=60, cuts=20):
        fuzz_a2a.sse_stream(m)  # clean error, or exactly the reference parse


@pytest.mark.parametrize("name", ["rpc_response", "rpc_request", "card_json"])
def test_short_sweep_of_the_other_targets(name: str) -> None:
    target: Callable[[bytes], None] = fuzz_a2a.targets()[name]
    rng = random.Random(12)
    for seed in fuzz_a2a.seeds()[name]:
        for m in mutations(seed, rng, flips=15, cuts=5):
            target(m)
