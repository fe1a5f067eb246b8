"""Processes for the connection-limit tests (127.0.0.1 only).

* ``python a2a_conn_tools.py server NOFILE OPTIONS_JSON`` — an echo
  A2aServer under a file-descriptor limit of NOFILE; prints ``READY <url>``
  and serves until its stdin closes.
* ``python a2a_conn_tools.py flood PORT N`` — opens N idle connections to
  the port (sending nothing); prints ``HELD <n>`` and holds them until its
  stdin closes.
"""

from __future__ import annotations

import json
import resource
import socket
import sys
from typing import Any, Dict, List


def serve(nofile: int, options: Dict[str, Any]) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))
    import ruvector_a2a as a2a

    async def echo(m: a2a.Message, ctx: a2a.TaskContext) -> str:
        return "echo: " + m.text

    with a2a.A2aServer(a2a.AgentCard(name="limited"), echo, **options) as s:
        print("READY", s.url, flush=True)
        sys.stdin.read()


def flood(port: int, n: int) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, n + 256)
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    held: List[socket.socket] = []
    for _ in range(n):
        s = socket.socket()
        s.settimeout(5)
        try:
            s.connect(("127.0.0.1", port))
        except OSError:
            s.close()
            continue
        held.append(s)
    print("HELD", len(held), flush=True)
    sys.stdin.read()
    for s in held:
        s.close()


if __name__ == "__main__":
    if sys.argv[1] == "server":
        serve(int(sys.argv[2]), json.loads(sys.argv[3]))
    else:
        flood(int(sys.argv[2]), int(sys.argv[3]))
