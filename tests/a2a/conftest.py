"""Fixtures: the official a2a-sdk agent as a real peer (subprocess), a hostile
HTTP peer, and keys. Everything listens on 127.0.0.1 only."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator

import pytest
from a2a_peers import SdkPeer

HERE = Path(__file__).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _spawn(args: list[str]) -> Iterator[SdkPeer]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "a2a_sdk_peer.py"), str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    line = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.strip() == "READY" or not line:
            break
    if line.strip() != "READY":
        proc.kill()
        pytest.fail(f"the a2a-sdk peer did not start: {line!r}")
    try:
        yield SdkPeer(f"http://127.0.0.1:{port}/", proc)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def sdk_peer() -> Iterator[SdkPeer]:
    """An unsigned a2a-sdk echo agent."""
    yield from _spawn([])


@pytest.fixture(scope="session")
def sdk_key(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, object]:
    """An Ed25519 key as PEM (for the a2a-sdk signer) and as a JWK."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    k = Ed25519PrivateKey.generate()
    pem = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    raw = k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    path = tmp_path_factory.mktemp("keys") / "sdk.pem"
    path.write_bytes(pem)
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return {"pem_path": str(path), "jwk": {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k1"}, "raw": raw}


@pytest.fixture(scope="session")
def signed_sdk_peer(sdk_key: Dict[str, object]) -> Iterator[SdkPeer]:
    """The a2a-sdk echo agent with a card signed by ``sdk_key`` (EdDSA, kid k1)."""
    yield from _spawn(["--sign", str(sdk_key["pem_path"])])


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    os.environ.setdefault("RUVECTOR_TEST", "1")


@pytest.fixture(scope="session")
def compat_sdk_peer() -> Iterator[SdkPeer]:
    """The a2a-sdk echo agent serving A2A 1.0 and 0.3 (``enable_v0_3_compat``)."""
    yield from _spawn(["--compat"])


@pytest.fixture(scope="session")
def signed_compat_sdk_peer(sdk_key: Dict[str, object]) -> Iterator[SdkPeer]:
    """Signed card plus the 0.3 compatibility fields the SDK adds unsigned."""
    yield from _spawn(["--sign", str(sdk_key["pem_path"]), "--compat"])


@pytest.fixture(scope="session")
def push_sdk_peer() -> Iterator[SdkPeer]:
    """The a2a-sdk echo agent with push notifications (any webhook URL allowed)."""
    yield from _spawn(["--push"])


@pytest.fixture(scope="session")
def push_compat_sdk_peer() -> Iterator[SdkPeer]:
    """The a2a-sdk echo agent with push notifications, serving 1.0 and 0.3."""
    yield from _spawn(["--push", "--compat"])


#: The rvAgent peer binary (tools/rvagent-peer, built by the nox tests session).
RVAGENT_PEER_BIN = os.environ.get("RUVECTOR_RVAGENT_PEER", "")


class RvAgentPeer:
    """A running ``rvagent-peer``: ``url``, ``agent_id`` of its signing key."""

    def __init__(self, url: str, agent_id: str, proc: subprocess.Popen[str]) -> None:
        self.url = url
        self.agent_id = agent_id
        self.proc = proc


def _spawn_rvagent(args: list[str]) -> Iterator[RvAgentPeer]:
    if not RVAGENT_PEER_BIN:
        if os.environ.get("CI"):
            pytest.fail("RUVECTOR_RVAGENT_PEER is not set (the nox tests session builds and sets it)")
        pytest.skip("RUVECTOR_RVAGENT_PEER is not set (the nox tests session builds and sets it)")
    # The peer exits when its stdin closes, so it never outlives the tests.
    proc = subprocess.Popen(
        [RVAGENT_PEER_BIN, "--port", "0", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if len(line) != 3 or line[0] != "READY":
        proc.kill()
        pytest.fail(f"the rvAgent peer did not start: {line!r}")
    try:
        yield RvAgentPeer(line[1], line[2], proc)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def rvagent_peer() -> Iterator[RvAgentPeer]:
    """RuVector's own A2A server (crate rvagent-a2a 0.1.0) with a signed card."""
    yield from _spawn_rvagent([])


@pytest.fixture(scope="session")
def unsigned_rvagent_peer() -> Iterator[RvAgentPeer]:
    """The rvAgent peer serving its card unsigned."""
    yield from _spawn_rvagent(["--unsigned"])
