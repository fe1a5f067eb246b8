"""A2aServer enforces the security its card declares (issue 10): every
JSON-RPC method and stream refuses requests without, or with wrong,
credentials before any handler runs, and serves the right ones; the card
stays public. Checked with the official a2a-sdk client (its AuthInterceptor
reads the card's requirements) and with this SDK's client."""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.error
import urllib.request
from typing import Any, Awaitable, Callable, Dict, Iterator, List, Optional, Tuple

import httpx
import pytest
from a2a.client import ClientCallContext, ClientConfig, create_client
from a2a.client.auth import AuthInterceptor, InMemoryContextCredentialStore
from a2a.types import (
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    SubscribeToTaskRequest,
    TaskPushNotificationConfig,
    TaskState,
)

import ruvector_a2a as a2a

GOOD = "s3cret-token"
WRONG = "not-the-token"
HOOK = "http://127.0.0.1:9/hook"  # nothing listens: deliveries fail quietly

#: Every call the verifier saw, and every task a handler ran.
SEEN: List[Tuple[str, str]] = []
RAN: List[Tuple[str, Any, Optional[str]]] = []


async def verify(scheme: str, credential: str) -> Optional[str]:
    SEEN.append((scheme, credential))
    await asyncio.sleep(0)
    return "alice" if credential == GOOD else None


async def handler(msg: a2a.Message, ctx: a2a.TaskContext) -> str:
    RAN.append((msg.text, ctx.principal, ctx.auth_scheme))
    if msg.text == "slow":
        while True:
            await asyncio.sleep(0.05)
            await ctx.working("tick")
    return f"hello {ctx.principal}"


CARD = a2a.AgentCard(
    name="secure",
    description="needs a bearer token",
    capabilities=a2a.AgentCapabilities(streaming=True, push_notifications=True),
    skills=[a2a.AgentSkill(id="echo", name="Echo", description="echoes", tags=["echo"])],
    security_schemes={"bearer": a2a.SecurityScheme(type="http", scheme="bearer", bearer_format="opaque")},
    security_requirements=[{"bearer": []}],
)
KEY = a2a.generate_private_key()


@pytest.fixture(scope="module")
def server() -> Iterator[a2a.A2aServer]:
    with a2a.A2aServer(
        CARD,
        handler,
        private_key=KEY,
        credential_verifier=verify,
        push_notifications=True,
        allow_private_webhooks=True,
    ) as s:
        yield s


def post(url: str, method: str, params: Dict[str, Any], headers: Optional[Dict[str, str]] = None) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    h = {"content-type": "application/json", **(headers or {})}
    req = urllib.request.Request(url, data=body, headers=h)
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, dict(r.headers), r.read()


def refused(
    url: str, method: str, params: Dict[str, Any], headers: Optional[Dict[str, str]] = None
) -> urllib.error.HTTPError:
    with pytest.raises(urllib.error.HTTPError) as ei:
        post(url, method, params, headers)
    return ei.value


def msg(text: str) -> Dict[str, Any]:
    return {"message": {"messageId": f"m-{text}", "role": "ROLE_USER", "parts": [{"text": text}]}}


# ---------------------------------------------------------------- raw HTTP: statuses


def test_card_stays_public_and_parses_its_requirements(server: a2a.A2aServer) -> None:
    with urllib.request.urlopen(server.url + ".well-known/agent-card.json", timeout=10) as r:
        served = json.loads(r.read())
    assert served["securityRequirements"] == [{"schemes": {"bearer": {"list": []}}}]
    # Our client's parsed (verified) card keeps them: it used to show [].
    c = a2a.A2aClient.connect_sync(server.url, expected_agent_id=server.card.agent_id)
    assert c.card.security_requirements == [{"bearer": []}]
    assert c.card.security_schemes["bearer"].scheme == "bearer"
    assert server.card.security_requirements == [{"bearer": []}]


