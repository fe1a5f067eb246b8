"""Fuzz targets for what the A2A SDK parses from peers (atheris style).

:func:`targets` returns one ``target(data: bytes) -> None`` per format:

* ``card_json`` — an agent card served by a peer (any JSON), through the
  real discovery path (HTTP on loopback, Rust JSON parse, signature check
  with ``allow_unsigned=True``, typed card, endpoint choice);
* ``card_signed`` — the same with the card's signing key pinned: anything
  that is not the signed card (up to JSON formatting) must be refused, so a
  card that verifies must parse exactly as the signed one does — except for
  security requirements without scopes, which A2A card signatures cannot
  cover (empty values are dropped before signing; see ``card.rs``);
* ``rpc_response`` — a JSON-RPC answer (the first byte picks the method it
  answers: get/list/cancel/send/push configs);
* ``rpc_request`` — a JSON-RPC request posted to this SDK's server: the
  answer must be a well-formed JSON-RPC answer or a clean HTTP refusal;
* ``sse_stream`` — the body of an SSE answer to ``SendStreamingMessage``:
  the updates the client yields must equal those an independent reference
  parser (the SSE spec and Python's ``json``) reads from the same bytes.

A target treats a :class:`ruvector_common.errors.RuVectorError` as a clean
outcome; any other exception (or a wrong parse, raised as AssertionError) is
a finding. Peers are served from 127.0.0.1 only; ``__ID__`` in a served
body is replaced by the JSON-RPC id of the request it answers.

Run one with atheris (``pip install atheris``)::

    python tests/fuzz/fuzz_a2a.py sse_stream [atheris/libFuzzer options]
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, ClassVar, Dict, List, Optional, Tuple, cast

import ruvector_a2a as a2a
from ruvector_common.errors import RuVectorError

#: A fixed signing key, so the signed seed card verifies across runs.
KEY = bytes(range(1, 33))
JWK = a2a.public_key_jwk(KEY, kid="fuzz")
ID_TOKEN = b"__ID__"


class _Replay(BaseHTTPRequestHandler):
    """Serves whatever the current target put in ``body`` / ``card``."""

    protocol_version = "HTTP/1.1"
    card: ClassVar[bytes] = b"{}"
    body: ClassVar[bytes] = b""
    ctype: ClassVar[str] = "application/json"
    last_id: ClassVar[Optional[int]] = None

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, data: bytes, ctype: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._send(_Replay.card, "application/json")

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        rid = json.loads(raw).get("id")
        _Replay.last_id = rid if isinstance(rid, int) else None
        self._send(_Replay.body.replace(ID_TOKEN, str(rid).encode()), _Replay.ctype)


class Peers:
    """The loopback peers the targets talk to, started once."""

    _lock = threading.Lock()
    _inst: Optional[Peers] = None

    def __init__(self) -> None:
        self.replay = ThreadingHTTPServer(("127.0.0.1", 0), _Replay)
        self.replay.daemon_threads = True
        threading.Thread(target=self.replay.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.replay.server_address[1]!s}/"
        _Replay.card = json.dumps(plain_card(self.url)).encode()
        self.client = a2a.A2aClient.connect_sync(
            self.url, allow_unsigned=True, timeout=5.0, stream_idle_timeout=2.0, stream_timeout=10.0
        )
        self.server = a2a.A2aServer(
            a2a.AgentCard(name="fuzz", capabilities=a2a.AgentCapabilities(streaming=True)), _echo
        ).start()

    @classmethod
    def get(cls) -> Peers:
        with cls._lock:
            if cls._inst is None:
                cls._inst = Peers()
            return cls._inst


async def _echo(m: a2a.Message, ctx: a2a.TaskContext) -> str:
    await ctx.add_artifact("echo: " + m.text, name="echo")
    return "done"


def plain_card(url: str) -> Dict[str, Any]:
    return {
        "name": "replay",
        "description": "serves the fuzz input",
        "version": "1",
        "supportedInterfaces": [{"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}],
        "capabilities": {"streaming": True, "pushNotifications": True},
        "skills": [{"id": "x", "name": "x", "description": "x", "tags": ["x"]}],
        "securitySchemes": {"bearer": {"httpAuthSecurityScheme": {"scheme": "bearer"}}},
        "securityRequirements": [{"schemes": {"bearer": {"list": []}}}],
    }


def signed_card(url: str) -> Dict[str, Any]:
    """The seed of ``card_signed``: a real card signed with :data:`KEY`."""
    return a2a.sign_card(plain_card(url), KEY, kid="fuzz")


# ---------------------------------------------------------------- reference parsers


def _json_like_serde(text: str) -> Any:
    """Python's json, with integers outside i64/u64 read as floats (as
    serde_json without arbitrary precision does)."""

    def parse_int(s: str) -> Any:
        n = int(s)
        return n if -(2**63) <= n < 2**64 else float(s)

    return json.loads(text, parse_int=parse_int)


def reference_sse(body: bytes) -> Optional[List[str]]:
    """The data of each event per the SSE spec (complete events only;
    whitespace-only data skipped, as carrying no JSON); None if a field
    line is not UTF-8 (the SDK refuses such streams)."""
    out: List[str] = []
    data: List[str] = []
    has_data = False
    for raw in re.split(rb"\r\n|\r|\n", body)[:-1]:  # the last piece has no line end
        if not raw:
            if has_data:
                joined = "\n".join(data)
                if joined.strip():
                    out.append(joined)
            data, has_data = [], False
            continue
        if raw.startswith(b":"):
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            data.append(value)
            has_data = True
    return out


def expected_updates(events: Optional[List[str]], rid: Optional[int]) -> Optional[List[a2a.TaskUpdate]]:
    """What a correct client yields for these events (up to the final one);
    None when it must raise instead."""
    if events is None or rid is None:
        return None
    out: List[a2a.TaskUpdate] = []
    for text in events:
        try:
            v = _json_like_serde(text)
        except (ValueError, RecursionError):
            return None
        if not isinstance(v, dict):
            return None
        m = cast(Dict[str, Any], v)
        if m.get("error") is not None or m.get("id") != rid or "result" not in m:
            return None
        try:
            up = a2a.TaskUpdate.from_wire(m["result"])
        except RuVectorError:
            return None
        out.append(up)
        if up.is_final:
            return out
    return None  # ended before a final state: the client raises


# ---------------------------------------------------------------- targets


def card_json(data: bytes) -> None:
    p = Peers.get()
    _Replay.card = data
    try:
        c = a2a.A2aClient.connect_sync(p.url, allow_unsigned=True, timeout=5.0)
    except RuVectorError:
        return
    assert isinstance(c.card, a2a.AgentCard) and c.endpoint.startswith("http")


_SIGNED: Dict[str, Tuple[bytes, a2a.AgentCard]] = {}


def _signed_reference(url: str) -> Tuple[bytes, a2a.AgentCard]:
    if url not in _SIGNED:
        raw = json.dumps(signed_card(url)).encode()
        _Replay.card = raw
        ref = a2a.A2aClient.connect_sync(url, trusted_keys=[JWK], timeout=5.0).card
        _SIGNED[url] = (raw, ref)
    return _SIGNED[url]


def card_signed(data: bytes) -> None:
    p = Peers.get()
    _, ref = _signed_reference(p.url)
    _Replay.card = data
    try:
        c = a2a.A2aClient.connect_sync(p.url, trusted_keys=[JWK], timeout=5.0)
    except RuVectorError:
        return

    def scoped(card: a2a.AgentCard) -> List[Dict[str, List[str]]]:
        return [r for r in card.security_requirements if any(r.values())]

    assert scoped(c.card) == scoped(ref), "scoped security requirements are signed"
    got = dataclasses.replace(c.card, security_requirements=[])
    assert got == dataclasses.replace(ref, security_requirements=[]), (
        "a card that verifies must parse as the signed card"
    )
    assert c.card.verification == ref.verification


#: Methods an ``rpc_response`` answers, by the first byte of the input.
_CALLS: List[Callable[[a2a.A2aClient], Any]] = [
    lambda c: c.get_task_sync("t"),
    lambda c: c.list_tasks_sync(),
    lambda c: c.cancel_task_sync("t"),
    lambda c: c.send_message_sync("x"),
    lambda c: c.get_push_config_sync("t", "p"),
    lambda c: c.list_push_configs_sync("t"),
    lambda c: c.set_push_config_sync("t", "http://127.0.0.1:9/"),
    lambda c: c.delete_push_config_sync("t", "p"),
]


def rpc_response(data: bytes) -> None:
    if not data:
        return
    p = Peers.get()
    _Replay.body, _Replay.ctype = data[1:], "application/json"
    try:
        _CALLS[data[0] % len(_CALLS)](p.client)
    except RuVectorError:
        return


def rpc_request(data: bytes) -> None:
    p = Peers.get()
    port = int(p.server.url.rstrip("/").rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/", body=data, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        body = resp.read()
        ctype = resp.getheader("Content-Type") or ""
    finally:
        conn.close()
    assert resp.status in (200, 400, 408, 413), f"HTTP {resp.status}: {body[:200]!r}"
    if resp.status != 200:
        return
    if ctype.startswith("text/event-stream"):
        assert body.startswith(b"data: "), body[:200]
        return
    ans = json.loads(body)
    assert ans.get("jsonrpc") == "2.0" and ("result" in ans) != ("error" in ans), ans


def sse_stream(data: bytes) -> None:
    p = Peers.get()
    _Replay.body, _Replay.ctype = data, "text/event-stream"
    _Replay.last_id = None
    got: List[a2a.TaskUpdate] = []
    try:
        with p.client.stream_task_sync("x") as s:
            got.extend(s)
    except RuVectorError:
        return
    rid = _Replay.last_id
    want = expected_updates(reference_sse(data.replace(ID_TOKEN, str(rid).encode())), rid)
    assert want is not None, f"the client yielded {len(got)} updates from a stream it should refuse"
    assert got == want, "the client's updates differ from the reference parse"


def targets() -> Dict[str, Callable[[bytes], None]]:
    """One fuzz target per format (see the module documentation)."""
    return {
        "card_json": card_json,
        "card_signed": card_signed,
        "rpc_response": rpc_response,
        "rpc_request": rpc_request,
        "sse_stream": sse_stream,
    }


def seeds() -> Dict[str, List[bytes]]:
    """A starting corpus per target: real frames of this SDK."""
    p = Peers.get()
    task = {"id": "t", "contextId": "c", "status": {"state": "TASK_STATE_COMPLETED"}}
    head = b'{"jsonrpc":"2.0","id":__ID__,"result":'
    ok = head + json.dumps({"task": task}).encode() + b"}"
    return {
        "card_json": [json.dumps(plain_card(p.url)).encode()],
        "card_signed": [_signed_reference(p.url)[0]],
        "rpc_response": [b"\x00" + head + json.dumps(task).encode() + b"}", b"\x03" + ok],
        "rpc_request": [json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ListTasks", "params": {}}).encode()],
        "sse_stream": [b"data: " + ok + b"\n\n"],
    }


if __name__ == "__main__":
    import atheris  # type: ignore[import-untyped,import-not-found,unused-ignore]  # pyright: ignore[reportMissingImports]

    target = targets()[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()
