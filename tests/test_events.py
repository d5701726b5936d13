"""Events and listeners: what a breaker reports, to whom, and that reporting never hurts a call."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import sys
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import pytest

from aiocircuitbreaker import (
    CallFailed,
    CallNeutral,
    CallRejected,
    CallSucceeded,
    CircuitBreaker,
    CircuitBreakerError,
    CircuitBreakerMonitor,
    Event,
    State,
    StateChanged,
)
from aiocircuitbreaker.testing import FakeClock

from .conftest import DependencyDown, echo, make

pytestmark = pytest.mark.asyncio

Guard = Callable[[CircuitBreaker], Callable[[object], Any]]


class Recorder:
    """A sync listener that keeps every event it is given."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type[Event]) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]

    def kinds(self) -> list[type[Event]]:
        return [type(event) for event in self.events]

    def changes(self) -> list[tuple[State, State]]:
        return [(e.old_state, e.new_state) for e in self.of(StateChanged)]


class SteppingClock(FakeClock):
    """A fake clock that runs a queued action right after a reading (to land a change there)."""

    def __init__(self, start: float) -> None:
        super().__init__(start)
        self.after_read: list[Callable[[], None]] = []

    def __call__(self) -> float:
        now = super().__call__()
        if self.after_read:
            self.after_read.pop(0)()
        return now


def run_in_thread(target: Callable[[], None]) -> None:
    """Run ``target`` in a thread with no event loop; fail (instead of hanging) on a deadlock."""
    errors: list[BaseException] = []

    def runner() -> None:
        try:
            target()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=runner, daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "deadlock"
    assert errors == []


async def test_events_are_frozen_slotted_values(clock: FakeClock) -> None:
    """Events are immutable, slotted dataclasses that name their breaker."""
    breaker = make(clock, name="events-values")
    error = DependencyDown("down")
    events: list[Event] = [
        StateChanged(breaker, 1.0, State.CLOSED, State.OPEN, "why", error),
        CallSucceeded(breaker, 2.0, 0.5),
        CallFailed(breaker, 3.0, 0.5, None),
        CallNeutral(breaker, 4.0, 0.5, KeyError()),
        CallRejected(breaker, 5.0, State.OPEN),
    ]
    for event in events:
        assert isinstance(event, Event)
        assert event.name == "events-values"
        assert event.breaker is breaker
        assert not hasattr(event, "__dict__")
        with pytest.raises(dataclasses.FrozenInstanceError):
            event.time = 0.0  # type: ignore[misc]
    assert events[0] == StateChanged(breaker, 1.0, State.CLOSED, State.OPEN, "why", error)


async def test_each_outcome_is_reported_through_every_guard(clock: FakeClock, guard: Guard) -> None:
    """A success, an expected failure and another exception each give their own call event."""
    breaker = make(clock, name="events-outcomes")
    events = Recorder()
    breaker.add_listener(events)
    call = guard(breaker)
    assert await call("ok") == "ok"
    error = DependencyDown("down")
    with pytest.raises(DependencyDown):
        await call(error)
    bug = KeyError("bug")
    with pytest.raises(KeyError):
        await call(bug)
    assert events.kinds() == [CallSucceeded, CallFailed, CallNeutral]
    succeeded, failed, neutral = events.events
    assert isinstance(succeeded, CallSucceeded)
    assert isinstance(failed, CallFailed)
    assert isinstance(neutral, CallNeutral)
    assert failed.exception is error
    assert neutral.exception is bug
    for event in events.events:
        assert event.breaker is breaker
        assert event.time == 1000.0
    assert [succeeded.duration, failed.duration, neutral.duration] == [0.0, 0.0, 0.0]


async def test_cancellation_is_reported_as_neutral(clock: FakeClock, guard: Guard) -> None:
    """A cancelled call gives CallNeutral carrying the CancelledError."""
    breaker = make(clock, name="events-cancelled")
    events = Recorder()
    breaker.add_listener(events)
    cancelled = asyncio.CancelledError()
    with pytest.raises(asyncio.CancelledError):
        await guard(breaker)(cancelled)
    [neutral] = events.of(CallNeutral)
    assert neutral.exception is cancelled
    assert breaker.closed


