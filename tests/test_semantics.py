"""The state machine as a caller sees it, through every way of guarding a call."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from aiocircuitbreaker import CircuitBreaker, CircuitBreakerError, State
from aiocircuitbreaker.testing import FakeClock

from .conftest import DependencyDown

pytestmark = pytest.mark.asyncio

Guard = Callable[[CircuitBreaker], Callable[[object], Any]]


def make(clock: FakeClock, **options: Any) -> CircuitBreaker:
    options.setdefault("failure_threshold", 3)
    options.setdefault("recovery_timeout", 30)
    options.setdefault("expected_exception", DependencyDown)
    return CircuitBreaker(clock=clock, **options)


async def fail(call: Callable[[object], Any], times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(DependencyDown):
            await call(DependencyDown("down"))


async def test_consecutive_failures_open_the_breaker(clock: FakeClock, guard: Guard) -> None:
    """Reaching failure_threshold consecutive failures opens; the tripping call sees its error."""
    breaker = make(clock)
    call = guard(breaker)
    await fail(call, 2)
    assert breaker.closed
    assert breaker.failure_count == 2
    await fail(call)
    assert breaker.state is State.OPEN
    assert breaker.opened
    assert breaker.failure_count == 3
    assert isinstance(breaker.last_failure, DependencyDown)


async def test_success_resets_the_failure_count(clock: FakeClock, guard: Guard) -> None:
    """A success in between failures starts the count again."""
    breaker = make(clock)
    call = guard(breaker)
    await fail(call, 2)
    assert await call("ok") == "ok"
    assert breaker.failure_count == 0
    assert breaker.last_failure is None
    await fail(call, 2)
    assert breaker.closed


async def test_open_breaker_rejects_without_running(clock: FakeClock, guard: Guard) -> None:
    """While open, calls are rejected at once and never reach the function."""
    breaker = make(clock, failure_threshold=1)
    call = guard(breaker)
    await fail(call)
    reached: list[object] = []

    class Spy:
        def __repr__(self) -> str:
            reached.append(self)
            return "spy"

    with pytest.raises(CircuitBreakerError) as info:
        await call(Spy())
    assert info.value.circuit_breaker is breaker
    assert reached == []


async def test_recovery_timeout_makes_it_half_open(clock: FakeClock, guard: Guard) -> None:
    """After recovery_timeout the breaker reads half-open, lazily, with no timer."""
    breaker = make(clock, failure_threshold=1, recovery_timeout=30)
    await fail(guard(breaker))
    clock.advance(29.999)
    assert breaker.state is State.OPEN
    assert breaker.open_remaining == pytest.approx(0.001)
    clock.advance(0.001)
    assert breaker.state is State.HALF_OPEN
    assert breaker.half_open
    assert not breaker.opened
    assert breaker.open_remaining == pytest.approx(0.0)


async def test_successful_probe_closes(clock: FakeClock, guard: Guard) -> None:
    """A successful half-open probe closes the breaker with a zero count."""
    breaker = make(clock, failure_threshold=2)
    call = guard(breaker)
    await fail(call, 2)
    clock.advance(30)
    assert await call("probe") == "probe"
    assert breaker.state is State.CLOSED
    assert breaker.failure_count == 0
    assert await call("next") == "next"


async def test_failed_probe_reopens_with_fresh_timeout(clock: FakeClock, guard: Guard) -> None:
    """A failed probe re-opens for a whole new recovery timeout; the count grows by one."""
    breaker = make(clock, failure_threshold=2, recovery_timeout=30)
    call = guard(breaker)
    await fail(call, 2)
    clock.advance(45)
    await fail(call)
    assert breaker.state is State.OPEN
    assert breaker.failure_count == 3
    assert breaker.open_remaining == pytest.approx(30)
    with pytest.raises(CircuitBreakerError):
        await call("rejected")


@pytest.mark.parametrize(
    "neutral",
    [KeyError("local bug"), asyncio.CancelledError(), KeyboardInterrupt(), SystemExit(3)],
    ids=["other-exception", "cancelled", "keyboard-interrupt", "system-exit"],
)
async def test_neutral_outcomes_neither_count_nor_reset(
    clock: FakeClock, guard: Guard, neutral: BaseException
) -> None:
    """Unexpected exceptions and BaseExceptions propagate unchanged and leave the count alone."""
    breaker = make(clock)
    call = guard(breaker)
    await fail(call, 2)
    with pytest.raises(type(neutral)) as info:
        await call(neutral)
    assert info.value is neutral
    assert breaker.failure_count == 2
    assert isinstance(breaker.last_failure, DependencyDown)
    assert breaker.closed


@pytest.mark.parametrize(
    "neutral",
    [KeyError("local bug"), asyncio.CancelledError()],
    ids=["other-exception", "cancelled"],
)
async def test_neutral_probe_releases_the_slot(
    clock: FakeClock, guard: Guard, neutral: BaseException
) -> None:
    """A neutral half-open probe leaves the breaker half-open and the next call probes."""
    breaker = make(clock, failure_threshold=1)
    call = guard(breaker)
    await fail(call)
    clock.advance(30)
    with pytest.raises(type(neutral)):
        await call(neutral)
    assert breaker.state is State.HALF_OPEN
    assert breaker.failure_count == 1
    assert await call("second probe") == "second probe"
    assert breaker.closed


async def test_fallback_serves_rejected_calls(clock: FakeClock) -> None:
    """With a fallback, rejected calls return its result, called with the same arguments."""
    seen: list[tuple[Any, ...]] = []

    def fallback(*args: Any, **kwargs: Any) -> str:
        seen.append((args, kwargs))
        return "cached"

    breaker = make(clock, failure_threshold=1, fallback_function=fallback)

    @breaker
    async def fetch(key: str, *, fresh: bool = False) -> str:
        raise DependencyDown(key)

    with pytest.raises(DependencyDown):
        await fetch("a")
    assert seen == []  # the tripping call raises its own error
    assert await fetch("b", fresh=True) == "cached"
    assert seen == [(("b",), {"fresh": True})]


async def test_async_fallback_is_awaited(clock: FakeClock) -> None:
    """An async fallback is awaited; its exceptions reach the caller and change nothing."""
    calls = 0

    async def fallback(value: object) -> object:
        nonlocal calls
        calls += 1
        if value == "boom":
            raise ValueError("fallback broke")
        return f"fallback:{value}"

    breaker = make(clock, failure_threshold=1, fallback_function=fallback)

    @breaker
    async def fetch(value: object) -> object:
        raise DependencyDown

    with pytest.raises(DependencyDown):
        await fetch("x")
    assert await fetch("y") == "fallback:y"
    with pytest.raises(ValueError, match="fallback broke"):
        await fetch("boom")
    assert breaker.state is State.OPEN
    assert breaker.failure_count == 1
    assert calls == 2


async def test_call_uses_the_fallback_too(clock: FakeClock) -> None:
    """breaker.call() goes through the same admission as the decorator, fallback included."""
    breaker = make(clock, failure_threshold=1, fallback_function=lambda *a: ("fb", a))
    with pytest.raises(DependencyDown):
        await breaker.call(_raise, DependencyDown())
    error = DependencyDown()
    assert await breaker.call(_raise, error) == ("fb", (error,))


async def _raise(exc: BaseException) -> None:
    raise exc


async def test_half_open_rejections_use_fallback(clock: FakeClock) -> None:
    """While the probe runs, other callers get the fallback instead of an error."""
    release = asyncio.Event()
    breaker = make(clock, failure_threshold=1, fallback_function=lambda *_: "fallback")

    @breaker
    async def fetch(wait: bool) -> str:
        if wait:
            await release.wait()
            return "probe"
        raise DependencyDown

    with pytest.raises(DependencyDown):
        await fetch(False)
    clock.advance(30)
    probe = asyncio.create_task(fetch(True))
    await asyncio.sleep(0)
    assert breaker.state is State.HALF_OPEN
    assert await fetch(True) == "fallback"
    release.set()
    assert await probe == "probe"
    assert breaker.closed


async def test_reset_closes_and_forgets(clock: FakeClock, guard: Guard) -> None:
    """reset() closes the breaker and clears its failures and last failure."""
    breaker = make(clock, failure_threshold=1)
    call = guard(breaker)
    await fail(call)
    breaker.reset()
    assert breaker.closed
    assert breaker.failure_count == 0
    assert breaker.last_failure is None
    assert await call("ok") == "ok"


async def test_predicate_decides_what_fails(clock: FakeClock, guard: Guard) -> None:
    """A predicate expected_exception gets (type, value) and its answer decides."""
    seen: list[tuple[type[BaseException], BaseException]] = []

    def is_failure(exc_type: type[BaseException], exc: BaseException) -> bool:
        seen.append((exc_type, exc))
        return "fatal" in str(exc)

    breaker = make(clock, failure_threshold=1, expected_exception=is_failure)
    call = guard(breaker)
    with pytest.raises(RuntimeError):
        await call(RuntimeError("mild"))
    assert breaker.closed
    error = RuntimeError("fatal")
    with pytest.raises(RuntimeError):
        await call(error)
    assert breaker.opened
    assert seen[-1] == (RuntimeError, error)


async def test_predicate_never_sees_base_exceptions(clock: FakeClock) -> None:
    """Cancellation stays neutral even when a predicate would call everything a failure."""
    breaker = make(clock, failure_threshold=1, expected_exception=lambda *_: True)
    with pytest.raises(asyncio.CancelledError):
        await breaker.call(_raise, asyncio.CancelledError())
    assert breaker.closed


async def test_broken_predicate_is_neutral_and_logged(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A predicate that raises neither replaces the call's error nor changes the state."""

    def broken(exc_type: type[BaseException], exc: BaseException) -> bool:
        raise ZeroDivisionError

    breaker = make(clock, failure_threshold=1, expected_exception=broken, name="db")
    error = DependencyDown("real")
    with pytest.raises(DependencyDown) as info:
        await breaker.call(_raise, error)
    assert info.value is error
    assert breaker.closed
    assert "predicate of circuit breaker 'db' raised" in caplog.text


