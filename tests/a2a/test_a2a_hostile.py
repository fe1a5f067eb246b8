"""Hostile peers on loopback: the client raises TransportError /
CardSignatureInvalid / PolicyViolation with bounded memory and no hang."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any, Dict, Iterator

import pytest
from a2a_hostile_peer import HostilePeer, card_for

import ruvector_a2a as a2a

CAP = 256 * 1024


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@pytest.fixture(scope="module")
def peer() -> Iterator[HostilePeer]:
    p = HostilePeer()
    yield p
    p.close()


def connect(peer: HostilePeer, mode: str, **kw: Any) -> a2a.A2aClient:
    opts: Dict[str, Any] = dict(
        allow_unsigned=True, timeout=2.0, max_response_bytes=CAP, max_event_bytes=CAP, stream_idle_timeout=1.0
    )
    opts.update(kw)
    return a2a.A2aClient.connect_sync(peer.url(mode), **opts)


@pytest.mark.parametrize(
    "mode,match",
    [
        ("bigcard", "announced"),
        ("bigcard-chunked", "max_response_bytes"),
        ("badcard", "malformed JSON"),
        ("slowloris", "timed out"),
    ],
)
def test_hostile_card(peer: HostilePeer, mode: str, match: str) -> None:
    before = rss_mb()
    t0 = time.monotonic()
    with pytest.raises(a2a.TransportError, match=match):
        connect(peer, mode)
    assert time.monotonic() - t0 < 4
    assert rss_mb() - before < 64


@pytest.mark.parametrize(
    "mode,match",
    [
        ("rpc-big", "max_response_bytes"),
        ("rpc-badjson", "malformed JSON"),
        ("rpc-wrongid", "id"),
        ("rpc-html", "HTTP 502"),
        ("rpc-badtask", "Task"),
        ("rpc-hang", "timed out"),
    ],
)
def test_hostile_rpc(peer: HostilePeer, mode: str, match: str) -> None:
    c = connect(peer, mode)
    before = rss_mb()
    t0 = time.monotonic()
    with pytest.raises(a2a.TransportError, match=match):
        c.get_task_sync("t1")
    assert time.monotonic() - t0 < 4
    assert rss_mb() - before < 64


def test_hostile_rpc_async(peer: HostilePeer) -> None:
    async def main() -> None:
        c = await a2a.A2aClient.connect(peer.url("rpc-big"), allow_unsigned=True, max_response_bytes=CAP)
        with pytest.raises(a2a.TransportError):
            await c.send_task("x")

    asyncio.run(main())


@pytest.mark.parametrize(
    "mode,match",
    [
        ("sse-endless-line", "max_event_bytes"),
        ("sse-trickle", "stream_idle_timeout"),
        ("sse-keepalive", "stream_idle_timeout"),
        ("sse-malformed", "malformed event"),
        ("sse-badshape", "stream event"),
        ("sse-early-eof", "ended before"),
    ],
)
def test_hostile_sse(peer: HostilePeer, mode: str, match: str) -> None:
    async def main() -> None:
        c = await a2a.A2aClient.connect(
            peer.url(mode), allow_unsigned=True, timeout=2.0, max_event_bytes=CAP, stream_idle_timeout=1.0
        )
        with pytest.raises(a2a.TransportError, match=match):
            async for _ in c.stream_task("x"):
                pass

    before = rss_mb()
    t0 = time.monotonic()
    asyncio.run(main())
    assert time.monotonic() - t0 < 5
    assert rss_mb() - before < 64


def test_endless_events_are_bounded_by_policy(peer: HostilePeer) -> None:
    async def main() -> int:
        c = await a2a.A2aClient.connect(peer.url("sse-endless-events"), allow_unsigned=True)
        n = 0
        with pytest.raises(a2a.PolicyViolation):
            async for _ in c.stream_task("x", policy=a2a.TaskPolicy(max_duration_ms=700)):
                n += 1
        return n

    before = rss_mb()
    t0 = time.monotonic()
    n = asyncio.run(main())
    assert n > 10
    assert time.monotonic() - t0 < 4
    assert rss_mb() - before < 64


def test_endless_events_sync_and_early_close(peer: HostilePeer) -> None:
    c = connect(peer, "sse-endless-events")
    with c.stream_task_sync("x") as s:
        for i, _ in enumerate(s):
            if i == 50:
                break
    with pytest.raises(StopIteration):
        next(s)


# ---------------------------------------------------------------- forged cards

KEY = a2a.generate_private_key()
JWK = a2a.public_key_jwk(KEY)
AGENT_ID = a2a.agent_id_of(JWK)


def signed(peer: HostilePeer, mode: str, key: bytes = KEY) -> Dict[str, Any]:
    return a2a.sign_card(card_for(peer.base, mode), key)


def test_forged_cards_over_http(peer: HostilePeer) -> None:
    good = signed(peer, "forged")
    peer.set_card("forged", good)
    try:
        c = connect(peer, "forged", allow_unsigned=False, expected_agent_id=AGENT_ID)
        assert c.card.agent_id == AGENT_ID
        tampered = json.loads(json.dumps(good))
        tampered["name"] = "evil"
        peer.set_card("forged", tampered)
        with pytest.raises(a2a.CardSignatureInvalid, match="does not match"):
            connect(peer, "forged", allow_unsigned=False)
        injected = json.loads(json.dumps(good))
        injected["securitySchemes"] = {"none": {"httpAuthSecurityScheme": {"scheme": "none"}}}
        peer.set_card("forged", injected)
        with pytest.raises(a2a.CardSignatureInvalid):
            connect(peer, "forged", allow_unsigned=True)
        resigned = signed(peer, "forged", a2a.generate_private_key())
        peer.set_card("forged", resigned)
        connect(peer, "forged", allow_unsigned=False)  # self-consistent, but...
        with pytest.raises(a2a.CardSignatureInvalid, match="expected"):
            connect(peer, "forged", expected_agent_id=AGENT_ID)  # ...not the pinned agent
        with pytest.raises(a2a.CardSignatureInvalid):
            connect(peer, "forged", trusted_keys=[JWK])
    finally:
        peer.set_card("forged", None)


def _b64(d: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "sigs",
    [
        "garbage",
        [{"protected": "!!!", "signature": "x"}],
        [{"protected": _b64({"alg": "none", "jwk": {"kty": "OKP", "crv": "Ed25519", "x": "AA"}}), "signature": ""}],
        [{"protected": _b64({"alg": "HS256", "kid": "k"}), "signature": "AAAA"}],
        [{"protected": _b64({"alg": "EdDSA", "crit": ["b64"], "jwk": JWK}), "signature": "AAAA"}],
        [{"protected": _b64({"alg": "EdDSA", "jwk": JWK}), "signature": "AAAA"}],
        [{"protected": _b64({"alg": "ES256", "jwk": JWK}), "signature": "AAAA"}],
        [{"protected": _b64([1, 2]), "signature": "AAAA"}],
        [{"signature": "AAAA"}],
    ],
)
def test_malformed_signatures(sigs: Any) -> None:
    card = card_for("http://127.0.0.1:1/", "m")
    card["signatures"] = sigs
    with pytest.raises(a2a.CardSignatureInvalid):
        a2a.verify_card(card, allow_unsigned=True)


def test_rvagent_signature_garbage_is_refused() -> None:
    card = card_for("http://127.0.0.1:1/", "m")
    card["metadata"] = {"ruvector": {"signature": {"alg": "ed25519-hex", "signature": "zz", "public_key": "00"}}}
    with pytest.raises(a2a.CardSignatureInvalid):
        a2a.verify_card(card, allow_unsigned=True)
    card["metadata"] = {"ruvector": {"signature": "garbage"}}
    with pytest.raises(a2a.CardSignatureInvalid):
        a2a.verify_card(card, allow_unsigned=True)


def test_trusted_keys_forms() -> None:
    card = a2a.sign_card(card_for("http://127.0.0.1:1/", "m"), KEY, kid="main")
    assert a2a.verify_card(card, trusted_keys=[JWK])["agent_id"] == AGENT_ID
    assert a2a.verify_card(card, trusted_keys={"main": JWK})["kid"] == "main"
    with pytest.raises(a2a.CardSignatureInvalid, match="not among trusted_keys"):
        a2a.verify_card(card, trusted_keys={"other": JWK})
    with pytest.raises(a2a.InvalidArgument):
        a2a.verify_card(card, trusted_keys=[1, 2])