async def test_durations_come_from_the_breakers_clock(clock: FakeClock) -> None:
    """A call event's duration is the breaker's clock time from admission to outcome."""
    breaker = make(clock, name="events-durations")
    events = Recorder()
    breaker.add_listener(events)

    @breaker
    async def work(seconds: float, *, fail: bool = False) -> float:
        clock.advance(seconds)
        if fail:
            raise DependencyDown
        return seconds

    async def unguarded(seconds: float) -> float:
        clock.advance(seconds)
        return seconds

    @breaker
    async def stream() -> AsyncIterator[int]:
        clock.advance(3)
        yield 1
        clock.advance(1)

    assert await work(1.5) == 1.5
    with pytest.raises(DependencyDown):
        await work(2.0, fail=True)
    assert await breaker.call(unguarded, 0.5) == 0.5
    with pytest.raises(KeyError):  # noqa: PT012 - the block is the guarded call
        async with breaker:
            clock.advance(0.25)
            raise KeyError
    assert [item async for item in stream()] == [1]
    assert [e.duration for e in events.events] == [1.5, 2.0, 0.5, 0.25, 4.0]
    assert events.kinds() == [CallSucceeded, CallFailed, CallSucceeded, CallNeutral, CallSucceeded]
    assert events.events[-1].time == 1000.0 + 1.5 + 2.0 + 0.5 + 0.25 + 4.0


async def test_a_listener_added_during_a_call_gets_a_true_duration(clock: FakeClock) -> None:
    """A call that started before the first listener was added reports its real duration."""
    breaker = make(clock, name="events-added-mid-call")
    events = Recorder()
    async with breaker:
        breaker.add_listener(events)
        clock.advance(2)
    durations = [e.duration for e in events.of(CallSucceeded)]
    assert durations in ([], [2.0])  # not reported, or reported truly; never the clock reading


async def test_a_failed_result_is_reported_without_an_exception(clock: FakeClock) -> None:
    """A call failed by failure_result gives CallFailed with exception None."""
    breaker = make(clock, name="events-result", failure_result=lambda result: result == "bad")
    events = Recorder()
    breaker.add_listener(events)

    @breaker
    async def fetch(value: str) -> str:
        return value

    assert await fetch("bad") == "bad"
    assert await fetch("good") == "good"
    failed, succeeded = events.events
    assert isinstance(failed, CallFailed)
    assert failed.exception is None
    assert isinstance(succeeded, CallSucceeded)


async def test_an_async_generator_closed_early_is_neutral(clock: FakeClock) -> None:
    """Closing a guarded async generator early gives CallNeutral with the GeneratorExit."""
    breaker = make(clock, name="events-closed-early")
    events = Recorder()
    breaker.add_listener(events)

    @breaker
    async def stream() -> AsyncIterator[int]:
        yield 1
        yield 2  # pragma: no cover - never asked for

    produced = stream()
    assert await produced.__anext__() == 1
    await produced.aclose()
    [neutral] = events.events
    assert isinstance(neutral, CallNeutral)
    assert isinstance(neutral.exception, GeneratorExit)
    assert breaker.statistics().total.neutral == 1


async def test_a_trip_reports_the_state_change_and_the_failed_call(
    clock: FakeClock, guard: Guard
) -> None:
    """The tripping call gives StateChanged(closed -> open) with its failure, and CallFailed."""
    breaker = make(clock, failure_threshold=2, name="events-trip")
    events = Recorder()
    breaker.add_listener(events)
    call = guard(breaker)
    with pytest.raises(DependencyDown):
        await call(DependencyDown("first"))
    assert events.of(StateChanged) == []
    error = DependencyDown("second")
    with pytest.raises(DependencyDown):
        await call(error)
    [change] = events.of(StateChanged)
    assert (change.old_state, change.new_state) == (State.CLOSED, State.OPEN)
    assert change.exception is error
    assert change.reason == "2 consecutive failures"
    assert change.time == 1000.0
    assert events.of(CallFailed)[-1].exception is error
    with pytest.raises(CircuitBreakerError):
        await call("rejected")
    [rejected] = events.of(CallRejected)
    assert rejected.state is State.OPEN
    assert len(events.events) == 4


