"""``A2aServer``: host a Python agent over A2A 1.0 JSON-RPC (axum inside)."""

from __future__ import annotations

import asyncio
import inspect
import sys
import threading
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, Optional, Sequence, Union, cast

from ruvector_common.errors import InvalidArgument

from . import _native  # pyright: ignore[reportPrivateUsage]
from ._auth import CredentialCheck, Verifier, auth_plan
from ._types import (
    AgentCard,
    Artifact,
    CardVerification,
    Message,
    Part,
    PartLike,
    Role,
    Task,
    TaskState,
    _parts,  # pyright: ignore[reportPrivateUsage]
)

__all__ = ["A2aServer", "TaskContext", "Handler", "default_max_connections"]

HandlerResult = Union[None, str, Message, Artifact, Part]
Handler = Callable[[Message, "TaskContext"], Union[Awaitable[HandlerResult], AsyncIterator[Any]]]


class TaskContext:
    """What a handler gets besides the message: the task's ids and the means
    to report status and artifacts. Every report goes straight to the task
    store and to the task's open streams.
    """

    def __init__(self, core: Any, task: Task, principal: Any = None, auth_scheme: Optional[str] = None) -> None:
        self._core = core
        self._task = task
        self._principal = principal
        self._auth_scheme = auth_scheme
        self._stream_artifact: Optional[str] = None

    @property
    def principal(self) -> Any:
        """What the server's ``credential_verifier`` returned for the request
        that started (or resumed) the task; None when the card declares no
        security."""
        return self._principal

    @property
    def auth_scheme(self) -> Optional[str]:
        """The name of the security scheme that admitted the request (None without security)."""
        return self._auth_scheme

    @property
    def task_id(self) -> str:
        return self._task.id

    @property
    def context_id(self) -> str:
        return self._task.context_id

    @property
    def history(self) -> Sequence[Message]:
        """Messages of the task so far (the current one last)."""
        return self._task.history

    @property
    def cancelled(self) -> bool:
        """True once a client cancelled the task."""
        t = self._core.get_task(self._task.id)
        return t is not None and TaskState.from_wire(t["status"]["state"]) == TaskState.CANCELED

    def _agent_message(self, message: Union[str, Message, None]) -> Optional[Dict[str, Any]]:
        if message is None:
            return None
        m = message if isinstance(message, Message) else Message.agent(message)
        m.role = Role.AGENT
        return m.to_wire()

    async def update(self, state: TaskState, message: Union[str, Message, None] = None) -> bool:
        """Sets the task's state (with an optional agent message). Returns False
        if the task already ended (e.g. it was cancelled)."""
        return bool(self._core.update_status(self._task.id, TaskState(state).to_wire(), self._agent_message(message)))

    async def working(self, message: Union[str, Message, None] = None) -> bool:
        """Marks the task working."""
        return await self.update(TaskState.WORKING, message)

    async def complete(self, message: Union[str, Message, None] = None) -> bool:
        """Ends the task: completed."""
        return await self.update(TaskState.COMPLETED, message)

    async def fail(self, message: Union[str, Message, None] = None) -> bool:
        """Ends the task: failed."""
        return await self.update(TaskState.FAILED, message)

    async def reject(self, message: Union[str, Message, None] = None) -> bool:
        """Ends the task: rejected."""
        return await self.update(TaskState.REJECTED, message)

    async def require_input(self, message: Union[str, Message, None] = None) -> bool:
        """Pauses the task until the client sends another message with this task id."""
        return await self.update(TaskState.INPUT_REQUIRED, message)

    async def add_artifact(
        self,
        content: Union[Artifact, str, Part, Sequence[PartLike]],
        *,
        name: Optional[str] = None,
        append: bool = False,
        last_chunk: bool = False,
    ) -> bool:
        """Adds an artifact (or, with ``append=True`` and the same artifact id,
        more parts of it). Returns False if the task already ended."""
        art = content if isinstance(content, Artifact) else Artifact(parts=_parts(content), name=name)
        return bool(self._core.add_artifact(self._task.id, art.to_wire(), append, last_chunk))


