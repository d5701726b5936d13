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

from ._breaker import _BYPASS, _REJECTED, NO_RESULT, Neutral
from ._errors import CircuitBreakerError
from ._state import CLOSED, FAILURE, OPEN

if TYPE_CHECKING:
    from ._breaker import CircuitBreaker

__all__ = ["wrap"]


def wrap(breaker: CircuitBreaker, function: Callable[..., Any]) -> Callable[..., Any]:
    """Return the wrapper that guards ``function`` with ``breaker``."""
    if _is_async_generator_function(function):
        wrapper = _async_generator_wrapper(breaker, function)
    elif _is_coroutine_function(function):
        if breaker._plain:
            wrapper = _coroutine_wrapper(breaker, function)
        else:
            wrapper = _coroutine_wrapper_with_rules(breaker, function)
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
        if snapshot.fast:  # closed, and no listener wants call events
            permit = snapshot.generation
        elif (
            snapshot.state is OPEN
            and not snapshot.observed
            and breaker._clock() < snapshot.open_until
        ):
            # An open breaker inside its timeout rejects at once: the check that _admit()
            # starts with, inlined because it is every call's path while open.
            if breaker._fallback_function is None:
                breaker._counters.rejected += 1  # made when the open state was stored
                raise CircuitBreakerError(breaker)
            return await breaker._reject(args, kwargs)
        elif snapshot.state is CLOSED:
            # Closed, with listeners: time the call and report it (no admission to do).
            permit = snapshot.generation
            started = breaker._clock()
            try:
                result = await function(*args, **kwargs)
            except BaseException as exc:
                breaker._complete(permit, started, NO_RESULT, exc)
                raise
            breaker._complete(permit, started, result)
            return result
        else:
            # Every other case (open with listeners, half-open, modes) takes the general path.
            return await breaker._call(function, args, kwargs)
        try:
            result = await function(*args, **kwargs)
        except BaseException as exc:
            # The first branch of _record_exception, inlined: an expected failure of the
            # current closed generation is counted lock-free without a further call, which is
            # a measurable share of the failure path. Everything else goes the usual way.
            snapshot = breaker._snapshot
            failures = snapshot.failures
            if (
                failures is not None
                and snapshot.generation == permit
                and isinstance(exc, breaker._expected)
            ):
                # (Counted in the statistics through the streak: see CircuitBreaker._store.)
                breaker._last_failure = exc
                if next(failures) + 1 >= breaker._failure_threshold:
                    breaker._record(permit, FAILURE, exc, counted=True)
            else:
                breaker._record_exception(permit, exc)
            raise
        # Counted without the lock: one slot increment (see _statistics). The same object says
        # whether the breaker needs the success recorded (failures pending, or not closed).
        try:
            counters = breaker._counters
        except AttributeError:
            counters = breaker._get_counters()
        counters.successes += 1
        if counters.dirty:
            breaker._record_success(permit)
        return result

    return guarded


def _coroutine_wrapper_with_rules(
    breaker: CircuitBreaker, function: Callable[..., Any]
) -> Callable[..., Any]:
    """The wrapper for breakers with a policy or a result predicate: every outcome counts."""
    rules = breaker._get_rules()
    clock = breaker._clock if rules.clocked else None
    failure_result = rules.failure_result
    lock_free = rules.lock_free_successes

    @functools.wraps(function)
    async def guarded(*args: Any, **kwargs: Any) -> Any:
        snapshot = breaker._snapshot
        if not snapshot.fast:
            return await breaker._call(function, args, kwargs)
        permit = snapshot.generation
        started = 0.0 if clock is None else clock()
        try:
            result = await function(*args, **kwargs)
        except BaseException as exc:
            breaker._finish(permit, started, NO_RESULT, exc)
            raise
        failed = failure_result is not None and breaker._failed_result(failure_result, result)
        if lock_free and not failed:
            # The common case under a count window, without the lock (see Tally): a success
            # of the current closed generation whose window is already past minimum_calls.
            snapshot = breaker._snapshot
            tally = snapshot.tally
            if tally is not None and tally.ready and snapshot.generation == permit:
                next(tally.pending)  # type: ignore[arg-type]
                breaker._counters.successes += 1  # made when the window was stored
                return result
        breaker._finish(permit, started, result, failed_result=failed)
        return result

    return guarded


def _async_generator_wrapper(
    breaker: CircuitBreaker, function: Callable[..., Any]
) -> Callable[..., Any]:
    @functools.wraps(function)
    async def guarded(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        permit = breaker._admit()
        if permit in (_REJECTED, _BYPASS):
            # Rejected: the fallback's items. Disabled: the producer's, unguarded.
            async for item in (
                function(*args, **kwargs)
                if permit == _BYPASS
                else _as_async_iterable(await breaker._reject(args, kwargs))
            ):
                yield item
            return
        started = breaker._start()
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
                breaker._complete(permit, started)
                return
            except BaseException as exc:
                if exc is to_throw:
                    breaker._complete(permit, started, NO_RESULT, Neutral(exc))
                else:
                    breaker._complete(permit, started, NO_RESULT, exc)
                raise
            to_throw = None
            try:
                to_send = yield item
            except GeneratorExit as exc:
                breaker._complete(permit, started, NO_RESULT, Neutral(exc))
                await producer.aclose()
                raise
            except BaseException as exc:  # noqa: BLE001 - athrow() from the consumer: hand it on
                to_throw = exc

    return guarded


async def _as_async_iterable(value: Any) -> AsyncGenerator[Any, None]:
    """Yield the items of a fallback's result for an async generator (async or sync iterable)."""
    if isinstance(value, AsyncIterable):
        async for item in value:
            yield item
    else:
        for item in value:
            yield item
