"""Scenarios that broke the breaker's promises before its core was reworked, one test each."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import gc
import logging
import pickle
import sys
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest

from aiocircuitbreaker import (
    Backoff,
    CircuitBreaker,
    CircuitBreakerError,
    CircuitBreakerMonitor,
    CountWindow,
    Event,
    HalfOpen,
    RatePolicy,
    State,
    StateChanged,
)
from aiocircuitbreaker.testing import FakeClock, force_state, passthrough, use_clock

from .conftest import DependencyDown, make

pytestmark = pytest.mark.asyncio


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(DependencyDown), breaker:
            raise DependencyDown


def block(breaker: CircuitBreaker) -> Iterator[None]:
    """A generator that holds a ``with`` block open across a yield; send it how it ends."""
    with breaker:
        exc = yield
        if exc is not None:
            raise exc


# -- 1. blocks: each ends its own permit --------------------------------------------------------


async def test_blocks_ending_out_of_order_each_end_their_own_permit(clock: FakeClock) -> None:
    """A stale block failing after a probe's block began cannot re-open; the probe closes."""
    breaker = make(clock, failure_threshold=1)
    stale = block(breaker)
    next(stale)  # entered while closed: generation 0
    fail(breaker)  # opens
    clock.advance(30)
    probe = block(breaker)
    next(probe)  # the half-open probe
    with pytest.raises(DependencyDown):
        stale.send(DependencyDown())  # the stale block fails: it changes nothing
    assert breaker.half_open
    with pytest.raises(StopIteration):
        probe.send(None)  # the probe succeeds
    assert breaker.closed


async def test_a_block_entered_in_one_task_can_end_in_another(clock: FakeClock) -> None:
    """A probe's block inside an async generator resumed by another task frees its slot."""
    breaker = make(clock, failure_threshold=1)
    fail(breaker)
    clock.advance(30)

    async def stream() -> AsyncIterator[int]:
        async with breaker:
            yield 1
            yield 2

    items = stream()
    assert await asyncio.create_task(items.__anext__()) == 1  # the probe, in one task
    assert await asyncio.create_task(items.__anext__()) == 2  # resumed in another
    with pytest.raises(StopAsyncIteration):
        await asyncio.create_task(items.__anext__())
    assert breaker.closed  # its success was the probe's


async def test_an_abandoned_block_does_not_keep_its_breaker_alive() -> None:
    """A block entered and never left holds nothing alive once its breaker is dropped."""
    breaker = CircuitBreaker(name="regressions-abandoned")
    breaker.__enter__()
    ref = weakref.ref(breaker)
    del breaker
    gc.collect()
    assert ref() is None
    assert CircuitBreakerMonitor.get("regressions-abandoned") is None


# -- 2. probes judged by rate see the failure streak --------------------------------------------


async def test_probes_judged_by_rate_see_the_streak_and_back_off(clock: FakeClock) -> None:
    """A trip rule on consecutive failures re-opens after failed probes, for longer each time."""
    seen: list[int] = []

    def rule(counts: Any) -> bool:
        seen.append(counts.consecutive_failures)
        return bool(counts.consecutive_failures >= 2)

    breaker = CircuitBreaker(
        expected_exception=DependencyDown,
        policy=RatePolicy(CountWindow(2), trip=rule, minimum_calls=2),
        half_open=HalfOpen(probes=2, judge_by_rate=True),
        open_duration=Backoff(10, factor=2),
        clock=clock,
    )
    fail(breaker, 2)
    assert breaker.opened
    assert breaker.open_remaining == 10
    clock.advance(10)
    fail(breaker, 2)  # both probes fail: the streak runs on (2 at the trip, then 2 more)
    assert seen[-1] == 4
    assert breaker.opened
    assert breaker.open_remaining == 20  # the backoff grew


# -- 3. and 4. listeners -------------------------------------------------------------------------


async def test_listeners_see_changes_in_the_order_they_happened(clock: FakeClock) -> None:
    """A listener that changes the breaker does not make others see the later change first."""
    breaker = make(clock, failure_threshold=1)
    seen: list[State] = []

    def force_open_on_open(event: Event) -> None:
        if isinstance(event, StateChanged) and event.new_state is State.OPEN:
            breaker.force_open()

    def record(event: Event) -> None:
        if isinstance(event, StateChanged):
            seen.append(event.new_state)

    breaker.add_listener(force_open_on_open)
    breaker.add_listener(record)
    fail(breaker)
    assert seen == [State.OPEN, State.FORCED_OPEN]


