"""The A2A client: discovery with card verification, JSON-RPC calls; task
streams are in ``_stream``, the JSON-RPC framing in ``_rpc``, discovery in
``_discovery``."""

from __future__ import annotations

import asyncio
import json
from typing import Any, FrozenSet, List, Mapping, Optional, Sequence, Tuple, Union, cast

from ruvector_common.errors import A2aError, InvalidArgument, PolicyViolation, TransportError

from . import (
    _compat03,
    _rvagent,
)
from ._discovery import (
    DEFAULT_MAX_EVENT_BYTES,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_STREAM_IDLE_TIMEOUT,
    Config,
    card_urls,
    endpoint_of,
    verify_raw_card,
)
from ._policy import Budget, TaskPolicy
from ._rpc import JsonDict, as_map, request_body, rpc_error, unwrap
from ._stream import TaskStream, TaskStreamSync
from ._types import (
    AgentCard,
    ListTasksResult,
    Message,
    Part,
    PushNotificationConfig,
    Task,
    TaskState,
    _check_json,  # pyright: ignore[reportPrivateUsage]
    _check_text,  # pyright: ignore[reportPrivateUsage]
)

__all__ = ["A2aClient", "TaskStream", "TaskStreamSync", "DEFAULT_MAX_RESPONSE_BYTES", "DEFAULT_MAX_EVENT_BYTES"]

A2A_VERSION = "1.0"

MessageLike = Union[str, Part, Message, Sequence[Union[str, Part]]]


def _to_message(content: MessageLike, context_id: Optional[str], task_id: Optional[str]) -> Message:
    if isinstance(content, Message):
        msg = content
        if context_id is not None:
            msg.context_id = context_id
        if task_id is not None:
            msg.task_id = task_id
        return msg
    return Message.user(content, context_id=context_id, task_id=task_id)


