"""Opt-in policies: rate windows, slow calls, failure by result, trip rules, half-open, backoff."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

import pytest

from aiocircuitbreaker import (
    Backoff,
    CircuitBreaker,
    CircuitBreakerError,
    Counts,
    CountWindow,
    HalfOpen,
    RatePolicy,
    State,
    TimeWindow,
    circuit,
)
from aiocircuitbreaker.testing import FakeClock

from .conftest import DependencyDown

pytestmark = pytest.mark.asyncio


async def run(
    breaker: CircuitBreaker, outcome: object, *, takes: float = 0.0, clock: FakeClock | None = None
) -> object:
    """Call through ``breaker``: return ``outcome`` or raise it, after ``takes`` fake seconds."""

    async def call() -> object:
        if takes:
            assert clock is not None
            clock.advance(takes)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return await breaker.call(call)


async def outcomes(breaker: CircuitBreaker, pattern: str) -> None:
    """Run calls: "s" success, "f" expected failure, "n" neutral (KeyError)."""
    for code in pattern:
        value = {"s": "ok", "f": DependencyDown(), "n": KeyError()}[code]
        if isinstance(value, BaseException):
            with pytest.raises(type(value)):
                await run(breaker, value)
        else:
            await run(breaker, value)


def make(clock: FakeClock, **options: Any) -> CircuitBreaker:
    options.setdefault("expected_exception", DependencyDown)
    options.setdefault("recovery_timeout", 30)
    return CircuitBreaker(clock=clock, **options)


async def test_count_window_trips_on_failure_rate(clock: FakeClock) -> None:
    """Half of the last 4 calls failing trips, but only once 4 calls were recorded."""
    breaker = make(clock, policy=RatePolicy(CountWindow(4), failure_rate=0.5))
    await outcomes(breaker, "ff")
    assert breaker.closed  # 2 calls < minimum_calls (the window size)
    await outcomes(breaker, "s")
    assert breaker.closed
    await outcomes(breaker, "s")  # 4 calls, 50 % failed
    assert breaker.opened


async def test_count_window_forgets_old_calls(clock: FakeClock) -> None:
    """Outcomes that slid out of the window no longer count; neutral ones never count."""
    breaker = make(clock, policy=RatePolicy(CountWindow(4), failure_rate=0.75))
    await outcomes(breaker, "ffsnsnss")
    assert breaker.closed
    await outcomes(breaker, "fff")
    assert breaker.opened


async def test_minimum_calls(clock: FakeClock) -> None:
    """minimum_calls lets a large window decide early; failure_count is the current run."""
    policy = RatePolicy(CountWindow(100), failure_rate=0.75, minimum_calls=3)
    breaker = make(clock, policy=policy)
    await outcomes(breaker, "fs")
    assert breaker.failure_count == 0
    await outcomes(breaker, "f")
    assert breaker.failure_count == 1
    await outcomes(breaker, "f")
    assert breaker.opened
    assert breaker.failure_count == 2


async def test_rejections_under_a_policy_use_the_fallback(clock: FakeClock) -> None:
    """A breaker with a policy still serves rejected calls from its fallback."""

    @circuit(
        expected_exception=DependencyDown,
        clock=clock,
        policy=RatePolicy(CountWindow(1)),
        fallback_function=lambda: "cached",
    )
    async def fetch() -> str:
        raise DependencyDown

    with pytest.raises(DependencyDown):
        await fetch()
    assert await fetch() == "cached"
    assert fetch.circuit_breaker.opened  # type: ignore[attr-defined]


async def test_time_window_counts_the_last_seconds(clock: FakeClock) -> None:
    """A time window forgets calls that started more than its length ago."""
    policy = RatePolicy(TimeWindow(10, buckets=10), failure_rate=0.5, minimum_calls=4)
    breaker = make(clock, policy=policy)
    await outcomes(breaker, "fff")
    clock.advance(10)  # those three have left the window
    await outcomes(breaker, "ss")
    assert breaker.closed
    await outcomes(breaker, "ff")
    assert breaker.opened


async def test_time_window_credits_the_start_bucket(clock: FakeClock) -> None:
    """A call is credited to the bucket it started in, and dropped if that left the window."""
    policy = RatePolicy(TimeWindow(10, buckets=10), failure_rate=0.5, minimum_calls=1)
    breaker = make(clock, policy=policy)
    with pytest.raises(DependencyDown):
        await run(
            breaker, DependencyDown(), takes=11, clock=clock
        )  # started 11 s ago: out of the window
    assert breaker.closed
    with pytest.raises(DependencyDown):
        await run(breaker, DependencyDown(), takes=5, clock=clock)
    assert breaker.opened


async def test_slow_calls_trip_but_still_return(clock: FakeClock) -> None:
    """Slow successes return their result; a slow-call rate at the threshold trips."""
    policy = RatePolicy(
        CountWindow(4), failure_rate=None, slow_call_duration=2.0, slow_call_rate=0.5
    )
    breaker = make(clock, policy=policy)
    assert await run(breaker, "fast", takes=1.0, clock=clock) == "fast"
    assert await run(breaker, "slow", takes=2.5, clock=clock) == "slow"
    assert await run(breaker, "fast") == "fast"
    assert breaker.closed
    assert await run(breaker, "slow", takes=3.0, clock=clock) == "slow"
    assert breaker.opened


async def test_failure_by_result(clock: FakeClock) -> None:
    """A result predicate marks calls failed while the caller still gets the value."""
    breaker = make(clock, failure_threshold=2, failure_result=lambda r: r == 503)
    assert await run(breaker, 503) == 503
    assert breaker.failure_count == 1
    assert breaker.last_failure is None
    assert await run(breaker, 200) == 200
    assert breaker.failure_count == 0
    await run(breaker, 503)
    await run(breaker, 503)
    assert breaker.opened


async def test_failure_by_result_through_the_decorator(clock: FakeClock) -> None:
    """The decorator honours failure_result and a rate policy."""

    @circuit(
        expected_exception=DependencyDown,
        clock=clock,
        failure_result=lambda status: status >= 500,
        policy=RatePolicy(CountWindow(2), failure_rate=1.0),
    )
    async def fetch(status: int) -> int:
        return status

    assert await fetch(500) == 500
    assert await fetch(503) == 503
    with pytest.raises(CircuitBreakerError):
        await fetch(200)


async def test_broken_result_predicate_is_logged(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A failure_result predicate that raises counts the call as a success and logs it."""

    def broken(result: object) -> bool:
        raise ZeroDivisionError

    breaker = make(clock, failure_threshold=1, failure_result=broken, name="rp")
    assert await run(breaker, "x") == "x"
    assert breaker.closed
    assert "failure_result predicate of circuit breaker 'rp' raised" in caplog.text


