"""Wrappers per kind of guarded callable, chosen once at decoration time.

The coroutine wrapper inlines the closed-state admission check and the no-op success: it is the
hot path, and every function call or extra coroutine there shows in the benchmark. Anything that
is not the common case goes through the breaker's ``_admit`` / ``_record_*`` methods, the same
admission path that ``call()`` and the context managers use.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, AsyncIterable, Callable
from typing import TYPE_CHECKING, Any

from ._breaker import _REJECTED
from ._errors import CircuitBreakerError
from ._state import CLOSED, OPEN

if TYPE_CHECKING:
    from ._breaker import CircuitBreaker

__all__ = ["wrap"]


def wrap(breaker: CircuitBreaker, function: Callable[..., Any]) -> Callable[..., Any]:
    """Return the wrapper that guards ``function`` with ``breaker``."""
    if _is_async_generator_function(function):
        wrapper = _async_generator_wrapper(breaker, function)
    elif _is_coroutine_function(function):
        wrapper = _coroutine_wrapper(breaker, function)
    else:
        msg = (
            f"circuit breakers guard async callables only; {function!r} is synchronous "
            "(decorate an `async def` function, an async generator function, or an object "
            "with an `async def __call__`)"
        )
        raise ValueError(msg)
    wrapper.circuit_breaker = breaker  # type: ignore[attr-defined]
    return wrapper


def _is_coroutine_function(function: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        getattr(type(function), "__call__", None)  # noqa: B004 - is the class's __call__ async?
    )


def _is_async_generator_function(function: Callable[..., Any]) -> bool:
    return inspect.isasyncgenfunction(function) or inspect.isasyncgenfunction(
        getattr(type(function), "__call__", None)  # noqa: B004 - is the class's __call__ async?
    )


def _coroutine_wrapper(breaker: CircuitBreaker, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    async def guarded(*args: Any, **kwargs: Any) -> Any:
        snapshot = breaker._snapshot
        if snapshot.state is CLOSED:
            generation = snapshot.generation
        else:
            # An open breaker inside its timeout rejects at once: the check that _admit()
            # starts with, inlined because it is every call's path while open.
            if snapshot.state is OPEN and breaker._clock() < snapshot.open_until:
                generation = _REJECTED
            else:
                generation = breaker._admit()
            if generation == _REJECTED:
                if breaker._fallback_function is None:
                    raise CircuitBreakerError(breaker)
                return await breaker._reject(args, kwargs)
        try:
            result = await function(*args, **kwargs)
        except BaseException as exc:
            breaker._record_exception(generation, exc)
            raise
        snapshot = breaker._snapshot
        if snapshot.failures is not None or snapshot.state is not CLOSED:
            breaker._record_success(generation)
        return result

    return guarded


def _async_generator_wrapper(
    breaker: CircuitBreaker, function: Callable[..., Any]
) -> Callable[..., Any]:
    @functools.wraps(function)
    async def guarded(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        generation = breaker._admit()
        if generation == _REJECTED:
            async for item in _as_async_iterable(await breaker._reject(args, kwargs)):
                yield item
            return
        producer = function(*args, **kwargs)
        to_send: Any = None
        to_throw: BaseException | None = None
        while True:
            # Only what the producer itself raises is judged; the consumer closing the
            # generator early (GeneratorExit) or throwing into it is not the dependency's fault.
            try:
                if to_throw is None:
                    item = await producer.asend(to_send)
                else:
                    item = await producer.athrow(to_throw)
            except StopAsyncIteration:
                breaker._record_success(generation)
                return
            except BaseException as exc:
                if exc is to_throw:
                    breaker._record_exception(generation, _NEUTRAL)
                else:
                    breaker._record_exception(generation, exc)
                raise
            to_throw = None
            try:
                to_send = yield item
            except GeneratorExit:
                breaker._record_exception(generation, _NEUTRAL)
                await producer.aclose()
                raise
            except BaseException as exc:  # noqa: BLE001 - athrow() from the consumer: hand it on
                to_throw = exc

    return guarded


class _Neutral(BaseException):
    """Stands for an outcome that must not count (a BaseException is always neutral)."""


_NEUTRAL = _Neutral()


async def _as_async_iterable(value: Any) -> AsyncGenerator[Any, None]:
    """Yield the items of a fallback's result for an async generator (async or sync iterable)."""
    if isinstance(value, AsyncIterable):
        async for item in value:
            yield item
    else:
        for item in value:
            yield item
