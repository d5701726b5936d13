"""An async circuit breaker that keeps its promises under concurrency and cancellation."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from ._breaker import CircuitBreaker
from ._decorator import circuit
from ._errors import CircuitBreakerError
from ._events import CallFailed, CallNeutral, CallRejected, CallSucceeded, Event, StateChanged
from ._policies import Backoff, Counts, HalfOpen, RatePolicy
from ._registry import CircuitBreakerMonitor
from ._state import State
from ._statistics import CallCounts, Statistics
from ._windows import CountWindow, TimeWindow

try:
    __version__ = version("aiocircuitbreaker")
except PackageNotFoundError:  # pragma: no cover - running from a checkout that is not installed
    __version__ = "0+unknown"

__all__ = [
    "Backoff",
    "CallCounts",
    "CallFailed",
    "CallNeutral",
    "CallRejected",
    "CallSucceeded",
    "CircuitBreaker",
    "CircuitBreakerError",
    "CircuitBreakerMonitor",
    "CountWindow",
    "Counts",
    "Event",
    "HalfOpen",
    "RatePolicy",
    "State",
    "StateChanged",
    "Statistics",
    "TimeWindow",
    "__version__",
    "circuit",
]
