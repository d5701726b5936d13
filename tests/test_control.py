"""Manual control: open(), close(), reset(), and the modes force_open(), disable(), metrics_only."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import math
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest

from aiocircuitbreaker import (
    Backoff,
    CallCounts,
    CallFailed,
    CallRejected,
    CallSucceeded,
    CircuitBreaker,
    CircuitBreakerError,
    CircuitBreakerMonitor,
    Counts,
    CountWindow,
    Event,
    RatePolicy,
    State,
    StateChanged,
)
from aiocircuitbreaker.testing import FakeClock

from . import conftest
from .conftest import DependencyDown, echo

pytestmark = pytest.mark.asyncio

Guard = Callable[[CircuitBreaker], Callable[[object], Any]]

CLOSED, OPEN, HALF_OPEN = State.CLOSED, State.OPEN, State.HALF_OPEN
FORCED_OPEN, DISABLED, METRICS_ONLY = State.FORCED_OPEN, State.DISABLED, State.METRICS_ONLY


def make(clock: FakeClock, **options: Any) -> CircuitBreaker:
    options.setdefault("failure_threshold", 2)
    return conftest.make(clock, **options)


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(DependencyDown), breaker:
            raise DependencyDown("down")


class Recorder:
    """A sync listener that keeps every event it is given."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def changes(self) -> list[tuple[State, State, str]]:
        return [
            (e.old_state, e.new_state, e.reason) for e in self.events if isinstance(e, StateChanged)
        ]

    def kinds(self) -> list[type[Event]]:
        return [type(event) for event in self.events]


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


STATES = [
    "closed",
    "failing",
    "open",
    "half_open",
    "probing",
    "forced_open",
    "disabled",
    "metrics_only",
]
MODE_SETTERS = {"forced_open": "force_open", "disabled": "disable", "metrics_only": "metrics_only"}


def put(breaker: CircuitBreaker, clock: FakeClock, state: str) -> None:
    """Bring ``breaker`` (threshold 2, timeout 30) into ``state``, one failure counted first."""
    fail(breaker)
    if state == "closed":
        with breaker:
            pass
    elif state in {"open", "half_open", "probing"}:
        fail(breaker)
        if state != "open":
            clock.advance(30)
        if state == "probing":
            contextvars.copy_context().run(breaker.__enter__)  # a probe that never ends
    elif state in MODE_SETTERS:
        getattr(breaker, MODE_SETTERS[state])()


async def test_the_manual_states_are_strings() -> None:
    """The modes are State members that compare and print as their string values."""
    assert [s.value for s in State] == [
        "closed",
        "open",
        "half_open",
        "forced_open",
        "disabled",
        "metrics_only",
    ]
    assert FORCED_OPEN == "forced_open"
    assert str(DISABLED) == "disabled"
    assert f"{METRICS_ONLY:>13}" == " metrics_only"


async def test_open_by_hand_rejects_then_half_opens(clock: FakeClock, guard: Guard) -> None:
    """open() opens for the open duration and half-opens after it, as if the breaker tripped."""
    breaker = make(clock, failure_threshold=3, name="control-open")
    call = guard(breaker)
    with pytest.raises(DependencyDown):
        await call(DependencyDown())
    breaker.open()
    assert breaker.state is OPEN
    assert breaker.opened
    assert breaker.failure_count == 1
    assert breaker.open_remaining == 30.0
    with pytest.raises(CircuitBreakerError):
        await call("rejected")
    clock.advance(30)
    assert breaker.state is HALF_OPEN
    assert await call("probe") == "probe"
    assert breaker.closed
    statistics = breaker.statistics()
    assert statistics.openings == 1
    assert statistics.total == CallCounts(successes=1, failures=1, rejected=1)


@pytest.mark.parametrize("state", STATES)
async def test_open_by_hand_from_any_state(clock: FakeClock, state: str) -> None:
    """open() works from every state and mode, and starts a whole open period."""
    breaker = make(clock, name="control-open-any")
    put(breaker, clock, state)
    clock.advance(10)
    breaker.open()
    assert breaker.state is OPEN
    assert breaker.open_remaining == 30.0
    with pytest.raises(CircuitBreakerError), breaker:
        pass  # pragma: no cover - rejected
    clock.advance(30)
    assert breaker.state is HALF_OPEN