def default_max_connections() -> int:
    """The default ``max_connections``: 1024, or half the process's
    file-descriptor limit when that is lower (so sockets never run the
    process out of descriptors)."""
    cap = 1024
    if sys.platform != "win32":
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft > 0:
            cap = min(cap, max(8, soft // 2))
    return cap


def _card_dict(card: Union[AgentCard, Dict[str, Any]]) -> Dict[str, Any]:
    if isinstance(card, AgentCard):
        return card.to_wire()
    obj = cast(object, card)  # checked at run time: callers may pass anything
    if isinstance(obj, dict):
        return dict(cast(Dict[str, Any], obj))
    raise InvalidArgument(f"card must be an AgentCard or a dict, got {type(card).__name__}")


class A2aServer:
    """An A2A 1.0 agent server running ``handler`` for every task.

    ``handler(message, ctx)`` is an ``async def`` returning ``None``, a str or
    :class:`Message` (the final reply), or an :class:`Artifact`/:class:`Part`;
    or an async generator yielding str/:class:`Part` (appended to one
    streamed artifact), :class:`Artifact`, :class:`Message` (a working-status
    message) or :class:`TaskState`. When it returns, the task completes
    unless it already reached a final state; an exception fails it; a client
    cancel cancels the handler's asyncio task.

    Serves the card at ``/.well-known/agent-card.json`` (and ``agent.json``),
    JSON-RPC at ``/``: SendMessage, SendStreamingMessage (SSE), GetTask,
    ListTasks, CancelTask, SubscribeToTask. Binds 127.0.0.1 by default; port 0
    picks a free port (see :attr:`url`). ``private_key`` (32-byte Ed25519
    seed, see :func:`generate_private_key`) signs the card.

    ``push_notifications=True`` serves the push-config methods and POSTs
    each task event to its webhooks (in order, off the request path, 10 s
    timeout, no retries, bounded queue). Webhooks resolving to loopback,
    private or link-local addresses are refused unless
    ``allow_private_webhooks=True`` (tests, trusted networks); stored tokens
    and credentials are never returned.

    **Security.** When the card declares ``security_schemes`` and
    ``security_requirements``, every JSON-RPC request (send, stream, get,
    list, cancel, resubscribe, push configs) must carry credentials that
    ``credential_verifier`` accepts, checked before any method runs; the
    card itself stays public. The credential is read where its scheme says:
    ``Authorization: Bearer`` (HTTP bearer, OAuth 2, OpenID Connect),
    ``Authorization: Basic`` (handed over as ``user:password``), or an API
    key in the named header, query parameter or cookie. Requirements are
    alternatives; all schemes of one must pass. ``credential_verifier`` is
    ``verify(scheme_name, credential)`` or ``{scheme_name: verify(credential)}``
    (plain or ``async def``; a sync one runs on a worker thread, an async
    one on the server's loop): it returns the principal (anything but
    None/False; handlers see it as :attr:`TaskContext.principal`), None or
    False to refuse, or raises for an invalid credential. Refusals are HTTP
    401 (missing or invalid credentials, with ``WWW-Authenticate`` for
    bearer/basic), 403 (the verifier refused) or 503 (it could not answer).
    A card declaring security without a verifier (or a verifier without
    security) raises :class:`InvalidArgument` here: the server never runs
    open by mistake. Mutual TLS and per-skill requirements cannot be
    enforced and are refused the same way.

    **Connections.** ``max_connections`` (default
    :func:`default_max_connections`: 1024, or half the process's descriptor
    limit) caps open connections: past it, a new connection evicts the one
    that has waited longest without sending a request, and when every
    connection is busy it is answered ``503`` (``Connection: close``) at
    once. A request head must arrive within ``header_read_timeout`` seconds
    (default 10; slow senders are disconnected), its body within
    ``body_read_timeout`` (default 30; else ``408``), and an idle kept-alive
    connection is closed after ``keep_alive_timeout`` (default 60). SSE
    streams are not bound by these: they last as long as the task sends.

    Start it with :meth:`start` (runs handlers on a private event-loop
    thread), ``await`` :meth:`start_async` (handlers on the running loop), or
    as a context manager (``with`` / ``async with``).
    """

    def __init__(
        self,
        card: Union[AgentCard, Dict[str, Any]],
        handler: Handler,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        private_key: Optional[bytes] = None,
        kid: Optional[str] = None,
        max_body_bytes: int = 1024 * 1024,
        max_event_bytes: int = 1024 * 1024,
        max_tasks: int = 10_000,
        max_task_bytes: int = 16 * 1024 * 1024,
        max_streams: int = 256,
        push_notifications: bool = False,
        allow_private_webhooks: bool = False,
        credential_verifier: Optional[Verifier] = None,
        max_connections: Optional[int] = None,
        header_read_timeout: float = 10.0,
        body_read_timeout: float = 30.0,
        keep_alive_timeout: float = 60.0,
    ) -> None:
        if not callable(handler):
            raise InvalidArgument("handler must be an async function or async generator function")
        if not (0 <= port <= 65535):
            raise InvalidArgument(f"port must be in 0..65535, got {port}")
        card_json = _card_dict(card)
        if push_notifications:
            caps = dict(card_json.get("capabilities") or {})
            caps["pushNotifications"] = True
            card_json["capabilities"] = caps
        plan = auth_plan(card_json)
        self._check: Optional[CredentialCheck] = None
        if plan is not None:
            if credential_verifier is None:
                raise InvalidArgument(
                    "the card declares security requirements "
                    f"({sorted({name for alt in plan for name, _, _ in alt})}) but no credential_verifier was "
                    "given: the server would serve anyone. Pass credential_verifier=verify, "
                    "verify(scheme_name, credential) -> principal or None"
                )
            self._check = CredentialCheck(credential_verifier, sorted({n for alt in plan for n, _, _ in alt}))
        elif credential_verifier is not None:
            raise InvalidArgument(
                "credential_verifier was given but the card declares no security_requirements, so no client "
                "would send credentials; declare security_schemes and security_requirements on the card"
            )
        self._core = _native.ServerCore(
            card_json,
            max_body_bytes=max_body_bytes,
            max_event_bytes=max_event_bytes,
            max_tasks=max_tasks,
            max_task_bytes=max_task_bytes,
            max_streams=max_streams,
            max_connections=default_max_connections() if max_connections is None else max_connections,
            header_read_timeout=header_read_timeout,
            body_read_timeout=body_read_timeout,
            keep_alive_timeout=keep_alive_timeout,
            auth=plan,
            private_key=private_key,
            kid=kid,
            push_notifications=push_notifications,
            allow_private_webhooks=allow_private_webhooks,
        )
        self._handler = handler
        self._host = host
        self._port = port
        self._url: Optional[str] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._running: Dict[str, asyncio.Task[None]] = {}

    # ------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/`` once started."""
        if self._url is None:
            raise InvalidArgument("the server is not started")
        return self._url

    @property
    def card(self) -> AgentCard:
        """The card as served (with its interface URL and signature)."""
        raw = self._core.card
        if not isinstance(raw, dict):
            raise InvalidArgument("the server is not started")
        card = cast(Dict[str, Any], raw)
        info = _native.verify_card(card, allow_unsigned=True)
        info.pop("card")
        return AgentCard.from_wire(card, CardVerification(**info))

    def stats(self) -> Dict[str, int]:
        """``{"tasks": stored tasks, "streams": open SSE streams, "running": running handlers}``."""
        tasks, streams = self._core.stats()
        return {"tasks": tasks, "streams": streams, "running": len(self._running)}

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        if self._check is not None:
            self._check.loop = loop
        self._url, _ = self._core.start(self._host, self._port, loop, self._dispatch, self._on_cancel, self._check)

    def start(self) -> A2aServer:
        """Starts serving; handlers run on a private event loop thread."""
        if self._url is not None:
            raise InvalidArgument("the server is already running")
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        t = threading.Thread(target=run, name="ruvector-a2a-server", daemon=True)
        t.start()
        ready.wait()
        self._thread = t
        try:
            self._bind(loop)
        except BaseException:
            loop.call_soon_threadsafe(loop.stop)
            t.join()
            self._thread = None
            raise
        return self

    async def start_async(self) -> A2aServer:
        """Starts serving; handlers run on the running event loop."""
        if self._url is not None:
            raise InvalidArgument("the server is already running")
        self._bind(asyncio.get_running_loop())
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stops serving (open streams end; handlers are cancelled). Idempotent."""
        if self._url is None:
            return
        self._core.stop(timeout)
        self._url = None
        loop, self._loop = self._loop, None
        if loop is not None and self._thread is not None:

            def cancel_all() -> None:
                for t in list(self._running.values()):
                    t.cancel()

            loop.call_soon_threadsafe(cancel_all)
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(timeout)
            self._thread = None
        else:
            for t in list(self._running.values()):
                t.cancel()

    async def stop_async(self, timeout: float = 5.0) -> None:
        """Stops serving from asyncio without blocking the loop."""
        if self._url is None:
            return
        running = list(self._running.values())
        for t in running:
            t.cancel()
        await asyncio.get_running_loop().run_in_executor(None, self._core.stop, timeout)
        self._url = None
        self._loop = None
        if running:
            await asyncio.wait(running, timeout=timeout)

    def __enter__(self) -> A2aServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> A2aServer:
        return await self.start_async()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_async()

    # ------------------------------------------------------------ dispatch (on the loop)
    def _dispatch(
        self, task_id: str, task: Dict[str, Any], principal: Any = None, scheme: Optional[str] = None
    ) -> None:
        t = Task.from_wire(task)
        msg = t.history[-1] if t.history else Message.user("")
        ctx = TaskContext(self._core, t, principal, scheme)
        prev = self._running.pop(task_id, None)
        if prev is not None:
            prev.cancel()
        at = asyncio.get_running_loop().create_task(self._run(msg, ctx))
        self._running[task_id] = at
        at.add_done_callback(lambda _t: self._running.pop(task_id, None) if self._running.get(task_id) is _t else None)

    def _on_cancel(self, task_id: str) -> None:
        t = self._running.get(task_id)
        if t is not None:
            t.cancel()

    async def _run(self, msg: Message, ctx: TaskContext) -> None:
        core = self._core
        tid = ctx.task_id
        try:
            core.update_status(tid, "TASK_STATE_WORKING", None)
            out = self._handler(msg, ctx)
            result: Any = None
            if inspect.isasyncgen(out):
                result = await self._drain(out, ctx)
            elif inspect.isawaitable(out):
                result = await out
            else:
                result = out
            await self._finish(result, ctx)
        except asyncio.CancelledError:
            core.update_status(tid, "TASK_STATE_CANCELED", None)
            raise
        except Exception as e:
            try:
                core.update_status(tid, "TASK_STATE_FAILED", Message.agent(f"{type(e).__name__}: {e}").to_wire())
            except Exception:
                core.update_status(tid, "TASK_STATE_FAILED", None)

    async def _drain(self, gen: AsyncIterator[Any], ctx: TaskContext) -> Any:
        stream_id: Optional[str] = None
        try:
            async for item in gen:
                if isinstance(item, TaskState):
                    await ctx.update(item)
                elif isinstance(item, Message):
                    await ctx.working(item)
                elif isinstance(item, Artifact):
                    await ctx.add_artifact(item)
                elif isinstance(item, (str, Part)):
                    if stream_id is None:
                        art = Artifact(parts=_parts(item), name="output")
                        stream_id = art.artifact_id
                        await ctx.add_artifact(art)
                    else:
                        await ctx.add_artifact(
                            Artifact(parts=_parts(item), artifact_id=stream_id, name="output"), append=True
                        )
                elif item is not None:
                    raise InvalidArgument(
                        f"a handler may yield str, Part, Artifact, Message or TaskState, not {type(item).__name__}"
                    )
        finally:
            aclose = getattr(gen, "aclose", None)
            if aclose is not None:
                await aclose()
        return None

    async def _finish(self, result: Any, ctx: TaskContext) -> None:
        snap = self._core.get_task(ctx.task_id)
        if snap is not None and TaskState.from_wire(snap["status"]["state"]).is_final:
            return
        if isinstance(result, (Artifact, Part)):
            await ctx.add_artifact(result if isinstance(result, Artifact) else Artifact(parts=[result]))
            await ctx.complete()
        elif isinstance(result, (str, Message)):
            await ctx.complete(result)
        elif result is None:
            await ctx.complete()
        else:
            raise InvalidArgument(
                f"a handler may return None, str, Message, Artifact or Part, not {type(result).__name__}"
            )
