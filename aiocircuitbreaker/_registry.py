"""CircuitBreakerMonitor: a process-wide, read-mostly view of the live breakers.

The registry holds weak references only, so a breaker made per request (or per test) is freed as
soon as its owner drops it; dead references are pruned as the list grows, at amortised O(1) cost
per registration.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ._state import CLOSED, OPEN

if TYPE_CHECKING:
    from ._breaker import CircuitBreaker

__all__ = ["CircuitBreakerMonitor"]

_lock = threading.Lock()
_refs: list[weakref.ref[CircuitBreaker]] = []
_prune_at = 64


def track(breaker: CircuitBreaker) -> None:
    """Add a new breaker to the registry (called once, by the breaker's constructor)."""
    global _prune_at  # noqa: PLW0603 - module-level registry state, guarded by _lock
    with _lock:
        _refs.append(weakref.ref(breaker))
        if len(_refs) >= _prune_at:
            _refs[:] = [ref for ref in _refs if ref() is not None]
            _prune_at = max(64, 2 * len(_refs))


def _live() -> list[CircuitBreaker]:
    with _lock:
        refs = list(_refs)
    return [breaker for breaker in (ref() for ref in refs) if breaker is not None]


class _MonitorType(type):
    @property
    def circuit_breakers(cls) -> dict[str, CircuitBreaker]:
        """A new dict of the live named breakers by name; the newest wins a shared name."""
        return {b.name: b for b in _live() if b.name is not None}


class CircuitBreakerMonitor(metaclass=_MonitorType):
    """Look up the live circuit breakers of this process.

    Every breaker is registered when it is created and forgotten when it is garbage collected.
    Names need not be unique: when two live breakers share a name, :meth:`get` returns the one
    created last, and :meth:`get_circuits` lists both.
    """

    @classmethod
    def register(cls, circuit_breaker: CircuitBreaker) -> None:
        """Make sure ``circuit_breaker`` is registered (breakers register themselves)."""
        with _lock:
            if any(ref() is circuit_breaker for ref in _refs):
                return
        track(circuit_breaker)

    @classmethod
    def get(cls, name: str) -> CircuitBreaker | None:
        """Return the newest live breaker called ``name``, or ``None``."""
        for breaker in reversed(_live()):
            if breaker.name == name:
                return breaker
        return None

    @classmethod
    def get_circuits(cls) -> list[CircuitBreaker]:
        """Return every live breaker, oldest first."""
        return _live()

    @classmethod
    def get_open(cls) -> Iterator[CircuitBreaker]:
        """Yield the breakers that are open now (rejecting calls, recovery timeout running)."""
        return (b for b in _live() if b.state is OPEN)

    @classmethod
    def get_closed(cls) -> Iterator[CircuitBreaker]:
        """Yield the breakers that are closed now."""
        return (b for b in _live() if b.state is CLOSED)

    @classmethod
    def all_closed(cls) -> bool:
        """Return whether no live breaker is open."""
        return not any(True for _ in cls.get_open())