async def test_open_by_hand_uses_the_open_duration(clock: FakeClock) -> None:
    """A manual opening lasts what open_duration says, and counts as a consecutive opening."""
    breaker = make(clock, open_duration=Backoff(10, factor=2))
    fail(breaker, 2)
    assert breaker.open_remaining == 10.0
    clock.advance(10)
    breaker.open()
    assert breaker.open_remaining == 20.0
    breaker.close()
    breaker.open()
    assert breaker.open_remaining == 10.0


@pytest.mark.parametrize("method", ["close", "reset"])
@pytest.mark.parametrize("state", STATES)
async def test_close_and_reset_from_any_state(clock: FakeClock, state: str, method: str) -> None:
    """close() and reset() close the breaker from any state or mode and forget its failures."""
    breaker = make(clock, name="control-close-any")
    put(breaker, clock, state)
    before = breaker.statistics()
    changes = Recorder()
    breaker.add_listener(changes, StateChanged)
    getattr(breaker, method)()
    assert breaker.state is CLOSED
    assert breaker.closed
    assert breaker.failure_count == 0
    assert breaker.last_failure is None
    assert breaker.open_remaining == 0.0
    statistics = breaker.statistics()
    assert statistics.since_change == CallCounts()
    assert statistics.generation == before.generation + 1
    if before.state is CLOSED:
        assert changes.events == []
    else:
        # An open breaker past its deadline is half-open first (the lazy change, made now).
        *lazy, change = changes.events
        assert [(e.old_state, e.new_state) for e in lazy if isinstance(e, StateChanged)] == (
            [(OPEN, HALF_OPEN)] if lazy else []
        )
        assert isinstance(change, StateChanged)
        assert change.new_state is CLOSED
        assert change.reason == f"{method}()"
        assert change.exception is None
    assert await breaker.call(echo, "ok") == "ok"
    fail(breaker)
    assert breaker.closed  # the count started again from zero


async def test_force_open_rejects_whatever_the_clock_says(clock: FakeClock, guard: Guard) -> None:
    """force_open() rejects every call until closed, with an error saying so."""
    breaker = make(clock, name="control-forced")
    call = guard(breaker)
    with pytest.raises(DependencyDown):
        await call(DependencyDown("down"))
    breaker.force_open()
    clock.advance(10**9)
    assert breaker.state is FORCED_OPEN
    assert breaker.opened
    assert not breaker.half_open
    assert not breaker.closed
    assert math.isinf(breaker.open_remaining)
    assert breaker.open_until == datetime.max.replace(tzinfo=timezone.utc)
    with pytest.raises(CircuitBreakerError) as info:
        await call("rejected")
    error = info.value
    assert math.isinf(error.open_remaining)
    assert error.open_until == datetime.max.replace(tzinfo=timezone.utc)
    assert error.failure_count == 1
    assert str(error) == (
        'Circuit "control-forced" FORCED OPEN until closed by hand (1 failures) '
        "(last_failure: DependencyDown('down'))"
    )
    breaker.close()
    assert await call("ok") == "ok"


async def test_force_open_serves_the_fallback_and_reports_rejections(clock: FakeClock) -> None:
    """A forced-open breaker answers with its fallback and reports CallRejected(forced_open)."""
    events = Recorder()
    breaker = make(clock, fallback_function=lambda value: f"fallback:{value}", listeners=[events])
    breaker.force_open()
    assert await breaker.call(echo, 1) == "fallback:1"

    @breaker
    async def fetch(value: object) -> object:
        return value  # pragma: no cover - rejected

    assert await fetch(2) == "fallback:2"
    rejections = [e for e in events.events if isinstance(e, CallRejected)]
    assert [e.state for e in rejections] == [FORCED_OPEN, FORCED_OPEN]
    assert breaker.statistics().total == CallCounts(rejected=2)