async def test_custom_trip_rule(clock: FakeClock) -> None:
    """A trip rule sees the counts and alone decides: "3 failures per minute"."""
    seen: list[Counts] = []

    def three_per_minute(counts: Counts) -> bool:
        seen.append(counts)
        return counts.failures >= 3

    policy = RatePolicy(TimeWindow(60), trip=three_per_minute, minimum_calls=1)
    breaker = make(clock, policy=policy)
    await outcomes(breaker, "fsfs")
    clock.advance(61)
    await outcomes(breaker, "f")
    assert breaker.closed
    await outcomes(breaker, "ff")
    assert breaker.opened
    assert seen[-1] == Counts(calls=3, failures=3, slow_calls=0, consecutive_failures=3)
    assert seen[-1].failure_rate == 1.0
    assert seen[-1].slow_call_rate == 0.0
    assert Counts(4, 1, 1, 0).slow_call_rate == 0.25
    assert Counts(0, 0, 0, 0).failure_rate == 0.0


async def test_half_open_admits_n_probes_and_needs_m_successes(clock: FakeClock) -> None:
    """Up to 3 probes run at once; 2 successes close; other callers are rejected meanwhile."""
    breaker = make(clock, failure_threshold=1, half_open=HalfOpen(probes=3, successes=2))
    await outcomes(breaker, "f")
    clock.advance(30)
    release = asyncio.Event()
    entered = 0

    @breaker
    async def probe() -> str:
        nonlocal entered
        entered += 1
        await release.wait()
        return "ok"

    tasks = [asyncio.create_task(probe()) for _ in range(10)]
    await asyncio.sleep(0)
    assert entered == 3
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results.count("ok") == 3
    assert breaker.closed


