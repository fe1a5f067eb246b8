"""A hostile A2A peer on 127.0.0.1 for the tests: the first path segment
picks the misbehaviour (``http://127.0.0.1:PORT/<mode>/``)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Dict, Optional

STOP = threading.Event()


def card_for(base: str, mode: str) -> Dict[str, Any]:
    return {
        "name": f"hostile-{mode}",
        "description": "misbehaves",
        "version": "1",
        "supportedInterfaces": [{"url": f"{base}{mode}/", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}],
        "capabilities": {"streaming": True},
        "skills": [{"id": "x", "name": "x", "description": "x", "tags": ["x"]}],
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    cards: ClassVar[Dict[str, Dict[str, Any]]] = {}

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _mode(self) -> str:
        return self.path.strip("/").split("/")[0]

    def _send(self, body: bytes, ctype: str = "application/json", status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _endless(self, ctype: str, unit: bytes, first: bytes = b"", delay: float = 0.0) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            if first:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(first), first))
            while not STOP.is_set():
                self.wfile.write(b"%x\r\n%s\r\n" % (len(unit), unit))
                if delay:
                    self.wfile.flush()
                    time.sleep(delay)
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass

    def do_GET(self) -> None:  # card discovery
        mode = self._mode()
        base = f"http://127.0.0.1:{self.connection.getsockname()[1]}/"
        if mode == "bigcard":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(1 << 30))
            self.end_headers()
            return
        if mode == "bigcard-chunked":
            return self._endless("application/json", b"[" * 65536)
        if mode == "badcard":
            return self._send(b'{"name": "x", ')
        if mode == "slowloris":
            time.sleep(5)
            return
        card = self.cards.get(mode) or card_for(base, mode)
        self._send(json.dumps(card).encode())

    def do_POST(self) -> None:
        mode = self._mode()
        n = int(self.headers.get("Content-Length") or 0)
        req = json.loads(self.rfile.read(n) or b"{}")
        rid = req.get("id")
        result = {"task": {"id": "t1", "contextId": "c1", "status": {"state": "TASK_STATE_WORKING"}}}
        working = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": rid,
                "result": {
                    "statusUpdate": {"taskId": "t1", "contextId": "c1", "status": {"state": "TASK_STATE_WORKING"}}
                },
            }
        ).encode()
        if mode == "rpc-big":
            return self._endless("application/json", b'{"a":' * 10000)
        if mode == "rpc-badjson":
            return self._send(b"{{{{")
        if mode == "rpc-wrongid":
            return self._send(json.dumps({"jsonrpc": "2.0", "id": 999, "result": result}).encode())
        if mode == "rpc-html":
            return self._send(b"<html>oops</html>", "text/html", 502)
        if mode == "rpc-badtask":
            return self._send(json.dumps({"jsonrpc": "2.0", "id": rid, "result": {"task": {"status": 5}}}).encode())
        if mode == "rpc-hang":
            time.sleep(5)
            return self._send(b"{}")
        if mode == "sse-endless-line":
            return self._endless("text/event-stream", b"x" * 65536, first=b"data: ")
        if mode == "sse-endless-events":
            return self._endless("text/event-stream", b"data: " + working + b"\n\n", delay=0.001)
        if mode == "sse-keepalive":
            return self._endless("text/event-stream", b": ping\n\n", delay=0.01)
        if mode == "sse-slow-events":  # a complete event every 0.2 s, never a final one
            return self._endless("text/event-stream", b"data: " + working + b"\n\n", delay=0.2)
        if mode == "sse-trickle":
            return self._endless("text/event-stream", b"d", first=b"data: {", delay=0.01)
        if mode == "sse-malformed":
            return self._send(b"data: {not json}\n\n", "text/event-stream")
        if mode == "sse-badshape":
            return self._send(
                b'data: {"jsonrpc":"2.0","id":' + str(rid).encode() + b',"result":{"what":1}}\n\n', "text/event-stream"
            )
        if mode == "sse-early-eof":
            return self._send(b"data: " + working + b"\n\n", "text/event-stream")
        self._send(json.dumps({"jsonrpc": "2.0", "id": rid, "result": result}).encode())


class HostilePeer:
    def __init__(self) -> None:
        STOP.clear()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]!s}/"

    def url(self, mode: str) -> str:
        return f"{self.base}{mode}/"

    def set_card(self, mode: str, card: Optional[Dict[str, Any]]) -> None:
        if card is None:
            Handler.cards.pop(mode, None)
        else:
            Handler.cards[mode] = card

    def close(self) -> None:
        STOP.set()
        self.server.shutdown()
        self.server.server_close()