@pytest.mark.parametrize(
    "method,params",
    [
        ("SendMessage", msg("x")),
        ("SendStreamingMessage", msg("x")),
        ("GetTask", {"id": "t"}),
        ("ListTasks", {}),
        ("CancelTask", {"id": "t"}),
        ("SubscribeToTask", {"id": "t"}),
        ("CreateTaskPushNotificationConfig", {"taskId": "t", "url": HOOK}),
        ("GetTaskPushNotificationConfig", {"taskId": "t", "id": "c"}),
        ("ListTaskPushNotificationConfigs", {"taskId": "t"}),
        ("DeleteTaskPushNotificationConfig", {"taskId": "t", "id": "c"}),
        ("GetExtendedAgentCard", {}),
        ("message/send", msg("x")),  # the 0.3 dialect too
        ("tasks/resubscribe", {"id": "t"}),
    ],
)
def test_every_method_refuses_before_running(server: a2a.A2aServer, method: str, params: Dict[str, Any]) -> None:
    ran = len(RAN)
    e = refused(server.url, method, params)
    assert e.code == 401
    assert e.headers["WWW-Authenticate"].startswith("Bearer")
    body = json.loads(e.read())
    assert body["error"]["code"] == -32000 and "credentials" in body["error"]["message"]
    assert refused(server.url, method, params, {"Authorization": f"Bearer {WRONG}"}).code == 403
    malformed = refused(server.url, method, params, {"Authorization": "Bearer"})
    assert malformed.code == 401 and 'error="invalid_token"' in malformed.headers["WWW-Authenticate"]
    assert refused(server.url, method, params, {"Authorization": f"Basic {GOOD}"}).code == 401
    assert len(RAN) == ran, "no handler ran for a refused request"


def test_right_token_is_served_and_principal_reaches_the_handler(server: a2a.A2aServer) -> None:
    status, _, raw = post(server.url, "SendMessage", msg("who"), {"Authorization": f"bearer {GOOD}"})
    assert status == 200
    task = json.loads(raw)["result"]["task"]
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert task["status"]["message"]["parts"][0]["text"] == "hello alice"
    assert ("who", "alice", "bearer") in RAN
    assert ("bearer", GOOD) in SEEN


# ---------------------------------------------------------------- the official a2a-sdk client


def _send(text: str) -> SendMessageRequest:
    return SendMessageRequest(message=Message(message_id=f"sdk-{text}", role=Role.ROLE_USER, parts=[Part(text=text)]))


async def _sdk(url: str, credential: Optional[str], streaming: bool) -> Tuple[Any, ClientCallContext]:
    """An a2a-sdk client whose AuthInterceptor sends ``credential`` for the
    card's ``bearer`` scheme (none at all when None)."""
    store = InMemoryContextCredentialStore()
    if credential is not None:
        await store.set_credentials("s", "bearer", credential)
    c = await create_client(
        url,
        client_config=ClientConfig(streaming=streaming, httpx_client=httpx.AsyncClient(timeout=10)),
        interceptors=[AuthInterceptor(store)],
    )
    return c, ClientCallContext(state={"sessionId": "s"})


def _sdk_calls(task_id: str) -> Dict[str, Callable[[Any, ClientCallContext], Awaitable[Any]]]:
    async def drain(it: Any) -> List[Any]:
        return [e async for e in it]

    return {
        "send": lambda c, ctx: drain(c.send_message(_send("x"), context=ctx)),
        "get": lambda c, ctx: c.get_task(GetTaskRequest(id=task_id), context=ctx),
        "list": lambda c, ctx: c.list_tasks(ListTasksRequest(), context=ctx),
        "subscribe": lambda c, ctx: drain(c.subscribe(SubscribeToTaskRequest(id=task_id), context=ctx)),
        "create_push": lambda c, ctx: c.create_task_push_notification_config(
            TaskPushNotificationConfig(task_id=task_id, id="p1", url=HOOK), context=ctx
        ),
        "get_push": lambda c, ctx: c.get_task_push_notification_config(
            GetTaskPushNotificationConfigRequest(task_id=task_id, id="p1"), context=ctx
        ),
        "list_push": lambda c, ctx: c.list_task_push_notification_configs(
            ListTaskPushNotificationConfigsRequest(task_id=task_id), context=ctx
        ),
        "delete_push": lambda c, ctx: c.delete_task_push_notification_config(
            DeleteTaskPushNotificationConfigRequest(task_id=task_id, id="p1"), context=ctx
        ),
        "cancel": lambda c, ctx: c.cancel_task(CancelTaskRequest(id=task_id), context=ctx),
    }