async def test_half_open_waits_for_enough_successes(clock: FakeClock) -> None:
    """One success is not enough when two are required; a failure then re-opens."""
    breaker = make(clock, failure_threshold=1, half_open=HalfOpen(successes=2))
    await outcomes(breaker, "f")
    clock.advance(30)
    await outcomes(breaker, "s")
    assert breaker.state is State.HALF_OPEN
    await outcomes(breaker, "f")
    assert breaker.opened
    clock.advance(30)
    await outcomes(breaker, "ss")
    assert breaker.closed


async def test_half_open_judged_by_rate(clock: FakeClock) -> None:
    """With judge_by_rate, N probes finish and the policy's thresholds decide."""
    policy = RatePolicy(CountWindow(4), failure_rate=0.5)
    breaker = make(clock, policy=policy, half_open=HalfOpen(probes=4, judge_by_rate=True))
    await outcomes(breaker, "ffff")
    assert breaker.opened
    clock.advance(30)
    await outcomes(breaker, "fss")
    assert breaker.state is State.HALF_OPEN  # 3 of 4 probes finished, a failure did not re-open
    await outcomes(breaker, "s")
    assert breaker.closed
    await outcomes(breaker, "ffff")
    clock.advance(30)
    await outcomes(breaker, "ffss")
    assert breaker.opened


async def test_judging_admits_only_n_probes_in_all(clock: FakeClock) -> None:
    """Once N probe outcomes are in or running, further callers are rejected."""
    policy = RatePolicy(CountWindow(2), failure_rate=0.5)
    breaker = make(clock, policy=policy, half_open=HalfOpen(probes=2, judge_by_rate=True))
    await outcomes(breaker, "ff")
    clock.advance(30)
    release = asyncio.Event()

    @breaker
    async def hang() -> None:
        await release.wait()

    first = asyncio.create_task(hang())
    await asyncio.sleep(0)
    await outcomes(breaker, "n")  # a neutral probe gives its slot back
    await outcomes(breaker, "s")
    with pytest.raises(CircuitBreakerError):
        await run(breaker, "rejected")
    release.set()
    await first
    assert breaker.closed


async def test_hung_probe_times_out_as_a_failure(clock: FakeClock) -> None:
    """A probe past max_duration stops holding its slot and counts as a failed probe."""
    breaker = make(clock, failure_threshold=1, half_open=HalfOpen(max_duration=5))
    await outcomes(breaker, "f")
    clock.advance(30)
    hung = asyncio.Event()

    @breaker
    async def hang() -> str:
        await hung.wait()
        return "late"

    task = asyncio.create_task(hang())
    await asyncio.sleep(0)
    with pytest.raises(CircuitBreakerError):
        await run(breaker, "second")
    clock.advance(5)
    assert breaker.state is State.OPEN  # the probe ran out of time at t+5: a failed probe
    assert breaker.failure_count == 2
    assert breaker.open_remaining == pytest.approx(30)
    clock.advance(30)
    assert await run(breaker, "fresh probe") == "fresh probe"
    assert breaker.closed
    hung.set()
    assert await task == "late"  # its late outcome belongs to an old period: ignored
    assert breaker.closed


async def test_backoff_grows_caps_and_resets(clock: FakeClock) -> None:
    """Each consecutive opening lasts longer, up to the cap; closing starts over."""
    backoff = Backoff(initial=10, factor=3, maximum=50)
    breaker = make(clock, failure_threshold=1, open_duration=backoff)
    await outcomes(breaker, "f")
    durations = [breaker.open_remaining]
    for _ in range(3):
        clock.advance(breaker.open_remaining)
        await outcomes(breaker, "f")
        durations.append(breaker.open_remaining)
    assert durations == [10, 30, 50, 50]
    clock.advance(50)
    await outcomes(breaker, "sf")
    assert breaker.open_remaining == 10
    with pytest.raises(CircuitBreakerError) as info:
        await run(breaker, "x")
    assert info.value.open_remaining == 10


async def test_backoff_survives_very_long_outages() -> None:
    """Thousands of consecutive openings stay at the cap (no float overflow)."""
    assert Backoff(initial=1, factor=2, maximum=60)(5_000, None) == 60
    assert Backoff(initial=1, factor=3, maximum=60, jitter=0.5)(5_000, None) <= 60


async def test_backoff_jitter_stays_in_bounds() -> None:
    """Jitter spreads durations within ±jitter of the base."""
    backoff = Backoff(initial=100, jitter=0.1)
    values = {backoff(1, None) for _ in range(200)}
    assert len(values) > 1
    assert all(90 <= v <= 110 for v in values)
    assert backoff(2, None) >= 180


