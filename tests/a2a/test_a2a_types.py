"""Typed A2A objects, their wire form, and canonical JSON vs the a2a-sdk's."""

from __future__ import annotations

from typing import Any

import pytest
from a2a.utils._jcs import canonicalize
from hypothesis import given, settings
from hypothesis import strategies as st

import ruvector_a2a as a2a

SAFE = 2**53 - 1
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-SAFE, SAFE)
    | st.floats(allow_nan=False, allow_infinity=False, width=64)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_canonical_json_matches_the_sdk(v: Any) -> None:
    assert a2a.canonical_json(v) == canonicalize(v)


@pytest.mark.parametrize("x", [0.1, 1e21, 1e-7, 123456789.125, -0.0, 5e-324, 1.7976931348623157e308, 2.0**60])
def test_canonical_numbers(x: float) -> None:
    assert a2a.canonical_json([x]) == canonicalize([x])


def test_task_state_wire_names() -> None:
    for s in a2a.TaskState:
        if s is not a2a.TaskState.UNKNOWN:
            assert a2a.TaskState.from_wire(s.to_wire()) is s
            assert a2a.TaskState.from_wire(s.value) is s
    assert a2a.TaskState.from_wire("TASK_STATE_INPUT_REQUIRED").is_interrupted
    assert a2a.TaskState.from_wire("bogus") is a2a.TaskState.UNKNOWN
    assert a2a.TaskState.COMPLETED.is_terminal and not a2a.TaskState.WORKING.is_final


def test_part_and_message_roundtrip() -> None:
    parts = [
        a2a.Part(text="t"),
        a2a.Part(data={"k": [1, 2]}),
        a2a.Part(raw=b"\x00\x01", media_type="x/y"),
        a2a.Part(url="http://127.0.0.1/f", filename="f"),
    ]
    m = a2a.Message.user(parts, context_id="c", metadata={"a": 1})
    back = a2a.Message.from_wire(m.to_wire())
    assert back == m
    assert [p.kind for p in back.parts] == ["text", "data", "raw", "url"]
    with pytest.raises(a2a.InvalidArgument):
        a2a.Part()
    with pytest.raises(a2a.InvalidArgument):
        a2a.Part(text="a", url="b")
    with pytest.raises(a2a.InvalidArgument):
        a2a.Message.user([])


def test_task_and_update_from_wire() -> None:
    t = a2a.Task(
        id="t",
        context_id="c",
        status=a2a.TaskStatus(a2a.TaskState.WORKING),
        artifacts=[a2a.Artifact.of("x", name="n")],
        history=[a2a.Message.user("q")],
    )
    assert a2a.Task.from_wire(t.to_wire()) == t
    u = a2a.TaskUpdate.from_wire(
        {
            "artifactUpdate": {
                "taskId": "t",
                "contextId": "c",
                "append": True,
                "artifact": {"artifactId": "a", "parts": [{"text": "z"}]},
            }
        }
    )
    assert u.kind == "artifact" and u.append and u.artifact is not None and u.artifact.text == "z"
    with pytest.raises(a2a.TransportError):
        a2a.TaskUpdate.from_wire({"nothing": 1})
    with pytest.raises(a2a.TransportError):
        a2a.Task.from_wire({"status": {}})


def test_card_roundtrip_and_legacy() -> None:
    card = a2a.AgentCard(
        name="n",
        description="d",
        supported_interfaces=[a2a.AgentInterface(url="http://127.0.0.1:1/")],
        provider=a2a.AgentProvider(organization="o", url="http://o"),
        capabilities=a2a.AgentCapabilities(streaming=True),
        skills=[a2a.AgentSkill(id="s", name="S", description="sd", tags=["t"], examples=["e"])],
        security_schemes={"bearer": a2a.SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")},
        security_requirements=[{"bearer": []}],
    )
    back = a2a.AgentCard.from_wire(card.to_wire())
    assert back == card
    legacy = a2a.AgentCard.from_wire(
        {
            "name": "old",
            "url": "http://127.0.0.1:2/",
            "protocolVersion": "0.3.0",
            "securitySchemes": {"k": {"type": "apiKey", "in": "header", "name": "X"}},
        }
    )
    assert legacy.interface("0.3") is not None and legacy.interface("1.0") is None
    assert legacy.security_schemes["k"].type == "apiKey" and legacy.security_schemes["k"].location == "header"


def test_keys_and_ids() -> None:
    k = a2a.generate_private_key()
    assert isinstance(k, bytes) and len(k) == 32
    jwk = a2a.public_key_jwk(k, kid="x")
    assert jwk["kty"] == "OKP" and jwk["kid"] == "x"
    aid = a2a.agent_id_of(jwk)
    assert len(aid) == 64
    import base64

    raw = base64.urlsafe_b64decode(jwk["x"] + "=")
    assert a2a.agent_id_of(raw) == aid == a2a.agent_id_of(raw.hex())
    import hashlib

    assert aid == hashlib.shake_256(raw).hexdigest(32)
    with pytest.raises(a2a.InvalidArgument):
        a2a.public_key_jwk(b"short")
