"""The A2A client: discovery with card verification, JSON-RPC calls, SSE streams."""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import time
from typing import Any, Deque, Dict, FrozenSet, Iterator, List, Mapping, Optional, Sequence, Tuple, Union, cast
from urllib.parse import urljoin, urlsplit

from ruvector_common.errors import A2aError, InvalidArgument, PolicyViolation, TransportError

from . import (
    _compat03,
    _native,  # pyright: ignore[reportPrivateUsage]
    _rvagent,
)
from ._policy import Budget, TaskPolicy
from ._types import (
    AgentCard,
    CardVerification,
    ListTasksResult,
    Message,
    Part,
    PushNotificationConfig,
    Task,
    TaskState,
    TaskUpdate,
)

__all__ = ["A2aClient", "TaskStream", "TaskStreamSync", "DEFAULT_MAX_RESPONSE_BYTES", "DEFAULT_MAX_EVENT_BYTES"]

DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_EVENT_BYTES = 1024 * 1024
A2A_VERSION = "1.0"
CARD_PATH = "/.well-known/agent-card.json"
LEGACY_CARD_PATH = "/.well-known/agent.json"
#: Seconds a stream over its policy deadline waits for its CancelTask.
CANCEL_GRACE = 2.0
#: Seconds an rvAgent stream waits for the final event on its side channel
#: once ``tasks/send`` has answered (the answer then ends the stream).
RV_FINAL_GRACE = 5.0

MessageLike = Union[str, Part, Message, Sequence[Union[str, Part]]]
JsonDict = Dict[str, Any]
_ids = itertools.count(1)


def _m(x: Any) -> Optional[Mapping[str, Any]]:
    return cast(Mapping[str, Any], x) if isinstance(x, Mapping) else None


def _rpc_error(err: Any) -> A2aError:
    """The peer's JSON-RPC error as :class:`A2aError` with ``.code`` and ``.data``."""
    m: Mapping[str, Any] = _m(err) or {}
    code, msg = m.get("code"), m.get("message")
    e = A2aError(f"the peer answered JSON-RPC error {code}: {msg}")
    e.code = code  # type: ignore[attr-defined]
    e.data = m.get("data")  # type: ignore[attr-defined]
    return e


#: Methods whose result is null: some servers (the a2a-sdk's 0.3 layer) then
#: leave ``result`` out of the answer altogether.
_NULL_RESULT = frozenset({"DeleteTaskPushNotificationConfig"})


def _unwrap(rid: int, raw: Any, method: str = "") -> Any:
    body = _m(raw)
    if body is None:
        raise TransportError("the peer's JSON-RPC answer is not an object")
    if "error" in body and body["error"] is not None:
        raise _rpc_error(body["error"])
    if body.get("id") != rid:
        raise TransportError(f"the peer answered JSON-RPC id {body.get('id')!r} to request id {rid}")
    if "result" not in body:
        if method in _NULL_RESULT:
            return None
        raise TransportError("the peer's JSON-RPC answer has neither result nor error")
    return body["result"]


def _request(method: str, params: JsonDict) -> Tuple[int, bytes]:
    rid = next(_ids)
    return rid, json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}).encode()