async def test_open_duration_function_sees_the_failure(clock: FakeClock) -> None:
    """A function of (openings, failure) can honour a Retry-After hint."""

    class RetryAfter(DependencyDown):
        def __init__(self, seconds: float) -> None:
            self.seconds = seconds

    def duration(openings: int, failure: BaseException | None) -> float:
        return failure.seconds if isinstance(failure, RetryAfter) else 30.0

    breaker = make(clock, failure_threshold=2, open_duration=duration)
    await outcomes(breaker, "f")
    with pytest.raises(RetryAfter):
        await run(breaker, RetryAfter(7))  # counted lock-free, then trips: the hint is seen
    assert breaker.open_remaining == 7


@pytest.mark.parametrize("bad", [float("nan"), -1, 0, "soon"])
async def test_bad_open_duration_falls_back(
    clock: FakeClock, caplog: pytest.LogCaptureFixture, bad: object
) -> None:
    """An open_duration that returns nonsense (or raises) opens for recovery_timeout, logged."""

    def duration(openings: int, failure: BaseException | None) -> Any:
        if bad == "soon":
            raise RuntimeError
        return bad

    breaker = make(clock, failure_threshold=1, open_duration=duration, recovery_timeout=12)
    await outcomes(breaker, "f")
    assert breaker.open_remaining == 12
    assert "open_duration of circuit breaker" in caplog.text


async def test_old_generation_never_reaches_the_new_window(clock: FakeClock) -> None:
    """A call admitted before a trip does not count in the window after recovery."""
    breaker = make(clock, policy=RatePolicy(CountWindow(2), failure_rate=0.5))
    release = asyncio.Event()

    @breaker
    async def slow_failure() -> None:
        await release.wait()
        raise DependencyDown

    straggler = asyncio.create_task(slow_failure())
    await asyncio.sleep(0)
    await outcomes(breaker, "ff")
    assert breaker.opened
    clock.advance(30)
    await outcomes(breaker, "s")
    assert breaker.closed
    release.set()
    with pytest.raises(DependencyDown):
        await straggler
    await outcomes(breaker, "s")
    assert breaker.closed


async def test_async_with_and_generators_use_the_policy(clock: FakeClock) -> None:
    """Context managers and async generators record into the window too."""
    breaker = make(clock, policy=RatePolicy(TimeWindow(10), failure_rate=1.0, minimum_calls=2))

    @breaker
    async def rows() -> Any:
        yield 1
        raise DependencyDown

    with pytest.raises(DependencyDown):
        async for _ in rows():
            pass
    with pytest.raises(DependencyDown):
        async with breaker:
            raise DependencyDown
    assert breaker.opened


