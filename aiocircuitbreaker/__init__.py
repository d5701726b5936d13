"""A circuit breaker for sync and async Python that keeps its promises under concurrency."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from ._breaker import CircuitBreaker
from ._config import ExpectedExceptionError
from ._core import Outcome, State
from ._decorator import circuit
from ._errors import CircuitBreakerError
from ._events import CallFailed, CallNeutral, CallRejected, CallSucceeded, Event, StateChanged
from ._groups import CircuitBreakerGroup
from ._policies import Backoff, Counts, HalfOpen, RatePolicy
from ._registry import CircuitBreakerMonitor
from ._statistics import CallCounts, Statistics
from ._ticket import Ticket
from ._windows import CountWindow, TimeWindow

# The state names of circuitbreaker 2.x (members of State compare equal to them).
STATE_CLOSED = State.CLOSED
STATE_OPEN = State.OPEN
STATE_HALF_OPEN = State.HALF_OPEN

try:
    __version__ = version("aiocircuitbreaker")
except PackageNotFoundError:  # pragma: no cover - running from a checkout that is not installed
    __version__ = "0+unknown"

__all__ = [
    "STATE_CLOSED",
    "STATE_HALF_OPEN",
    "STATE_OPEN",
    "Backoff",
    "CallCounts",
    "CallFailed",
    "CallNeutral",
    "CallRejected",
    "CallSucceeded",
    "CircuitBreaker",
    "CircuitBreakerError",
    "CircuitBreakerGroup",
    "CircuitBreakerMonitor",
    "CountWindow",
    "Counts",
    "Event",
    "ExpectedExceptionError",
    "HalfOpen",
    "Outcome",
    "RatePolicy",
    "State",
    "StateChanged",
    "Statistics",
    "Ticket",
    "TimeWindow",
    "__version__",
    "circuit",
]