def _card_urls(url: str, card_path: Optional[str]) -> List[str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidArgument(f"url must be an http(s) URL, got {url!r}")
    if card_path is not None:
        return [urljoin(url, card_path)]
    if parts.path.endswith(".json"):
        return [url]
    base = url if url.endswith("/") else url + "/"
    return [urljoin(base, CARD_PATH.lstrip("/")), urljoin(base, LEGACY_CARD_PATH.lstrip("/"))]


def _to_message(content: MessageLike, context_id: Optional[str], task_id: Optional[str]) -> Message:
    if isinstance(content, Message):
        msg = content
        if context_id is not None:
            msg.context_id = context_id
        if task_id is not None:
            msg.task_id = task_id
        return msg
    return Message.user(content, context_id=context_id, task_id=task_id)


class _Config:
    def __init__(
        self,
        timeout: float,
        headers: Mapping[str, str],
        bearer_token: Optional[str],
        api_key: Optional[str],
        api_key_header: str,
        max_response_bytes: int,
        max_event_bytes: int,
        stream_idle_timeout: float,
    ) -> None:
        h = dict(headers)
        if bearer_token is not None:
            h["Authorization"] = f"Bearer {bearer_token}"
        if api_key is not None:
            h[api_key_header] = api_key
        self.transport = _native.HttpTransport(
            headers=list(h.items()),
            timeout=float(timeout),
            max_response_bytes=int(max_response_bytes),
            max_event_bytes=int(max_event_bytes),
            stream_idle_timeout=float(stream_idle_timeout),
            user_agent=f"ruvector-a2a/{_native.__version__}",
        )


def _verify(raw: Any, trusted_keys: Any, expected_agent_id: Optional[str], allow_unsigned: bool) -> AgentCard:
    if not isinstance(raw, dict):
        raise TransportError("the agent card is not a JSON object")
    info = _native.verify_card(
        cast(Dict[str, Any], raw),
        trusted_keys=trusted_keys,
        expected_agent_id=expected_agent_id,
        allow_unsigned=allow_unsigned,
    )
    # Only what the signature covers: unsigned extras are already dropped.
    verified = info.pop("card")
    return AgentCard.from_wire(verified, CardVerification(**info))


def _endpoint(card: AgentCard, card_url: str, protocol: str) -> Tuple[str, str]:
    """The JSON-RPC URL and dialect (``"1.0"``, ``"0.3"`` or ``"rvagent"``) to use with this card."""
    orders = {
        "auto": ("1.0", "0.3", "rvagent"),
        "1.0": ("1.0",),
        "0.3": ("0.3",),
        "rvagent": ("rvagent",),
    }
    if protocol not in orders:
        raise InvalidArgument(f"protocol must be one of {sorted(orders)}, got {protocol!r}")
    prefixes_of = {"1.0": ("1.0", "1"), "0.3": ("0.3", "0.2"), "rvagent": (_rvagent.CARD_VERSION,)}
    for version in orders[protocol]:
        for prefix in prefixes_of[version]:
            iface = card.interface(prefix)
            if iface is not None:
                return urljoin(card_url, iface.url), version
    versions = sorted({i.protocol_version for i in card.supported_interfaces})
    raise A2aError(
        f"the agent at {card_url} offers no JSON-RPC interface for protocol {protocol} (it offers {versions})"
    )


class A2aClient:
    """A client of one A2A agent. Create it with :meth:`connect` (asyncio) or
    :meth:`connect_sync`; every call has a sync sibling (``*_sync``).

    Nothing is retried: a request is sent once; a timeout or transport failure
    raises :class:`TransportError` and the caller decides.
    """

    def __init__(
        self, card: AgentCard, card_url: str, endpoint: Tuple[str, str], config: _Config, budget: Optional[Budget]
    ) -> None:
        self._card = card
        self._card_url = card_url
        self._endpoint, self._version = endpoint
        self._t = config.transport
        self._budget = budget
        # rvAgent dialect: this client's id in call contexts, the skill used
        # when none is asked for, the task ids it has sent and not seen end.
        self._rv_id = _rvagent.new_client_id()
        self._rv_skill = card.skills[0].id if card.skills else "default"
        self._rv_sent: set[str] = set()

    # ---------------------------------------------------------------- discovery
    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        timeout: float = 30.0,
        headers: Optional[Mapping[str, str]] = None,
        bearer_token: Optional[str] = None,
        api_key: Optional[str] = None,
        api_key_header: str = "X-API-Key",
        trusted_keys: Optional[Any] = None,
        expected_agent_id: Optional[str] = None,
        allow_unsigned: bool = False,
        card_path: Optional[str] = None,
        protocol: str = "auto",
        budget: Optional[Budget] = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        stream_idle_timeout: float = 300.0,
    ) -> A2aClient:
        """Fetches the agent card from ``url`` (its ``/.well-known/agent-card.json``,
        then the legacy ``agent.json``), verifies its signature and returns a client.

        Card checks: a signed card must verify (JWS over the RFC 8785 canonical
        card, or rvAgent's Ed25519 scheme) against ``trusted_keys`` (JWK dicts,
        or ``{kid: jwk}``) or, without them, the key embedded in the signature;
        ``expected_agent_id`` pins that key (hex SHAKE-256 of it, see
        ``card.agent_id``). An unsigned, tampered, malformed or foreign-signed
        card raises :class:`CardSignatureInvalid`; ``allow_unsigned=True``
        accepts unsigned cards — for tests and trusted networks only.

        ``protocol``: ``"auto"`` uses the card's A2A 1.0 JSON-RPC interface,
        else its 0.3 one, else (a card without a protocol version, as
        RuVector's rvAgent agents serve at ``agent.json``) the rvAgent
        dialect; ``"1.0"`` / ``"0.3"`` / ``"rvagent"`` insist on one.

        ``timeout`` bounds each request (connect to last byte); a stream waits
        at most ``stream_idle_timeout`` between events. Responses over
        ``max_response_bytes`` and events over ``max_event_bytes`` raise
        :class:`TransportError`.
        """
        cfg = _Config(
            timeout,
            headers or {},
            bearer_token,
            api_key,
            api_key_header,
            max_response_bytes,
            max_event_bytes,
            stream_idle_timeout,
        )
        urls = _card_urls(url, card_path)
        last: Optional[Exception] = None
        for u in urls:
            try:
                _, raw = await cfg.transport.request("GET", u)
            except TransportError as e:
                if "HTTP 404" in str(e):
                    last = e
                    continue
                raise
            card = _verify(raw, trusted_keys, expected_agent_id, allow_unsigned)
            return cls(card, u, _endpoint(card, u, protocol), cfg, budget)
        raise last if last is not None else TransportError(f"no agent card at {url}")

    @classmethod
    def connect_sync(cls, url: str, **options: Any) -> A2aClient:
        """Synchronous :meth:`connect` (same options)."""
        cfg = _Config(
            options.pop("timeout", 30.0),
            options.pop("headers", None) or {},
            options.pop("bearer_token", None),
            options.pop("api_key", None),
            options.pop("api_key_header", "X-API-Key"),
            options.pop("max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES),
            options.pop("max_event_bytes", DEFAULT_MAX_EVENT_BYTES),
            options.pop("stream_idle_timeout", 300.0),
        )
        trusted = options.pop("trusted_keys", None)
        expected = options.pop("expected_agent_id", None)
        allow_unsigned = bool(options.pop("allow_unsigned", False))
        budget = options.pop("budget", None)
        protocol = str(options.pop("protocol", "auto"))
        urls = _card_urls(url, options.pop("card_path", None))
        if options:
            raise InvalidArgument(f"unknown options {sorted(options)}")
        last: Optional[Exception] = None
        for u in urls:
            try:
                _, raw = cfg.transport.request_sync("GET", u)
            except TransportError as e:
                if "HTTP 404" in str(e):
                    last = e
                    continue
                raise
            card = _verify(raw, trusted, expected, allow_unsigned)
            return cls(card, u, _endpoint(card, u, protocol), cfg, budget)
        raise last if last is not None else TransportError(f"no agent card at {url}")

    @property
    def card(self) -> AgentCard:
        """The verified agent card."""
        return self._card

    @property
    def endpoint(self) -> str:
        """The JSON-RPC URL in use."""
        return self._endpoint

    @property
    def protocol_version(self) -> str:
        """The A2A dialect in use: ``"1.0"``, ``"0.3"`` or ``"rvagent"``."""
        return self._version

    @property
    def budget(self) -> Optional[Budget]:
        """The client-wide budget, if any."""
        return self._budget

    def __repr__(self) -> str:
        return f"A2aClient({self._card.name!r}, endpoint={self._endpoint!r}, agent_id={self._card.agent_id!r})"

    # ---------------------------------------------------------------- helpers
    def _prepare_send(
        self,
        content: MessageLike,
        policy: Optional[TaskPolicy],
        skill: Optional[str],
        context_id: Optional[str],
        task_id: Optional[str],
        estimated_tokens: Optional[int],
        estimated_cost_usd: Optional[float],
        return_immediately: bool,
        history_length: Optional[int],
        metadata: Optional[Mapping[str, Any]],
    ) -> JsonDict:
        msg = _to_message(content, context_id, task_id)
        skills: FrozenSet[str] = frozenset(s.id for s in self._card.skills)
        if policy is not None:
            policy.check(
                skill=skill,
                card_skills=skills,
                estimated_tokens=estimated_tokens,
                estimated_cost_usd=estimated_cost_usd,
            )
        elif skill is not None and skills and skill not in skills:
            raise PolicyViolation(f"the peer's card has no skill {skill!r}; it has {sorted(skills)}")
        if self._budget is not None:
            tokens = policy.max_tokens if policy is not None and policy.max_tokens is not None else estimated_tokens
            cost = policy.max_cost_usd if policy is not None and policy.max_cost_usd is not None else estimated_cost_usd
            self._budget.reserve(tokens, cost)
        params: JsonDict = {"message": msg.to_wire()}
        conf: JsonDict = {}
        if return_immediately:
            conf["returnImmediately"] = True
        if history_length is not None:
            conf["historyLength"] = int(history_length)
        if conf:
            params["configuration"] = conf
        md: JsonDict = dict(metadata or {})
        if policy is not None or skill is not None:
            rv: JsonDict = dict(_m(md.get("ruvector")) or {})
            if policy is not None:
                rv["policy"] = policy.to_wire()
            if skill is not None:
                rv["skill"] = skill
            md["ruvector"] = rv
        if md:
            params["metadata"] = md
        return params

    @staticmethod
    def _send_result(result: Any) -> Union[Task, Message]:
        r: Mapping[str, Any] = _m(result) or {}
        if _m(r.get("task")) is not None:
            return Task.from_wire(r["task"])
        if _m(r.get("message")) is not None:
            return Message.from_wire(r["message"])
        raise TransportError("SendMessage: the result has neither task nor message")

    def _rpc(self, method: str, params: JsonDict) -> Tuple[int, bytes, List[Tuple[str, str]]]:
        """Request id, body and headers of a 1.0 call in this client's dialect."""
        if self._version == "rvagent":
            wire = _rvagent.method_to_rv(method)
            if method == "SendMessage":
                params = _rvagent.send_params(params, self._rv_skill, self._rv_id)
            rid, body = _request(wire, params)
            return rid, body, []
        if self._version == "0.3":
            rid, body = _request(_compat03.method_to_03(method), _compat03.params_to_03(method, params))
            return rid, body, []
        rid, body = _request(method, params)
        return rid, body, [("A2A-Version", A2A_VERSION)]

    def _result(self, method: str, result: Any) -> Any:
        if self._version == "rvagent":
            return _rvagent.result_from_rv(method, result)
        return _compat03.result_from_03(method, result) if self._version == "0.3" else result

    async def _call(self, method: str, params: JsonDict) -> Any:
        if self._version == "rvagent" and method == "CancelTask":
            return await self._rv_cancel(str(params["id"]))
        rid, body, headers = self._rpc(method, params)
        sent = self._rv_track(method, body)
        try:
            _, resp = await self._t.request("POST", self._endpoint, body, headers)
        finally:
            self._rv_sent.discard(sent)
        return self._result(method, _unwrap(rid, resp, method))

    def _call_sync(self, method: str, params: JsonDict) -> Any:
        if self._version == "rvagent" and method == "CancelTask":
            return self._rv_cancel_sync(str(params["id"]))
        rid, body, headers = self._rpc(method, params)
        sent = self._rv_track(method, body)
        try:
            _, resp = self._t.request_sync("POST", self._endpoint, body, headers)
        finally:
            self._rv_sent.discard(sent)
        return self._result(method, _unwrap(rid, resp, method))

    # ---------------------------------------------------------------- rvAgent cancel
    def _rv_track(self, method: str, body: bytes) -> str:
        """Remembers an rvAgent task id while its ``tasks/send`` runs (the peer
        cannot show running tasks); returns it, or "" for other calls."""
        if self._version != "rvagent" or method != "SendMessage":
            return ""
        tid = str(json.loads(body)["params"]["id"])
        self._rv_sent.add(tid)
        return tid

    def _rv_cancel_plan(self, task_id: str, stored: Optional[Task]) -> Optional[Task]:
        """Refuses what rvAgent would wrongly accept: cancelling a finished task
        (it would flip it to canceled) or a task nobody is running (it answers
        ``canceled`` for any id). None: send the cancel."""
        if stored is not None and stored.status.state.is_terminal:
            raise _rpc_error({"code": -32002, "message": f"task {task_id} is {stored.status.state.value}"})
        if stored is None and task_id not in self._rv_sent:
            raise _rpc_error({"code": -32001, "message": f"task {task_id} not found"})
        return None

    @staticmethod
    def _rv_canceled(task_id: str) -> Task:
        return Task.from_wire({"id": task_id, "contextId": "", "status": {"state": "TASK_STATE_CANCELED"}})

    async def _rv_get_or_none(self, task_id: str) -> Optional[Task]:
        try:
            return Task.from_wire(await self._call("GetTask", {"id": task_id}))
        except A2aError as e:
            if isinstance(e, TransportError):
                raise
            return None

    async def _rv_cancel(self, task_id: str) -> Any:
        self._rv_cancel_plan(task_id, await self._rv_get_or_none(task_id))
        rid, body, headers = self._rpc("CancelTask", {"id": task_id})
        _, resp = await self._t.request("POST", self._endpoint, body, headers)
        _unwrap(rid, resp)
        return self._rv_canceled(task_id).to_wire()

    def _rv_cancel_sync(self, task_id: str) -> Any:
        try:
            stored: Optional[Task] = Task.from_wire(self._call_sync("GetTask", {"id": task_id}))
        except TransportError:
            raise
        except A2aError:
            stored = None
        self._rv_cancel_plan(task_id, stored)
        rid, body, headers = self._rpc("CancelTask", {"id": task_id})
        _, resp = self._t.request_sync("POST", self._endpoint, body, headers)
        _unwrap(rid, resp)
        return self._rv_canceled(task_id).to_wire()

    # ---------------------------------------------------------------- calls
    async def send_message(
        self,
        message: MessageLike,
        *,
        policy: Optional[TaskPolicy] = None,
        skill: Optional[str] = None,
        context_id: Optional[str] = None,
        task_id: Optional[str] = None,
        estimated_tokens: Optional[int] = None,
        estimated_cost_usd: Optional[float] = None,
        return_immediately: bool = False,
        history_length: Optional[int] = None,
        metadata: Optional[Mapping[str, Any]] = None,
    ) -> Union[Task, Message]:
        """Sends a message (``SendMessage``); returns the task, or the agent's
        direct reply. Waits for a final state unless ``return_immediately``.

        ``policy`` is checked and the budget charged before anything is sent
        (:class:`PolicyViolation`, :class:`BudgetExceeded`). ``task_id``
        continues an interrupted task.
        """
        params = self._prepare_send(
            message,
            policy,
            skill,
            context_id,
            task_id,
            estimated_tokens,
            estimated_cost_usd,
            return_immediately,
            history_length,
            metadata,
        )
        call = self._call("SendMessage", params)
        if policy is not None and policy.max_duration_ms is not None:
            try:
                result = await asyncio.wait_for(call, policy.max_duration_ms / 1000)
            except asyncio.TimeoutError:
                raise PolicyViolation(f"no answer within max_duration_ms = {policy.max_duration_ms}") from None
        else:
            result = await call
        return self._send_result(result)

    def send_message_sync(self, message: MessageLike, **options: Any) -> Union[Task, Message]:
        """Synchronous :meth:`send_message` (``max_duration_ms`` is bounded by the client timeout)."""
        policy = options.get("policy")
        params = self._prepare_send(
            message,
            policy,
            options.get("skill"),
            options.get("context_id"),
            options.get("task_id"),
            options.get("estimated_tokens"),
            options.get("estimated_cost_usd"),
            bool(options.get("return_immediately")),
            options.get("history_length"),
            options.get("metadata"),
        )
        return self._send_result(self._call_sync("SendMessage", params))

    async def send_task(self, message: MessageLike, **options: Any) -> Task:
        """Like :meth:`send_message`, but the answer must be a task."""
        r = await self.send_message(message, **options)
        if not isinstance(r, Task):
            raise A2aError("the agent answered with a message, not a task; use send_message")
        return r

    def send_task_sync(self, message: MessageLike, **options: Any) -> Task:
        """Synchronous :meth:`send_task`."""
        r = self.send_message_sync(message, **options)
        if not isinstance(r, Task):
            raise A2aError("the agent answered with a message, not a task; use send_message_sync")
        return r

    async def get_task(self, task_id: str, *, history_length: Optional[int] = None) -> Task:
        """``GetTask``: the task as the agent has it now."""
        p: JsonDict = {"id": task_id}
        if history_length is not None:
            p["historyLength"] = int(history_length)
        return Task.from_wire(await self._call("GetTask", p))

    def get_task_sync(self, task_id: str, *, history_length: Optional[int] = None) -> Task:
        """Synchronous :meth:`get_task`."""
        p: JsonDict = {"id": task_id}
        if history_length is not None:
            p["historyLength"] = int(history_length)
        return Task.from_wire(self._call_sync("GetTask", p))

    @staticmethod
    def _list_params(
        context_id: Optional[str],
        state: Optional[TaskState],
        page_size: Optional[int],
        page_token: Optional[str],
        history_length: Optional[int],
        include_artifacts: bool,
    ) -> JsonDict:
        p: JsonDict = {}
        if context_id is not None:
            p["contextId"] = context_id
        if state is not None:
            p["status"] = TaskState(state).to_wire()
        if page_size is not None:
            p["pageSize"] = int(page_size)
        if page_token:
            p["pageToken"] = page_token
        if history_length is not None:
            p["historyLength"] = int(history_length)
        if include_artifacts:
            p["includeArtifacts"] = True
        return p

    @staticmethod
    def _list_result(result: Any) -> ListTasksResult:
        r = _m(result)
        if r is None:
            raise TransportError("ListTasks: the result is not an object")
        raw_tasks = r.get("tasks")
        tasks: List[Any] = cast(List[Any], raw_tasks) if isinstance(raw_tasks, list) else []  # type: ignore[redundant-cast]
        total = r.get("totalSize")
        return ListTasksResult(
            tasks=[Task.from_wire(t) for t in tasks],
            next_page_token=str(r.get("nextPageToken") or ""),
            total_size=int(total) if isinstance(total, (int, str)) and str(total).isdigit() else len(tasks),
        )

    async def list_tasks(
        self,
        *,
        context_id: Optional[str] = None,
        state: Optional[TaskState] = None,
        page_size: Optional[int] = None,
        page_token: Optional[str] = None,
        history_length: Optional[int] = None,
        include_artifacts: bool = False,
    ) -> ListTasksResult:
        """``ListTasks``: one page of the agent's tasks (newest first on this SDK's server)."""
        return self._list_result(
            await self._call(
                "ListTasks",
                self._list_params(context_id, state, page_size, page_token, history_length, include_artifacts),
            )
        )

    def list_tasks_sync(
        self,
        *,
        context_id: Optional[str] = None,
        state: Optional[TaskState] = None,
        page_size: Optional[int] = None,
        page_token: Optional[str] = None,
        history_length: Optional[int] = None,
        include_artifacts: bool = False,
    ) -> ListTasksResult:
        """Synchronous :meth:`list_tasks`."""
        return self._list_result(
            self._call_sync(
                "ListTasks",
                self._list_params(context_id, state, page_size, page_token, history_length, include_artifacts),
            )
        )

    async def cancel_task(self, task_id: str) -> Task:
        """``CancelTask``; returns the task in its new state."""
        return Task.from_wire(await self._call("CancelTask", {"id": task_id}))

    def cancel_task_sync(self, task_id: str) -> Task:
        """Synchronous :meth:`cancel_task`."""
        return Task.from_wire(self._call_sync("CancelTask", {"id": task_id}))

    # ---------------------------------------------------------------- push notifications
    @staticmethod
    def _push_params(task_id: str, config: Union[str, PushNotificationConfig]) -> JsonDict:
        cfg = PushNotificationConfig(url=config) if isinstance(config, str) else config
        d = cfg.to_wire()
        d["taskId"] = task_id
        return d

    @staticmethod
    def _push_list(r: Any) -> List[PushNotificationConfig]:
        m = _m(r)
        raw: Any = m.get("configs") if m is not None else r
        items: List[Any] = cast(List[Any], raw) if isinstance(raw, list) else []  # type: ignore[redundant-cast]
        return [PushNotificationConfig.from_wire(x) for x in items]

    async def set_push_config(self, task_id: str, config: Union[str, PushNotificationConfig]) -> PushNotificationConfig:
        """``CreateTaskPushNotificationConfig``: have the agent POST the task's
        updates to ``config`` (a URL or a :class:`PushNotificationConfig`)."""
        r = await self._call("CreateTaskPushNotificationConfig", self._push_params(task_id, config))
        return PushNotificationConfig.from_wire(r)

    def set_push_config_sync(self, task_id: str, config: Union[str, PushNotificationConfig]) -> PushNotificationConfig:
        """Synchronous :meth:`set_push_config`."""
        r = self._call_sync("CreateTaskPushNotificationConfig", self._push_params(task_id, config))
        return PushNotificationConfig.from_wire(r)

    async def get_push_config(self, task_id: str, config_id: str) -> PushNotificationConfig:
        """``GetTaskPushNotificationConfig``."""
        r = await self._call("GetTaskPushNotificationConfig", {"taskId": task_id, "id": config_id})
        return PushNotificationConfig.from_wire(r)

    def get_push_config_sync(self, task_id: str, config_id: str) -> PushNotificationConfig:
        """Synchronous :meth:`get_push_config`."""
        r = self._call_sync("GetTaskPushNotificationConfig", {"taskId": task_id, "id": config_id})
        return PushNotificationConfig.from_wire(r)

    async def list_push_configs(self, task_id: str) -> List[PushNotificationConfig]:
        """``ListTaskPushNotificationConfigs`` (first page)."""
        return self._push_list(await self._call("ListTaskPushNotificationConfigs", {"taskId": task_id}))

    def list_push_configs_sync(self, task_id: str) -> List[PushNotificationConfig]:
        """Synchronous :meth:`list_push_configs`."""
        return self._push_list(self._call_sync("ListTaskPushNotificationConfigs", {"taskId": task_id}))

    async def delete_push_config(self, task_id: str, config_id: str) -> None:
        """``DeleteTaskPushNotificationConfig``."""
        await self._call("DeleteTaskPushNotificationConfig", {"taskId": task_id, "id": config_id})

    def delete_push_config_sync(self, task_id: str, config_id: str) -> None:
        """Synchronous :meth:`delete_push_config`."""
        self._call_sync("DeleteTaskPushNotificationConfig", {"taskId": task_id, "id": config_id})

    # ---------------------------------------------------------------- streams
    def stream_task(self, message: MessageLike, **options: Any) -> TaskStream:
        """Sends a message and streams the task's updates (``SendStreamingMessage``).

        ``async for update in client.stream_task("hi"): ...`` yields
        :class:`TaskUpdate` objects and stops after the one carrying a final
        state (or a direct message). The policy and budget are checked here,
        before anything is sent; ``max_duration_ms`` bounds the whole stream.
        Leaving the loop early, cancelling the task or ``await stream.aclose()``
        closes the HTTP stream.
        """
        policy: Optional[TaskPolicy] = options.get("policy")
        params = self._prepare_send(
            message,
            policy,
            options.get("skill"),
            options.get("context_id"),
            options.get("task_id"),
            options.get("estimated_tokens"),
            options.get("estimated_cost_usd"),
            False,
            options.get("history_length"),
            options.get("metadata"),
        )
        return TaskStream(self, "SendStreamingMessage", params, policy)

    def resubscribe(self, task_id: str, *, policy: Optional[TaskPolicy] = None) -> TaskStream:
        """Streams updates of a running task (``SubscribeToTask``); the first update is the task."""
        return TaskStream(self, "SubscribeToTask", {"id": task_id}, policy)

    def stream_task_sync(self, message: MessageLike, **options: Any) -> TaskStreamSync:
        """Synchronous :meth:`stream_task`: a plain iterator (close it, or use ``with``)."""
        policy: Optional[TaskPolicy] = options.get("policy")
        params = self._prepare_send(
            message,
            policy,
            options.get("skill"),
            options.get("context_id"),
            options.get("task_id"),
            options.get("estimated_tokens"),
            options.get("estimated_cost_usd"),
            False,
            options.get("history_length"),
            options.get("metadata"),
        )
        return TaskStreamSync(self, "SendStreamingMessage", params, policy)

    def resubscribe_sync(self, task_id: str, *, policy: Optional[TaskPolicy] = None) -> TaskStreamSync:
        """Synchronous :meth:`resubscribe`."""
        return TaskStreamSync(self, "SubscribeToTask", {"id": task_id}, policy)


class _StreamBase:
    def __init__(self, client: A2aClient, method: str, params: JsonDict, policy: Optional[TaskPolicy]) -> None:
        self._client = client
        self._v03 = client.protocol_version == "0.3"
        self._rv = client.protocol_version == "rvagent"
        self._task_id: Optional[str] = params.get("id") if method == "SubscribeToTask" else None
        # A POST answered with SSE, or for rvAgent a GET of the task's side
        # channel (plus, for a new task, its tasks/send POST once it is open).
        self._url = client.endpoint
        self._body: Optional[bytes]
        self._send: Optional[bytes] = None
        if self._rv and method == "SubscribeToTask":
            self._rid, self._headers, self._body = 0, [], None
            self._url = _rvagent.channel_url(client.endpoint, _rvagent.RESUBSCRIBE_PATH, str(params["id"]))
        elif self._rv:
            self._rid, self._send, self._headers = client._rpc("SendMessage", params)  # pyright: ignore[reportPrivateUsage]
            self._task_id = str(json.loads(self._send)["params"]["id"])
            self._url = _rvagent.channel_url(client.endpoint, _rvagent.SUBSCRIBE_PATH, self._task_id)
            self._body = None
        else:
            self._rid, self._body, self._headers = client._rpc(method, params)  # pyright: ignore[reportPrivateUsage]
        self._es: Optional[Any] = None
        # Events of the last burst, taken from the stream in one call.
        self._ready: Deque[Any] = collections.deque()
        self._done = False
        self._deadline = (
            time.monotonic() + policy.max_duration_ms / 1000
            if policy is not None and policy.max_duration_ms is not None
            else None
        )
        self._policy = policy

    @property
    def task_id(self) -> Optional[str]:
        """The task's id once the stream has told it."""
        return self._task_id

    def _remaining(self) -> Optional[float]:
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - time.monotonic())

    def _close(self) -> None:
        self._done = True
        if self._es is not None:
            self._es.close()

    def _rv_sent_result(self, raw: Any) -> TaskUpdate:
        """The final update made of rvAgent's ``tasks/send`` answer (an error raises)."""
        try:
            task = _rvagent.task_from_rv(_unwrap(self._rid, raw))
        except BaseException:
            self._close()
            raise
        self._close()
        return TaskUpdate.from_wire({"task": task})

    def _handle(self, ev: Any) -> Optional[TaskUpdate]:
        """The update an event carries; None for an rvAgent frame that carries none."""
        if ev is None:
            self._close()
            raise TransportError(
                "the stream ended before the task reached a final state; resubscribe(task_id) to follow it"
            )
        try:
            if self._rv:
                wire = _rvagent.event_from_rv(ev)
                if wire is None:
                    return None
                up = TaskUpdate.from_wire(wire)
            else:
                result = _unwrap(self._rid, ev)
                up = TaskUpdate.from_wire(_compat03.event_from_03(result) if self._v03 else result)
        except BaseException:
            self._close()
            raise
        if up.task_id and self._task_id is None:
            self._task_id = up.task_id
        if up.is_final:
            self._close()
        return up

    # ------------------------------------------------------------ async machinery
    class _SentAnswer:
        """rvAgent's ``tasks/send`` answer, when it ends a stream."""

        def __init__(self, raw: Any) -> None:
            self.raw = raw

    _sending: Optional[asyncio.Future[Any]] = None

    async def _next_event(self, rem: Optional[float]) -> Any:
        """The next event; for rvAgent, raced against the ``tasks/send`` answer."""
        assert self._es is not None
        if not self._ready:
            self._ready.extend(self._es.ready())
            if self._ready:
                # A read-ahead burst is handed out without waiting; yield to
                # the loop once per burst so a fast stream cannot starve it.
                await asyncio.sleep(0)
        if self._ready:
            return self._ready.popleft()
        nxt = asyncio.ensure_future(self._es.next())
        sending = self._sending
        if sending is None:
            return await (asyncio.wait_for(nxt, rem) if rem is not None else nxt)
        if not sending.done():
            done, _ = await asyncio.wait({nxt, sending}, timeout=rem, return_when=asyncio.FIRST_COMPLETED)
            if nxt in done:
                return nxt.result()
            if not done:
                nxt.cancel()
                raise asyncio.TimeoutError
        # tasks/send answered first: an error ends the stream; a task waits a
        # moment for its final event on the side channel, else ends it.
        raw = sending.result()
        body = _m(raw)
        if body is None or body.get("error") is not None:
            nxt.cancel()
            return self._SentAnswer(raw)
        try:
            return await asyncio.wait_for(nxt, RV_FINAL_GRACE if rem is None else min(rem, RV_FINAL_GRACE))
        except asyncio.TimeoutError:
            return self._SentAnswer(raw)

    async def _anext_update(self) -> Optional[TaskUpdate]:
        """The next update (None: a frame without one); the stream must be open."""
        try:
            rem = self._remaining()
            if self._es is None:
                opening = self._client._t.open_stream(  # pyright: ignore[reportPrivateUsage]
                    self._url, self._body, self._headers
                )
                self._es = await (asyncio.wait_for(opening, rem) if rem is not None else opening)
                rem = self._remaining()
                if self._send is not None:
                    self._sending = self._start_send(self._send)
            ev = await self._next_event(rem)
        except asyncio.TimeoutError:
            self._close()
            if self._task_id is not None:
                try:  # best effort, briefly: the policy error is what matters
                    await asyncio.wait_for(self._client.cancel_task(self._task_id), CANCEL_GRACE)
                except (Exception, asyncio.TimeoutError):
                    pass
            raise self._timeout_error() from None
        except BaseException:
            self._close()
            raise
        if isinstance(ev, self._SentAnswer):
            return self._rv_sent_result(ev.raw)
        return self._handle(ev)

    def _start_send(self, body: bytes) -> asyncio.Future[Any]:
        """POSTs rvAgent's ``tasks/send`` in the background. It is never
        cancelled: the peer would abort the task half-done."""
        client = self._client
        tid = self._task_id or ""
        client._rv_sent.add(tid)  # pyright: ignore[reportPrivateUsage]

        async def send() -> Any:
            try:
                _, resp = await client._t.request("POST", client.endpoint, body, [])  # pyright: ignore[reportPrivateUsage]
                return resp
            finally:
                client._rv_sent.discard(tid)  # pyright: ignore[reportPrivateUsage]

        fut = asyncio.ensure_future(send())
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved: no "never retrieved" noise
        return fut

    def _timeout_error(self) -> PolicyViolation:
        return PolicyViolation(
            f"the stream exceeded max_duration_ms = "
            f"{self._policy.max_duration_ms if self._policy else None}; it was closed"
            + (f" and task {self._task_id} cancelled" if self._task_id else "")
        )