def test_official_sdk_client(server: a2a.A2aServer) -> None:
    async def main() -> None:
        good, gctx = await _sdk(server.url, GOOD, streaming=True)
        # A running task to get, subscribe to, configure and cancel.
        tid = ""
        async for e in good.send_message(_send("slow"), context=gctx):
            tid = e.task.id if e.HasField("task") else e.status_update.task_id
            break
        assert tid
        for streaming in (False, True):
            for cred in (None, WRONG):
                bad, bctx = await _sdk(server.url, cred, streaming)
                for name, call in _sdk_calls(tid).items():
                    if name == "subscribe" and not streaming:
                        continue  # the a2a-sdk subscribes only in streaming mode
                    ran = len(RAN)
                    with pytest.raises(Exception, match=r"40[13]") as ei:
                        await asyncio.wait_for(call(bad, bctx), 10)
                    assert ("401" if cred is None else "403") in str(ei.value), (name, cred, ei.value)
                    assert len(RAN) == ran, name
                await bad.close()
        # The right token is served on every method.
        calls = _sdk_calls(tid)
        sub: List[Any] = []

        async def subscribe() -> None:
            sub.extend(await calls["subscribe"](good, gctx))

        follower = asyncio.ensure_future(subscribe())
        made = await calls["create_push"](good, gctx)
        assert made.id == "p1"
        assert (await calls["get_push"](good, gctx)).url == HOOK
        assert [x.id for x in (await calls["list_push"](good, gctx)).configs] == ["p1"]
        await calls["delete_push"](good, gctx)
        assert (await calls["get"](good, gctx)).id == tid
        assert tid in [t.id for t in (await calls["list"](good, gctx)).tasks]
        await asyncio.sleep(0.2)
        assert (await calls["cancel"](good, gctx)).status.state == TaskState.TASK_STATE_CANCELED
        await asyncio.wait_for(follower, 10)
        assert sub[0].HasField("task")
        assert sub[-1].status_update.status.state == TaskState.TASK_STATE_CANCELED
        done = await calls["send"](good, gctx)
        assert done[-1].status_update.status.message.parts[0].text == "hello alice"
        await good.close()

    asyncio.run(main())
    assert server.stats()["streams"] == 0


# ---------------------------------------------------------------- this SDK's client


def _our_calls(c: a2a.A2aClient) -> List[Callable[[], Any]]:
    return [
        lambda: c.send_task_sync("x"),
        lambda: c.get_task_sync("t"),
        lambda: c.list_tasks_sync(),
        lambda: c.cancel_task_sync("t"),
        lambda: list(c.stream_task_sync("x")),
        lambda: list(c.resubscribe_sync("t")),
        lambda: c.set_push_config_sync("t", HOOK),
        lambda: c.get_push_config_sync("t", "p"),
        lambda: c.list_push_configs_sync("t"),
        lambda: c.delete_push_config_sync("t", "p"),
    ]


def test_our_client(server: a2a.A2aServer) -> None:
    pin = server.card.agent_id
    for cred, status in ((None, "HTTP 401"), (WRONG, "HTTP 403")):
        c = a2a.A2aClient.connect_sync(server.url, expected_agent_id=pin, bearer_token=cred)
        ran = len(RAN)
        calls = _our_calls(c)
        for call in calls:
            with pytest.raises(a2a.A2aError, match=status) as ei:
                call()
            assert not isinstance(ei.value, a2a.TransportError)
        assert len(RAN) == ran

    async def main() -> None:
        c = await a2a.A2aClient.connect(server.url, expected_agent_id=pin, bearer_token=GOOD)
        t = await c.send_task("mine")
        assert t.status.message is not None and t.status.message.text == "hello alice"
        ups = [u async for u in c.stream_task("streamed")]
        assert ups[-1].state is a2a.TaskState.COMPLETED
        slow = await c.send_task("slow", return_immediately=True)
        r = c.resubscribe(slow.id)
        assert (await r.__anext__()).kind == "task"
        cfg = await c.set_push_config(slow.id, a2a.PushNotificationConfig(url=HOOK, id="q"))
        assert [x.id for x in await c.list_push_configs(slow.id)] == [cfg.id]
        assert (await c.get_push_config(slow.id, "q")).url == HOOK
        await c.delete_push_config(slow.id, "q")
        assert (await c.get_task(slow.id)).id == slow.id
        assert (await c.cancel_task(slow.id)).state is a2a.TaskState.CANCELED
        assert [u async for u in r][-1].state is a2a.TaskState.CANCELED
        with pytest.raises(a2a.A2aError, match="HTTP 401"):
            async for _ in (await a2a.A2aClient.connect(server.url, allow_unsigned=True)).stream_task("x"):
                pass

    asyncio.run(main())


# ---------------------------------------------------------------- other schemes, sync verifiers