async def test_a_listener_raising_systemexit_on_half_open_does_not_leak_the_probe(
    clock: FakeClock,
) -> None:
    """SystemExit out of a listener of the half-open change leaves the probe slot free."""
    breaker = make(clock, failure_threshold=1)
    fail(breaker)

    def exit_on_half_open(event: StateChanged) -> None:
        if event.new_state is State.HALF_OPEN:
            raise SystemExit(3)

    breaker.add_listener(exit_on_half_open, StateChanged)
    clock.advance(30)
    with pytest.raises(SystemExit), breaker:
        pass  # pragma: no cover - SystemExit comes first
    breaker.remove_listener(exit_on_half_open)
    with breaker:  # the probe slot is free: this call is the probe
        pass
    assert breaker.closed


async def test_a_logging_filter_raising_on_half_open_does_not_leak_the_probe(
    clock: FakeClock,
) -> None:
    """A log filter that raises while the half-open change is logged leaves the slot free."""
    breaker = make(clock, failure_threshold=1, name="regressions-filter")
    fail(breaker)

    class Broken(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            if "half-open" in record.getMessage():
                raise RuntimeError("broken filter")
            return True

    logger = logging.getLogger("aiocircuitbreaker")
    broken = Broken()
    logger.addFilter(broken)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        clock.advance(30)
        with pytest.raises(RuntimeError, match="broken filter"), breaker:
            pass  # pragma: no cover - the filter raises first
    finally:
        logger.removeFilter(broken)
        logger.setLevel(level)
    with breaker:
        pass
    assert breaker.closed


# -- 5., 6. and 9. open durations ----------------------------------------------------------------


async def test_an_open_duration_reading_the_monitor_is_asked_once(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """An open_duration that reads the monitor is asked once per opening, without recursion."""
    asked: list[int] = []

    def duration(openings: int, failure: BaseException | None) -> float:
        asked.append(openings)
        CircuitBreakerMonitor.statistics()
        return 30.0

    breaker = make(
        clock,
        failure_threshold=1,
        open_duration=duration,
        half_open=HalfOpen(max_duration=5),
        name="regressions-monitor-reader",
    )
    fail(breaker)
    assert asked == [1]
    clock.advance(30)
    breaker.__enter__()  # a probe that hangs
    clock.advance(6)  # it ran out of time: a reopening is due
    for _ in range(5):
        assert breaker.state is State.OPEN
        CircuitBreakerMonitor.statistics()
    with contextlib.suppress(CircuitBreakerError), breaker:
        pass  # pragma: no cover - rejected
    assert asked == [1, 2]
    assert not [r for r in caplog.records if "RecursionError" in r.getMessage()]


async def test_a_long_recovery_timeout_reports_without_overflow(clock: FakeClock) -> None:
    """A recovery timeout beyond what a datetime can hold reports datetime.max."""
    breaker = make(clock, failure_threshold=1, recovery_timeout=3e11)
    fail(breaker)
    assert breaker.open_until.year == 9999
    with pytest.raises(CircuitBreakerError) as info, breaker:
        pass  # pragma: no cover - rejected
    assert info.value.open_until.year == 9999
    assert "OPEN until 9999-12-31" in str(info.value)


@pytest.mark.parametrize("answer", ["5", True, b"7", float("nan"), -1, None])
async def test_open_durations_that_are_not_seconds_are_refused(
    clock: FakeClock, caplog: pytest.LogCaptureFixture, answer: object
) -> None:
    """An open_duration answering a string, a bool, bytes or no positive number is not used."""
    breaker = make(
        clock, failure_threshold=1, recovery_timeout=30, open_duration=lambda n, f: answer
    )
    fail(breaker)
    assert breaker.open_remaining == 30
    assert f"returned {answer!r}; opening for recovery_timeout" in caplog.text


# -- 7. async generators close what feeds them ---------------------------------------------------


async def test_a_disabled_async_generator_is_cleaned_up_before_aclose_returns() -> None:
    """Disabled, a guarded async generator's producer is closed before aclose() returns."""
    cleaned: list[str] = []
    breaker = CircuitBreaker()

    @breaker
    async def produce() -> AsyncIterator[int]:
        try:
            yield 1
            yield 2
        finally:
            cleaned.append("producer")

    breaker.disable()
    stream = produce()
    assert await stream.__anext__() == 1
    await stream.aclose()
    assert cleaned == ["producer"]


async def test_a_fallback_async_generator_is_cleaned_up_before_aclose_returns() -> None:
    """Rejected, the fallback's async generator is closed before aclose() returns."""
    cleaned: list[str] = []

    async def fallback() -> AsyncIterator[int]:
        try:
            yield 0
            yield -1
        finally:
            cleaned.append("fallback")

    breaker = CircuitBreaker(fallback_function=fallback)

    @breaker
    async def produce() -> AsyncIterator[int]:
        yield 1  # pragma: no cover - rejected

    breaker.force_open()
    stream = produce()
    assert await stream.__anext__() == 0
    await stream.aclose()
    assert cleaned == ["fallback"]


# -- 8. names --------------------------------------------------------------------------------------


async def test_a_callable_object_with_a_func_attribute_is_named_after_its_class() -> None:
    """Only a functools.partial is named after what it wraps, not any object with ``func``."""

    class Client:
        func = "not a function"

        async def __call__(self) -> None:
            return None

    breaker = CircuitBreaker()
    breaker(Client())
    assert breaker.name == Client.__qualname__


async def test_breakers_sharing_a_default_name_are_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A second live breaker taking the same default name is logged once, with a way out."""

    def make_client() -> Any:
        class Client:
            @CircuitBreaker()
            async def get(self) -> None:
                return None

        return Client

    first, second = make_client(), make_client()
    assert first.get.circuit_breaker.name == second.get.circuit_breaker.name
    warnings = [r for r in caplog.records if "took the default name" in r.getMessage()]
    assert len(warnings) == 1
    assert "pass name=" in warnings[0].getMessage()
    make_client()
    assert len([r for r in caplog.records if "took the default name" in r.getMessage()]) == 1


# -- 10. and 11. registry lifetime -----------------------------------------------------------------


async def test_a_breaker_that_could_not_be_made_is_not_listed() -> None:
    """A breaker whose construction failed (a bad listener) does not stay in the monitor."""
    before = len(CircuitBreakerMonitor.get_circuits())
    with pytest.raises(TypeError, match="a listener must be callable"):
        CircuitBreaker(name="regressions-bad-listener", listeners=[42])  # type: ignore[list-item]
    gc.collect()
    assert CircuitBreakerMonitor.get("regressions-bad-listener") is None
    assert len(CircuitBreakerMonitor.get_circuits()) <= before


@pytest.mark.parametrize("helper", ["force_state", "passthrough"])
async def test_the_testing_helpers_hold_breakers_weakly(helper: str) -> None:
    """A breaker held by force_state() or passthrough() is freed when dropped inside it."""
    with contextlib.ExitStack() as stack:
        breaker = CircuitBreaker(failure_threshold=1, expected_exception=DependencyDown)
        try:  # (not pytest.raises, which keeps what it caught)
            with breaker:
                raise DependencyDown
        except DependencyDown:
            pass  # its traceback refers to frames that refer to the breaker
        if helper == "force_state":
            stack.enter_context(force_state("open", breaker))
        else:
            stack.enter_context(passthrough())
        ref = weakref.ref(breaker)
        del breaker
        gc.collect()
        assert ref() is None


# -- 12. and 13. errors and copies -----------------------------------------------------------------


async def test_a_pickled_rejection_keeps_its_notes(clock: FakeClock) -> None:
    """A CircuitBreakerError's notes survive pickling."""
    breaker = make(clock, failure_threshold=1)
    fail(breaker)
    with pytest.raises(CircuitBreakerError) as info, breaker:
        pass  # pragma: no cover - rejected
    error = info.value
    error.__notes__ = ["while fetching rates"]  # what add_note() does (3.11+)
    copied = pickle.loads(pickle.dumps(error))
    assert copied.__notes__ == ["while fetching rates"]
    assert copied.failure_count == error.failure_count


@pytest.mark.parametrize("how", [copy.copy, copy.deepcopy, pickle.dumps])
async def test_breakers_cannot_be_copied(how: Any) -> None:
    """Copying or pickling a breaker is refused with an error that says why."""
    breaker = CircuitBreaker(name="regressions-copy")
    with pytest.raises(TypeError, match="cannot be copied or pickled"):
        how(breaker)


# -- 14. and 15. testing helpers -------------------------------------------------------------------


async def test_passthrough_wins_over_changes_by_hand(clock: FakeClock) -> None:
    """Inside passthrough(), reset(), close() and the monitor's group changes do nothing."""
    breaker = make(clock, failure_threshold=1, name="regressions-passthrough")
    fail(breaker)
    with passthrough():
        breaker.reset()
        breaker.close()
        breaker.force_open()
        CircuitBreakerMonitor.reset_all()
        assert breaker.state is State.DISABLED
        fail(breaker, 3)
        assert breaker.state is State.DISABLED
    assert breaker.opened


async def test_use_clock_gives_a_fake_clock_to_breakers_made_with_the_real_one() -> None:
    """use_clock() lets a test advance a breaker made at import time with the default clock."""
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=30)
    clock = FakeClock(5.0)
    with use_clock(clock, breaker):
        with pytest.raises(ZeroDivisionError), breaker:
            _ = 1 / 0
        assert breaker.opened
        clock.advance(29)
        assert breaker.opened
        assert breaker.open_remaining == pytest.approx(1)
        clock.advance(1)
        assert breaker.half_open
    assert breaker.half_open  # back on its own clock, with what it had measured


async def test_use_clock_without_breakers_covers_every_breaker_and_new_ones() -> None:
    """With no breakers given, every live breaker and every one made inside the block use it."""
    existing = CircuitBreaker(failure_threshold=1, name="regressions-clock-existing")
    clock = FakeClock()
    with use_clock(clock):
        made_inside = CircuitBreaker(failure_threshold=1, name="regressions-clock-new")
        for breaker in (existing, made_inside):
            with pytest.raises(KeyError), breaker:
                raise KeyError
        clock.advance(30)
        assert existing.half_open
        assert made_inside.half_open


async def test_use_clock_refuses_what_is_not_a_clock() -> None:
    """use_clock() refuses a clock that is not callable."""
    with pytest.raises(TypeError, match="clock must be callable"), use_clock(5.0):  # type: ignore[arg-type]
        pass  # pragma: no cover - refused


# -- 17. exception groups -----------------------------------------------------------------------


if sys.version_info >= (3, 11):
    from builtins import BaseExceptionGroup, ExceptionGroup
else:  # the backport (anyio and trio depend on it)
    from exceptiongroup import BaseExceptionGroup, ExceptionGroup


async def test_an_exception_group_holding_an_expected_failure_is_a_failure(
    clock: FakeClock,
) -> None:
    """A group (a TaskGroup's) holding an expected exception, at any depth, is a failure."""
    breaker = make(clock, failure_threshold=2)

    @breaker
    async def fetch(group: BaseException) -> None:
        raise group

    with pytest.raises(ExceptionGroup):
        await fetch(ExceptionGroup("jobs", [KeyError()]))
    assert breaker.failure_count == 0  # neutral: nothing in it says the dependency failed
    with pytest.raises(BaseExceptionGroup):
        await fetch(BaseExceptionGroup("jobs", [asyncio.CancelledError()]))
    assert breaker.failure_count == 0  # cancellation stays neutral, in a group too
    nested = ExceptionGroup("jobs", [KeyError(), ExceptionGroup("inner", [DependencyDown()])])
    with pytest.raises(ExceptionGroup):
        await fetch(nested)
    assert breaker.failure_count == 1
    with pytest.raises(ExceptionGroup):
        await fetch(ExceptionGroup("jobs", [DependencyDown()]))
    assert breaker.opened


async def test_a_task_group_failing_with_an_expected_exception_fails_the_call(
    clock: FakeClock,
) -> None:
    """A task group inside a guarded call that fails with an expected exception fails it
    (anyio's: a group on every Python, the backport's on 3.10)."""
    breaker = make(clock, failure_threshold=1)

    async def down() -> None:
        raise DependencyDown

    @breaker
    async def fetch() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(down)

    with pytest.raises(ExceptionGroup):
        await fetch()
    assert breaker.opened