async def test_half_open_is_reported_with_the_first_call_after_the_deadline(
    clock: FakeClock, guard: Guard
) -> None:
    """OPEN -> HALF_OPEN is reported lazily, when the first call after the deadline arrives."""
    breaker = make(clock, failure_threshold=1, name="events-lazy")
    events = Recorder()
    breaker.add_listener(events, StateChanged)
    call = guard(breaker)
    with pytest.raises(DependencyDown):
        await call(DependencyDown())
    clock.advance(45)
    assert breaker.state is State.HALF_OPEN
    assert breaker.half_open
    assert events.changes() == [(State.CLOSED, State.OPEN)]  # no timer reported it
    clock.advance(5)
    assert await call("probe") == "probe"
    assert events.changes() == [
        (State.CLOSED, State.OPEN),
        (State.OPEN, State.HALF_OPEN),
        (State.HALF_OPEN, State.CLOSED),
    ]
    half_open = events.of(StateChanged)[1]
    assert half_open.time == 1050.0
    assert half_open.exception is None
    assert half_open.reason == "the open period is over; admitting probes"
    closed = events.of(StateChanged)[2]
    assert closed.reason == "half-open probe success"


async def test_statistics_only_read_a_due_half_open_change(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """statistics() of an open breaker past its deadline reads half-open, and reports nothing:
    the next call makes the change and reports it (a read may come from any thread)."""
    caplog.set_level(logging.INFO, logger="aiocircuitbreaker")
    breaker = make(clock, failure_threshold=1, name="events-lazy-statistics")
    events = Recorder()
    breaker.add_listener(events)
    with pytest.raises(DependencyDown), breaker:
        raise DependencyDown
    clock.advance(40)
    statistics = breaker.statistics()
    assert statistics.state is State.HALF_OPEN
    assert statistics.time_in_state == 10.0  # since the deadline
    assert dict(statistics.transitions)[State.OPEN, State.HALF_OPEN] == 1
    assert breaker.statistics() == statistics  # reading twice changes nothing
    assert events.changes() == [(State.CLOSED, State.OPEN)]
    assert "half-open" not in caplog.messages[-1]
    with breaker:  # the probe makes the change, then closes
        pass
    assert events.changes()[1:] == [(State.OPEN, State.HALF_OPEN), (State.HALF_OPEN, State.CLOSED)]
    assert dict(breaker.statistics().transitions)[State.OPEN, State.HALF_OPEN] == 1


async def test_a_failed_probe_reports_the_reopening(clock: FakeClock, guard: Guard) -> None:
    """A failed probe gives StateChanged(half_open -> open) carrying the probe's failure."""
    breaker = make(clock, failure_threshold=1, name="events-reopen")
    events = Recorder()
    breaker.add_listener(events)
    call = guard(breaker)
    with pytest.raises(DependencyDown):
        await call(DependencyDown())
    clock.advance(30)
    error = DependencyDown("still down")
    with pytest.raises(DependencyDown):
        await call(error)
    assert events.changes()[1:] == [(State.OPEN, State.HALF_OPEN), (State.HALF_OPEN, State.OPEN)]
    assert events.of(StateChanged)[-1].exception is error
    assert events.of(CallFailed)[-1].exception is error


async def test_rejections_with_a_fallback_are_reported(clock: FakeClock) -> None:
    """A rejected call served by the fallback still gives CallRejected."""
    breaker = make(clock, failure_threshold=1, name="events-fallback", fallback_function=str)
    events = Recorder()
    breaker.add_listener(events, CallRejected)

    @breaker
    async def fetch(value: object) -> object:
        raise DependencyDown

    with pytest.raises(DependencyDown):
        await fetch(1)
    assert await fetch(2) == "2"
    assert await breaker.call(echo, 3) == "3"
    assert [e.state for e in events.events] == [State.OPEN, State.OPEN]


async def test_half_open_rejections_report_half_open(clock: FakeClock) -> None:
    """A call turned away because the probe slot is taken reports the half-open state."""
    breaker = make(clock, failure_threshold=1, name="events-slot")
    events = Recorder()
    breaker.add_listener(events, CallRejected)
    with pytest.raises(DependencyDown), breaker:
        raise DependencyDown
    clock.advance(30)
    async with breaker:
        with pytest.raises(CircuitBreakerError):
            async with breaker:
                pass  # pragma: no cover - rejected
    [rejected] = events.events
    assert rejected.state is State.HALF_OPEN


async def test_a_rejection_straddling_the_deadline_reports_the_state_that_rejected() -> None:
    """A call rejected just before the deadline, reported after it, reports open: the state
    that rejected it."""
    clock = SteppingClock(1000.0)
    breaker = make(clock, failure_threshold=1, name="events-straddle")
    with pytest.raises(DependencyDown), breaker:
        raise DependencyDown
    events = Recorder()
    breaker.add_listener(events)
    clock.advance(29.5)
    clock.after_read.append(lambda: clock.advance(1))  # the deadline passes after admission
    with pytest.raises(CircuitBreakerError):
        await breaker.call(echo, "late")
    [rejected] = events.events
    assert isinstance(rejected, CallRejected)
    assert rejected.time == 1030.5
    assert rejected.state is State.OPEN


async def test_listeners_can_be_narrowed_to_event_types(clock: FakeClock) -> None:
    """Listeners get only the event types they asked for; Event asks for all of them."""
    breaker = make(clock, failure_threshold=1, name="events-filter")
    changes, failures, everything = Recorder(), Recorder(), Recorder()
    breaker.add_listener(changes, StateChanged)
    breaker.add_listener(failures, CallFailed, CallRejected)
    breaker.add_listener(everything, Event)
    assert await breaker.call(echo, "ok") == "ok"
    with pytest.raises(DependencyDown):
        await breaker.call(echo, DependencyDown())
    with pytest.raises(CircuitBreakerError):
        await breaker.call(echo, "rejected")
    assert changes.kinds() == [StateChanged]
    assert failures.kinds() == [CallFailed, CallRejected]
    kinds = everything.kinds()
    assert kinds[0] is CallSucceeded
    assert set(kinds[1:3]) == {StateChanged, CallFailed}  # the trip and the call that tripped
    assert kinds[3:] == [CallRejected]


async def test_adding_a_listener_again_replaces_its_types(clock: FakeClock) -> None:
    """add_listener() of a listener already added changes its event types; no duplicates."""
    breaker = make(clock, name="events-replace")
    events = Recorder()
    breaker.add_listener(events)
    breaker.add_listener(events, CallFailed)
    assert await breaker.call(echo, "ok") == "ok"
    with pytest.raises(DependencyDown):
        await breaker.call(echo, DependencyDown())
    assert events.kinds() == [CallFailed]


async def test_bound_methods_are_the_same_listener(clock: FakeClock) -> None:
    """A bound method added twice is one listener, and removing a fresh bound method works."""
    breaker = make(clock, name="events-bound")
    events = Recorder()
    breaker.add_listener(events.__call__)
    breaker.add_listener(events.__call__)
    assert await breaker.call(echo, "ok") == "ok"
    assert len(events.events) == 1
    breaker.remove_listener(events.__call__)
    assert await breaker.call(echo, "ok") == "ok"
    assert len(events.events) == 1


async def test_removed_listeners_hear_nothing(clock: FakeClock) -> None:
    """remove_listener() stops the events; removing an unknown listener is a ValueError."""
    breaker = make(clock, name="events-remove")
    events = Recorder()
    breaker.add_listener(events)
    breaker.remove_listener(events)
    assert await breaker.call(echo, "ok") == "ok"
    assert events.events == []
    with pytest.raises(ValueError, match="is not a listener of circuit breaker 'events-remove'"):
        breaker.remove_listener(events)


async def test_listeners_given_to_the_constructor(clock: FakeClock) -> None:
    """listeners=[...] adds each listener for every event type."""
    first, second = Recorder(), Recorder()
    breaker = make(clock, name="events-ctor", listeners=(first, second))
    assert await breaker.call(echo, "ok") == "ok"
    assert first.kinds() == second.kinds() == [CallSucceeded]


@pytest.mark.parametrize("listeners", ["abc", b"abc", 5, None], ids=["str", "bytes", "int", "none"])
async def test_listeners_must_be_an_iterable_of_callables(
    clock: FakeClock, listeners: object
) -> None:
    """A string or a non-iterable for listeners= is a TypeError."""
    with pytest.raises(TypeError, match="listeners must be an iterable of callables"):
        make(clock, listeners=listeners)


async def test_listeners_must_be_callable(clock: FakeClock) -> None:
    """A non-callable listener, or an event type that is not an Event class, is a TypeError."""
    with pytest.raises(TypeError, match="a listener must be callable"):
        make(clock, listeners=[5])
    breaker = make(clock, name="events-types")
    with pytest.raises(TypeError, match="a listener must be callable"):
        breaker.add_listener("print")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="event types must be Event classes"):
        breaker.add_listener(print, KeyError)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="event types must be Event classes"):
        breaker.add_listener(print, "StateChanged")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a listener must be callable"):
        CircuitBreakerMonitor.add_listener(None)  # type: ignore[arg-type]


