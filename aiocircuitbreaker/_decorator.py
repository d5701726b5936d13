"""circuit(): the decorator entry point, in both its bare and its configured form."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from typing import Any, ParamSpec, TypeVar, overload

from ._breaker import CircuitBreaker
from ._config import ExpectedException
from ._events import Listener
from ._policies import Backoff, HalfOpen, OpenDuration, RatePolicy

__all__ = ["circuit"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
B = TypeVar("B", bound=CircuitBreaker)


@overload
def circuit(
    failure_threshold: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]: ...
@overload
def circuit(failure_threshold: Callable[P, AsyncIterator[T]]) -> Callable[P, AsyncIterator[T]]: ...
@overload
def circuit(
    failure_threshold: Callable[P, Awaitable[R]],
) -> Callable[P, Coroutine[Any, Any, R]]: ...
@overload
def circuit(
    failure_threshold: int | None = None,
    recovery_timeout: float | None = None,
    expected_exception: ExpectedException | None = None,
    name: str | None = None,
    fallback_function: Callable[..., Any] | None = None,
    *,
    cls: type[B],
    clock: Callable[[], float] | None = None,
    policy: RatePolicy | None = None,
    failure_result: Callable[[Any], object] | None = None,
    half_open: HalfOpen | None = None,
    open_duration: Backoff | OpenDuration | None = None,
    listeners: Iterable[Listener] = (),
) -> B: ...
@overload
def circuit(
    failure_threshold: int | None = None,
    recovery_timeout: float | None = None,
    expected_exception: ExpectedException | None = None,
    name: str | None = None,
    fallback_function: Callable[..., Any] | None = None,
    cls: type[CircuitBreaker] = CircuitBreaker,
    *,
    clock: Callable[[], float] | None = None,
    policy: RatePolicy | None = None,
    failure_result: Callable[[Any], object] | None = None,
    half_open: HalfOpen | None = None,
    open_duration: Backoff | OpenDuration | None = None,
    listeners: Iterable[Listener] = (),
) -> CircuitBreaker: ...
def circuit(
    failure_threshold: Any = None,
    recovery_timeout: float | None = None,
    expected_exception: ExpectedException | None = None,
    name: str | None = None,
    fallback_function: Callable[..., Any] | None = None,
    cls: type[CircuitBreaker] = CircuitBreaker,
    *,
    clock: Callable[[], float] | None = None,
    policy: RatePolicy | None = None,
    failure_result: Callable[[Any], object] | None = None,
    half_open: HalfOpen | None = None,
    open_duration: Backoff | OpenDuration | None = None,
    listeners: Iterable[Listener] = (),
) -> Any:
    """Guard an async function with a new circuit breaker.

    Use it bare (``@circuit``) for the defaults, or called (``@circuit(...)``) with options; the
    options are those of :class:`CircuitBreaker`, plus ``cls`` to build a subclass instead.
    Called with options, it returns the breaker, which decorates the function next.
    """
    if callable(failure_threshold):
        # Bare @circuit: the first positional argument is the decorated function.
        return cls(
            clock=clock,
            policy=policy,
            failure_result=failure_result,
            half_open=half_open,
            open_duration=open_duration,
            listeners=listeners,
        ).decorate(failure_threshold)
    return cls(
        failure_threshold=failure_threshold,
        recovery_timeout=recovery_timeout,
        expected_exception=expected_exception,
        name=name,
        fallback_function=fallback_function,
        clock=clock,
        policy=policy,
        failure_result=failure_result,
        half_open=half_open,
        open_duration=open_duration,
        listeners=listeners,
    )
