"""Push-notification configs: this client against the a2a-sdk server, which
delivers to a webhook receiver on loopback."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Coroutine, Dict, Iterator, List, Tuple

import pytest
from a2a_peers import SdkPeer

import ruvector_a2a as a2a

Received = List[Tuple[Dict[str, str], Any]]


@pytest.fixture()
def webhook() -> Iterator[Tuple[str, Received]]:
    got: Received = []

    class Hook(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            got.append(({k.lower(): v for k, v in self.headers.items()}, json.loads(body or b"null")))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]!s}/hook", got
    srv.shutdown()
    srv.server_close()


def test_push_config_lifecycle(push_sdk_peer: SdkPeer, webhook: Tuple[str, Received]) -> None:
    url, got = webhook
    c = a2a.A2aClient.connect_sync(push_sdk_peer.url, allow_unsigned=True)
    assert c.card.capabilities.push_notifications
    task = c.send_task_sync("slow", return_immediately=True)
    cfg = c.set_push_config_sync(task.id, a2a.PushNotificationConfig(url=url, token="secret-token", id="cfg1"))
    assert cfg.url == url and cfg.task_id == task.id and cfg.id == "cfg1"
    assert [x.id for x in c.list_push_configs_sync(task.id)] == ["cfg1"]
    assert c.get_push_config_sync(task.id, "cfg1").url == url
    c.cancel_task_sync(task.id)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any("CANCELED" in json.dumps(b) for _, b in got):
        time.sleep(0.05)
    assert any("CANCELED" in json.dumps(b) for _, b in got), got
    headers = [h for h, _ in got]
    assert all(h.get("x-a2a-notification-token") == "secret-token" for h in headers)
    c.delete_push_config_sync(task.id, "cfg1")
    assert c.list_push_configs_sync(task.id) == []


def test_push_unsupported_by_our_server() -> None:
    async def echo(m: a2a.Message, ctx: a2a.TaskContext) -> str:
        return m.text

    with a2a.A2aServer(a2a.AgentCard(name="x"), echo) as s:
        c = a2a.A2aClient.connect_sync(s.url, allow_unsigned=True)
        t = c.send_task_sync("x")
        with pytest.raises(a2a.A2aError) as ei:
            c.set_push_config_sync(t.id, "https://example.invalid/hook")
        assert vars(ei.value)["code"] == -32003


async def _slow(m: a2a.Message, ctx: a2a.TaskContext) -> str:
    if m.text == "slow":
        await asyncio.sleep(3600)
    await ctx.add_artifact("art")
    return "done"


def test_our_server_delivers_push(webhook: Tuple[str, Received]) -> None:
    url, got = webhook
    with a2a.A2aServer(a2a.AgentCard(name="p"), _slow, push_notifications=True, allow_private_webhooks=True) as s:
        c = a2a.A2aClient.connect_sync(s.url, allow_unsigned=True)
        assert c.card.capabilities.push_notifications
        t = c.send_task_sync("slow", return_immediately=True)
        cfg = c.set_push_config_sync(
            t.id,
            a2a.PushNotificationConfig(url=url, token="tok", authentication_scheme="Bearer", credentials="cred"),
        )
        # secrets are never returned
        assert cfg.token is None and cfg.credentials is None and cfg.authentication_scheme == "Bearer"
        listed = c.list_push_configs_sync(t.id)
        assert [x.token for x in listed] == [None] and listed[0].url == url
        assert c.get_push_config_sync(t.id, cfg.id or "").credentials is None
        c.cancel_task_sync(t.id)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not got:
            time.sleep(0.05)
        assert got, "no notification"
        headers, body = got[-1]
        assert headers["x-a2a-notification-token"] == "tok"
        assert headers["authorization"] == "Bearer cred"
        assert body["statusUpdate"]["status"]["state"] == "TASK_STATE_CANCELED"
        c.delete_push_config_sync(t.id, cfg.id or "")
        assert c.list_push_configs_sync(t.id) == []
        with pytest.raises(a2a.A2aError) as ei:
            c.set_push_config_sync("no-such-task", url)
        assert vars(ei.value)["code"] == -32001


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:9/h",
        "http://localhost:9/h",
        "http://[::1]:9/h",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/h",
        "http://192.168.0.10/h",
        "http://[fd00::1]/h",
        "http://[::ffff:127.0.0.1]/h",
        "ftp://example.com/h",
        "http://user:pw@example.com/h",
    ],
)
def test_ssrf_targets_are_refused(target: str) -> None:
    with a2a.A2aServer(a2a.AgentCard(name="p"), _slow, push_notifications=True) as s:
        c = a2a.A2aClient.connect_sync(s.url, allow_unsigned=True)
        t = c.send_task_sync("x")
        with pytest.raises(a2a.A2aError) as ei:
            c.set_push_config_sync(t.id, target)
        assert vars(ei.value)["code"] == -32602


def _drive_our_server(client_calls: Callable[[str, str], Coroutine[Any, Any, None]], got: Received) -> None:
    """Starts a slow task on our push-enabled server, runs the a2a-sdk
    client's ``client_calls(server_url, task_id)``, cancels the task and
    waits (up to 5 s) for a webhook delivery."""
    with a2a.A2aServer(a2a.AgentCard(name="p"), _slow, push_notifications=True, allow_private_webhooks=True) as s:
        ours = a2a.A2aClient.connect_sync(s.url, allow_unsigned=True)
        t = ours.send_task_sync("slow", return_immediately=True)
        asyncio.run(client_calls(s.url, t.id))
        ours.cancel_task_sync(t.id)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not got:
            time.sleep(0.05)


def test_sdk_client_sets_push_on_our_server(webhook: Tuple[str, Received]) -> None:
    from a2a.client import ClientConfig, create_client
    from a2a.types import (
        GetTaskPushNotificationConfigRequest,
        ListTaskPushNotificationConfigsRequest,
        TaskPushNotificationConfig,
    )

    url, got = webhook

    async def main(server_url: str, task_id: str) -> None:
        c = await create_client(server_url, client_config=ClientConfig(streaming=False))
        made = await c.create_task_push_notification_config(
            TaskPushNotificationConfig(task_id=task_id, id="sdk", url=url, token="sdk-token")
        )
        assert made.url == url and made.token == ""  # the secret is not echoed back
        one = await c.get_task_push_notification_config(GetTaskPushNotificationConfigRequest(task_id=task_id, id="sdk"))
        assert one.id == "sdk"
        page = await c.list_task_push_notification_configs(ListTaskPushNotificationConfigsRequest(task_id=task_id))
        assert [x.id for x in page.configs] == ["sdk"]
        await c.close()

    _drive_our_server(main, got)
    assert got and got[-1][0]["x-a2a-notification-token"] == "sdk-token"


def test_push_configs_over_03_against_the_sdk(push_compat_sdk_peer: SdkPeer, webhook: Tuple[str, Received]) -> None:
    """Our 0.3 client's push-config calls (``tasks/pushNotificationConfig/*``)
    against the a2a-sdk's 0.3 compatibility layer."""
    url, got = webhook
    c = a2a.A2aClient.connect_sync(push_compat_sdk_peer.url, allow_unsigned=True, protocol="0.3")
    assert c.protocol_version == "0.3"
    task = c.send_task_sync("slow", return_immediately=True)
    cfg = c.set_push_config_sync(task.id, a2a.PushNotificationConfig(url=url, token="tok-03", id="c03"))
    assert (cfg.url, cfg.task_id, cfg.id) == (url, task.id, "c03")
    assert [x.id for x in c.list_push_configs_sync(task.id)] == ["c03"]
    assert c.get_push_config_sync(task.id, "c03").url == url
    c.cancel_task_sync(task.id)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not got:
        time.sleep(0.05)
    assert got and all(h.get("x-a2a-notification-token") == "tok-03" for h, _ in got)
    c.delete_push_config_sync(task.id, "c03")
    assert c.list_push_configs_sync(task.id) == []