async def test_no_listener_no_events_and_the_fast_path_stays(clock: FakeClock) -> None:
    """Without listeners wanting call events, calls stay on the fast path, before and after."""
    breaker = make(clock, name="events-fast")

    @breaker
    async def fetch(value: object) -> object:
        return await echo(value)

    assert await fetch("ok") == "ok"
    with pytest.raises(DependencyDown):
        await fetch(DependencyDown())
    assert await fetch("ok") == "ok"
    assert breaker._fast is not None
    changes = Recorder()
    breaker.add_listener(changes, StateChanged)  # state changes only: calls build no events
    assert breaker._fast is not None
    events = Recorder()
    breaker.add_listener(events)
    assert breaker._fast is None
    assert await fetch("ok") == "ok"
    breaker.remove_listener(events)
    assert breaker._fast is not None
    assert await fetch("ok") == "ok"
    assert events.kinds() == [CallSucceeded]
    assert changes.events == []


async def test_sync_listener_faults_are_logged_and_swallowed(
    clock: FakeClock, guard: Guard, caplog: pytest.LogCaptureFixture
) -> None:
    """A listener that raises changes neither the call's result nor its exception."""
    breaker = make(clock, failure_threshold=1, name="events-faulty")
    after = Recorder()

    def broken(event: Event) -> None:
        raise RuntimeError("listener broke")

    breaker.add_listener(broken)
    breaker.add_listener(after)
    call = guard(breaker)
    assert await call("ok") == "ok"
    error = DependencyDown()
    with pytest.raises(DependencyDown) as info:
        await call(error)
    assert info.value is error
    with pytest.raises(CircuitBreakerError):
        await call("rejected")
    assert after.kinds().count(StateChanged) == 1  # later listeners still hear every event
    assert len(after.events) == 4
    faults = [r for r in caplog.records if r.name == "aiocircuitbreaker" and r.exc_info]
    assert len(faults) == 4
    assert all(r.levelno == logging.ERROR for r in faults)
    assert "of circuit breaker 'events-faulty' raised on CallSucceeded; ignored" in (
        faults[0].getMessage()
    )
    assert breaker.opened


