"""Async generator functions: the breaker judges the producer, not the consumer."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from aiocircuitbreaker import CircuitBreaker, CircuitBreakerError, State
from aiocircuitbreaker.testing import FakeClock

from .conftest import DependencyDown

pytestmark = pytest.mark.asyncio


def make(clock: FakeClock, **options: object) -> CircuitBreaker:
    return CircuitBreaker(
        failure_threshold=1,
        expected_exception=DependencyDown,
        clock=clock,
        **options,  # type: ignore[arg-type]
    )


async def test_items_pass_through_and_success_is_recorded(clock: FakeClock) -> None:
    """A generator that runs to the end is a success (and closes a half-open breaker)."""
    breaker = make(clock)

    @breaker
    async def rows(n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    assert [r async for r in rows(3)] == [0, 1, 2]
    breaker.__class__  # noqa: B018
    with pytest.raises(DependencyDown), breaker:
        raise DependencyDown
    clock.advance(30)
    assert [r async for r in rows(2)] == [0, 1]
    assert breaker.closed


async def test_producer_error_is_a_failure(clock: FakeClock) -> None:
    """An expected error raised by the producer mid-stream counts."""
    breaker = make(clock)

    @breaker
    async def rows() -> AsyncIterator[int]:
        yield 1
        raise DependencyDown

    stream = rows()
    assert await stream.__anext__() == 1
    with pytest.raises(DependencyDown):
        await stream.__anext__()
    assert breaker.opened


async def test_consumer_closing_early_is_not_a_failure(clock: FakeClock) -> None:
    """Breaking out and closing the generator is neutral, and the producer is closed too."""
    breaker = make(clock)
    closed = False

    @breaker
    async def rows() -> AsyncIterator[int]:
        nonlocal closed
        try:
            for i in range(100):
                yield i
        finally:
            closed = True

    stream = rows()
    async for row in stream:
        if row == 2:
            break
    await stream.aclose()  # type: ignore[attr-defined]
    assert closed
    assert breaker.closed
    assert breaker.failure_count == 0


async def test_closing_a_probe_generator_releases_the_slot(clock: FakeClock) -> None:
    """A half-open probe that the consumer abandons gives the slot back."""
    breaker = make(clock)

    @breaker
    async def rows() -> AsyncIterator[int]:
        yield 1
        yield 2

    with pytest.raises(DependencyDown), breaker:
        raise DependencyDown
    clock.advance(30)
    stream = rows()
    assert await stream.__anext__() == 1
    with pytest.raises(CircuitBreakerError):
        await rows().__anext__()
    await stream.aclose()  # type: ignore[attr-defined]
    assert breaker.state is State.HALF_OPEN
    assert [r async for r in rows()] == [1, 2]
    assert breaker.closed


async def test_rejected_generator_raises_on_first_item(clock: FakeClock) -> None:
    """An open breaker rejects when iteration starts."""
    breaker = make(clock)

    @breaker
    async def rows() -> AsyncIterator[int]:
        yield 1  # pragma: no cover - rejected

    with pytest.raises(DependencyDown), breaker:
        raise DependencyDown
    stream = rows()
    with pytest.raises(CircuitBreakerError):
        await stream.__anext__()


async def test_fallback_may_be_sync_or_async_iterable(clock: FakeClock) -> None:
    """A generator's fallback returns an iterable or async iterable, or is an async generator."""

    async def async_fallback(n: int) -> AsyncIterator[int]:
        yield -n

    for fallback, expected in (
        (lambda n: [n, n], [7, 7]),
        (async_fallback, [-7]),
    ):
        breaker = make(clock, fallback_function=fallback)

        @breaker
        async def rows(n: int) -> AsyncIterator[int]:
            raise DependencyDown
            yield n  # pragma: no cover

        with pytest.raises(DependencyDown):
            [r async for r in rows(1)]
        assert [r async for r in rows(7)] == expected


async def test_athrow_is_forwarded_to_the_producer(clock: FakeClock) -> None:
    """Exceptions thrown in by the consumer reach the producer; if it lets them out, neutral."""
    breaker = make(clock)
    handled: list[BaseException] = []

    @breaker
    async def rows() -> AsyncIterator[str]:
        while True:
            try:
                yield "item"
            except ValueError as exc:
                handled.append(exc)
                yield "recovered"

    stream = rows()
    assert await stream.__anext__() == "item"
    assert await stream.athrow(ValueError("poke")) == "recovered"  # type: ignore[attr-defined]
    assert len(handled) == 1
    assert await stream.asend(None) == "item"  # type: ignore[attr-defined]
    injected = DependencyDown("from the consumer")
    with pytest.raises(DependencyDown):
        await stream.athrow(injected)  # type: ignore[attr-defined]
    assert breaker.closed  # the consumer's own exception is not the producer's failure


async def test_values_sent_reach_the_producer(clock: FakeClock) -> None:
    """asend() values are passed through to the wrapped generator."""
    breaker = make(clock)

    @breaker
    async def echo() -> AsyncIterator[object]:
        received = None
        while True:
            received = yield received

    stream = echo()
    assert await stream.__anext__() is None
    assert await stream.asend("ping") == "ping"  # type: ignore[attr-defined]
    await stream.aclose()  # type: ignore[attr-defined]
