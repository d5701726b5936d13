"""CircuitBreakerError: what it says, what it carries, and that it survives pickling."""

from __future__ import annotations

import pickle
import re
from datetime import timedelta

import pytest

from aiocircuitbreaker import CircuitBreaker, CircuitBreakerError
from aiocircuitbreaker.testing import FakeClock

from .conftest import DependencyDown

pytestmark = pytest.mark.asyncio


async def _rejection(clock: FakeClock) -> tuple[CircuitBreaker, CircuitBreakerError]:
    breaker = CircuitBreaker(failure_threshold=2, recovery_timeout=60, name="payments", clock=clock)
    for _ in range(2):
        with pytest.raises(DependencyDown), breaker:
            raise DependencyDown("no route")
    clock.advance(15)
    with pytest.raises(CircuitBreakerError) as info, breaker:
        pass  # pragma: no cover - rejected
    return breaker, info.value


async def test_message_keeps_the_old_shape(clock: FakeClock) -> None:
    """str() reads like 2.0.0's message, with an aware UTC open_until."""
    _, error = await _rejection(clock)
    pattern = (
        r'Circuit "payments" OPEN until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+\+00:00 '
        r"\(2 failures, 45 sec remaining\) \(last_failure: DependencyDown\('no route'\)\)"
    )
    assert re.fullmatch(pattern, str(error)), str(error)


async def test_values_are_captured_when_raised(clock: FakeClock) -> None:
    """The error keeps what the breaker looked like at rejection, not what it looks like now."""
    breaker, error = await _rejection(clock)
    until = error.open_until
    message = str(error)
    breaker.reset()
    clock.advance(1000)
    assert error.name == "payments"
    assert error.failure_count == 2
    assert error.open_remaining == pytest.approx(45)
    assert isinstance(error.last_failure, DependencyDown)
    assert error.open_until == until
    assert str(error) == message
    assert error.circuit_breaker is breaker


async def test_open_until_matches_remaining(clock: FakeClock) -> None:
    """open_until is the raise time plus the remaining timeout."""
    _, error = await _rejection(clock)
    assert error.open_until.utcoffset() == timedelta(0)


async def test_pickles(clock: FakeClock) -> None:
    """The error round-trips through pickle with its captured values (but not the breaker)."""
    _, error = await _rejection(clock)
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is CircuitBreakerError
    assert str(clone) == str(error)
    assert clone.failure_count == 2
    assert clone.name == "payments"
    assert clone.open_until == error.open_until
    assert clone.circuit_breaker is None
    assert clone.args == ()


async def test_raised_by_hand_on_a_closed_breaker(clock: FakeClock) -> None:
    """Users' own code (tests, adapters) can raise it from a breaker in any state."""
    breaker = CircuitBreaker(name="manual", clock=clock)
    with pytest.raises(DependencyDown), breaker:
        raise DependencyDown
    error = CircuitBreakerError(breaker, "extra")
    assert error.args == ("extra",)
    assert error.failure_count == 1
    assert error.open_remaining == 0.0
    assert "(1 failures, 0 sec remaining)" in str(error)


async def test_is_an_exception() -> None:
    """It derives from Exception, so generic handlers catch it."""
    assert issubclass(CircuitBreakerError, Exception)
