"""rvAgent dialect: RuVector's own agents (crate ``rvagent-a2a`` 0.1), which
speak a private variant of the April-2025 A2A draft.

What differs from A2A 1.0, and how the client bridges it:

* discovery at ``/.well-known/agent.json``; the card has a top-level ``url``
  and no protocol version, and is signed with Ed25519 under
  ``metadata.ruvector.signature`` (verified like any other card);
* ``tasks/send`` takes a ``TaskSpec``: a client-chosen task ``id``, a
  ``skill`` (the one asked for, else the card's first), the message with
  ``type``-tagged parts, an optional snake_case ``policy`` and a snake_case
  call ``context`` — and answers only when the task has finished;
* there is no streaming method: updates come on a separate
  ``GET /tasks/sendSubscribe?id=…`` SSE channel (bare event objects, no
  JSON-RPC envelope) that the client opens *before* it sends the task, and
  that never closes by itself — the client closes it at the final event;
* ``tasks/cancel`` answers ``{"id", "canceled"}``, not the task; running
  tasks are not stored until they finish, so ``tasks/get`` cannot see them;
* ``GET /tasks/resubscribe?id=…`` replays status events, then follows live.

``ListTasks``, non-blocking sends and push-notification configs have no
rvAgent counterpart and raise :class:`A2aError` before anything is sent.
The crate's client would retry ``tasks/send`` (running a task several
times); this one sends it once.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any, Dict, List, Mapping, Optional, cast
from urllib.parse import quote, urljoin

from ruvector_common.errors import A2aError

from ._compat03 import message_from_03, part_to_03, task_from_03

JsonDict = Dict[str, Any]

#: The protocol version AgentCard.from_wire gives a card without one.
CARD_VERSION = "0.1"
SUBSCRIBE_PATH = "tasks/sendSubscribe"
RESUBSCRIBE_PATH = "tasks/resubscribe"

METHODS: Dict[str, str] = {
    "SendMessage": "tasks/send",
    "GetTask": "tasks/get",
    "CancelTask": "tasks/cancel",
}


def _map(x: Any) -> Optional[Mapping[str, Any]]:
    return cast(Mapping[str, Any], x) if isinstance(x, Mapping) else None


def method_to_rv(method: str) -> str:
    """The rvAgent name of a 1.0 method, or :class:`A2aError` if it has none."""
    try:
        return METHODS[method]
    except KeyError:
        raise A2aError(f"{method} has no counterpart in the rvAgent dialect (the peer is an rvAgent agent)") from None


def new_client_id() -> str:
    """A random 64-hex id for this client in rvAgent call contexts (it has no key)."""
    return secrets.token_hex(32)


def part_to_rv(p: Mapping[str, Any]) -> JsonDict:
    """A 1.0 Part as an rvAgent Part (0.3's shapes, tagged ``type``)."""
    out = part_to_03(p)
    out["type"] = out.pop("kind")
    if out["type"] == "data":
        out["data"] = p.get("data")  # any JSON value, not only objects
    out.pop("metadata", None)  # rvAgent parts have no metadata
    return out


def message_to_rv(m: Mapping[str, Any]) -> JsonDict:
    role = "agent" if str(m.get("role", "")).upper().endswith("AGENT") else "user"
    parts = [part_to_rv(cast(Mapping[str, Any], p)) for p in m.get("parts", []) if isinstance(p, Mapping)]
    md = _map(m.get("metadata"))
    return {"role": role, "parts": parts, "metadata": dict(md) if md else {}}


def _policy_to_rv(p: Mapping[str, Any]) -> JsonDict:
    names = {
        "maxTokens": "max_tokens",
        "maxCostUsd": "max_cost_usd",
        "maxDurationMs": "max_duration_ms",
        "allowedSkills": "allowed_skills",
    }
    return {names[k]: v for k, v in p.items() if k in names}


def send_params(params: Mapping[str, Any], default_skill: str, client_id: str) -> JsonDict:
    """1.0 ``SendMessage`` params as an rvAgent ``TaskSpec``."""
    conf = _map(params.get("configuration")) or {}
    if conf.get("returnImmediately"):
        raise A2aError("rvAgent agents answer tasks/send only when the task has finished; return_immediately=True")
    msg = _map(params.get("message")) or {}
    md: JsonDict = dict(_map(params.get("metadata")) or {})
    rv: JsonDict = dict(_map(md.get("ruvector")) or {})
    skill = rv.pop("skill", None) or default_skill
    policy = _map(rv.pop("policy", None))
    if rv:
        md["ruvector"] = rv
    else:
        md.pop("ruvector", None)
    spec: JsonDict = {
        "id": msg.get("taskId") or str(uuid.uuid4()),
        "skill": skill,
        "message": message_to_rv(msg),
        "context": {
            "trace_id": secrets.token_hex(16),
            "depth": 0,
            "root_agent_id": client_id,
            "current_agent": client_id,
            "visited_agents": [],
        },
        "metadata": md,
    }
    if policy:
        spec["policy"] = _policy_to_rv(policy)
    return spec


def _artifact_from_rv(a: Mapping[str, Any], task_id: str) -> JsonDict:
    out: JsonDict = {k: v for k, v in a.items() if k not in ("index", "append", "lastChunk", "metadata")}
    out["parts"] = message_from_03({"parts": a.get("parts")})["parts"]
    # 1.0 artifacts need an id; rvAgent ones have an index (and maybe a name).
    out["artifactId"] = f"{task_id}-artifact-{a.get('index', 0)}"
    md = _map(a.get("metadata"))
    if md:
        out["metadata"] = dict(md)
    return out


def task_from_rv(t: Any) -> Any:
    """An rvAgent Task as a 1.0 Task (``sessionId`` → ``contextId``)."""
    m = _map(t)
    if m is None:
        return t
    tid = str(m.get("id", ""))
    raw: JsonDict = {k: v for k, v in m.items() if k not in ("sessionId", "artifacts", "metadata")}
    out = task_from_03(raw)
    out["contextId"] = m.get("sessionId") or ""
    arts = m.get("artifacts")
    items: List[Any] = cast(List[Any], arts) if isinstance(arts, list) else []  # type: ignore[redundant-cast]
    out["artifacts"] = [_artifact_from_rv(a, tid) for a in (_map(x) for x in items) if a is not None]
    md = _map(m.get("metadata"))
    out["metadata"] = dict(md) if md else {}
    return out


def result_from_rv(method: str, r: Any) -> Any:
    """An rvAgent result as the 1.0 result of ``method``."""
    if method == "SendMessage":
        return {"task": task_from_rv(r)}
    if method == "GetTask":
        return task_from_rv(r)
    return r


def event_from_rv(e: Any) -> Any:
    """A bare rvAgent SSE event (status or artifact) as a 1.0 StreamResponse;
    ``None`` for anything else (``warning`` frames)."""
    m = _map(e)
    if m is None:
        return None
    tid = str(m.get("id", ""))
    md = _map(m.get("metadata"))
    if _map(m.get("status")) is not None:
        st = task_from_03({"status": m["status"]})["status"]
        up: JsonDict = {"taskId": tid, "contextId": "", "status": st}
        if md:
            up["metadata"] = dict(md)
        return {"statusUpdate": up}
    art = _map(m.get("artifact"))
    if art is not None:
        au: JsonDict = {
            "taskId": tid,
            "contextId": "",
            "artifact": _artifact_from_rv(art, tid),
            "append": bool(art.get("append")),
            "lastChunk": bool(art.get("lastChunk")),
        }
        return {"artifactUpdate": au}
    return None


def channel_url(endpoint: str, path: str, task_id: str) -> str:
    """The SSE side-channel URL of a task (``path`` is one of the *_PATH names)."""
    base = endpoint if endpoint.endswith("/") else endpoint + "/"
    return urljoin(base, path) + "?id=" + quote(task_id, safe="")