async def test_async_listeners_run_as_tasks_never_awaited_by_the_call(clock: FakeClock) -> None:
    """An async listener is scheduled as a task the breaker keeps alive; the call does not wait."""
    futures: list[weakref.ref[asyncio.Future[None]]] = []
    finished: list[Event] = []

    async def listener(event: Event) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        futures.append(weakref.ref(future))
        await future  # only this task holds the future: a weakly held task would be collected
        finished.append(event)

    breaker = make(clock, name="events-async", listeners=[listener])
    assert await breaker.call(echo, "ok") == "ok"
    await asyncio.sleep(0)
    assert finished == []
    gc.collect()
    future = futures[0]()
    assert future is not None
    future.set_result(None)
    for _ in range(3):
        await asyncio.sleep(0)
    assert [type(event) for event in finished] == [CallSucceeded]


async def test_async_listener_faults_are_logged(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """What an async listener raises is logged, and the call's outcome is its own."""

    async def broken(event: Event) -> None:
        await asyncio.sleep(0)
        raise RuntimeError("async listener broke")

    breaker = make(clock, name="events-async-faulty", listeners=[broken])
    error = DependencyDown()
    with pytest.raises(DependencyDown) as info:
        await breaker.call(echo, error)
    assert info.value is error
    for _ in range(3):
        await asyncio.sleep(0)
    [fault] = [r for r in caplog.records if r.name == "aiocircuitbreaker"]
    assert fault.levelno == logging.ERROR
    assert fault.getMessage().startswith("async listener ")
    assert fault.getMessage().endswith(
        "of circuit breaker 'events-async-faulty' raised on CallFailed; ignored"
    )


class Awaitable:
    """An awaitable that is not a coroutine (what a sync listener may return)."""

    def __init__(self, awaited: list[str]) -> None:
        self.awaited = awaited

    def __await__(self) -> Iterator[None]:
        self.awaited.append("awaited")
        return iter(())


async def test_a_listener_returning_any_awaitable_is_scheduled(clock: FakeClock) -> None:
    """A sync listener returning an awaitable gets it awaited in the background."""
    awaited: list[str] = []
    breaker = make(clock, name="events-awaitable", listeners=[lambda event: Awaitable(awaited)])
    assert await breaker.call(echo, "ok") == "ok"
    assert awaited == []
    await asyncio.sleep(0)
    assert awaited == ["awaited"]


@pytest.mark.parametrize("trio_imported", [True, False], ids=["trio-imported", "no-trio"])
async def test_async_listeners_outside_an_event_loop_are_not_run(
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    trio_imported: bool,
) -> None:
    """Outside any event loop an async listener is closed unrun (no warning), and that is logged."""
    if trio_imported:
        import trio  # noqa: F401, PLC0415 - the case where trio is loaded but not running
    else:
        monkeypatch.delitem(sys.modules, "trio", raising=False)
    ran: list[Event] = []
    awaited: list[str] = []

    async def listener(event: Event) -> None:
        ran.append(event)  # pragma: no cover - never run

    breaker = make(
        clock,
        name="events-no-loop",
        listeners=[listener, lambda event: Awaitable(awaited)],
    )

    def block() -> None:
        with breaker:
            pass

    run_in_thread(block)
    assert ran == []
    assert awaited == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert all(
        "of circuit breaker 'events-no-loop' got CallSucceeded outside an event loop; not run"
        in message
        for message in warnings
    )


async def test_async_listeners_run_as_trio_system_tasks(caplog: pytest.LogCaptureFixture) -> None:
    """Under trio (through anyio) async listeners run as system tasks; their faults are logged."""
    heard: list[type[Event]] = []

    async def main() -> None:
        done = anyio.Event()

        async def listener(event: Event) -> None:
            await anyio.sleep(0)
            heard.append(type(event))
            if isinstance(event, CallSucceeded):
                done.set()

        async def broken(event: Event) -> None:
            await anyio.sleep(0)
            raise RuntimeError("trio listener broke")

        breaker = make(FakeClock(), name="events-trio", listeners=[listener, broken])

        @breaker
        async def fetch() -> str:
            await anyio.sleep(0)
            return "ok"

        assert await fetch() == "ok"
        with anyio.fail_after(5):
            await done.wait()
        for _ in range(3):
            await anyio.sleep(0)

    await asyncio.to_thread(anyio.run, main, backend="trio")
    assert heard == [CallSucceeded]
    [fault] = [r for r in caplog.records if r.name == "aiocircuitbreaker"]
    assert "of circuit breaker 'events-trio' raised on CallSucceeded; ignored" in (
        fault.getMessage()
    )


async def test_listeners_may_call_back_into_the_breaker(clock: FakeClock) -> None:
    """A listener reads the state and statistics and closes the breaker, without deadlock."""
    breaker = make(clock, failure_threshold=2, name="events-reentrant")
    seen: list[tuple[str, State, int]] = []

    def listener(event: Event) -> None:
        statistics = event.breaker.statistics()
        seen.append((type(event).__name__, event.breaker.state, statistics.total.failures))
        if isinstance(event, StateChanged) and event.new_state is State.OPEN:
            event.breaker.close()

    breaker.add_listener(listener)

    def fail() -> None:
        for _ in range(2):
            with pytest.raises(DependencyDown), breaker:
                raise DependencyDown

    run_in_thread(fail)
    assert breaker.closed
    assert ("StateChanged", State.OPEN, 2) in seen
    assert ("StateChanged", State.CLOSED, 2) in seen
    assert seen[-1] == ("CallFailed", State.CLOSED, 2)


async def test_global_listeners_hear_present_and_future_breakers(clock: FakeClock) -> None:
    """A monitor listener hears every breaker, made before or after it was added, until removed."""
    before = make(clock, failure_threshold=1, name="events-global-before")
    heard = Recorder()

    def listener(event: Event) -> None:
        if event.breaker.name in {"events-global-before", "events-global-after"}:
            heard(event)

    CircuitBreakerMonitor.add_listener(listener)
    try:
        after = make(clock, name="events-global-after")
        assert before._fast is None
        assert after._fast is None
        assert await before.call(echo, 1) == 1
        assert await after.call(echo, 2) == 2
        with pytest.raises(DependencyDown):
            await before.call(echo, DependencyDown())
        assert [(type(e), e.breaker) for e in heard.of(CallSucceeded)] == [
            (CallSucceeded, before),
            (CallSucceeded, after),
        ]
        assert heard.changes() == [(State.CLOSED, State.OPEN)]
        CircuitBreakerMonitor.add_listener(listener, StateChanged)  # again: replaces its types
        assert after._fast is not None
        assert await after.call(echo, 3) == 3
        before.reset()
        assert len(heard.of(CallSucceeded)) == 2
        assert heard.changes()[-1] == (State.OPEN, State.CLOSED)
    finally:
        CircuitBreakerMonitor.remove_listener(listener)
    assert before._fast is not None
    assert after._fast is not None
    count = len(heard.events)
    before.open()
    assert len(heard.events) == count
    with pytest.raises(ValueError, match="is not a global circuit breaker listener"):
        CircuitBreakerMonitor.remove_listener(listener)


async def test_new_breakers_start_observed_under_a_global_listener(clock: FakeClock) -> None:
    """A breaker made while a global call listener exists reports its very first call."""
    heard = Recorder()
    CircuitBreakerMonitor.add_listener(heard, CallSucceeded)
    try:
        breaker = make(clock, name="events-global-new")

        @breaker
        async def fetch() -> str:
            return "ok"

        assert await fetch() == "ok"
    finally:
        CircuitBreakerMonitor.remove_listener(heard)
    assert [e.breaker for e in heard.events if e.breaker is breaker] == [breaker]
    assert breaker._fast is not None


async def test_listeners_are_told_apart_by_identity(clock: FakeClock) -> None:
    """Two listeners that compare equal are two listeners; a bound method is found again."""

    @dataclasses.dataclass
    class Tally:
        seen: int = 0

        def __call__(self, event: Event) -> None:
            self.seen += 1

        def method(self, event: Event) -> None:
            self.seen += 1

    first, second = Tally(), Tally()
    assert first == second
    breaker = make(clock, name="events-identity")
    breaker.add_listener(first)
    breaker.add_listener(second)
    breaker.add_listener(first.method)
    assert await breaker.call(echo, "ok") == "ok"
    assert (first.seen, second.seen) == (2, 1)
    breaker.remove_listener(first.method)  # a new bound method object, the same listener
    breaker.remove_listener(second)
    assert await breaker.call(echo, "ok") == "ok"
    assert (first.seen, second.seen) == (3, 1)