async def test_iterable_of_exception_classes(clock: FakeClock) -> None:
    """expected_exception may be several classes; others stay neutral."""
    breaker = make(clock, failure_threshold=2, expected_exception=[TimeoutError, ConnectionError])
    for exc in (TimeoutError(), KeyError(), ConnectionResetError()):
        with pytest.raises(type(exc)):
            await breaker.call(_raise, exc)
    assert breaker.opened


async def test_default_counts_every_exception(clock: FakeClock) -> None:
    """By default every Exception is a failure, as in 2.0.0."""
    breaker = CircuitBreaker(failure_threshold=2, clock=clock)
    for exc in (KeyError(), ValueError()):
        with pytest.raises(type(exc)):
            await breaker.call(_raise, exc)
    assert breaker.opened


async def test_sync_with_statement_checks_and_records(clock: FakeClock) -> None:
    """A plain `with breaker:` refuses entry while open and records its block's outcome."""
    breaker = make(clock, failure_threshold=1)
    with pytest.raises(DependencyDown), breaker:
        raise DependencyDown
    assert breaker.opened
    ran = False
    with pytest.raises(CircuitBreakerError), breaker:
        ran = True
    assert not ran
    clock.advance(30)
    with breaker as entered:
        assert entered is breaker
    assert breaker.closed