def test_api_key_basic_and_query_schemes_with_sync_and_per_scheme_verifiers() -> None:
    card = a2a.AgentCard(
        name="keys",
        security_schemes={
            "hdr": a2a.SecurityScheme(type="apiKey", name="X-Key", location="header"),
            "qry": a2a.SecurityScheme(type="apiKey", name="key", location="query"),
            "basic": a2a.SecurityScheme(type="http", scheme="basic"),
        },
        # Alternatives: a header key, or basic auth together with a query key.
        security_requirements=[{"hdr": []}, {"basic": [], "qry": []}],
    )
    calls: List[str] = []

    def hdr(cred: str) -> Optional[Dict[str, str]]:
        calls.append("hdr")
        return {"user": "k"} if cred == "K1" else None

    def basic(cred: str) -> Any:
        if cred != "bob:pw":
            raise ValueError("bad password")  # raising = invalid credential (401)
        return "bob"

    async def qry(cred: str) -> bool:
        return cred == "Q 1"

    with a2a.A2aServer(card, handler, credential_verifier={"hdr": hdr, "qry": qry, "basic": basic}) as s:
        assert post(s.url, "ListTasks", {}, {"X-Key": "K1"})[0] == 200
        assert refused(s.url, "ListTasks", {}, {"X-Key": "K2"}).code == 403
        bob = "Basic " + base64.b64encode(b"bob:pw").decode()
        assert refused(s.url, "ListTasks", {}, {"Authorization": bob}).code == 401  # query key missing
        assert post(s.url + "?key=Q+1", "ListTasks", {}, {"Authorization": bob})[0] == 200
        e = refused(
            s.url + "?key=Q%201", "ListTasks", {}, {"Authorization": "Basic " + base64.b64encode(b"b:x").decode()}
        )
        assert e.code == 401 and e.headers["WWW-Authenticate"].startswith("Basic")
        assert refused(s.url + "?key=nope", "ListTasks", {}, {"Authorization": bob}).code == 403
        c = a2a.A2aClient.connect_sync(s.url, allow_unsigned=True, api_key="K1", api_key_header="X-Key")
        assert c.send_task_sync("hi").state is a2a.TaskState.COMPLETED
        assert c.card.security_requirements == [{"hdr": []}, {"basic": [], "qry": []}]
        assert "hdr" in calls


# ---------------------------------------------------------------- secure by default


def test_declared_security_without_verifier_refuses_to_start() -> None:
    with pytest.raises(a2a.InvalidArgument, match="credential_verifier"):
        a2a.A2aServer(CARD, handler)
    with pytest.raises(a2a.InvalidArgument, match="security_requirements"):
        a2a.A2aServer(
            a2a.AgentCard(name="x", security_schemes={"b": a2a.SecurityScheme(type="http", scheme="bearer")}),
            handler,
            credential_verifier=verify,
        )
    with pytest.raises(a2a.InvalidArgument, match="does not declare"):
        a2a.A2aServer(a2a.AgentCard(name="x", security_requirements=[{"b": []}]), handler, credential_verifier=verify)
    with pytest.raises(a2a.InvalidArgument, match="mutual TLS"):
        a2a.A2aServer(
            a2a.AgentCard(
                name="x",
                security_schemes={"m": a2a.SecurityScheme(type="mutualTLS")},
                security_requirements=[{"m": []}],
            ),
            handler,
            credential_verifier=verify,
        )
    with pytest.raises(a2a.InvalidArgument, match="no security_requirements"):
        a2a.A2aServer(a2a.AgentCard(name="x"), handler, credential_verifier=verify)
    with pytest.raises(a2a.InvalidArgument, match="no verifier"):
        a2a.A2aServer(CARD, handler, credential_verifier={"other": lambda c: c})
    # A dict card in the A2A 0.3 shape is enforced the same way.
    card03: Dict[str, Any] = {
        "name": "old",
        "securitySchemes": {"tok": {"type": "http", "scheme": "bearer"}},
        "security": [{"tok": []}],
    }
    with pytest.raises(a2a.InvalidArgument, match="credential_verifier"):
        a2a.A2aServer(card03, handler)
    with a2a.A2aServer(card03, handler, credential_verifier=lambda s, c: c == GOOD or None) as s:
        assert refused(s.url, "ListTasks", {}).code == 401
        assert post(s.url, "ListTasks", {}, {"Authorization": f"Bearer {GOOD}"})[0] == 200


def test_unsigned_03_card_requirements_parse() -> None:
    card = a2a.AgentCard.from_wire(
        {
            "name": "x",
            "securitySchemes": {"k": {"type": "apiKey", "in": "header", "name": "K"}},
            "security": [{"k": []}],
        }
    )
    assert card.security_requirements == [{"k": []}]
    assert card.security_schemes["k"].location == "header"
