"""Helpers for testing code that uses circuit breakers."""

from __future__ import annotations

__all__ = ["FakeClock"]


class FakeClock:
    """A monotonic clock that only moves when told to.

    Pass it as ``clock=`` to a breaker, then :meth:`advance` it instead of sleeping::

        clock = FakeClock()
        breaker = CircuitBreaker(recovery_timeout=30, clock=clock)
        ...
        clock.advance(30)  # the breaker is now due to admit a probe
    """

    __slots__ = ("_now",)

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def __call__(self) -> float:
        """Return the current reading."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (which must not be negative)."""
        if seconds < 0:
            msg = f"a monotonic clock cannot go back: advance({seconds!r})"
            raise ValueError(msg)
        self._now += seconds

    def __repr__(self) -> str:
        return f"FakeClock({self._now!r})"