async def test_disable_lets_everything_through_and_records_nothing(
    clock: FakeClock, guard: Guard
) -> None:
    """A disabled breaker runs every call, never trips, counts nothing and reports no call."""
    events = Recorder()
    breaker = make(clock, failure_threshold=1, name="control-disabled", listeners=[events])
    call = guard(breaker)
    breaker.disable()
    for _ in range(3):
        with pytest.raises(DependencyDown):
            await call(DependencyDown())
    assert await call("ok") == "ok"
    with pytest.raises(KeyError):
        await call(KeyError())
    assert breaker.state is DISABLED
    assert not breaker.opened
    assert not breaker.closed
    assert breaker.failure_count == 0
    assert breaker.last_failure is None
    assert breaker.open_remaining == 0.0
    statistics = breaker.statistics()
    assert statistics.total == CallCounts()
    assert events.changes() == [(CLOSED, DISABLED, "disable()")]
    assert events.kinds() == [StateChanged]
    breaker.close()
    with pytest.raises(DependencyDown):
        await call(DependencyDown())
    assert breaker.opened


async def test_disabled_keeps_the_failure_count_it_had(clock: FakeClock) -> None:
    """Disabling keeps the failure count for reporting; closing forgets it."""
    breaker = make(clock, failure_threshold=3)
    fail(breaker, 2)
    breaker.disable()
    fail(breaker, 5)
    assert breaker.failure_count == 2
    breaker.close()
    assert breaker.failure_count == 0


async def test_metrics_only_records_but_never_trips(clock: FakeClock, guard: Guard) -> None:
    """Metrics-only lets every call through and records it (counts, events), never tripping."""
    events = Recorder()
    breaker = make(clock, failure_threshold=1, name="control-metrics", listeners=[events])
    call = guard(breaker)
    breaker.metrics_only()
    for _ in range(4):
        with pytest.raises(DependencyDown):
            await call(DependencyDown())
    assert breaker.state is METRICS_ONLY
    assert breaker.failure_count == 4
    assert not breaker.opened
    assert isinstance(breaker.last_failure, DependencyDown)
    assert await call("ok") == "ok"
    assert breaker.failure_count == 0
    with pytest.raises(DependencyDown):
        await call(DependencyDown())
    assert breaker.failure_count == 1
    assert events.kinds() == [StateChanged, *[CallFailed] * 4, CallSucceeded, CallFailed]
    assert events.changes() == [(CLOSED, METRICS_ONLY, "metrics_only()")]
    assert breaker.statistics().total == CallCounts(successes=1, failures=5)
    assert breaker.statistics().open_remaining == 0.0
    breaker.close()
    assert breaker.closed
    assert breaker.failure_count == 0


async def test_metrics_only_reports_the_failure_rate_without_tripping(clock: FakeClock) -> None:
    """Under a RatePolicy, metrics-only reports the window's failure rate and never trips."""
    breaker = make(clock, policy=RatePolicy(CountWindow(4), failure_rate=0.5))
    breaker.metrics_only()

    @breaker
    async def fetch(value: object) -> object:
        return await echo(value)

    for _ in range(6):
        with pytest.raises(DependencyDown):
            await fetch(DependencyDown())
    statistics = breaker.statistics()
    assert statistics.state is METRICS_ONLY
    assert statistics.failure_rate == 1.0
    assert statistics.failure_count == 6
    assert await fetch("ok") == "ok"
    assert breaker.statistics().failure_rate == 0.75
    assert breaker.statistics().failure_count == 0
    breaker.close()
    with pytest.raises(DependencyDown):
        await fetch(DependencyDown())
    assert breaker.statistics().failure_rate == 1.0  # a fresh window