@pytest.mark.parametrize(
    ("factory", "error", "message"),
    [
        (lambda: RatePolicy(CountWindow(5), failure_rate=0), ValueError, r"in \(0, 1\]"),
        (lambda: RatePolicy(CountWindow(5), failure_rate=1.5), ValueError, "got 1.5"),
        (lambda: RatePolicy(CountWindow(5), failure_rate=True), TypeError, "failure_rate"),
        (lambda: RatePolicy(CountWindow(5), minimum_calls=6), ValueError, "can never be reached"),
        (lambda: RatePolicy(CountWindow(5), minimum_calls=0), ValueError, "minimum_calls"),
        (lambda: RatePolicy(CountWindow(5), slow_call_rate=0.5), ValueError, "needs slow_call"),
        (lambda: RatePolicy(CountWindow(5), slow_call_duration=-1), ValueError, "slow_call_dur"),
        (lambda: RatePolicy(CountWindow(5), slow_call_duration="1"), TypeError, "slow_call_dur"),  # type: ignore[arg-type]
        (lambda: RatePolicy(CountWindow(5), failure_rate=None), ValueError, "can never trip"),
        (lambda: RatePolicy("window"), TypeError, "CountWindow or a TimeWindow"),  # type: ignore[arg-type]
        (lambda: RatePolicy(CountWindow(5), trip=3), TypeError, "trip must be callable"),  # type: ignore[arg-type]
        (lambda: HalfOpen(probes=0), ValueError, "probes"),
        (lambda: HalfOpen(successes=1.5), TypeError, "successes"),  # type: ignore[arg-type]
        (lambda: HalfOpen(max_duration=0), ValueError, "max_duration"),
        (lambda: HalfOpen(judge_by_rate=1), TypeError, "judge_by_rate"),  # type: ignore[arg-type]
        (lambda: Backoff(initial=0), ValueError, "initial"),
        (lambda: Backoff(initial=1, factor=0.5), ValueError, "factor"),
        (lambda: Backoff(initial=1, factor="2"), TypeError, "factor"),  # type: ignore[arg-type]
        (lambda: Backoff(initial=1, jitter=1), ValueError, "jitter"),
        (lambda: Backoff(initial=1, jitter=None), TypeError, "jitter"),  # type: ignore[arg-type]
        (lambda: Backoff(initial=10, maximum=5), ValueError, "must not be less"),
        (lambda: CircuitBreaker(policy=CountWindow(5)), TypeError, "policy must be a RatePolicy"),  # type: ignore[arg-type]
        (lambda: CircuitBreaker(half_open=2), TypeError, "half_open must be a HalfOpen"),  # type: ignore[arg-type]
        (
            lambda: CircuitBreaker(half_open=HalfOpen(judge_by_rate=True)),
            ValueError,
            "needs a policy",
        ),
        (lambda: CircuitBreaker(failure_result=5), TypeError, "failure_result must be callable"),  # type: ignore[arg-type]
        (lambda: CircuitBreaker(open_duration=5), TypeError, "open_duration must be callable"),  # type: ignore[arg-type]
    ],
)
async def test_bad_policies_fail_at_construction(factory: Any, error: type, message: str) -> None:
    """Every bad configuration is refused when it is built, with a clear message."""
    with pytest.raises(error, match=message):
        factory()


async def test_rates_compare_as_written(clock: FakeClock) -> None:
    """3 failures in 10 calls reach a failure_rate of 0.3 (no floating-point surprise)."""
    breaker = make(clock, policy=RatePolicy(CountWindow(10), failure_rate=0.3))
    await outcomes(breaker, "sssssssfff")
    assert breaker.opened


async def test_trip_rule_without_calls_never_trips() -> None:
    """With minimum_calls ignored (half-open judging), zero calls never trip."""
    policy = RatePolicy(CountWindow(3))
    assert not policy.should_trip(0, 0, 0, 0, ignore_minimum=True)