class TaskStream(_StreamBase):
    """Async iterator of :class:`TaskUpdate`; also an async context manager."""

    def __aiter__(self) -> TaskStream:
        return self

    async def __anext__(self) -> TaskUpdate:
        while True:
            if self._done:
                raise StopAsyncIteration
            up = await self._anext_update()
            if up is not None:
                return up

    async def aclose(self) -> None:
        """Closes the HTTP stream (idempotent)."""
        self._close()

    async def __aenter__(self) -> TaskStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._close()

    async def collect(self) -> List[TaskUpdate]:
        """All remaining updates, up to the final one."""
        return [u async for u in self]


class TaskStreamSync(_StreamBase):
    """Iterator of :class:`TaskUpdate`; also a context manager."""

    _loop: Optional[asyncio.AbstractEventLoop] = None

    def __iter__(self) -> Iterator[TaskUpdate]:
        return self

    def __next__(self) -> TaskUpdate:
        if self._rv:
            return self._rv_next()
        if self._done:
            raise StopIteration
        rem = self._remaining()
        if rem is not None and rem <= 0:
            self._close()
            if self._task_id is not None:
                try:
                    self._client.cancel_task_sync(self._task_id)
                except Exception:
                    pass
            raise self._timeout_error()
        try:
            if self._es is None:
                self._es = self._client._t.open_stream_sync(  # pyright: ignore[reportPrivateUsage]
                    self._url, self._body, self._headers
                )
            if not self._ready:
                self._ready.extend(self._es.ready())
            ev = self._ready.popleft() if self._ready else self._es.next_sync()
        except BaseException:
            self._close()
            raise
        up = self._handle(ev)
        assert up is not None
        return up

    def _rv_next(self) -> TaskUpdate:
        """rvAgent streams race two HTTP calls: run the async machinery on a
        private event loop."""
        if self._loop is None:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                pass  # no loop in this thread: the private one can run
            else:
                self._close()
                raise A2aError(
                    "a synchronous rvAgent stream cannot run inside a running event loop; "
                    "use stream_task / resubscribe (async) there"
                )
            self._loop = asyncio.new_event_loop()
        try:
            while not self._done:
                up = self._loop.run_until_complete(self._anext_update())
                if up is not None:
                    return up
        except BaseException:
            self._finish_loop()
            raise
        self._finish_loop()
        raise StopIteration

    def _finish_loop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        self._close()
        if self._sending is not None and not self._sending.done():
            # Let tasks/send answer (just after the final event) so nothing is
            # left pending on a closed loop.
            loop.run_until_complete(asyncio.wait({self._sending}, timeout=RV_FINAL_GRACE))
        loop.close()

    def close(self) -> None:
        """Closes the HTTP stream (idempotent)."""
        self._close()
        self._finish_loop()

    def __enter__(self) -> TaskStreamSync:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
