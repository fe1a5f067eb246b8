"""A2A 0.3 dialect: method names and the ``kind``-tagged JSON of 0.3,
translated to and from the 1.0 shapes the rest of the package uses."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, cast

from ruvector_common.errors import A2aError

from . import _native  # pyright: ignore[reportPrivateUsage]

JsonDict = Dict[str, Any]

#: 1.0 method name → 0.3 name. The table is kept once, in Rust
#: (``src/compat03.rs``, which the server translates with); this is it.
METHODS: Dict[str, str] = dict(_native.compat03_methods())
#: 0.3 name → 1.0 name.
METHODS_FROM_03: Dict[str, str] = {v: k for k, v in METHODS.items()}


def _map(x: Any) -> Optional[Mapping[str, Any]]:
    return cast(Mapping[str, Any], x) if isinstance(x, Mapping) else None


def part_to_03(p: Mapping[str, Any]) -> JsonDict:
    """A 1.0 Part (``text`` | ``data`` | ``raw`` | ``url``) as a 0.3 Part (``kind``)."""
    out: JsonDict
    if "text" in p:
        out = {"kind": "text", "text": p["text"]}
    elif "raw" in p or "url" in p:
        f: JsonDict = {"bytes": p["raw"]} if "raw" in p else {"uri": p["url"]}
        if p.get("filename"):
            f["name"] = p["filename"]
        if p.get("mediaType"):
            f["mimeType"] = p["mediaType"]
        out = {"kind": "file", "file": f}
    else:
        data = p.get("data")
        # 0.3 data parts hold an object; wrap anything else.
        out = {"kind": "data", "data": data if isinstance(data, Mapping) else {"value": data}}
    if p.get("metadata"):
        out["metadata"] = p["metadata"]
    return out


def part_from_03(p: Mapping[str, Any]) -> JsonDict:
    """A 0.3 Part as a 1.0 Part (unchanged if it already is one)."""
    kind = p.get("kind") or p.get("type")
    out: JsonDict = {}
    if kind == "text":
        out["text"] = p.get("text", "")
    elif kind == "file":
        f = _map(p.get("file")) or {}
        if "bytes" in f:
            out["raw"] = f["bytes"]
        else:
            out["url"] = f.get("uri", "")
        if f.get("name"):
            out["filename"] = f["name"]
        if f.get("mimeType"):
            out["mediaType"] = f["mimeType"]
    elif kind == "data":
        out["data"] = p.get("data")
    else:
        return dict(p)
    if p.get("metadata"):
        out["metadata"] = p["metadata"]
    return out


def message_to_03(m: Mapping[str, Any]) -> JsonDict:
    out: JsonDict = {k: v for k, v in m.items() if k not in ("role", "parts")}
    out["kind"] = "message"
    out["role"] = "agent" if str(m.get("role", "")).upper().endswith("AGENT") else "user"
    out["parts"] = [part_to_03(cast(Mapping[str, Any], p)) for p in m.get("parts", []) if isinstance(p, Mapping)]
    return out


def _maps(x: Any) -> List[Mapping[str, Any]]:
    items: List[Any] = cast(List[Any], x) if isinstance(x, list) else []  # type: ignore[redundant-cast]
    return [m for m in (_map(i) for i in items) if m is not None]


def _parts_from(x: Any) -> List[JsonDict]:
    return [part_from_03(p) for p in _maps(x)]


def message_from_03(m: Mapping[str, Any]) -> JsonDict:
    out: JsonDict = {k: v for k, v in m.items() if k != "kind"}
    out["parts"] = _parts_from(m.get("parts"))
    return out


def _status_from_03(s: Any) -> Any:
    st = _map(s)
    if st is None:
        return s
    out: JsonDict = dict(st)
    msg = _map(st.get("message"))
    if msg is not None:
        out["message"] = message_from_03(msg)
    return out


def artifact_from_03(a: Mapping[str, Any]) -> JsonDict:
    out: JsonDict = dict(a)
    out["parts"] = _parts_from(a.get("parts"))
    return out


def task_from_03(t: Mapping[str, Any]) -> JsonDict:
    out: JsonDict = {k: v for k, v in t.items() if k != "kind"}
    out["status"] = _status_from_03(t.get("status"))
    out["history"] = [message_from_03(h) for h in _maps(t.get("history"))]
    out["artifacts"] = [artifact_from_03(a) for a in _maps(t.get("artifacts"))]
    return out


def event_from_03(r: Any) -> Any:
    """A 0.3 stream result (Task | Message | status-update | artifact-update) as a 1.0 StreamResponse."""
    m = _map(r)
    if m is None:
        return r
    kind = m.get("kind")
    if kind == "task":
        return {"task": task_from_03(m)}
    if kind == "message":
        return {"message": message_from_03(m)}
    if kind == "status-update":
        e: JsonDict = {k: v for k, v in m.items() if k not in ("kind", "final")}
        e["status"] = _status_from_03(m.get("status"))
        return {"statusUpdate": e}
    if kind == "artifact-update":
        e = {k: v for k, v in m.items() if k != "kind"}
        art = _map(m.get("artifact"))
        if art is not None:
            e["artifact"] = artifact_from_03(art)
        return {"artifactUpdate": e}
    return r


def _push_params_to_03(method: str, params: Mapping[str, Any]) -> JsonDict:
    """Flat 1.0 push-config params (``taskId``, ``id``, ``url``…) in 0.3's shapes:
    ``{taskId, pushNotificationConfig}`` to set, ``{id: task, pushNotificationConfigId}``
    otherwise."""
    if method == "CreateTaskPushNotificationConfig":
        cfg: JsonDict = {k: v for k, v in params.items() if k not in ("taskId", "authentication")}
        auth = _map(params.get("authentication"))
        if auth is not None:
            a: JsonDict = {"schemes": [auth["scheme"]] if auth.get("scheme") else []}
            if auth.get("credentials"):
                a["credentials"] = auth["credentials"]
            cfg["authentication"] = a
        return {"taskId": params.get("taskId"), "pushNotificationConfig": cfg}
    out: JsonDict = {"id": params.get("taskId")}
    if "id" in params:
        out["pushNotificationConfigId"] = params["id"]
    return out


def push_config_from_03(c: Any) -> Any:
    """A 0.3 ``TaskPushNotificationConfig`` as the flat 1.0 config."""
    m = _map(c)
    if m is None:
        return c
    cfg = _map(m.get("pushNotificationConfig"))
    if cfg is None:
        return dict(m)
    out: JsonDict = {k: v for k, v in cfg.items() if k != "authentication"}
    out["taskId"] = m.get("taskId")
    auth = _map(cfg.get("authentication"))
    if auth is not None:
        schemes = auth.get("schemes")
        a: JsonDict = {}
        if isinstance(schemes, list) and schemes:
            a["scheme"] = schemes[0]
        if auth.get("credentials"):
            a["credentials"] = auth["credentials"]
        out["authentication"] = a
    return out


def params_to_03(method: str, params: Mapping[str, Any]) -> JsonDict:
    """1.0 request params as 0.3 params."""
    if "PushNotificationConfig" in method:
        return _push_params_to_03(method, params)
    out: JsonDict = dict(params)
    msg = _map(params.get("message"))
    if msg is not None:
        out["message"] = message_to_03(msg)
    conf = _map(params.get("configuration"))
    if conf is not None:
        c: JsonDict = {k: v for k, v in conf.items() if k != "returnImmediately"}
        if conf.get("returnImmediately"):
            c["blocking"] = False
        out["configuration"] = c
    return out


def method_to_03(method: str) -> str:
    try:
        return METHODS[method]
    except KeyError:
        raise A2aError(f"{method} is not part of A2A 0.3 (the peer speaks only 0.3)") from None


def result_from_03(method: str, r: Any) -> Any:
    """A 0.3 unary result as the 1.0 result of ``method``."""
    if method == "ListTaskPushNotificationConfigs":
        items: List[Any] = cast(List[Any], r) if isinstance(r, list) else []  # type: ignore[redundant-cast]
        return {"configs": [push_config_from_03(c) for c in items]}
    if method in ("CreateTaskPushNotificationConfig", "GetTaskPushNotificationConfig"):
        return push_config_from_03(r)
    m = _map(r)
    if m is None:
        return r
    if method == "SendMessage":
        return event_from_03(m)
    if method in ("GetTask", "CancelTask"):
        return task_from_03(m)
    return r
