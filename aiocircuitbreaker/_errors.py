"""Exceptions raised by aiocircuitbreaker.

::

    Exception
     └── CircuitBreakerError      a call was rejected: the breaker is open (or forced open),
                                  or half-open with its probe slots taken

Configuration mistakes raise the built-in ``TypeError`` (wrong kind of value) and ``ValueError``
(right kind, value out of range) at construction time.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._breaker import CircuitBreaker

__all__ = ["CircuitBreakerError"]

_wall_clock = time.time  # for open_until only (a display value); decisions use the breaker's clock


class CircuitBreakerError(Exception):
    """Raised instead of running a call that the breaker rejects.

    Everything it reports is captured when it is created, so ``str()`` and the attributes tell
    what the breaker looked like at the moment of the rejection, not what it looks like now.

    Attributes:
        circuit_breaker: The breaker that rejected the call (``None`` after unpickling).
        name: The breaker's name.
        failure_count: The breaker's failure count.
        open_remaining: Seconds until the breaker admitted a probe (zero or negative when it
            was already due; infinite when it was forced open).
        last_failure: The exception of the breaker's last counted failure.
        raised_at: When it was made, as a wall-clock time (``time.time()``).
    """

    # Slots, not a __dict__: an exception's instance dict makes each rejection several times
    # slower, and rejections are the path an open breaker takes for every call.
    __slots__ = (
        "circuit_breaker",
        "failure_count",
        "last_failure",
        "name",
        "open_remaining",
        "raised_at",
    )

    circuit_breaker: CircuitBreaker | None
    name: str | None
    failure_count: int
    open_remaining: float
    last_failure: BaseException | None
    raised_at: float

    def __init__(self, circuit_breaker: CircuitBreaker, *args: object) -> None:
        # BaseException.__new__ has stored every argument in self.args; keep only the message
        # arguments, as super().__init__(*args) would (but cheaper).
        self.args = args
        self.circuit_breaker = circuit_breaker
        self.name = circuit_breaker.name
        self.failure_count = circuit_breaker.failure_count
        self.open_remaining = circuit_breaker.open_remaining
        self.last_failure = circuit_breaker.last_failure
        self.raised_at = _wall_clock()

    @property
    def open_until(self) -> datetime:
        """The UTC time at which the breaker was due to admit a probe.

        ``datetime.max`` (UTC) when it was forced open: it admits none until released.
        """
        raised = datetime.fromtimestamp(self.raised_at, timezone.utc)
        try:
            return raised + timedelta(seconds=self.open_remaining)
        except OverflowError:  # beyond what a datetime holds (or forced open: infinite)
            return datetime.max.replace(tzinfo=timezone.utc)

    def __str__(self) -> str:
        if math.isinf(self.open_remaining):
            return (
                f'Circuit "{self.name}" FORCED OPEN until closed by hand '
                f"({self.failure_count} failures) (last_failure: {self.last_failure!r})"
            )
        return (
            f'Circuit "{self.name}" OPEN until {self.open_until} ({self.failure_count} failures, '
            f"{max(0, round(self.open_remaining))} sec remaining) "
            f"(last_failure: {self.last_failure!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        state = {
            "name": self.name,
            "failure_count": self.failure_count,
            "last_failure": self.last_failure,
            "open_remaining": self.open_remaining,
            "raised_at": self.raised_at,
            **getattr(self, "__dict__", {}),  # __notes__, and anything else set on it
        }
        return (_unpickle, (type(self), self.args, state))


def _unpickle(
    cls: type[CircuitBreakerError], args: tuple[object, ...], state: dict[str, object]
) -> CircuitBreakerError:
    error = cls.__new__(cls)
    error.args = args
    error.circuit_breaker = None
    for attribute, value in state.items():
        setattr(error, attribute, value)
    return error
