"""breaker.statistics(): what a breaker has counted, exactly, whatever path a call took."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import itertools
import math
import sys
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from aiocircuitbreaker import (
    CallCounts,
    CircuitBreaker,
    CircuitBreakerError,
    CountWindow,
    HalfOpen,
    RatePolicy,
    State,
    Statistics,
    TimeWindow,
)
from aiocircuitbreaker.testing import FakeClock

from .conftest import DependencyDown, echo, make, run_in_threads

pytestmark = pytest.mark.asyncio

Guard = Callable[[CircuitBreaker], Callable[[object], Any]]

CLOSED, OPEN, HALF_OPEN = State.CLOSED, State.OPEN, State.HALF_OPEN


async def fail(call: Callable[[object], Any], times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(DependencyDown):
            await call(DependencyDown("down"))


async def reject(call: Callable[[object], Any], times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(CircuitBreakerError):
            await call("rejected")


def transitions(breaker: CircuitBreaker) -> dict[tuple[State, State], int]:
    return dict(breaker.statistics().transitions)


async def test_a_new_breaker_has_counted_nothing(clock: FakeClock) -> None:
    """A fresh breaker's statistics are closed and zero; time in state counts from first use."""
    breaker = make(clock, name="statistics-new")
    statistics = breaker.statistics()
    assert statistics == Statistics(
        name="statistics-new",
        state=CLOSED,
        generation=0,
        since_change=CallCounts(),
        total=CallCounts(),
        failure_count=0,
        failure_rate=None,
        slow_call_rate=None,
        time_in_state=0.0,
        openings=0,
        open_remaining=0.0,
        last_failure=None,
        transitions=(),
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        statistics.state = OPEN  # type: ignore[misc]
    assert not hasattr(statistics, "__dict__")
    clock.advance(7)
    assert breaker.statistics().time_in_state == 7.0


async def test_call_counts_add_up_the_finished_calls() -> None:
    """CallCounts.calls is successes + failures + neutral (rejected calls did not run)."""
    counts = CallCounts(successes=1, failures=2, neutral=3, rejected=4, slow=5)
    assert counts.calls == 6
    assert CallCounts().calls == 0


async def test_totals_count_every_call_once_across_trips(clock: FakeClock, guard: Guard) -> None:
    """Totals count each success, failure and rejection once: locked, lock-free and probe paths."""
    breaker = make(clock, failure_threshold=2, name="statistics-totals")
    call = guard(breaker)
    await fail(call)  # the first of a streak (under the lock)
    assert await call("ok") == "ok"  # ends the streak
    await fail(call, 2)  # a new streak; the second trips the breaker (lock-free count)
    assert breaker.state is OPEN
    assert breaker.statistics().total == CallCounts(successes=1, failures=3)
    await reject(call, 2)
    clock.advance(30)
    await fail(call)  # a failed probe
    await reject(call)
    clock.advance(30)
    assert await call("probe") == "probe"
    assert await call("ok") == "ok"
    statistics = breaker.statistics()
    assert statistics.state is CLOSED
    assert statistics.total == CallCounts(successes=3, failures=4, rejected=3)
    assert statistics.since_change == CallCounts(successes=1)
    assert statistics.failure_count == 0
    assert statistics.openings == 2
    assert statistics.generation == 5
    assert transitions(breaker) == {
        (CLOSED, OPEN): 1,
        (OPEN, HALF_OPEN): 2,
        (HALF_OPEN, OPEN): 1,
        (HALF_OPEN, CLOSED): 1,
    }
    assert statistics.last_failure is None


@pytest.mark.parametrize("threshold", [1, 2])
async def test_the_tripping_failure_is_counted(
    clock: FakeClock, guard: Guard, threshold: int
) -> None:
    """The failure that trips the breaker counts in the totals, even when it is the first one."""
    breaker = make(clock, failure_threshold=threshold, name="statistics-trip")
    await fail(guard(breaker), threshold)
    assert breaker.state is OPEN
    assert breaker.failure_count == threshold
    assert breaker.statistics().total == CallCounts(failures=threshold)


async def test_a_result_that_trips_is_counted(clock: FakeClock) -> None:
    """A result judged failed by failure_result that trips the breaker counts as a failure."""
    breaker = make(clock, failure_threshold=1, failure_result=lambda result: result is None)
    assert await breaker.call(echo, None) is None
    assert breaker.state is OPEN
    assert breaker.statistics().total == CallCounts(failures=1)


async def test_failed_results_count_as_failures(clock: FakeClock) -> None:
    """Results judged failed by failure_result count as failures; others as successes."""
    breaker = make(clock, failure_result=lambda result: result is None)

    @breaker
    async def fetch(value: object) -> object:
        return value

    assert await fetch(None) is None
    assert await fetch(None) is None
    assert await fetch(1) == 1
    assert await breaker.call(echo, None) is None
    statistics = breaker.statistics()
    assert statistics.total == CallCounts(successes=1, failures=3)
    assert statistics.failure_count == 1
    assert statistics.last_failure is None


async def test_late_outcomes_of_an_older_generation_count_once(clock: FakeClock) -> None:
    """Calls admitted before a trip or a reset count in the totals, and in no failure streak."""
    breaker = make(clock, failure_threshold=2, name="statistics-late")
    gates: dict[str, asyncio.Event] = {}

    @breaker
    async def held(key: str, outcome: object) -> object:
        gates[key] = asyncio.Event()
        await gates[key].wait()
        return await echo(outcome)

    late_failure = asyncio.create_task(held("failure", DependencyDown()))
    late_success = asyncio.create_task(held("success", "ok"))
    before_reset = asyncio.create_task(held("reset", DependencyDown()))
    await asyncio.sleep(0)
    await fail(held_now(breaker), 2)
    assert breaker.state is OPEN
    gates["failure"].set()
    gates["success"].set()
    with pytest.raises(DependencyDown):
        await late_failure
    assert await late_success == "ok"
    assert breaker.state is OPEN
    assert breaker.failure_count == 2
    assert breaker.statistics().total == CallCounts(successes=1, failures=3)
    breaker.reset()
    await fail(held_now(breaker))
    gates["reset"].set()
    with pytest.raises(DependencyDown):
        await before_reset
    assert breaker.failure_count == 1
    assert breaker.closed
    statistics = breaker.statistics()
    assert statistics.total == CallCounts(successes=1, failures=5)
    assert statistics.since_change == CallCounts(failures=2)


def held_now(breaker: CircuitBreaker) -> Callable[[object], Any]:
    """Return a guarded call through breaker.call() that returns or raises its argument."""

    async def run(value: object) -> object:
        return await breaker.call(echo, value)

    return run


async def test_since_change_restarts_at_each_change_and_reset(clock: FakeClock) -> None:
    """since_change counts from the last state change, or reset(), while totals keep going."""
    breaker = make(clock, failure_threshold=2, name="statistics-since")
    call = held_now(breaker)
    assert await call("ok") == "ok"
    await fail(call)
    assert breaker.statistics().since_change == CallCounts(successes=1, failures=1)
    breaker.reset()  # closed -> closed: no state change, but a new period
    assert breaker.statistics().since_change == CallCounts()
    assert breaker.statistics().failure_count == 0
    await fail(call, 2)
    assert breaker.statistics().since_change == CallCounts()
    await reject(call)
    assert breaker.statistics().since_change == CallCounts(rejected=1)
    clock.advance(30)
    assert await call("probe") == "probe"
    statistics = breaker.statistics()
    assert statistics.since_change == CallCounts()
    assert statistics.total == CallCounts(successes=2, failures=3, rejected=1)
    assert statistics.transitions == (
        ((CLOSED, OPEN), 1),
        ((OPEN, HALF_OPEN), 1),
        ((HALF_OPEN, CLOSED), 1),
    )


async def test_rejections_are_counted_on_every_path(clock: FakeClock) -> None:
    """Every rejected call counts once: errors, fallbacks, context managers, generators."""
    breaker = make(clock, failure_threshold=2, name="statistics-rejected")

    @breaker
    async def fetch() -> str:
        raise DependencyDown

    @breaker
    async def stream() -> AsyncIterator[int]:
        yield 1  # pragma: no cover - rejected

    for _ in range(2):
        with pytest.raises(DependencyDown):
            await fetch()
    with pytest.raises(CircuitBreakerError):
        await fetch()
    with pytest.raises(CircuitBreakerError):
        await breaker.call(echo, 1)
    with pytest.raises(CircuitBreakerError), breaker:
        pass  # pragma: no cover - rejected
    with pytest.raises(CircuitBreakerError):
        async with breaker:
            pass  # pragma: no cover - rejected
    with pytest.raises(CircuitBreakerError):
        [item async for item in stream()]
    assert breaker.statistics().total == CallCounts(failures=2, rejected=5)
    breaker.force_open()
    with pytest.raises(CircuitBreakerError):
        await fetch()
    assert breaker.statistics().total.rejected == 6
    assert breaker.statistics().since_change.rejected == 1


async def test_rejections_served_by_a_fallback_are_counted(clock: FakeClock) -> None:
    """A rejected call answered by the fallback counts as rejected, not as a success."""
    breaker = make(clock, failure_threshold=2, fallback_function=lambda *args: [0])

    @breaker
    async def fetch(fail: bool) -> list[int]:
        if fail:
            raise DependencyDown
        return [1]  # pragma: no cover - rejected

    @breaker
    async def stream() -> AsyncIterator[int]:
        yield 1  # pragma: no cover - rejected

    for _ in range(2):
        with pytest.raises(DependencyDown):
            await fetch(True)
    assert await fetch(False) == [0]
    assert await breaker.call(echo, 1) == [0]
    assert [item async for item in stream()] == [0]
    assert breaker.statistics().total == CallCounts(failures=2, rejected=3)


async def test_neutral_outcomes_are_counted(clock: FakeClock) -> None:
    """Timeouts, cancellations and exceptions that are not expected count as neutral."""
    breaker = make(clock, failure_threshold=1, name="statistics-neutral")
    forever = asyncio.Event()

    @breaker
    async def hang() -> None:
        await forever.wait()

    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(hang(), timeout=0.005)
    task = asyncio.create_task(hang())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(KeyError):
        await breaker.call(echo, KeyError("not expected"))
    with pytest.raises(ValueError):
        async with breaker:
            raise ValueError
    statistics = breaker.statistics()
    assert statistics.total == CallCounts(neutral=4)
    assert statistics.state is CLOSED
    assert statistics.failure_count == 0


async def test_slow_calls_are_counted(clock: FakeClock) -> None:
    """Calls longer than slow_call_duration count as slow, and as successes or failures too."""
    policy = RatePolicy(CountWindow(10), failure_rate=1.0, slow_call_duration=1.0)
    breaker = make(clock, policy=policy, name="statistics-slow")

    @breaker
    async def work(seconds: float, outcome: object = "ok") -> object:
        clock.advance(seconds)
        return await echo(outcome)

    assert await work(0.5) == "ok"
    assert await work(1.0) == "ok"  # exactly the limit is not slow
    assert await work(2.0) == "ok"
    with pytest.raises(DependencyDown):
        await work(2.0, DependencyDown())
    with pytest.raises(KeyError):
        await work(2.0, KeyError())  # neutral: neither slow nor counted in the window
    statistics = breaker.statistics()
    assert statistics.total == CallCounts(successes=3, failures=1, neutral=1, slow=2)
    assert statistics.slow_call_rate == 0.5
    assert statistics.failure_rate == 0.25
    assert statistics.state is CLOSED


async def test_rates_are_none_without_a_policy_or_calls(clock: FakeClock) -> None:
    """The rates are None without a RatePolicy, or while its window is empty."""
    plain = make(clock)
    await fail(held_now(plain))
    assert plain.statistics().failure_rate is None
    assert plain.statistics().slow_call_rate is None
    rated = make(clock, policy=RatePolicy(TimeWindow(60)))
    assert rated.statistics().failure_rate is None
    with pytest.raises(KeyError):
        await rated.call(echo, KeyError())  # neutral calls are not in the window
    assert rated.statistics().failure_rate is None
    await fail(held_now(rated))
    assert rated.statistics().failure_rate == 1.0
    assert rated.statistics().slow_call_rate == 0.0
    clock.advance(61)
    assert rated.statistics().failure_rate is None  # the call has left the window


async def test_failure_rate_follows_a_count_window(clock: FakeClock) -> None:
    """Under a CountWindow the failure rate is over the last n recorded calls."""
    breaker = make(clock, policy=RatePolicy(CountWindow(4), failure_rate=0.75))
    call = held_now(breaker)
    await fail(call)
    assert breaker.statistics().failure_rate == 1.0
    assert await call("ok") == "ok"
    assert breaker.statistics().failure_rate == 0.5
    for _ in range(2):
        assert await call("ok") == "ok"
    assert breaker.statistics().failure_rate == 0.25
    assert await call("ok") == "ok"  # the failure leaves the window
    assert breaker.statistics().failure_rate == 0.0
    await fail(call, 2)
    assert breaker.statistics().failure_rate == 0.5
    assert breaker.statistics().failure_count == 2
    assert breaker.state is CLOSED


async def test_failure_rate_counts_the_successes_of_decorated_functions(clock: FakeClock) -> None:
    """The failure rate includes every recorded success, however the call was guarded."""
    breaker = make(clock, policy=RatePolicy(CountWindow(4), failure_rate=0.75))

    @breaker
    async def fetch(value: object) -> object:
        return await echo(value)

    await fail(fetch)
    for _ in range(3):
        assert await fetch("ok") == "ok"
    assert breaker.statistics().failure_rate == 0.25
    for _ in range(4):  # the window now holds four successes
        assert await fetch("ok") == "ok"
    assert breaker.statistics().total == CallCounts(successes=7, failures=1)
    assert breaker.statistics().failure_rate == 0.0


async def test_time_in_state_follows_the_breakers_clock(clock: FakeClock) -> None:
    """time_in_state runs from each change; an open breaker past its deadline counts from it."""
    breaker = make(clock, failure_threshold=1, name="statistics-time")
    call = held_now(breaker)
    assert breaker.statistics().time_in_state == 0.0
    clock.advance(5)
    await fail(call)
    assert breaker.statistics().time_in_state == 0.0
    clock.advance(10)
    statistics = breaker.statistics()
    assert (statistics.state, statistics.time_in_state, statistics.open_remaining) == (
        OPEN,
        10.0,
        20.0,
    )
    clock.advance(35)  # the deadline passed 15 s ago
    statistics = breaker.statistics()
    assert (statistics.state, statistics.time_in_state, statistics.open_remaining) == (
        HALF_OPEN,
        15.0,
        -15.0,
    )
    async with breaker:  # the probe makes the half-open state real; it began at the deadline
        assert breaker.statistics().time_in_state == 15.0
        clock.advance(2)
    assert breaker.statistics().state is CLOSED
    assert breaker.statistics().time_in_state == 0.0
    clock.advance(1)
    assert breaker.statistics().time_in_state == 1.0


async def test_open_remaining_in_each_state(clock: FakeClock) -> None:
    """open_remaining is 0 when closed or passing calls, counts down when open, inf when forced."""
    breaker = make(clock, failure_threshold=1)
    assert breaker.statistics().open_remaining == 0.0
    await fail(held_now(breaker))
    clock.advance(10)
    assert breaker.statistics().open_remaining == 20.0
    breaker.force_open()
    assert math.isinf(breaker.statistics().open_remaining)
    assert breaker.statistics().state is State.FORCED_OPEN
    breaker.disable()
    assert breaker.statistics().open_remaining == 0.0
    breaker.metrics_only()
    assert breaker.statistics().open_remaining == 0.0


async def test_openings_and_transitions_are_counted(clock: FakeClock) -> None:
    """openings counts every opening (tripped or by hand); transitions count each change."""
    breaker = make(clock, failure_threshold=1, name="statistics-openings")
    await fail(held_now(breaker))
    breaker.close()
    breaker.open()
    breaker.force_open()
    breaker.disable()
    breaker.metrics_only()
    breaker.close()
    breaker.reset()  # closed already: a new period, not a transition
    statistics = breaker.statistics()
    assert statistics.openings == 2
    assert dict(statistics.transitions) == {
        (CLOSED, OPEN): 2,
        (OPEN, CLOSED): 1,
        (OPEN, State.FORCED_OPEN): 1,
        (State.FORCED_OPEN, State.DISABLED): 1,
        (State.DISABLED, State.METRICS_ONLY): 1,
        (State.METRICS_ONLY, CLOSED): 1,
    }
    assert statistics.generation == 8


async def test_metrics_only_counts_and_disabled_counts_nothing(
    clock: FakeClock, guard: Guard
) -> None:
    """Metrics-only counts every call like a closed breaker; a disabled breaker counts nothing."""
    breaker = make(clock, failure_threshold=1, name="statistics-modes")
    call = guard(breaker)
    breaker.metrics_only()
    assert await call("ok") == "ok"
    await fail(call, 3)
    with pytest.raises(KeyError):
        await call(KeyError())
    statistics = breaker.statistics()
    assert statistics.state is State.METRICS_ONLY
    assert statistics.total == CallCounts(successes=1, failures=3, neutral=1)
    assert statistics.since_change == statistics.total
    assert statistics.failure_count == 3
    assert isinstance(statistics.last_failure, DependencyDown)
    breaker.disable()
    assert await call("ok") == "ok"
    await fail(call, 3)
    with pytest.raises(KeyError):
        await call(KeyError())
    statistics = breaker.statistics()
    assert statistics.state is State.DISABLED
    assert statistics.total == CallCounts(successes=1, failures=3, neutral=1)
    assert statistics.since_change == CallCounts()


async def test_totals_are_exact_with_10000_concurrent_tasks(clock: FakeClock) -> None:
    """10,000 tasks mixing successes, failures and neutral outcomes on one breaker: exact totals."""
    breaker = make(clock, failure_threshold=10**9, name="statistics-10000")

    @breaker
    async def call(i: int) -> int:
        await asyncio.sleep(0)
        if i % 4 == 0:
            raise DependencyDown
        if i % 10 == 1:
            raise KeyError(i)
        return i

    async def through_call(i: int) -> int:
        return await breaker.call(call.__wrapped__, i)  # type: ignore[attr-defined]

    results = await asyncio.gather(
        *((call if i % 2 else through_call)(i) for i in range(10_000)), return_exceptions=True
    )
    failures = sum(isinstance(r, DependencyDown) for r in results)
    neutral = sum(isinstance(r, KeyError) for r in results)
    assert (failures, neutral) == (2_500, 1_000)
    assert breaker.statistics().total == CallCounts(successes=6_500, failures=2_500, neutral=1_000)


async def test_totals_across_threads_with_their_own_loops() -> None:
    """Four threads, each running its own loop, share a breaker: the totals are exact.

    Exact on CPython 3.11+, where a counter increment (``x.n += 1`` on a slot) is never
    interrupted by a thread switch. On 3.10 the interpreter may switch threads inside that
    increment, and the documentation allows a rare lost increment for a breaker shared across
    threads: there the totals may only fall short, and by a few at most.
    """
    breaker = CircuitBreaker(
        failure_threshold=10**9, expected_exception=DependencyDown, name="statistics-threads"
    )
    per_thread, threads = 3_000, 4

    @breaker
    async def call(i: int) -> int:
        await asyncio.sleep(0)
        if i % 3 == 0:
            raise DependencyDown
        return i

    async def many() -> None:
        async def one(i: int) -> None:
            with contextlib.suppress(DependencyDown):
                await call(i)

        await asyncio.gather(*(one(i) for i in range(per_thread)))

    run_in_threads(threads, many)
    total = breaker.statistics().total
    expected = CallCounts(successes=threads * 2_000, failures=threads * 1_000)
    if sys.version_info >= (3, 11):
        assert total == expected
    else:  # pragma: no cover - CPython 3.10 only
        assert 0 <= expected.successes - total.successes <= 50
        assert 0 <= expected.failures - total.failures <= 50


class _Interleaving(type):
    """A metaclass whose isinstance() checks first run queued actions: another thread, in effect."""

    actions: list[Callable[[], None]] = []  # noqa: RUF012 - shared by the classes on purpose

    def __instancecheck__(cls, instance: object) -> bool:
        while _Interleaving.actions:
            _Interleaving.actions.pop()()
        return type.__instancecheck__(cls, instance)


class RacedDown(OSError, metaclass=_Interleaving):
    """An expected failure whose isinstance() check lets another thread run."""


class RacedDownAgain(RacedDown):
    """A subclass: isinstance() on the exact class skips __instancecheck__."""


async def test_a_failure_racing_a_success_from_another_thread_is_counted(
    clock: FakeClock,
) -> None:
    """A failure counted while another thread's success ends the streak still counts in totals.

    The decorated function's failure path reads the streak counter, then checks the exception,
    then counts; a success in another thread may retire the counter in between. The metaclass
    runs that success right there, as a thread switch would.
    """
    breaker = make(clock, failure_threshold=10, expected_exception=RacedDown)

    @breaker
    async def fetch() -> None:
        raise RacedDownAgain

    for _ in range(2):
        with pytest.raises(RacedDown):
            await fetch()

    def success_in_another_thread() -> None:
        with breaker:
            pass

    _Interleaving.actions.append(success_in_another_thread)
    with pytest.raises(RacedDown):
        await fetch()
    assert _Interleaving.actions == []
    assert breaker.statistics().total == CallCounts(successes=1, failures=3)


async def test_a_probe_out_of_time_reopens_as_of_its_expiry(clock: FakeClock) -> None:
    """A probe outliving HalfOpen.max_duration reopens the breaker at its expiry, in statistics."""
    breaker = make(
        clock, failure_threshold=1, half_open=HalfOpen(max_duration=5), name="statistics-expiry"
    )
    await fail(held_now(breaker))
    clock.advance(30)
    probe = contextvars.copy_context()
    probe.run(breaker.__enter__)  # a probe that hangs
    clock.advance(6)  # it ran out of time 1 s ago: the breaker reopened then
    statistics = breaker.statistics()
    assert statistics.state is OPEN
    assert statistics.open_remaining == 29.0
    assert statistics.openings == 2
    assert statistics.time_in_state == 1.0
    probe.run(breaker.__exit__, None, None, None)  # its late outcome changes nothing
    statistics = breaker.statistics()
    assert statistics.state is OPEN
    assert statistics.openings == 2
    assert statistics.time_in_state == 1.0


async def test_totals_never_go_back_while_another_thread_counts() -> None:
    """statistics() read from one thread while another fails and succeeds sees totals only grow.

    (Monotonic totals are what Prometheus and OpenTelemetry counters need.)
    """
    breaker = CircuitBreaker(failure_threshold=10**9, name="statistics-monotonic")
    rounds = 3_000

    @breaker
    async def fail() -> None:
        raise DependencyDown

    @breaker
    async def succeed() -> None:
        return None

    async def work() -> None:
        for _ in range(rounds):
            for _ in range(2):
                with contextlib.suppress(DependencyDown):
                    await fail()
            await succeed()

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        worker = threading.Thread(target=asyncio.run, args=(work(),))
        worker.start()
        seen: list[CallCounts] = []
        while worker.is_alive():
            seen.append(breaker.statistics().total)
        worker.join()
    finally:
        sys.setswitchinterval(switch)
    for earlier, later in itertools.pairwise(seen):
        assert later.failures >= earlier.failures
        assert later.successes >= earlier.successes
    assert breaker.statistics().total == CallCounts(successes=rounds, failures=2 * rounds)
