"""circuit(): the decorator entry point, in both its bare and its configured form."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Any, ParamSpec, TypeVar, overload

from ._breaker import CircuitBreaker
from ._config import ExpectedException
from ._events import Listener
from ._groups import CircuitBreakerGroup
from ._policies import Backoff, HalfOpen, OpenDuration, RatePolicy
from ._storage import Storage
from .typing import Guarded

__all__ = ["circuit"]

P = ParamSpec("P")
R = TypeVar("R")
B = TypeVar("B", bound=CircuitBreaker)
_UNSET: Any = object()


@overload
def circuit(failure_threshold: Callable[P, R]) -> Guarded[P, R]: ...
@overload
def circuit(
    failure_threshold: int | None = None,
    recovery_timeout: float | None = None,
    expected_exception: ExpectedException | None = None,
    name: str | None = None,
    fallback_function: Callable[..., Any] | None = None,
    cls: type[CircuitBreaker] = CircuitBreaker,
    *,
    key: Callable[..., Hashable],
    max_keys: int = 1000,
    clock: Callable[[], float] | None = None,
    policy: RatePolicy | None = None,
    failure_result: Callable[[Any], object] | None = None,
    half_open: HalfOpen | None = None,
    open_duration: Backoff | OpenDuration | None = None,
    listeners: Iterable[Listener] = (),
    storage: Callable[[Any], Storage] | None = None,
    timeout: float | None = None,
) -> CircuitBreakerGroup[Any]: ...
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
    storage: Storage | None = None,
    timeout: float | None = None,
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
    storage: Storage | None = None,
    timeout: float | None = None,
) -> CircuitBreaker: ...
def circuit(
    failure_threshold: Any = None,
    recovery_timeout: Any = None,
    expected_exception: Any = None,
    name: Any = None,
    fallback_function: Any = None,
    cls: type[CircuitBreaker] = CircuitBreaker,
    *,
    key: Any = None,
    max_keys: Any = _UNSET,
    clock: Any = _UNSET,
    policy: Any = _UNSET,
    failure_result: Any = _UNSET,
    half_open: Any = _UNSET,
    open_duration: Any = _UNSET,
    listeners: Any = _UNSET,
    storage: Any = _UNSET,
    timeout: Any = _UNSET,
) -> Any:
    """Guard a function with a new circuit breaker, sync or async.

    Use it bare (``@circuit``) for the defaults, or called (``@circuit(...)``) with options; the
    options are those of :class:`CircuitBreaker`, plus ``cls`` to build a subclass instead.
    Called with options, it returns the breaker, which decorates the function next.

    Only the options given reach ``cls``, so a subclass whose ``__init__`` takes just the five
    options of 2.x works.

    With ``key=`` (a function of the call's arguments) it returns a
    :class:`CircuitBreakerGroup` instead: one breaker per key, at most ``max_keys`` (default
    1,000) kept while idle; ``storage`` is then a function ``key -> Storage``.
    """
    options = {
        key: value
        for key, value in (
            ("clock", clock),
            ("policy", policy),
            ("failure_result", failure_result),
            ("half_open", half_open),
            ("open_duration", open_duration),
            ("listeners", listeners),
            ("storage", storage),
            ("timeout", timeout),
        )
        if value is not _UNSET
    }
    if key is not None or max_keys is not _UNSET:
        if callable(failure_threshold):
            msg = "@circuit with key= must be called: @circuit(key=...)"
            raise TypeError(msg)
        given = {
            "failure_threshold": failure_threshold,
            "recovery_timeout": recovery_timeout,
            "expected_exception": expected_exception,
            "fallback_function": fallback_function,
        }
        options.update({k: v for k, v in given.items() if v is not None})
        if max_keys is not _UNSET:
            options["max_keys"] = max_keys
        return CircuitBreakerGroup(name, key=key, cls=cls, **options)
    if callable(failure_threshold):
        # Bare @circuit: the first positional argument is the decorated function.
        return cls(**options).decorate(failure_threshold)
    return cls(
        failure_threshold=failure_threshold,
        recovery_timeout=recovery_timeout,
        expected_exception=expected_exception,
        name=name,
        fallback_function=fallback_function,
        **options,
    )
