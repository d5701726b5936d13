"""Bad configuration fails at construction with a message naming parameter, value and rule."""

from __future__ import annotations

import asyncio
from fractions import Fraction
from typing import Any

import pytest

from aiocircuitbreaker import CircuitBreaker, circuit


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"failure_threshold": 0}, ValueError, "failure_threshold must be an int >= 1, got 0"),
        ({"failure_threshold": -3}, ValueError, "got -3"),
        ({"failure_threshold": True}, TypeError, r"got True \(bool\)"),
        ({"failure_threshold": 2.0}, TypeError, r"got 2.0 \(float\)"),
        ({"failure_threshold": "5"}, TypeError, "failure_threshold"),
        ({"recovery_timeout": 0}, ValueError, "recovery_timeout must be a finite number"),
        ({"recovery_timeout": -1.5}, ValueError, "got -1.5"),
        ({"recovery_timeout": float("inf")}, ValueError, "got inf"),
        ({"recovery_timeout": float("nan")}, ValueError, "got nan"),
        ({"recovery_timeout": False}, TypeError, r"\(bool\)"),
        ({"recovery_timeout": "30"}, TypeError, r"got '30' \(str\)"),
        ({"expected_exception": "KeyError"}, TypeError, "pass name="),
        ({"expected_exception": []}, ValueError, "must not be empty"),
        ({"expected_exception": ()}, ValueError, "must not be empty"),
        ({"expected_exception": 42}, TypeError, r"got 42 \(int\)"),
        ({"expected_exception": int}, TypeError, "exception class"),
        ({"expected_exception": [KeyError, "x"]}, TypeError, "got 'x'"),
        ({"expected_exception": asyncio.CancelledError}, ValueError, "CancelledError"),
        ({"expected_exception": BaseException}, ValueError, "never count as failures"),
        ({"expected_exception": KeyboardInterrupt}, ValueError, "KeyboardInterrupt"),
        ({"name": 7}, TypeError, r"name must be a string, got 7 \(int\)"),
        ({"fallback_function": "cached"}, TypeError, "fallback_function must be callable"),
        ({"clock": 3.0}, TypeError, "clock must be callable"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    """Each bad value is refused by CircuitBreaker() and by circuit()."""
    with pytest.raises(error, match=message):
        CircuitBreaker(**kwargs)
    with pytest.raises(error, match=message):
        circuit(**kwargs)


def test_bad_class_default_is_reported() -> None:
    """A bad class-level default is reported like a bad argument."""

    class Broken(CircuitBreaker):
        FAILURE_THRESHOLD = 0

    with pytest.raises(ValueError, match="failure_threshold must be an int >= 1, got 0"):
        Broken()


def test_zero_is_never_replaced_by_the_default() -> None:
    """0 is an error, not "use the default" as the old `or` made it."""
    with pytest.raises(ValueError, match="failure_threshold"):
        circuit(0)


@pytest.mark.parametrize("value", [1, 0.25, Fraction(1, 2), 10**6])
def test_good_recovery_timeouts(value: Any) -> None:
    """Positive finite reals are accepted (ints and floats as given, other reals as float)."""
    breaker = CircuitBreaker(recovery_timeout=value)
    assert breaker.recovery_timeout == value
    assert type(breaker.recovery_timeout) in (int, float)


def test_generator_of_classes_is_accepted() -> None:
    """Any iterable of exception classes works and is kept as a tuple."""
    breaker = CircuitBreaker(expected_exception=(c for c in (KeyError, OSError)))
    assert breaker.expected_exception == (KeyError, OSError)
