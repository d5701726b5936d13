"""The breaker's own timeout: await a call for at most so many seconds, on asyncio or trio.

A timeout placed *around* a guarded call (``asyncio.wait_for(guarded(), 2)``) cancels it, and
cancellation is neutral: the breaker never learns that the dependency hung. With ``timeout=``
the breaker bounds the call itself, inside its own accounting, and counts the expiry as a
failure. The event loop in charge is found when the call is made: asyncio (uvloop included;
anyio on asyncio is asyncio) or trio (anyio on trio too).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["EXPIRED", "Within", "timed_out", "timer"]

EXPIRED: Any = object()  # within()'s answer when the time ran out


def timed_out(seconds: float | None) -> TimeoutError:
    """Return the error a call that ran out of the breaker's time raises."""
    return TimeoutError(f"the call took longer than the circuit breaker's timeout of {seconds} s")


Within = Callable[[float, Awaitable[Any]], Awaitable[Any]]


def timer() -> Within:
    """Return the ``within`` of the event loop running now: asyncio's or trio's.

    ``within(seconds, awaitable)`` awaits ``awaitable`` for at most ``seconds`` and returns its
    result, or ``EXPIRED``. On expiry the awaitable is cancelled (and has run its cleanup)
    before it returns. Its own exceptions, a ``TimeoutError`` of its own among them, propagate
    unchanged.

    Raises:
        RuntimeError: Neither asyncio nor trio is running in this thread.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return _asyncio_within
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            trio.lowlevel.current_task()
        except RuntimeError:
            pass
        else:
            return _trio_within
    msg = "a circuit breaker's timeout needs a running asyncio or trio event loop"
    raise RuntimeError(msg)


async def _asyncio_within(seconds: float, awaitable: Awaitable[Any]) -> Any:
    # A timer that cancels this task, as asyncio.timeout() does (which Python 3.10 lacks).
    task = asyncio.current_task()
    assert task is not None  # (a running loop runs a task)
    fired = False

    def expire() -> None:
        nonlocal fired
        fired = True
        task.cancel()

    timer = asyncio.get_running_loop().call_later(seconds, expire)
    try:
        result = await awaitable
    except asyncio.CancelledError:
        if fired and _uncancel(task) == 0:  # ours alone (not also a cancellation from outside)
            return EXPIRED
        raise
    finally:
        timer.cancel()
    if fired:  # the awaitable swallowed the cancellation and returned: its result stands
        # (Tested; Python 3.11's tracer loses this frame once resumed through throw().)
        _uncancel(task)  # pragma: no cover
    return result


def _uncancel(task: asyncio.Task[Any]) -> int:
    """Withdraw one cancellation request (Python 3.11+); return how many remain."""
    uncancel = getattr(task, "uncancel", None)
    return 0 if uncancel is None else int(uncancel())


async def _trio_within(seconds: float, awaitable: Awaitable[Any]) -> Any:
    import trio  # noqa: PLC0415 - running: imported already

    with trio.move_on_after(seconds):
        return await awaitable
    return EXPIRED  # (the scope caught its cancellation: the time ran out)