def test_sdk_03_client_sets_push_on_our_server(webhook: Tuple[str, Received]) -> None:
    """The a2a-sdk's 0.3 transport against our server's 0.3 push-config methods."""
    from a2a.client import ClientConfig, create_client
    from a2a.types import (
        AgentCapabilities,
        AgentCard,
        AgentInterface,
        DeleteTaskPushNotificationConfigRequest,
        GetTaskPushNotificationConfigRequest,
        ListTaskPushNotificationConfigsRequest,
        TaskPushNotificationConfig,
    )

    url, got = webhook

    async def main(server_url: str, task_id: str) -> None:
        card = AgentCard(
            name="p",
            description="d",
            version="1",
            supported_interfaces=[AgentInterface(url=server_url, protocol_binding="JSONRPC", protocol_version="0.3")],
            capabilities=AgentCapabilities(streaming=False, push_notifications=True),
        )
        c = await create_client(card, client_config=ClientConfig(streaming=False))
        made = await c.create_task_push_notification_config(
            TaskPushNotificationConfig(task_id=task_id, id="sdk03", url=url, token="sdk03-token")
        )
        assert (made.id, made.url, made.token) == ("sdk03", url, "")  # the secret is not echoed back
        one = await c.get_task_push_notification_config(
            GetTaskPushNotificationConfigRequest(task_id=task_id, id="sdk03")
        )
        assert one.url == url
        page = await c.list_task_push_notification_configs(ListTaskPushNotificationConfigsRequest(task_id=task_id))
        assert [x.id for x in page.configs] == ["sdk03"]
        await c.delete_task_push_notification_config(
            DeleteTaskPushNotificationConfigRequest(task_id=task_id, id="sdk03")
        )
        page = await c.list_task_push_notification_configs(ListTaskPushNotificationConfigsRequest(task_id=task_id))
        assert list(page.configs) == []
        await c.create_task_push_notification_config(
            TaskPushNotificationConfig(task_id=task_id, id="sdk03b", url=url, token="sdk03-token")
        )
        await c.close()

    _drive_our_server(main, got)
    assert got and got[-1][0]["x-a2a-notification-token"] == "sdk03-token"
