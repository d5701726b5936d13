"""Validation of constructor arguments: every mistake is reported at construction."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from numbers import Real
from typing import Any

__all__ = [
    "ExpectedException",
    "ExpectedExceptionError",
    "FailurePredicate",
    "check_count",
    "check_seconds",
    "class_default",
    "validate_callable",
    "validate_expected_exception",
    "validate_failure_threshold",
    "validate_name",
    "validate_recovery_timeout",
]

FailurePredicate = Callable[[type[BaseException], BaseException], object]
ExpectedException = type[Exception] | Iterable[type[Exception]] | FailurePredicate


def class_default(cls: type, attribute: str) -> Any:
    """Return a class-level default as written, without binding functions as methods."""
    for klass in cls.__mro__:
        if attribute in vars(klass):
            value = vars(klass)[attribute]
            if isinstance(value, (staticmethod, classmethod)):
                return value.__func__
            return value
    raise AttributeError(attribute)  # pragma: no cover - CircuitBreaker defines them all


def check_count(parameter: str, value: object) -> int:
    """Return ``value`` if it is an int >= 1 (not a bool), else raise naming ``parameter``."""
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"{parameter} must be an int >= 1, got {value!r} ({type(value).__name__})"
        raise TypeError(msg)
    if value < 1:
        msg = f"{parameter} must be an int >= 1, got {value!r}"
        raise ValueError(msg)
    return value


def check_seconds(parameter: str, value: object) -> float:
    """Return ``value`` if it is a finite number of seconds > 0, else raise naming ``parameter``.

    ints and floats are returned as given (small ints are shared objects); other reals convert.
    """
    given = value  # stays `object` for the type checker; `value` is narrowed below
    if isinstance(value, bool) or not isinstance(value, Real):
        msg = (
            f"{parameter} must be a finite number of seconds > 0, "
            f"got {value!r} ({type(value).__name__})"
        )
        raise TypeError(msg)
    seconds = float(value)
    if not (math.isfinite(seconds) and seconds > 0):
        msg = f"{parameter} must be a finite number of seconds > 0, got {value!r}"
        raise ValueError(msg)
    return given if isinstance(given, (int, float)) else seconds


def validate_failure_threshold(value: object) -> int:
    """Return ``value`` if it is a valid failure threshold."""
    return check_count("failure_threshold", value)


def validate_recovery_timeout(value: object) -> float:
    """Return ``value`` if it is a valid recovery timeout in seconds."""
    return check_seconds("recovery_timeout", value)


class ExpectedExceptionError(TypeError, ValueError):
    """``expected_exception`` is not something that can say what a failure is.

    Both a ``TypeError`` (the kind of value is wrong) and a ``ValueError``, which is what
    ``circuitbreaker`` 2.x raised for it: code written to catch either keeps working.
    """


def _exception_class(value: object) -> type[Exception]:
    if isinstance(value, type) and issubclass(value, Exception):
        return value
    if isinstance(value, type) and issubclass(value, BaseException):
        msg = (
            f"expected_exception cannot include {value.__name__}: it is a BaseException that is "
            "not an Exception, and such exceptions (cancellation, KeyboardInterrupt, ...) never "
            "count as failures"
        )
        raise ValueError(msg)  # noqa: TRY004 - the right kind of value, outside what is allowed
    if isinstance(value, type):
        msg = (
            f"expected_exception does not look like a predicate, an exception class or an "
            f"iterable of them: {value!r} is a class that is not an exception class"
        )
        raise ExpectedExceptionError(msg)
    msg = (
        f"expected_exception does not look like a predicate, an exception class or an iterable "
        f"of them: got {value!r} ({type(value).__name__}); a predicate is a callable "
        "(exc_type, exc_value) -> bool"
    )
    raise ExpectedExceptionError(msg)


def validate_expected_exception(
    value: object,
) -> tuple[type[Exception] | tuple[type[Exception], ...], FailurePredicate | None]:
    """Return ``(classes, predicate)`` for ``expected_exception``.

    ``classes`` is an exception class or a tuple of them, ready for ``isinstance()``; it is the
    empty tuple when ``value`` is a predicate, which is returned as ``predicate``.

    Raises:
        ExpectedExceptionError: ``value`` is of a kind that cannot say what a failure is.
        ValueError: ``value`` is empty, or lists a BaseException that is not an Exception.
    """
    if isinstance(value, (str, bytes, bytearray)):
        msg = (
            f"expected_exception cannot be a string: got {value!r}; to name the breaker, pass name="
        )
        raise ExpectedExceptionError(msg)
    if isinstance(value, type):
        return _exception_class(value), None
    if isinstance(value, Iterable):
        classes = tuple(_exception_class(item) for item in value)
        if not classes:
            msg = f"expected_exception must not be empty, got {value!r}"
            raise ValueError(msg)
        return classes, None
    if callable(value):
        return (), value
    return _exception_class(value), None


def validate_name(value: object) -> str | None:
    """Return ``value`` if it is a valid breaker name (or ``None``)."""
    if value is None or isinstance(value, str):
        return value
    msg = f"name must be a string, got {value!r} ({type(value).__name__})"
    raise TypeError(msg)


def validate_callable(parameter: str, value: object) -> Any:
    """Return ``value`` if it is callable or ``None``."""
    if value is None or callable(value):
        return value
    msg = f"{parameter} must be callable or None, got {value!r} ({type(value).__name__})"
    raise TypeError(msg)