async def test_manual_changes_are_logged_and_reported(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Each manual change is logged (WARNING when calls stop being guarded) and reported."""
    caplog.set_level(logging.INFO, logger="aiocircuitbreaker")
    events = Recorder()
    breaker = make(clock, name="control-log", listeners=[events])
    breaker.open()
    breaker.force_open()
    breaker.disable()
    breaker.metrics_only()
    breaker.close()
    logged = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "aiocircuitbreaker"]
    assert logged == [
        (
            logging.WARNING,
            (
                "circuit breaker 'control-log' opened: open(); rejecting calls for 30.000 s "
                "(last failure: None)"
            ),
        ),
        (
            logging.WARNING,
            "circuit breaker 'control-log' forced open: force_open(); rejecting calls until closed",
        ),
        (
            logging.WARNING,
            "circuit breaker 'control-log' disabled: disable(); calls pass through unguarded",
        ),
        (
            logging.INFO,
            (
                "circuit breaker 'control-log' metrics-only: metrics_only(); recording calls, "
                "never tripping"
            ),
        ),
        (logging.INFO, "circuit breaker 'control-log' closed: close()"),
    ]
    assert events.changes() == [
        (CLOSED, OPEN, "open()"),
        (OPEN, FORCED_OPEN, "force_open()"),
        (FORCED_OPEN, DISABLED, "disable()"),
        (DISABLED, METRICS_ONLY, "metrics_only()"),
        (METRICS_ONLY, CLOSED, "close()"),
    ]
    assert all(e.exception is None for e in events.events if isinstance(e, StateChanged))


async def test_calls_in_flight_across_a_manual_change_do_not_count(clock: FakeClock) -> None:
    """Outcomes of calls admitted before a manual change change nothing after it."""
    breaker = make(clock, name="control-in-flight")
    gates: dict[str, asyncio.Event] = {}

    @breaker
    async def held(key: str, outcome: object) -> object:
        gates[key] = asyncio.Event()
        await gates[key].wait()
        return await echo(outcome)

    async def finish(key: str, task: asyncio.Task[object]) -> None:
        gates[key].set()
        with contextlib.suppress(DependencyDown):
            await task

    def start(key: str, outcome: object) -> asyncio.Task[object]:
        return asyncio.create_task(held(key, outcome))

    # A success admitted while closed does not close a breaker opened by hand meanwhile.
    success = start("success", "ok")
    await asyncio.sleep(0)
    breaker.open()
    await finish("success", success)
    assert breaker.state is OPEN
    # A probe running when the breaker is closed by hand: its failure does not reopen it.
    clock.advance(30)
    probe = start("probe", DependencyDown())
    await asyncio.sleep(0)
    assert breaker.state is HALF_OPEN
    breaker.close()
    await finish("probe", probe)
    assert breaker.closed
    assert breaker.failure_count == 0
    # Failures admitted before metrics_only() do not count in its failure count.
    early = [start(f"early{i}", DependencyDown()) for i in range(2)]
    await asyncio.sleep(0)
    breaker.metrics_only()
    for i, task in enumerate(early):
        await finish(f"early{i}", task)
    assert breaker.failure_count == 0
    # A call let through while disabled is not recorded when it ends after close().
    breaker.disable()
    unguarded = start("unguarded", DependencyDown())
    await asyncio.sleep(0)
    breaker.close()
    before = breaker.statistics().total
    await finish("unguarded", unguarded)
    assert breaker.statistics().total == before
    assert breaker.failure_count == 0
    # Failures admitted before force_open() do not count once closed again.
    late = [start(f"late{i}", DependencyDown()) for i in range(2)]
    await asyncio.sleep(0)
    breaker.force_open()
    breaker.close()
    for i, task in enumerate(late):
        await finish(f"late{i}", task)
    assert breaker.closed
    assert breaker.failure_count == 0


async def test_a_listener_may_reopen_the_breaker_it_hears_close(clock: FakeClock) -> None:
    """A StateChanged listener that calls open() on its breaker runs without deadlock."""
    breaker = make(clock, name="control-reentrant")
    changes = Recorder()

    def reopen(event: StateChanged) -> None:
        if event.new_state is CLOSED:
            event.breaker.open()

    breaker.add_listener(reopen, StateChanged)
    breaker.add_listener(changes, StateChanged)
    fail(breaker, 2)
    clock.advance(30)
    done = threading.Event()

    def probe() -> None:
        with breaker:
            pass
        done.set()

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    assert done.wait(10), "deadlock"
    assert breaker.state is OPEN
    assert breaker.open_remaining == 30.0
    assert {change[:2] for change in changes.changes()} == {
        (CLOSED, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, CLOSED),
    }
    assert changes.changes().count((CLOSED, OPEN, "open()")) == 1


@pytest.mark.parametrize(
    ("change", "runs", "state"),
    [("force_open", False, FORCED_OPEN), ("disable", True, DISABLED), ("close", True, CLOSED)],
)
async def test_a_manual_change_during_an_admission_wins(
    change: str, runs: bool, state: State
) -> None:
    """A change made (say, by another thread) while a probe is being admitted is respected."""
    clock = SteppingClock(1000.0)
    breaker = make(clock, name="control-race")
    fail(breaker, 2)
    clock.advance(30)
    clock.after_read.append(getattr(breaker, change))  # lands between reading and locking
    ran: list[str] = []

    async def work() -> str:
        ran.append("ran")
        return "ok"

    if runs:
        assert await breaker.call(work) == "ok"
    else:
        with pytest.raises(CircuitBreakerError):
            await breaker.call(work)
    assert ran == (["ran"] if runs else [])
    assert breaker.state is state
    assert clock.after_read == []
    expected = CallCounts(
        successes=1 if change == "close" else 0, failures=2, rejected=0 if runs else 1
    )
    assert breaker.statistics().total == expected


async def test_user_callables_may_read_breakers_while_a_transition_is_decided(
    clock: FakeClock,
) -> None:
    """An open_duration or a trip rule that reads breakers (statistics, the monitor) works.

    They run while the breaker decides its transition, under its lock, which is re-entrant.
    """
    seen: list[int] = []

    def duration(openings: int, failure: BaseException | None) -> float:
        seen.append(breaker.statistics().total.failures)
        return 5.0

    def trip(counts: Counts) -> bool:
        seen.append(len(CircuitBreakerMonitor.statistics("control-reentrant*")))
        return counts.failures >= 1

    breaker = make(clock, failure_threshold=1, name="control-reentrant", open_duration=duration)
    ruled = make(
        clock,
        name="control-reentrant-rule",
        policy=RatePolicy(CountWindow(2), trip=trip, minimum_calls=1),
    )
    fail(breaker)
    with pytest.raises(DependencyDown):
        await ruled.call(echo, DependencyDown())
    assert breaker.opened
    assert ruled.opened
    assert len(seen) == 2  # each ran once, reading breakers, and nothing deadlocked


async def test_a_probe_of_an_earlier_period_leaves_last_failure_alone(clock: FakeClock) -> None:
    """A half-open probe that finishes after close() changes neither the count nor last_failure."""
    breaker = make(clock, failure_threshold=1)
    fail(breaker)
    clock.advance(30)
    release = asyncio.Event()

    async def probe() -> str:
        await release.wait()
        return "late"

    task = asyncio.create_task(breaker.call(probe))
    await asyncio.sleep(0)
    breaker.close()
    failure = DependencyDown("after close")
    with pytest.raises(DependencyDown):
        await breaker.call(echo, failure)
    release.set()
    assert await task == "late"
    assert breaker.last_failure is failure
    assert breaker.opened  # threshold 1: the failure after close() tripped it


async def test_opening_an_open_breaker_again_is_logged(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """open() of an open breaker starts its period again, and says so (the state stays)."""
    caplog.set_level(logging.INFO, logger="aiocircuitbreaker")
    breaker = make(clock, failure_threshold=1, name="control-again")
    fail(breaker)
    clock.advance(20)
    breaker.open()
    assert breaker.open_remaining == 30.0
    assert caplog.messages[-1] == (
        "circuit breaker 'control-again' opened again: open(); rejecting calls for 30.000 s"
    )
