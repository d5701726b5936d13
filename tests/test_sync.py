"""Synchronous callables: the same promises as async ones, from any number of threads."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Iterator

import pytest

from aiocircuitbreaker import CallCounts, CircuitBreaker, CircuitBreakerError, HalfOpen
from aiocircuitbreaker.testing import FakeClock

from .conftest import DependencyDown, make, run_threads


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(DependencyDown), breaker:
            raise DependencyDown


def test_sync_callables_of_every_kind_get_sync_wrappers(clock: FakeClock) -> None:
    """Functions, methods, partials, callable objects and generators stay synchronous."""
    breaker = make(clock)

    class Service:
        @breaker
        def method(self, value: int) -> int:
            return value

    class Callable:
        def __call__(self, value: int) -> int:
            return value

    @breaker
    def produce(count: int) -> Iterator[int]:
        yield from range(count)

    assert Service().method(1) == 1
    assert breaker(Callable())(2) == 2
    assert inspect.isgeneratorfunction(produce)
    assert list(produce(3)) == [0, 1, 2]


def test_a_sync_generator_hands_on_send_and_throw(clock: FakeClock) -> None:
    """send() and throw() reach the producer; an exception it lets out is neutral."""
    breaker = make(clock, failure_threshold=1)

    @breaker
    def echo() -> Iterator[object]:
        received = yield "first"
        while True:
            received = yield received

    stream = echo()
    assert next(stream) == "first"
    assert stream.send("again") == "again"
    with pytest.raises(DependencyDown):
        stream.throw(DependencyDown())  # the consumer's exception, let out: neutral
    assert breaker.closed
    assert breaker.statistics().total == CallCounts(neutral=1)


def test_a_sync_generator_closed_early_is_neutral_and_closes_its_producer(
    clock: FakeClock,
) -> None:
    """A consumer closing a guarded generator early counts neither way; the producer closes."""
    breaker = make(clock)
    closed: list[bool] = []

    @breaker
    def produce() -> Iterator[int]:
        try:
            yield 1
            yield 2  # pragma: no cover - closed before
        finally:
            closed.append(True)

    stream = produce()
    assert next(stream) == 1
    stream.close()
    assert closed == [True]
    assert breaker.statistics().total == CallCounts(neutral=1)


def test_a_sync_generator_failing_counts_as_a_failure(clock: FakeClock) -> None:
    """A producer raising an expected exception while iterated is a failure."""
    breaker = make(clock, failure_threshold=1)

    @breaker
    def produce() -> Iterator[int]:
        yield 1
        raise DependencyDown

    with pytest.raises(DependencyDown):
        list(produce())
    assert breaker.opened
    with pytest.raises(CircuitBreakerError):
        list(produce())


def test_call_generator_takes_any_iterable_and_a_fallback(clock: FakeClock) -> None:
    """call_generator() guards a function returning any iterable; rejected, the fallback's."""
    breaker = make(clock, failure_threshold=1, fallback_function=lambda: ["cached"])
    assert list(breaker.call_generator(lambda: [1, 2])) == [1, 2]
    with pytest.raises(DependencyDown):
        list(breaker.call_generator(lambda: (_ for _ in ()).throw(DependencyDown())))
    assert list(breaker.call_generator(lambda: [1])) == ["cached"]


def test_a_generator_function_raising_before_its_first_item_is_judged(
    clock: FakeClock,
) -> None:
    """A generator factory that raises at once (not a generator) fails the call."""
    breaker = make(clock, failure_threshold=1)

    def factory() -> Iterator[int]:
        raise DependencyDown

    with pytest.raises(DependencyDown):
        list(breaker.call_generator(factory))
    assert breaker.opened