class A2aClient:
    """A client of one A2A agent. Create it with :meth:`connect` (asyncio) or
    :meth:`connect_sync`; every call has a sync sibling (``*_sync``).

    Nothing is retried: a request is sent once; a timeout or transport failure
    raises :class:`TransportError` and the caller decides.
    """

    def __init__(
        self, card: AgentCard, card_url: str, endpoint: Tuple[str, str], config: Config, budget: Optional[Budget]
    ) -> None:
        self._card = card
        self._card_url = card_url
        self._endpoint, self._version = endpoint
        self._t = config.transport
        self._stream_timeout = config.stream_timeout
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
        stream_idle_timeout: float = DEFAULT_STREAM_IDLE_TIMEOUT,
        stream_timeout: Optional[float] = None,
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

        Credentials (sent with every call, never with the card request's
        redirects, which are not followed): ``bearer_token`` as
        ``Authorization: Bearer``, ``api_key`` in the ``api_key_header``
        header, anything else in ``headers``. An agent that refuses them
        answers HTTP 401/403, raised as :class:`A2aError`.

        Deadlines: ``timeout`` bounds each request (connect to last byte). A
        stream waits at most ``stream_idle_timeout`` seconds (default 300)
        between two events; a peer that sends an event now and then can keep
        it open indefinitely unless ``stream_timeout`` (seconds, default
        none) bounds the whole stream — past it the stream is closed with
        :class:`TransportError` naming ``stream_timeout`` (the task itself
        is not cancelled). Each streaming call can set its own
        ``stream_timeout``. Responses over ``max_response_bytes`` and events
        over ``max_event_bytes`` raise :class:`TransportError`.
        """
        cfg, urls = cls._setup(
            url,
            timeout,
            headers,
            bearer_token,
            api_key,
            api_key_header,
            card_path,
            max_response_bytes,
            max_event_bytes,
            stream_idle_timeout,
            stream_timeout,
            expected_agent_id,
            protocol,
        )
        last: Optional[Exception] = None
        for u in urls:
            try:
                _, raw = await cfg.transport.request("GET", u)
            except TransportError as e:
                if "HTTP 404" in str(e):
                    last = e
                    continue
                raise
            card = verify_raw_card(raw, trusted_keys, expected_agent_id, allow_unsigned)
            return cls(card, u, endpoint_of(card, u, protocol), cfg, budget)
        raise last if last is not None else TransportError(f"no agent card at {url}")

    @classmethod
    def connect_sync(
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
        stream_idle_timeout: float = DEFAULT_STREAM_IDLE_TIMEOUT,
        stream_timeout: Optional[float] = None,
    ) -> A2aClient:
        """Synchronous :meth:`connect` (same options)."""
        cfg, urls = cls._setup(
            url,
            timeout,
            headers,
            bearer_token,
            api_key,
            api_key_header,
            card_path,
            max_response_bytes,
            max_event_bytes,
            stream_idle_timeout,
            stream_timeout,
            expected_agent_id,
            protocol,
        )
        last: Optional[Exception] = None
        for u in urls:
            try:
                _, raw = cfg.transport.request_sync("GET", u)
            except TransportError as e:
                if "HTTP 404" in str(e):
                    last = e
                    continue
                raise
            card = verify_raw_card(raw, trusted_keys, expected_agent_id, allow_unsigned)
            return cls(card, u, endpoint_of(card, u, protocol), cfg, budget)
        raise last if last is not None else TransportError(f"no agent card at {url}")

    @staticmethod
    def _setup(
        url: str,
        timeout: float,
        headers: Optional[Mapping[str, str]],
        bearer_token: Optional[str],
        api_key: Optional[str],
        api_key_header: str,
        card_path: Optional[str],
        max_response_bytes: int,
        max_event_bytes: int,
        stream_idle_timeout: float,
        stream_timeout: Optional[float],
        expected_agent_id: Optional[str],
        protocol: str,
    ) -> Tuple[Config, List[str]]:
        """The checked settings and the card URLs to try."""
        for name, value in (
            ("url", url),
            ("bearer_token", bearer_token),
            ("api_key", api_key),
            ("api_key_header", api_key_header),
            ("card_path", card_path),
            ("expected_agent_id", expected_agent_id),
            ("protocol", protocol),
        ):
            _check_text(value, name)
        for k, v in (headers or {}).items():
            _check_text(k, "headers")
            _check_text(v, f"headers[{k!r}]")
        cfg = Config(
            timeout,
            headers or {},
            bearer_token,
            api_key,
            api_key_header,
            max_response_bytes,
            max_event_bytes,
            stream_idle_timeout,
            stream_timeout,
        )
        return cfg, card_urls(url, card_path)

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
        _check_text(skill, "skill")
        _check_text(context_id, "context_id")
        _check_text(task_id, "task_id")
        _check_json(metadata, "metadata")
        if isinstance(content, str):
            _check_text(content, "message")
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
            rv: JsonDict = dict(as_map(md.get("ruvector")) or {})
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
        r: Mapping[str, Any] = as_map(result) or {}
        if as_map(r.get("task")) is not None:
            return Task.from_wire(r["task"])
        if as_map(r.get("message")) is not None:
            return Message.from_wire(r["message"])
        raise TransportError("SendMessage: the result has neither task nor message")

    def _rpc(self, method: str, params: JsonDict) -> Tuple[int, bytes, List[Tuple[str, str]]]:
        """Request id, body and headers of a 1.0 call in this client's dialect."""
        if self._version == "rvagent":
            wire = _rvagent.method_to_rv(method)
            if method == "SendMessage":
                params = _rvagent.send_params(params, self._rv_skill, self._rv_id)
            rid, body = request_body(wire, params)
            return rid, body, []
        if self._version == "0.3":
            rid, body = request_body(_compat03.method_to_03(method), _compat03.params_to_03(method, params))
            return rid, body, []
        rid, body = request_body(method, params)
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
        return self._result(method, unwrap(rid, resp, method))

    def _call_sync(self, method: str, params: JsonDict) -> Any:
        if self._version == "rvagent" and method == "CancelTask":
            return self._rv_cancel_sync(str(params["id"]))
        rid, body, headers = self._rpc(method, params)
        sent = self._rv_track(method, body)
        try:
            _, resp = self._t.request_sync("POST", self._endpoint, body, headers)
        finally:
            self._rv_sent.discard(sent)
        return self._result(method, unwrap(rid, resp, method))

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
            raise rpc_error({"code": -32002, "message": f"task {task_id} is {stored.status.state.value}"})
        if stored is None and task_id not in self._rv_sent:
            raise rpc_error({"code": -32001, "message": f"task {task_id} not found"})
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
        unwrap(rid, resp)
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
        unwrap(rid, resp)
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

    def send_message_sync(
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
        """Synchronous :meth:`send_message` (``max_duration_ms`` is bounded by the client timeout)."""
        params = self._prepare_send(
            message,
            policy,
            skill,
            context_id,
            task_id,
            estimated_tokens,
            estimated_cost_usd,
            bool(return_immediately),
            history_length,
            metadata,
        )
        return self._send_result(self._call_sync("SendMessage", params))

    async def send_task(
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
    ) -> Task:
        """Like :meth:`send_message`, but the answer must be a task."""
        r = await self.send_message(
            message,
            policy=policy,
            skill=skill,
            context_id=context_id,
            task_id=task_id,
            estimated_tokens=estimated_tokens,
            estimated_cost_usd=estimated_cost_usd,
            return_immediately=return_immediately,
            history_length=history_length,
            metadata=metadata,
        )
        if not isinstance(r, Task):
            raise A2aError("the agent answered with a message, not a task; use send_message")
        return r

    def send_task_sync(
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
    ) -> Task:
        """Synchronous :meth:`send_task`."""
        r = self.send_message_sync(
            message,
            policy=policy,
            skill=skill,
            context_id=context_id,
            task_id=task_id,
            estimated_tokens=estimated_tokens,
            estimated_cost_usd=estimated_cost_usd,
            return_immediately=return_immediately,
            history_length=history_length,
            metadata=metadata,
        )
        if not isinstance(r, Task):
            raise A2aError("the agent answered with a message, not a task; use send_message_sync")
        return r

    async def get_task(self, task_id: str, *, history_length: Optional[int] = None) -> Task:
        """``GetTask``: the task as the agent has it now."""
        _check_text(task_id, "task_id")
        p: JsonDict = {"id": task_id}
        if history_length is not None:
            p["historyLength"] = int(history_length)
        return Task.from_wire(await self._call("GetTask", p))

    def get_task_sync(self, task_id: str, *, history_length: Optional[int] = None) -> Task:
        """Synchronous :meth:`get_task`."""
        _check_text(task_id, "task_id")
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
        _check_text(context_id, "context_id")
        _check_text(page_token, "page_token")
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
        r = as_map(result)
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
        _check_text(task_id, "task_id")
        return Task.from_wire(await self._call("CancelTask", {"id": task_id}))

    def cancel_task_sync(self, task_id: str) -> Task:
        """Synchronous :meth:`cancel_task`."""
        _check_text(task_id, "task_id")
        return Task.from_wire(self._call_sync("CancelTask", {"id": task_id}))

    # ---------------------------------------------------------------- push notifications
    @staticmethod
    def _push_params(task_id: str, config: Union[str, PushNotificationConfig]) -> JsonDict:
        _check_text(task_id, "task_id")
        _check_text(config if isinstance(config, str) else config.url, "config")
        cfg = PushNotificationConfig(url=config) if isinstance(config, str) else config
        d = cfg.to_wire()
        d["taskId"] = task_id
        return d

    @staticmethod
    def _cfg_params(task_id: str, config_id: Optional[str] = None) -> JsonDict:
        _check_text(task_id, "task_id")
        if config_id is None:
            return {"taskId": task_id}
        _check_text(config_id, "config_id")
        return {"taskId": task_id, "id": config_id}

    @staticmethod
    def _push_list(r: Any) -> List[PushNotificationConfig]:
        m = as_map(r)
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
        r = await self._call("GetTaskPushNotificationConfig", self._cfg_params(task_id, config_id))
        return PushNotificationConfig.from_wire(r)

    def get_push_config_sync(self, task_id: str, config_id: str) -> PushNotificationConfig:
        """Synchronous :meth:`get_push_config`."""
        r = self._call_sync("GetTaskPushNotificationConfig", self._cfg_params(task_id, config_id))
        return PushNotificationConfig.from_wire(r)

    async def list_push_configs(self, task_id: str) -> List[PushNotificationConfig]:
        """``ListTaskPushNotificationConfigs`` (first page)."""
        return self._push_list(await self._call("ListTaskPushNotificationConfigs", self._cfg_params(task_id)))

    def list_push_configs_sync(self, task_id: str) -> List[PushNotificationConfig]:
        """Synchronous :meth:`list_push_configs`."""
        return self._push_list(self._call_sync("ListTaskPushNotificationConfigs", self._cfg_params(task_id)))

    async def delete_push_config(self, task_id: str, config_id: str) -> None:
        """``DeleteTaskPushNotificationConfig``."""
        await self._call("DeleteTaskPushNotificationConfig", self._cfg_params(task_id, config_id))

    def delete_push_config_sync(self, task_id: str, config_id: str) -> None:
        """Synchronous :meth:`delete_push_config`."""
        self._call_sync("DeleteTaskPushNotificationConfig", self._cfg_params(task_id, config_id))

    # ---------------------------------------------------------------- streams
    def _timeout_of(self, stream_timeout: Optional[float]) -> Optional[float]:
        if stream_timeout is None:
            return self._stream_timeout
        t = float(stream_timeout)
        if not (0 < t <= 604_800):
            raise InvalidArgument(f"stream_timeout must be a number of seconds in (0, 604800], got {stream_timeout}")
        return t

    def stream_task(
        self,
        message: MessageLike,
        *,
        policy: Optional[TaskPolicy] = None,
        skill: Optional[str] = None,
        context_id: Optional[str] = None,
        task_id: Optional[str] = None,
        estimated_tokens: Optional[int] = None,
        estimated_cost_usd: Optional[float] = None,
        history_length: Optional[int] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        stream_timeout: Optional[float] = None,
    ) -> TaskStream:
        """Sends a message and streams the task's updates (``SendStreamingMessage``).

        ``async for update in client.stream_task("hi"): ...`` yields
        :class:`TaskUpdate` objects and stops after the one carrying a final
        state (or a direct message). The options are those of
        :meth:`send_message`; the policy and budget are checked here, before
        anything is sent. ``policy.max_duration_ms`` bounds the whole stream
        and then cancels the task (:class:`PolicyViolation`);
        ``stream_timeout`` (seconds; default: the client's) bounds it too,
        but only closes the stream (:class:`TransportError`). Leaving the
        loop early, cancelling the task or ``await stream.aclose()`` closes
        the HTTP stream.
        """
        params = self._prepare_send(
            message,
            policy,
            skill,
            context_id,
            task_id,
            estimated_tokens,
            estimated_cost_usd,
            False,
            history_length,
            metadata,
        )
        return TaskStream(self, "SendStreamingMessage", params, policy, self._timeout_of(stream_timeout))

    def resubscribe(
        self, task_id: str, *, policy: Optional[TaskPolicy] = None, stream_timeout: Optional[float] = None
    ) -> TaskStream:
        """Streams updates of a running task (``SubscribeToTask``); the first
        update is the task. ``stream_timeout`` as in :meth:`stream_task`."""
        _check_text(task_id, "task_id")
        return TaskStream(self, "SubscribeToTask", {"id": task_id}, policy, self._timeout_of(stream_timeout))

    def stream_task_sync(
        self,
        message: MessageLike,
        *,
        policy: Optional[TaskPolicy] = None,
        skill: Optional[str] = None,
        context_id: Optional[str] = None,
        task_id: Optional[str] = None,
        estimated_tokens: Optional[int] = None,
        estimated_cost_usd: Optional[float] = None,
        history_length: Optional[int] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        stream_timeout: Optional[float] = None,
    ) -> TaskStreamSync:
        """Synchronous :meth:`stream_task`: a plain iterator (close it, or use ``with``)."""
        params = self._prepare_send(
            message,
            policy,
            skill,
            context_id,
            task_id,
            estimated_tokens,
            estimated_cost_usd,
            False,
            history_length,
            metadata,
        )
        return TaskStreamSync(self, "SendStreamingMessage", params, policy, self._timeout_of(stream_timeout))

    def resubscribe_sync(
        self, task_id: str, *, policy: Optional[TaskPolicy] = None, stream_timeout: Optional[float] = None
    ) -> TaskStreamSync:
        """Synchronous :meth:`resubscribe`."""
        _check_text(task_id, "task_id")
        return TaskStreamSync(self, "SubscribeToTask", {"id": task_id}, policy, self._timeout_of(stream_timeout))
