"""Events a breaker reports to its listeners, and how they are delivered.

::

    Event                 every event: the breaker, and the breaker's clock reading
     ├── StateChanged     the state changed: old and new state, why, and the failure behind it
     ├── CallSucceeded    a guarded call finished and counted as a success
     ├── CallFailed       ... counted as a failure (an expected exception, or a failed result)
     ├── CallNeutral      ... counted as neither (cancelled, or an exception that is not expected)
     └── CallRejected     a call was not run: the breaker is open, or its probe slots are taken

A listener is a plain callable taking one event. It may be synchronous, or return an awaitable
(an ``async def`` function): then the awaitable is scheduled as a task of its own on the running
event loop and never awaited by the guarded call. Whatever a listener raises is logged on the
``aiocircuitbreaker`` logger and swallowed: a listener can never change a call's outcome.

Listeners are called outside the breaker's lock, so they may read the breaker or call
``open()`` / ``close()`` on it. Events reach every listener in the order they happened: an event
raised by a listener (it changed a breaker) waits until the event being delivered has reached
every listener.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
import threading
import types
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from ._core import State

if TYPE_CHECKING:
    from ._breaker import CircuitBreaker

__all__ = [
    "CallFailed",
    "CallNeutral",
    "CallRejected",
    "CallSucceeded",
    "Event",
    "Listener",
    "StateChanged",
]

logger = logging.getLogger("aiocircuitbreaker")


@dataclass(frozen=True, slots=True)
class Event:
    """The base of every event.

    Attributes:
        breaker: The breaker the event is about.
        time: The breaker's clock reading when the event happened.
    """

    breaker: CircuitBreaker
    time: float

    @property
    def name(self) -> str | None:
        """The breaker's name."""
        return self.breaker.name


@dataclass(frozen=True, slots=True)
class StateChanged(Event):
    """The breaker changed state.

    An open breaker becomes half-open lazily: the event comes with the first call after the
    open period, not at the deadline itself (a breaker runs no timers).

    Attributes:
        old_state: The state before.
        new_state: The state after.
        reason: Why, in words (for logs and alerts).
        exception: The failure that caused the change (the last failure when it opened), or
            ``None``.
    """

    old_state: State
    new_state: State
    reason: str
    exception: BaseException | None


@dataclass(frozen=True, slots=True)
class CallSucceeded(Event):
    """A guarded call finished and counted as a success.

    Attributes:
        duration: Seconds the call took, by the breaker's clock.
    """

    duration: float


@dataclass(frozen=True, slots=True)
class CallFailed(Event):
    """A guarded call finished and counted as a failure.

    Attributes:
        duration: Seconds the call took, by the breaker's clock.
        exception: The expected exception it raised, or ``None`` when ``failure_result``
            judged its return value a failure.
    """

    duration: float
    exception: BaseException | None


@dataclass(frozen=True, slots=True)
class CallNeutral(Event):
    """A guarded call finished and counted as neither success nor failure.

    Attributes:
        duration: Seconds the call took, by the breaker's clock.
        exception: What it raised: a cancellation, or an exception that is not expected.
    """

    duration: float
    exception: BaseException


@dataclass(frozen=True, slots=True)
class CallRejected(Event):
    """A call was rejected without running (a fallback, if any, was used instead).

    Attributes:
        state: The breaker's state at the rejection (open, forced open, or half-open with
            its probe slots taken).
    """

    state: State


CALL_EVENTS: tuple[type[Event], ...] = (CallSucceeded, CallFailed, CallNeutral, CallRejected)
EVENT_TYPES: tuple[type[Event], ...] = (StateChanged, *CALL_EVENTS)

Listener: TypeAlias = Callable[[Any], "Awaitable[object] | object"]
"""A callable taking one event; if it returns an awaitable, the awaitable is scheduled."""


@dataclass(frozen=True, slots=True)
class Subscription:
    """One registered listener and the concrete event classes it wants."""

    listener: Listener
    kinds: frozenset[type[Event]]

    @property
    def wants_calls(self) -> bool:
        """Whether the listener wants any per-call event (which makes calls build events)."""
        return not self.kinds.isdisjoint(CALL_EVENTS)


