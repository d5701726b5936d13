"""Opt-in policies: rate-based tripping, half-open control and open durations.

Each is a small frozen value passed to :class:`CircuitBreaker` as a keyword-only option; the
defaults keep 2.x behaviour (consecutive failures, one probe, a fixed ``recovery_timeout``).
Counting lives in the windows of ``_windows.py``; the values here only hold configuration and
make the decisions, as pure functions of the counts.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from numbers import Real
from typing import NamedTuple

from ._config import check_count, check_seconds
from ._windows import CountWindow, TimeWindow

__all__ = ["Backoff", "Counts", "HalfOpen", "OpenDuration", "RatePolicy"]

logger = logging.getLogger("aiocircuitbreaker")


def _check_rate(parameter: str, value: object, *, optional: bool) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, Real):
        msg = f"{parameter} must be a number in (0, 1], got {value!r} ({type(value).__name__})"
        raise TypeError(msg)
    if not 0 < float(value) <= 1:
        msg = f"{parameter} must be a number in (0, 1], got {value!r}"
        raise ValueError(msg)


class Counts(NamedTuple):
    """What a trip rule sees: the window's counts, plus the current run of failures.

    A named tuple (cheap to make: storages answer one per recorded call).

    Attributes:
        calls: Calls recorded in the window (successes, failures; neutral outcomes are not).
        failures: Failed calls in the window (expected exceptions, or results judged failed).
        slow_calls: Calls in the window slower than the policy's ``slow_call_duration``.
        consecutive_failures: Failures since the last success (not limited to the window).

    ``failure_rate`` and ``slow_call_rate`` are the window's rates (0.0 with no calls).
    """

    calls: int
    failures: int
    slow_calls: int
    consecutive_failures: int

    @property
    def failure_rate(self) -> float:
        """Failures / calls, from 0.0 to 1.0 (0.0 with no calls)."""
        return self.failures / self.calls if self.calls else 0.0

    @property
    def slow_call_rate(self) -> float:
        """Slow calls / calls, from 0.0 to 1.0 (0.0 with no calls)."""
        return self.slow_calls / self.calls if self.calls else 0.0


@dataclass(frozen=True, slots=True)
class RatePolicy:
    """Trip on the failure rate or slow-call rate over a sliding window, or on a custom rule.

    Args:
        window: ``CountWindow(n)`` (the last n calls) or ``TimeWindow(seconds)`` (the calls that
            started in the last seconds).
        failure_rate: Trip when failures / calls reaches this (in (0, 1]); ``None`` to not trip
            on failures. Default 0.5.
        minimum_calls: Decide nothing until the window holds this many calls (default: the
            window's size for a count window, else 10).
        slow_call_duration: Calls that take longer than this many seconds are slow (a slow
            success still returns its result). ``None``: no call is slow.
        slow_call_rate: Trip when slow calls / calls reaches this; needs ``slow_call_duration``.
        trip: A custom rule ``(Counts) -> bool``; when given, it alone decides (the rates
            above are ignored, ``minimum_calls`` still applies).
    """

    window: CountWindow | TimeWindow
    failure_rate: float | None = 0.5
    minimum_calls: int | None = None
    slow_call_duration: float | None = None
    slow_call_rate: float | None = None
    trip: Callable[[Counts], object] | None = None
    _required: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        window: object = self.window  # checked at run time, whatever the annotation says
        if not isinstance(window, (CountWindow, TimeWindow)):
            msg = (
                "window must be a CountWindow or a TimeWindow, "
                f"got {window!r} ({type(window).__name__})"
            )
            raise TypeError(msg)
        _check_rate("failure_rate", self.failure_rate, optional=True)
        _check_rate("slow_call_rate", self.slow_call_rate, optional=True)
        if self.slow_call_duration is not None:
            check_seconds("slow_call_duration", self.slow_call_duration)
        if self.minimum_calls is not None:
            check_count("minimum_calls", self.minimum_calls)
        trip: object = self.trip
        if trip is not None and not callable(trip):
            msg = f"trip must be callable or None, got {trip!r} ({type(trip).__name__})"
            raise TypeError(msg)
        self._check_consistency()
        if self.minimum_calls is not None:
            required = self.minimum_calls
        else:
            required = self.window.capacity or 10
        object.__setattr__(self, "_required", required)  # (asked on every recorded call)

    def _check_consistency(self) -> None:
        """Refuse combinations of valid options that could never work together."""
        if self.slow_call_rate is not None and self.slow_call_duration is None:
            msg = "slow_call_rate needs slow_call_duration (how slow is slow?)"
            raise ValueError(msg)
        if self.failure_rate is None and self.slow_call_rate is None and self.trip is None:
            msg = "RatePolicy can never trip: set failure_rate, slow_call_rate or trip"
            raise ValueError(msg)
        capacity = self.window.capacity
        if capacity is not None and (self.minimum_calls or 0) > capacity:
            msg = (
                f"minimum_calls={self.minimum_calls} can never be reached by a window of "
                f"{capacity} calls: the breaker could never trip"
            )
            raise ValueError(msg)

    @property
    def required_calls(self) -> int:
        """The effective ``minimum_calls``."""
        return self._required

    def should_trip(
        self,
        calls: int,
        failures: int,
        slow_calls: int,
        consecutive_failures: int,
        *,
        ignore_minimum: bool = False,
    ) -> bool:
        """Return whether these counts open the breaker under this policy."""
        if calls < self._required and not ignore_minimum:
            return False
        if self.trip is not None:
            try:
                return bool(self.trip(Counts(calls, failures, slow_calls, consecutive_failures)))
            except Exception:
                # A broken rule must not replace the call's outcome or corrupt the breaker:
                # it decides nothing (the breaker stays as it is), and the fault is logged.
                logger.exception("trip rule %r raised; not tripping", self.trip)
                return False
        if not calls:
            return False
        # Rates as the user wrote them: 3 / 10 >= 0.3 holds, where 3 >= 0.3 * 10 would not.
        return (self.failure_rate is not None and failures / calls >= self.failure_rate) or (
            self.slow_call_rate is not None and slow_calls / calls >= self.slow_call_rate
        )


@dataclass(frozen=True, slots=True)
class HalfOpen:
    """How a half-open breaker tests the dependency.

    Args:
        probes: Probes admitted at the same time (default 1).
        successes: Consecutive probe successes that close the breaker (default 1); any probe
            failure re-opens it.
        judge_by_rate: Instead of ``successes``, admit ``probes`` probes in all and, once all
            have finished, close unless their outcomes trip the breaker's ``RatePolicy`` (whose
            ``minimum_calls`` does not apply here). Needs a ``policy``.
        max_duration: Seconds after which a probe that has not finished stops holding its slot
            and counts as a failed probe, so a hung call cannot pin the breaker half-open.
    """

    probes: int = 1
    successes: int = 1
    judge_by_rate: bool = False
    max_duration: float | None = None

    def __post_init__(self) -> None:
        check_count("probes", self.probes)
        check_count("successes", self.successes)
        if self.max_duration is not None:
            check_seconds("max_duration", self.max_duration)
        judge_by_rate: object = self.judge_by_rate
        if not isinstance(judge_by_rate, bool):
            msg = f"judge_by_rate must be a bool, got {judge_by_rate!r}"
            raise TypeError(msg)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Open for longer each time the breaker re-opens without closing in between.

    The n-th consecutive opening lasts ``initial * factor ** (n - 1)`` seconds, give or take a
    random ``jitter`` fraction, and never more than ``maximum``; closing starts again at
    ``initial``.

    Args:
        initial: Seconds of the first opening.
        factor: Growth per consecutive opening (>= 1, default 2).
        maximum: Cap in seconds (default one day).
        jitter: Fraction in [0, 1) of random spread (default 0).
    """

    initial: float
    factor: float = 2.0
    maximum: float = 86_400.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        check_seconds("initial", self.initial)
        check_seconds("maximum", self.maximum)
        factor: object = self.factor
        if isinstance(factor, bool) or not isinstance(factor, Real):
            msg = f"factor must be a number >= 1, got {factor!r} ({type(factor).__name__})"
            raise TypeError(msg)
        if not (math.isfinite(float(factor)) and float(factor) >= 1):
            msg = f"factor must be a finite number >= 1, got {self.factor!r}"
            raise ValueError(msg)
        jitter: object = self.jitter
        if isinstance(jitter, bool) or not isinstance(jitter, Real):
            msg = f"jitter must be a number in [0, 1), got {jitter!r}"
            raise TypeError(msg)
        if not 0 <= float(jitter) < 1:
            msg = f"jitter must be a number in [0, 1), got {self.jitter!r}"
            raise ValueError(msg)
        if self.maximum < self.initial:
            msg = f"maximum ({self.maximum!r}) must not be less than initial ({self.initial!r})"
            raise ValueError(msg)

    def __call__(self, openings: int, failure: BaseException | None) -> float:
        """Return the duration of the ``openings``-th consecutive opening."""
        try:
            grown = float(self.initial) * float(self.factor) ** (openings - 1)
        except OverflowError:  # a long outage: the power outgrew floats, the cap applies
            grown = math.inf
        base = min(float(self.maximum), grown)
        if not self.jitter:
            return base
        spread = base * (1 + self.jitter * (2 * random.random() - 1))
        return min(float(self.maximum), spread)  # the cap holds, jitter or not


OpenDuration = Callable[[int, "BaseException | None"], float]
