"""A breaker's configuration as one frozen value, shared by every breaker built from it.

:func:`settings` validates the options (and the class-level defaults of a subclass) and returns
a :class:`Settings`. Breakers made with the same plain options (no callables but the standard
clock) share one instance, so that a thousand ``@circuit`` functions cost one configuration.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._config import (
    FailurePredicate,
    check_seconds,
    class_default,
    validate_callable,
    validate_expected_exception,
    validate_failure_threshold,
    validate_recovery_timeout,
)
from ._policies import Backoff, HalfOpen, OpenDuration, RatePolicy

__all__ = ["Settings", "is_async_function", "settings"]

_DEFAULT_HALF_OPEN = HalfOpen()
# Plain configurations seen so far (bounded: a program has few distinct ones, and a runaway
# number of them, say one threshold per request, simply stops being shared).
_shared: dict[tuple[Any, ...], Settings] = {}
_SHARED_MAX = 256


@dataclass(frozen=True, slots=True)
class Settings:
    """What a breaker was configured with, validated (see ``CircuitBreaker`` for each option).

    Attributes:
        expected: The expected exception classes, ready for ``isinstance()`` (empty when a
            predicate decides).
        predicate: The ``expected_exception`` predicate, if one was given.
        gated: Calls can take the wrappers' fast path while the breaker is closed: no result
            predicate, and nothing to time (no slow calls, no time window).
        clocked: Calls must be timed (slow calls, or a time window).
        slow_call_duration: Seconds after which a call is slow, if the policy says so.
        fallback_is_async: The fallback is an ``async def`` function (it cannot serve sync
            callables).
        timeout: Seconds after which the breaker cancels an async call and counts it failed.
    """

    failure_threshold: int
    recovery_timeout: float
    expected: type[Exception] | tuple[type[Exception], ...]
    predicate: FailurePredicate | None
    fallback: Callable[..., Any] | None
    clock: Callable[[], float]
    policy: RatePolicy | None
    failure_result: Callable[[Any], object] | None
    half_open: HalfOpen
    open_duration: Backoff | OpenDuration | None
    gated: bool
    clocked: bool
    fallback_is_async: bool
    slow_call_duration: float | None
    timeout: float | None = None

    @property
    def expected_exception(self) -> tuple[type[Exception], ...] | FailurePredicate:
        """What counts as a failure: a tuple of exception classes, or the predicate."""
        if self.predicate is not None:
            return self.predicate
        expected = self.expected
        return expected if isinstance(expected, tuple) else (expected,)


def settings(
    cls: type,
    failure_threshold: object,
    recovery_timeout: object,
    expected_exception: object,
    fallback_function: object,
    *,
    clock: object = None,
    policy: object = None,
    failure_result: object = None,
    half_open: object = None,
    open_duration: object = None,
    timeout: object = None,
) -> Settings:
    """Validate a breaker's options (``None``: the class default) and return its settings.

    Raises:
        TypeError: An option is of the wrong kind.
        ValueError: An option is of the right kind but out of range.
    """
    given = _given(cls, failure_threshold, recovery_timeout, expected_exception, fallback_function)
    threshold, recovery, expected, predicate, fallback = given
    # Plain options (the most common breaker) share one settings object. Not with a fallback:
    # equal is not the same (a breaker keeps the very fallback it was given).
    optional = (
        clock,
        policy,
        failure_result,
        half_open,
        open_duration,
        predicate,
        fallback,
        timeout,
    )
    key = (threshold, type(recovery), recovery, expected)
    plain = optional.count(None) == len(optional) and _hashable(key)
    if plain and key in _shared:
        return _shared[key]
    _check_options(policy, half_open)
    made = Settings(
        threshold,
        recovery,
        expected,
        predicate,
        fallback,
        time.monotonic if clock is None else validate_callable("clock", clock),
        policy,  # type: ignore[arg-type]  # checked by _check_options
        validate_callable("failure_result", failure_result),
        half_open or _DEFAULT_HALF_OPEN,  # type: ignore[arg-type]
        validate_callable("open_duration", open_duration),
        gated=failure_result is None and not _clocked(policy),
        clocked=_clocked(policy),
        fallback_is_async=is_async_function(fallback),
        slow_call_duration=policy.slow_call_duration if isinstance(policy, RatePolicy) else None,
        timeout=_optional_seconds("timeout", timeout),
    )
    if plain and len(_shared) < _SHARED_MAX:
        _shared[key] = made
    return made


def _given(
    cls: type,
    failure_threshold: object,
    recovery_timeout: object,
    expected_exception: object,
    fallback_function: object,
) -> tuple[int, float, Any, FailurePredicate | None, Callable[..., Any] | None]:
    """Return the five 2.x options, validated, with the class defaults for those not given."""
    threshold = validate_failure_threshold(
        class_default(cls, "FAILURE_THRESHOLD") if failure_threshold is None else failure_threshold
    )
    timeout = validate_recovery_timeout(
        class_default(cls, "RECOVERY_TIMEOUT") if recovery_timeout is None else recovery_timeout
    )
    expected, predicate = validate_expected_exception(
        class_default(cls, "EXPECTED_EXCEPTION")
        if expected_exception is None
        else expected_exception
    )
    fallback = validate_callable(
        "fallback_function",
        class_default(cls, "FALLBACK_FUNCTION") if fallback_function is None else fallback_function,
    )
    return threshold, timeout, expected, predicate, fallback


def _optional_seconds(parameter: str, value: object) -> float | None:
    """Return ``value``: ``None``, or a finite number of seconds > 0 (else raise)."""
    return None if value is None else check_seconds(parameter, value)


def _clocked(policy: object) -> bool:
    """Whether calls under ``policy`` must be timed (slow calls, or a time window)."""
    if not isinstance(policy, RatePolicy):
        return False
    return policy.slow_call_duration is not None or policy.window.capacity is None


def _hashable(key: tuple[Any, ...]) -> bool:
    try:
        hash(key)
    except TypeError:  # an unhashable exception class: its settings are simply not shared
        return False
    return True


def _check_options(policy: object, half_open: object) -> None:
    if policy is not None and not isinstance(policy, RatePolicy):
        msg = f"policy must be a RatePolicy or None, got {policy!r} ({type(policy).__name__})"
        raise TypeError(msg)
    if half_open is not None and not isinstance(half_open, HalfOpen):
        msg = (
            f"half_open must be a HalfOpen or None, got {half_open!r} ({type(half_open).__name__})"
        )
        raise TypeError(msg)
    if isinstance(half_open, HalfOpen) and half_open.judge_by_rate and policy is None:
        msg = "HalfOpen(judge_by_rate=True) needs a policy=RatePolicy(...) to judge by"
        raise ValueError(msg)


def is_async_function(function: object) -> bool:
    """Return whether calling ``function`` makes a coroutine (an ``async def`` function)."""
    if function is None:
        return False
    target = function
    while isinstance(target, functools.partial):
        target = target.func
    return inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(
        getattr(type(target), "__call__", None)  # noqa: B004 - is the class's __call__ async?
    )