async def test_exit_without_enter_is_an_error(clock: FakeClock) -> None:
    """Leaving a breaker that was not entered in this context is a usage error."""
    breaker = make(clock)
    with pytest.raises(RuntimeError, match="without a matching __enter__"):
        breaker.__exit__(None, None, None)


async def test_nested_with_on_one_breaker(clock: FakeClock) -> None:
    """Nested blocks on the same breaker keep their own permits."""
    breaker = make(clock, failure_threshold=2)
    with pytest.raises(DependencyDown), breaker:  # noqa: PT012 - the block is the scenario
        async with breaker:
            pass
        raise DependencyDown
    assert breaker.failure_count == 1


async def test_half_open_probe_via_async_with_is_exclusive(clock: FakeClock) -> None:
    """`async with` admits one probe; a second entry while it runs is rejected."""
    breaker = make(clock, failure_threshold=1)
    with pytest.raises(DependencyDown):
        async with breaker:
            raise DependencyDown
    clock.advance(30)
    async with breaker:
        with pytest.raises(CircuitBreakerError):
            async with breaker:
                pass  # pragma: no cover - never entered
    assert breaker.closed


async def test_interleaved_blocks_on_two_breakers(clock: FakeClock) -> None:
    """Permits are matched per breaker even when blocks are left out of order."""
    first = make(clock, failure_threshold=1)
    second = make(clock, failure_threshold=1)
    first.__enter__()
    second.__enter__()
    first.__exit__(DependencyDown, DependencyDown(), None)
    second.__exit__(None, None, None)
    assert first.opened
    assert second.closed