@pytest.mark.asyncio
async def test_call_of_a_sync_callable_returning_an_awaitable_counts_when_awaited(
    clock: FakeClock,
) -> None:
    """breaker.call(lambda: coroutine) counts the call when the awaitable is awaited."""
    breaker = make(clock, failure_threshold=1)

    async def down() -> None:
        raise DependencyDown

    pending = breaker.call(lambda: down())  # noqa: PLW0108 - a sync callable, on purpose
    assert breaker.closed  # nothing has run yet
    with pytest.raises(DependencyDown):
        await pending
    assert breaker.opened
    ok = make(clock)

    async def fine() -> str:
        return "ok"

    assert await ok.call(lambda: fine()) == "ok"  # noqa: PLW0108 - sync, on purpose


def test_a_disabled_breaker_runs_sync_calls_unguarded(clock: FakeClock) -> None:
    """Disabled, sync calls and generators run as if there were no breaker."""
    breaker = make(clock, failure_threshold=1)
    breaker.disable()

    @breaker
    def produce() -> Iterator[int]:
        yield 1

    assert breaker.call(lambda: 5) == 5
    assert list(produce()) == [1]
    assert list(breaker.call_generator(lambda: [2])) == [2]
    assert breaker.statistics().total == CallCounts()


def test_one_probe_among_64_threads(clock: FakeClock) -> None:
    """When 64 threads call a half-open breaker together, exactly one runs as the probe."""
    breaker = make(clock, failure_threshold=1)
    fail(breaker)
    clock.advance(30)
    admitted: list[int] = []
    release = threading.Event()
    lock = threading.Lock()

    @breaker
    def probe() -> None:
        with lock:
            admitted.append(1)
        release.wait(5)

    rejected = []

    def call() -> None:
        try:
            probe()
        except CircuitBreakerError:
            rejected.append(1)
            if len(rejected) == 63:
                release.set()

    run_threads(64, lambda _: call())
    assert len(admitted) == 1
    assert len(rejected) == 63
    assert breaker.closed


@pytest.mark.usefixtures("fine_switching")
def test_counts_are_exact_from_8_threads(clock: FakeClock) -> None:
    """8 threads of successes, failures and neutral calls leave exact totals and streaks."""
    breaker = make(clock, failure_threshold=10**9)
    rounds = 2_000

    @breaker
    def call(value: object) -> object:
        if isinstance(value, BaseException):
            raise value
        return value

    def work() -> None:
        for _ in range(rounds):
            call(1)
            with pytest.raises(DependencyDown):
                call(DependencyDown())
            with pytest.raises(KeyError):
                call(KeyError())

    run_threads(8, lambda _: work())
    assert breaker.statistics().total == CallCounts(
        successes=8 * rounds, failures=8 * rounds, neutral=8 * rounds
    )


@pytest.mark.usefixtures("fine_switching")
def test_a_failure_streak_is_exact_from_8_threads(clock: FakeClock) -> None:
    """8 threads failing together trip the breaker exactly at the threshold."""
    breaker = make(clock, failure_threshold=8 * 500)

    @breaker
    def call() -> None:
        raise DependencyDown

    def work() -> None:
        for _ in range(499):
            with pytest.raises(DependencyDown):
                call()

    run_threads(8, lambda _: work())
    assert breaker.failure_count == 8 * 499
    assert breaker.closed
    for _ in range(8):
        with pytest.raises(DependencyDown):
            call()
    assert breaker.opened
    assert breaker.failure_count == 8 * 500


def test_threads_each_running_a_loop_share_one_breaker(clock: FakeClock) -> None:
    """Sync and async callers on one breaker, in several threads, see one state."""
    breaker = make(clock, failure_threshold=4, half_open=HalfOpen(probes=1))

    @breaker
    def sync_down() -> None:
        raise DependencyDown

    @breaker
    async def async_down() -> None:
        raise DependencyDown

    def sync_caller() -> None:
        with pytest.raises(DependencyDown):
            sync_down()

    def async_caller() -> None:
        async def run() -> None:
            with pytest.raises(DependencyDown):
                await async_down()

        asyncio.run(run())

    for target in (sync_caller, async_caller, sync_caller, async_caller):
        thread = threading.Thread(target=target)
        thread.start()
        thread.join()
    assert breaker.opened
    with pytest.raises(CircuitBreakerError):
        sync_down()