async def test_window_counts_are_exact_across_threads() -> None:
    """Threads recording into one count window (successes lock-free) lose no outcome."""
    seen: list[Counts] = []

    def never(counts: Counts) -> bool:
        seen.append(counts)
        return False

    breaker = CircuitBreaker(
        expected_exception=DependencyDown,
        policy=RatePolicy(CountWindow(100_000), trip=never, minimum_calls=1),
    )

    @breaker
    async def call(fail: bool) -> None:
        if fail:
            raise DependencyDown

    async def work() -> None:
        for i in range(3_000):
            with contextlib.suppress(DependencyDown):
                await call(i % 3 == 0)

    def run_loop() -> None:
        asyncio.run(work())

    threads = [threading.Thread(target=run_loop) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        await asyncio.to_thread(thread.join)
    with pytest.raises(DependencyDown):
        await call(True)
    assert seen[-1].calls == 12_001
    assert seen[-1].failures == 4_001


async def test_failure_count_sees_lock_free_successes(clock: FakeClock) -> None:
    """A success counted without the lock still ends the run of failures at once."""

    @circuit(
        expected_exception=DependencyDown,
        clock=clock,
        policy=RatePolicy(CountWindow(10), failure_rate=1.0, minimum_calls=1),
    )
    async def call(fail: bool) -> None:
        if fail:
            raise DependencyDown

    breaker = call.circuit_breaker  # type: ignore[attr-defined]
    await call(False)
    with pytest.raises(DependencyDown):
        await call(True)
    assert breaker.failure_count == 1
    await call(False)  # the window holds minimum_calls already: counted lock-free
    assert breaker.failure_count == 0


async def test_decorated_result_predicate_without_policy(clock: FakeClock) -> None:
    """failure_result alone, through the decorator, counts consecutive failed results."""

    @circuit(failure_threshold=2, clock=clock, failure_result=lambda r: r is None)
    async def lookup(found: bool) -> object:
        return "row" if found else None

    assert await lookup(False) is None
    assert await lookup(True) == "row"
    assert await lookup(False) is None
    assert await lookup(False) is None
    with pytest.raises(CircuitBreakerError):
        await lookup(True)


async def test_broken_trip_rule_is_logged_and_does_not_trip(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A trip rule that raises neither replaces the call's outcome nor trips."""

    def broken(counts: Counts) -> bool:
        raise ZeroDivisionError

    breaker = make(clock, policy=RatePolicy(CountWindow(2), trip=broken, minimum_calls=1))
    assert await run(breaker, "ok") == "ok"
    with pytest.raises(DependencyDown):
        await run(breaker, DependencyDown())
    assert breaker.closed
    assert "trip rule" in caplog.text
    assert repr(breaker) == "<CircuitBreaker None state=closed failures=1>"


async def test_result_predicate_ignores_blocks_without_results(clock: FakeClock) -> None:
    """failure_result judges return values only: `async with` blocks are not judged."""
    seen: list[object] = []

    def judge(result: object) -> bool:
        seen.append(result)
        return True

    breaker = make(clock, failure_threshold=1, failure_result=judge)
    async with breaker:
        pass
    assert breaker.closed
    assert seen == []


async def test_backoff_jitter_respects_the_cap() -> None:
    """Jitter never takes an opening past maximum."""
    backoff = Backoff(initial=100, maximum=100, jitter=0.5)
    assert max(backoff(1, None) for _ in range(200)) <= 100


async def test_result_predicate_is_asked_once_per_call(clock: FakeClock) -> None:
    """Under a count-window policy the failure_result predicate runs exactly once per call."""
    asked: list[object] = []

    def judge(result: object) -> bool:
        asked.append(result)
        return result == "bad"

    @circuit(
        expected_exception=DependencyDown,
        clock=clock,
        failure_result=judge,
        policy=RatePolicy(CountWindow(10), failure_rate=1.0, minimum_calls=1),
    )
    async def call(value: str) -> str:
        return value

    for value in ("good", "good", "bad", "good"):
        assert await call(value) == value
    assert asked == ["good", "good", "bad", "good"]
    assert call.circuit_breaker.failure_count == 0  # type: ignore[attr-defined]


async def test_an_opening_seen_before_it_is_stored_is_asked_for_once(clock: FakeClock) -> None:
    """A probe out of time reopens the breaker: reads and the call that stores it all see one
    open duration, asked for once (a jittered Backoff does not move between reads)."""
    asked: list[int] = []
    jittered = Backoff(10, jitter=0.5)

    def duration(openings: int, failure: BaseException | None) -> float:
        asked.append(openings)
        return jittered(openings, failure)

    breaker = CircuitBreaker(
        failure_threshold=1,
        clock=clock,
        open_duration=duration,
        half_open=HalfOpen(max_duration=1),
    )
    with pytest.raises(DependencyDown), breaker:
        raise DependencyDown
    assert asked == [1]
    clock.advance(30)
    release = asyncio.Event()

    async def hang() -> None:
        await release.wait()

    probe = asyncio.create_task(breaker.call(hang))
    await asyncio.sleep(0)
    clock.advance(2)  # the probe ran out of time 1 s ago: a second opening, not stored yet
    seen = {breaker.open_remaining for _ in range(5)}
    assert breaker.state is State.OPEN
    assert len(seen) == 1
    assert asked == [1, 2]
    (remaining,) = seen
    assert breaker.statistics().open_remaining == remaining
    with pytest.raises(CircuitBreakerError) as rejected:
        await breaker.call(hang)  # this admission stores the opening, with the same deadline
    assert rejected.value.open_remaining == remaining
    assert asked == [1, 2]
    release.set()
    await probe


async def test_an_unhashable_failure_still_gets_its_open_duration(clock: FakeClock) -> None:
    """An exception class that defines __eq__ (and so is unhashable) opens the breaker as usual."""

    class Unhashable(DependencyDown):  # noqa: PLW1641 - unhashable on purpose
        def __eq__(self, other: object) -> bool:
            return isinstance(other, Unhashable)

    breaker = CircuitBreaker(
        failure_threshold=1, clock=clock, open_duration=lambda openings, failure: 7.0
    )
    with pytest.raises(Unhashable), breaker:
        raise Unhashable
    assert breaker.opened
    assert breaker.open_remaining == 7.0
