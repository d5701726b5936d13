"""timeout=: the breaker bounds an async call itself, and counts the expiry as a failure.

Each test waits at most a few milliseconds of real time: the event loops' own timers decide.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import trio
import uvloop

from aiocircuitbreaker import (
    CallFailed,
    CircuitBreaker,
    CircuitBreakerError,
    CircuitBreakerGroup,
    State,
    circuit,
)
from aiocircuitbreaker.testing import FakeClock

from .conftest import DependencyDown

TICK = 0.005  # the timeouts of these tests, in real seconds


def run(backend: str, main: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``main()`` to its end on ``backend``: asyncio, uvloop or trio."""
    if backend == "trio":
        return trio.run(main)
    if backend == "uvloop":
        return uvloop.run(main())  # type: ignore[arg-type]
    return asyncio.run(main())  # type: ignore[arg-type]


async def forever() -> None:
    """Sleep far longer than any timeout here, on whichever loop runs it."""
    if asyncio_running():
        await asyncio.sleep(3600)
    else:
        await trio.sleep(3600)


def asyncio_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


BACKENDS = ["asyncio", "uvloop", "trio"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_call_past_the_timeout_is_cancelled_and_counts_failed(backend: str) -> None:
    """The breaker cancels the hung call, raises TimeoutError and counts a slow failure."""
    breaker = CircuitBreaker(failure_threshold=2, expected_exception=DependencyDown, timeout=TICK)
    cleaned: list[str] = []

    @breaker
    async def hangs() -> None:
        try:
            await forever()
        finally:
            cleaned.append("cleanup")

    async def main() -> None:
        for _ in range(2):
            with pytest.raises(TimeoutError, match=r"timeout of 0\.005 s"):
                await hangs()
            assert cleaned[-1] == "cleanup"  # cancelled, and cleaned up, before the error
        with pytest.raises(CircuitBreakerError):
            await hangs()

    run(backend, main)
    stats = breaker.statistics()
    assert stats.state is State.OPEN
    assert (stats.total.failures, stats.total.slow) == (2, 2)
    assert isinstance(stats.last_failure, TimeoutError)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_call_within_the_timeout_is_untouched(backend: str) -> None:
    """A call that ends in time returns its result and counts a success."""
    breaker = CircuitBreaker(timeout=10)

    @breaker
    async def quick(value: int) -> int:
        return value * 2

    assert run(backend, lambda: quick(21)) == 42
    assert breaker.statistics().total.successes == 1
    assert breaker.timeout == 10


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_calls_own_timeout_error_is_judged_as_usual(backend: str) -> None:
    """A TimeoutError the call raises itself propagates unchanged, judged by expected_exception."""
    breaker = CircuitBreaker(expected_exception=DependencyDown, timeout=10)
    own = TimeoutError("the driver's own")

    @breaker
    async def raises() -> None:
        raise own

    async def main() -> None:
        with pytest.raises(TimeoutError) as caught:
            await raises()
        assert caught.value is own

    run(backend, main)
    assert breaker.statistics().total.neutral == 1


def test_a_cancellation_from_outside_stays_neutral() -> None:
    """Cancelling the caller's task during a timed call is still a neutral cancellation."""
    breaker = CircuitBreaker(failure_threshold=1, timeout=10)

    @breaker
    async def hangs() -> None:
        await asyncio.sleep(3600)

    async def main() -> None:
        task = asyncio.ensure_future(hangs())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    stats = breaker.statistics()
    assert stats.state is State.CLOSED
    assert (stats.total.neutral, stats.total.failures) == (1, 0)


def test_a_call_that_swallows_the_cancellation_keeps_its_result() -> None:
    """A call that catches the timeout's cancellation and returns gives its result; the task
    is left with no cancellation pending."""
    breaker = CircuitBreaker(timeout=TICK)

    @breaker
    async def stubborn() -> str:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            return "finished anyway"
        return "never"  # pragma: no cover

    async def main() -> tuple[str, int]:
        result = await stubborn()
        task = asyncio.current_task()
        assert task is not None
        cancelling = getattr(task, "cancelling", lambda: 0)()
        await asyncio.sleep(0)  # no cancellation arrives later either
        return result, cancelling

    assert asyncio.run(main()) == ("finished anyway", 0)
    assert breaker.statistics().total.successes == 1


def test_a_timeout_around_the_guarded_call_cannot_count() -> None:
    """Without timeout=, asyncio.wait_for() around a guarded call cancels it: neutral."""
    breaker = CircuitBreaker(failure_threshold=1)

    @breaker
    async def hangs() -> None:
        await asyncio.sleep(3600)

    async def main() -> None:
        with pytest.raises(asyncio.TimeoutError):  # (TimeoutError from Python 3.11 on)
            await asyncio.wait_for(hangs(), TICK)

    asyncio.run(main())
    stats = breaker.statistics()
    assert stats.state is State.CLOSED
    assert (stats.total.neutral, stats.total.failures) == (1, 0)


def test_a_probe_that_times_out_reopens_the_breaker() -> None:
    """The half-open probe is timed like any call: its expiry is the probe's failure."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=30, clock=clock, timeout=TICK)

    @breaker
    async def hangs() -> None:
        await asyncio.sleep(3600)

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await hangs()
        clock.advance(30)
        assert breaker.state is State.HALF_OPEN
        with pytest.raises(TimeoutError):
            await hangs()

    asyncio.run(main())
    assert breaker.state is State.OPEN
    assert breaker.statistics().openings == 2


def test_every_async_way_in_is_timed() -> None:
    """call(), call_async(), a group's call and a group's decorated function are all timed."""
    breaker = CircuitBreaker(failure_threshold=10, timeout=TICK)
    group = CircuitBreakerGroup("timed", key=lambda host: host, timeout=TICK)
    seen: list[object] = []
    breaker.add_listener(seen.append, CallFailed)

    async def hangs(host: str = "h") -> None:
        await asyncio.sleep(3600)

    guarded = group(hangs)

    async def main() -> None:
        for attempt in (
            lambda: breaker.call(hangs),
            lambda: breaker.call_async(hangs),
            lambda: group.call("h", hangs),
            lambda: guarded("h"),
        ):
            with pytest.raises(TimeoutError):
                await attempt()

    asyncio.run(main())
    assert breaker.statistics().total.failures == 2
    assert group.statistics()["h"].total.failures == 2
    assert [type(event.exception) for event in seen] == [TimeoutError, TimeoutError]  # type: ignore[attr-defined]


def test_a_disabled_breaker_does_not_time() -> None:
    """A disabled breaker is no breaker at all: no timeout either."""
    breaker = CircuitBreaker(timeout=TICK)
    breaker.disable()

    @breaker
    async def slowish() -> str:
        await asyncio.sleep(TICK * 3)
        return "done"

    assert asyncio.run(slowish()) == "done"


def _sync() -> int:
    return 1


def _generator() -> Iterator[int]:
    yield 1


async def _async_generator() -> AsyncIterator[int]:
    yield 1


@pytest.mark.parametrize(
    ("way", "what"),
    [
        (lambda b: b(_sync), "_sync"),
        (lambda b: b(_generator), "_generator"),
        (lambda b: b(_async_generator), "_async_generator"),
        (lambda b: b.call(_sync), "the synchronous"),
        (lambda b: b.call_generator(_generator), "the generator of"),
        (lambda b: b.call_async_generator(_async_generator), "the async generator of"),
        (lambda b: b.__enter__(), "a with block"),
        (lambda b: asyncio.run(b.__aenter__()), "a with block"),
    ],
)
def test_what_a_timeout_cannot_bound_is_refused(way: Callable[[Any], Any], what: str) -> None:
    """Sync calls, iterations and with blocks cannot be interrupted: refused, saying why."""
    breaker = CircuitBreaker(timeout=2)
    with pytest.raises(ValueError, match="timeout=2, which bounds coroutine calls only") as caught:
        way(breaker)
    assert what in str(caught.value)
    assert "cannot be interrupted" in str(caught.value)
    assert breaker.statistics().total.calls == 0


@pytest.mark.parametrize(
    ("timeout", "error"),
    [
        (0, ValueError),
        (-1, ValueError),
        (float("inf"), ValueError),
        ("1", TypeError),
        (True, TypeError),
    ],
)
def test_a_bad_timeout_is_refused(timeout: object, error: type[Exception]) -> None:
    """timeout= is a finite number of seconds above 0, checked at construction."""
    with pytest.raises(error, match="timeout must be a finite number of seconds > 0"):
        CircuitBreaker(timeout=timeout)  # type: ignore[arg-type]
    with pytest.raises(error, match="timeout must be"):
        circuit(timeout=timeout)  # type: ignore[call-overload]


@pytest.mark.parametrize("trio_imported", [False, True])
def test_a_timeout_needs_a_running_event_loop(
    monkeypatch: pytest.MonkeyPatch, trio_imported: bool
) -> None:
    """Driven by hand, outside asyncio and trio, a timed call raises RuntimeError first."""
    if not trio_imported:
        monkeypatch.delitem(sys.modules, "trio")
    breaker = CircuitBreaker(timeout=1)

    @breaker
    async def quick() -> int:
        return 1

    coroutine = quick()
    with pytest.raises(RuntimeError, match="needs a running asyncio or trio event loop"):
        coroutine.send(None)
    assert breaker.statistics().total.calls == 0


def test_settings_with_a_timeout_are_not_shared_with_those_without() -> None:
    """Two breakers alike but for timeout= behave apart."""
    timed, plain = CircuitBreaker(timeout=1), CircuitBreaker()
    assert (timed.timeout, plain.timeout) == (1, None)
