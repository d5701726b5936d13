"""Statistics: what a breaker has counted, as frozen values, and the counters behind them.

A breaker makes its :class:`Counters` on first use (its first call, state change, listener or
``statistics()``), so that a breaker that is made but never used costs no more memory than it
did. Each total is an ``itertools.count``: advancing one is a single atomic step on every
CPython build, free-threaded ones included (CPython makes ``count.__next__`` thread-safe there),
so totals are exact under any number of threads without a lock.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from ._core import OPEN, State
from ._counting import count_value as value

__all__ = ["CallCounts", "Counters", "Statistics"]


@dataclass(frozen=True, slots=True)
class CallCounts:
    """How the calls through a breaker ended, over some period.

    Attributes:
        successes: Calls that counted as successes.
        failures: Calls that counted as failures.
        neutral: Calls that counted as neither (cancelled, or an exception not expected).
        rejected: Calls that were not run (the breaker rejected them).
        slow: Finished calls slower than the policy's ``slow_call_duration`` (also counted as
            successes or failures).
    """

    successes: int = 0
    failures: int = 0
    neutral: int = 0
    rejected: int = 0
    slow: int = 0

    @property
    def calls(self) -> int:
        """Calls that ran and finished: successes, failures and neutral ones."""
        return self.successes + self.failures + self.neutral

    def __sub__(self, other: CallCounts) -> CallCounts:
        """Return the counts between ``other`` (taken earlier) and these."""
        return CallCounts(
            self.successes - other.successes,
            self.failures - other.failures,
            self.neutral - other.neutral,
            self.rejected - other.rejected,
            self.slow - other.slow,
        )


@dataclass(frozen=True, slots=True)
class Statistics:
    """A breaker at one moment, as a frozen value (``CircuitBreaker.statistics()``).

    Attributes:
        name: The breaker's name.
        state: The state as callers see it now.
        generation: Bumped by every state change and reset.
        since_change: Counts since the last state change (or reset).
        total: Counts since the breaker was made; never reset, so they suit monotonic
            counters such as Prometheus's.
        failure_count: The breaker's current failure count (consecutive failures).
        failure_rate: The failure rate over the policy's window (0.0 to 1.0). While the breaker
            is not closed (there is no window), the rate of the last window, as it was when the
            breaker left the closed state: the rate that tripped it. ``None`` without a
            ``RatePolicy``, and while a window holds no calls.
        slow_call_rate: The slow-call rate, likewise.
        time_in_state: Seconds since the current state began, by the breaker's clock. A breaker
            that never changed state counts from its first use.
        openings: How many times the breaker has opened since it was made.
        open_remaining: Seconds until an open breaker admits a probe: 0.0 when closed, negative
            once due, infinite while forced open.
        last_failure: The exception of the last counted failure, or ``None``.
        transitions: ``((old_state, new_state), count)`` for every state change seen.
        storage: What the breaker's storage reports of itself, for a storage that has a
            ``statistics()`` method (a Redis storage: the health of its link to Redis, an
            :class:`aiocircuitbreaker.redis.Health`); ``None`` for the in-memory storage.
        group: The name of the :class:`CircuitBreakerGroup` the breaker belongs to, if any.
        key: The breaker's key in its group (``str(key)``), or ``None``.
    """

    name: str | None
    state: State
    generation: int
    since_change: CallCounts
    total: CallCounts
    failure_count: int
    failure_rate: float | None
    slow_call_rate: float | None
    time_in_state: float
    openings: int
    open_remaining: float
    last_failure: BaseException | None
    transitions: tuple[tuple[tuple[State, State], int], ...]
    storage: object | None = None
    group: str | None = None
    key: str | None = None


_ZERO = CallCounts()

Transitions = tuple[tuple[tuple[State, State], int], ...]


def add_transition(transitions: Transitions, old: State, new: State) -> Transitions:
    """Return ``transitions`` with one more change from ``old`` to ``new``."""
    counts = dict(transitions)
    counts[old, new] = counts.get((old, new), 0) + 1
    return tuple(counts.items())


class Counters:
    """A breaker's totals and what its statistics need between state changes (internal).

    The five totals are advanced lock-free by the call paths; the rest changes under the
    breaker's lock, at state changes.
    """

    __slots__ = (
        "base",
        "changed_at",
        "failures",
        "last_rates",
        "neutral",
        "openings",
        "rejected",
        "slow",
        "successes",
        "transitions",
    )

    def __init__(self, now: float) -> None:
        self.successes = itertools.count()
        self.failures = itertools.count()
        self.neutral = itertools.count()
        self.rejected = itertools.count()
        self.slow = itertools.count()
        self.openings = 0
        self.base = _ZERO
        self.changed_at = now
        # ((old, new), count) pairs, replaced whole on a change (changes are rare, reads free).
        self.transitions: Transitions = ()
        # (failure_rate, slow_call_rate) of the last window, once its generation has ended.
        self.last_rates: tuple[float | None, float | None] = (None, None)

    def totals(self) -> CallCounts:
        """Return the totals as a frozen value."""
        return CallCounts(
            value(self.successes),
            value(self.failures),
            value(self.neutral),
            value(self.rejected),
            value(self.slow),
        )

    def changed(self, old: State, new: State, at: float) -> None:
        """Start a new period: the state changed (or was reset) at clock reading ``at``."""
        self.base = self.totals()
        self.changed_at = at
        if old is not new:
            self.transitions = add_transition(self.transitions, old, new)
        if new is OPEN and old is not OPEN:
            self.openings += 1
