"""Task streams: ``SendStreamingMessage`` / ``SubscribeToTask`` (SSE), and
rvAgent's side channel, as iterators of :class:`TaskUpdate`."""

from __future__ import annotations

import asyncio
import collections
import json
import time
from typing import TYPE_CHECKING, Any, Deque, Iterator, List, Optional, Tuple

from ruvector_common.errors import A2aError, PolicyViolation, TransportError

from . import _compat03, _rvagent
from ._policy import TaskPolicy
from ._rpc import JsonDict, as_map, unwrap
from ._types import TaskUpdate

if TYPE_CHECKING:
    from ._client import A2aClient

__all__ = ["TaskStream", "TaskStreamSync"]

#: Seconds a stream over its policy deadline waits for its CancelTask.
CANCEL_GRACE = 2.0
#: Seconds an rvAgent stream waits for the final event on its side channel
#: once ``tasks/send`` has answered (the answer then ends the stream).
RV_FINAL_GRACE = 5.0


class _StreamBase:
    """What async and sync task streams share: the request, the policy
    deadline, event handling."""

    def __init__(
        self,
        client: A2aClient,
        method: str,
        params: JsonDict,
        policy: Optional[TaskPolicy],
        stream_timeout: Optional[float] = None,
    ) -> None:
        self._client = client
        # The total deadline of the HTTP stream, enforced by the native stream.
        self._stream_timeout = stream_timeout
        self._v03 = client.protocol_version == "0.3"
        self._rv = client.protocol_version == "rvagent"
        self._task_id: Optional[str] = params.get("id") if method == "SubscribeToTask" else None
        # A POST answered with SSE, or for rvAgent a GET of the task's side
        # channel (plus, for a new task, its tasks/send POST once it is open).
        self._url = client.endpoint
        self._body: Optional[bytes]
        self._headers: List[Tuple[str, str]]
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
            task = _rvagent.task_from_rv(unwrap(self._rid, raw))
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
                result = unwrap(self._rid, ev)
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
        body = as_map(raw)
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
                    self._url, self._body, self._headers, self._stream_timeout
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
                    self._url, self._body, self._headers, self._stream_timeout
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
