"""Shared fixtures: a fake clock and the kinds of callables a breaker can guard."""

from __future__ import annotations

import asyncio
import functools
import sys
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from aiocircuitbreaker import CircuitBreaker
from aiocircuitbreaker.testing import FakeClock


class DependencyDown(OSError):
    """The expected failure used throughout the tests."""


def make(clock: FakeClock, **options: Any) -> CircuitBreaker:
    """Return a breaker on ``clock``: threshold 3, 30 s, DependencyDown, unless overridden."""
    options.setdefault("failure_threshold", 3)
    options.setdefault("recovery_timeout", 30)
    options.setdefault("expected_exception", DependencyDown)
    return CircuitBreaker(clock=clock, **options)


async def echo(value: object) -> object:
    """Return ``value``, or raise it if it is an exception."""
    if isinstance(value, BaseException):
        raise value
    return value


def run_threads(count: int, target: Callable[[int], object]) -> None:
    """Run ``target(index)`` in ``count`` threads released together; re-raise what one raises."""
    errors: list[BaseException] = []
    start = threading.Barrier(count + 1)  # the threads, and this one once they all started

    def worker(index: int) -> None:
        try:
            start.wait()
            target(index)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(count)]
    try:
        for thread in threads:
            thread.start()
    except BaseException:
        start.abort()  # (the threads started so far give up waiting)
        raise
    start.wait()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def run_in_threads(count: int, target: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``target`` in ``count`` threads at once, each with an event loop of its own."""
    run_threads(count, lambda _: asyncio.run(target()))


@contextmanager
def fast_switching() -> Iterator[None]:
    """Make the interpreter switch threads as often as it can (restored after)."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


@pytest.fixture
def fine_switching() -> Iterator[None]:
    """Switch threads as often as the interpreter can, to shake out races."""
    with fast_switching():
        yield


@pytest.fixture
def clock() -> FakeClock:
    """Return a fake clock starting at 1000 s."""
    return FakeClock(1000.0)


async def _outcome(value: object) -> object:
    if isinstance(value, BaseException):
        raise value
    return value


class _AsyncCallable:
    async def __call__(self, value: object) -> object:
        return await _outcome(value)


class _Service:
    async def method(self, value: object) -> object:
        return await _outcome(value)


async def _partial_target(prefix: str, value: object) -> object:
    assert prefix == "p"
    return await _outcome(value)


def _plain(breaker: CircuitBreaker) -> Callable[[object], Any]:
    @breaker
    async def guarded(value: object) -> object:
        return await _outcome(value)

    return guarded


def _method(breaker: CircuitBreaker) -> Callable[[object], Any]:
    class Service:
        @breaker
        async def method(self, value: object) -> object:
            return await _outcome(value)

    return Service().method


def _callable_object(breaker: CircuitBreaker) -> Callable[[object], Any]:
    return breaker(_AsyncCallable())


def _partial(breaker: CircuitBreaker) -> Callable[[object], Any]:
    return breaker(functools.partial(_partial_target, "p"))


def _call_method(breaker: CircuitBreaker) -> Callable[[object], Any]:
    async def run(value: object) -> object:
        return await breaker.call(_outcome, value)

    return run


def _async_with(breaker: CircuitBreaker) -> Callable[[object], Any]:
    async def run(value: object) -> object:
        async with breaker:
            return await _outcome(value)

    return run


def _async_generator(breaker: CircuitBreaker) -> Callable[[object], Any]:
    @breaker
    async def produce(value: object) -> AsyncIterator[object]:
        yield await _outcome(value)

    async def run(value: object) -> object:
        items = [item async for item in produce(value)]
        return items[0]

    return run


def _sync_outcome(value: object) -> object:
    if isinstance(value, BaseException):
        raise value
    return value


class _SyncCallable:
    def __call__(self, value: object) -> object:
        return _sync_outcome(value)


def _sync_partial_target(prefix: str, value: object) -> object:
    assert prefix == "p"
    return _sync_outcome(value)


def _as_async(guarded: Callable[[object], object]) -> Callable[[object], Any]:
    async def run(value: object) -> object:
        return guarded(value)

    return run


def _sync_plain(breaker: CircuitBreaker) -> Callable[[object], Any]:
    @breaker
    def guarded(value: object) -> object:
        return _sync_outcome(value)

    return _as_async(guarded)


def _sync_method(breaker: CircuitBreaker) -> Callable[[object], Any]:
    class Service:
        @breaker
        def method(self, value: object) -> object:
            return _sync_outcome(value)

    return _as_async(Service().method)


def _sync_callable_object(breaker: CircuitBreaker) -> Callable[[object], Any]:
    return _as_async(breaker(_SyncCallable()))


def _sync_partial(breaker: CircuitBreaker) -> Callable[[object], Any]:
    return _as_async(breaker(functools.partial(_sync_partial_target, "p")))


def _sync_call(breaker: CircuitBreaker) -> Callable[[object], Any]:
    return _as_async(lambda value: breaker.call(_sync_outcome, value))


def _with(breaker: CircuitBreaker) -> Callable[[object], Any]:
    def run(value: object) -> object:
        with breaker:
            return _sync_outcome(value)

    return _as_async(run)


def _only(items: Iterator[object]) -> object:
    """Run a generator to its end (its outcome is recorded then); return its one item."""
    (item,) = items
    return item


def _sync_generator(breaker: CircuitBreaker) -> Callable[[object], Any]:
    @breaker
    def produce(value: object) -> Iterator[object]:
        yield _sync_outcome(value)

    return _as_async(lambda value: _only(produce(value)))


def _call_generator(breaker: CircuitBreaker) -> Callable[[object], Any]:
    def produce(value: object) -> Iterator[object]:
        yield _sync_outcome(value)

    return _as_async(lambda value: _only(breaker.call_generator(produce, value)))


def _call_async_generator(breaker: CircuitBreaker) -> Callable[[object], Any]:
    async def produce(value: object) -> AsyncIterator[object]:
        yield await _outcome(value)

    async def run(value: object) -> object:
        (item,) = [item async for item in breaker.call_async_generator(produce, value)]
        return item

    return run


def _admit_finish(breaker: CircuitBreaker) -> Callable[[object], Any]:
    async def run(value: object) -> object:
        ticket = breaker.admit()
        try:
            result = await _outcome(value)
        except BaseException as exc:
            breaker.finish(ticket, exc)
            raise
        breaker.finish(ticket, result=result)
        return result

    return run


GUARDS: dict[str, Callable[[CircuitBreaker], Callable[[object], Any]]] = {
    "sync-function": _sync_plain,
    "sync-method": _sync_method,
    "sync-callable-object": _sync_callable_object,
    "sync-partial": _sync_partial,
    "sync-call()": _sync_call,
    "with": _with,
    "sync-generator": _sync_generator,
    "call_generator()": _call_generator,
    "call_async_generator()": _call_async_generator,
    "admit()-finish()": _admit_finish,
    "function": _plain,
    "method": _method,
    "callable-object": _callable_object,
    "partial": _partial,
    "call()": _call_method,
    "async-with": _async_with,
    "async-generator": _async_generator,
}


@pytest.fixture(params=sorted(GUARDS))
def guard(request: pytest.FixtureRequest) -> Callable[[CircuitBreaker], Callable[[object], Any]]:
    """Return a factory: breaker -> async callable(value) that returns value or raises it."""
    return GUARDS[request.param]
