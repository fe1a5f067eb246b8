"""Bridge between asyncio and the native wheels' tokio runtimes.

Native methods such as ``RabitqPlusIndex.search_async`` return the coroutine
``run(start)``. It creates a future on the running loop and calls
``start(loop, future)``, which begins the work on a Rust thread and returns
a ``cancel()`` callable. The Rust side hands the outcome back with
``loop.call_soon_threadsafe(deliver, future, ok, value)``.

Being a real coroutine, the awaitable works with ``await``,
``asyncio.gather``, ``asyncio.run`` and uvloop alike. Internal: not part of
the public API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import asyncio

__all__ = ["run", "deliver"]


async def run(start: Callable[[asyncio.AbstractEventLoop, asyncio.Future[Any]], Callable[[], None]]) -> Any:
    """Start native work and await its result on the running loop."""
    # Imported here, not at module level, so importing a wheel stays cheap;
    # whoever awaits this has loaded asyncio already.
    import asyncio

    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    cancel = start(loop, future)
    try:
        return await future
    except asyncio.CancelledError:
        cancel()
        raise


def deliver(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    """Set the outcome on ``future`` unless it was cancelled meanwhile."""
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