def subscription(listener: object, types: Iterable[object]) -> Subscription:
    """Check a listener registration and return it as a Subscription."""
    if not callable(listener):
        msg = f"a listener must be callable, got {listener!r} ({type(listener).__name__})"
        raise TypeError(msg)
    wanted = tuple(types) or EVENT_TYPES
    for kind in wanted:
        if not (isinstance(kind, type) and issubclass(kind, Event)):
            msg = (
                f"event types must be Event classes (StateChanged, CallSucceeded, CallFailed, "
                f"CallNeutral, CallRejected or Event), got {kind!r}"
            )
            raise TypeError(msg)
    kinds = frozenset(kind for kind in EVENT_TYPES if issubclass(kind, wanted))  # type: ignore[arg-type]
    return Subscription(listener, kinds)


def same_listener(registered: object, given: object) -> bool:
    """Return whether ``given`` names the listener ``registered``.

    That is the same object, or the same method of the same object (``obj.method`` makes a new
    bound method on every access). Identity, not ``==``: two listeners that compare equal are
    still two listeners.
    """
    if registered is given:
        return True
    # Bound methods (of Python classes, or built-in ones such as list.append) compare their
    # object by identity and their function: equal means the same method of the same object.
    return (
        isinstance(registered, _METHODS)
        and type(registered) is type(given)
        and (registered == given)
    )


_METHODS = (types.MethodType, types.BuiltinMethodType)

# Tasks of async listeners still running: the event loop keeps only weak references to tasks.
_running: set[Any] = set()


# Events waiting for the one being delivered in this thread to reach every listener.
_delivering = threading.local()


def deliver(subscriptions: tuple[Subscription, ...], event: Event) -> None:
    """Hand ``event`` to every subscription that wants it, in order; never raise an Exception.

    An event delivered from inside a listener (in the same thread) is queued, and delivered
    once the current one has reached every listener: each listener sees events in the order
    they happened.
    """
    state = _delivering.__dict__
    queue: list[tuple[tuple[Subscription, ...], Event]] | None = state.get("queue")
    if queue is not None:
        queue.append((subscriptions, event))
        return
    queue = state["queue"] = []
    try:
        _deliver_now(subscriptions, event)
        while queue:
            _deliver_now(*queue.pop(0))
    finally:
        state["queue"] = None


def _deliver_now(subscriptions: tuple[Subscription, ...], event: Event) -> None:
    kind = type(event)
    for subscribed in subscriptions:
        if kind not in subscribed.kinds:
            continue
        try:
            result = subscribed.listener(event)
        except Exception:
            logger.exception(
                "listener %r of circuit breaker %r raised on %s; ignored",
                subscribed.listener,
                event.breaker.name,
                type(event).__name__,
            )
            continue
        if result is not None and inspect.isawaitable(result):
            _schedule(result, subscribed.listener, event)


def _schedule(awaitable: Awaitable[object], listener: Listener, event: Event) -> None:
    """Run an async listener's awaitable in the background of the running event loop."""
    runner = _guarded(awaitable, listener, event)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None:
        task = loop.create_task(runner)
        _running.add(task)
        task.add_done_callback(_running.discard)
        return
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            trio.lowlevel.spawn_system_task(_await, runner)
        except RuntimeError:
            pass
        else:
            return
    runner.close()
    if inspect.iscoroutine(awaitable):
        awaitable.close()  # never started: close it, or Python warns it was never awaited
    logger.warning(
        "async listener %r of circuit breaker %r got %s outside an event loop; not run",
        listener,
        event.breaker.name,
        type(event).__name__,
    )


async def _await(awaitable: Awaitable[object]) -> None:
    await awaitable


async def _guarded(awaitable: Awaitable[object], listener: Listener, event: Event) -> None:
    try:
        await awaitable
    except Exception:
        logger.exception(
            "async listener %r of circuit breaker %r raised on %s; ignored",
            listener,
            event.breaker.name,
            type(event).__name__,
        )
