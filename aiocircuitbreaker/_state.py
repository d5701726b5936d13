"""The pure core: states, the snapshot of a breaker's state machine, and its transitions.

Nothing here reads a clock, takes a lock or touches an event loop: every function takes the
current snapshot (and ``now`` where time matters) and returns the next one. The shell in
``_breaker.py`` owns the clock and the lock and swaps snapshots whole.

Failure *counting* is kept apart from the decisions (as gobreaker keeps its ``Counts``): a
closed snapshot carries the counter of its generation, an ``itertools.count`` whose ``next()`` is
one atomic step under the GIL, so the shell counts a failure without a lock and takes the lock only
to :func:`trip`. A transition that forgets the failures starts a new counter; a late failure of an
older generation can only reach that generation's counter, which nobody reads any more. Open and
half-open snapshots hold the count as a plain int, fixed when the breaker tripped.
"""

from __future__ import annotations

import enum
import itertools
from typing import NamedTuple

__all__ = ["CLOSED", "HALF_OPEN", "INITIAL", "OPEN", "Snapshot", "State"]


class State(str, enum.Enum):
    """The three states of a circuit breaker.

    Members compare equal to their string values (``State.OPEN == "open"``) and print as them,
    which keeps code written for ``circuitbreaker``'s string constants working.
    """

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"

    def __str__(self) -> str:
        return self.value

    def __format__(self, format_spec: str) -> str:
        return format(self.value, format_spec)


CLOSED = State.CLOSED
OPEN = State.OPEN
HALF_OPEN = State.HALF_OPEN


class Snapshot(NamedTuple):
    """A breaker's state machine as one immutable value.

    Attributes:
        state: The stored state. ``OPEN`` past its deadline is still stored as ``OPEN``; it
            reads as ``HALF_OPEN`` and becomes it on the next admission.
        generation: Bumped by every transition and by ``reset()``. A call remembers the
            generation it was admitted under; outcomes of older generations change nothing.
        open_until: Clock reading after which an open breaker admits a probe.
        probes: Half-open probes currently running.
        failures: While closed, the counter of consecutive failures, or ``None`` while there
            are none (so a breaker that never failed shares one snapshot with every other).
        tripped_failures: While open or half-open, the failure count when the breaker tripped.
    """

    state: State
    generation: int
    open_until: float
    probes: int
    failures: itertools.count[int] | None
    tripped_failures: int


INITIAL = Snapshot(CLOSED, 0, 0.0, 0, None, 0)


def failure_count(snapshot: Snapshot) -> int:
    """Return the number of consecutive failures counted in ``snapshot``."""
    failures = snapshot.failures
    if failures is None:
        return snapshot.tripped_failures
    # itertools.count cannot be read without advancing it but through its repr, "count(N)";
    # this is for reporting and for the (locked, rare) trip decision only.
    return int(repr(failures)[6:-1])


# tuple.__new__ skips NamedTuple's Python-level __new__, which costs a few hundred nanoseconds.
_new = tuple.__new__


def current_state(snapshot: Snapshot, now: float) -> State:
    """Return the state as callers see it: an open breaker past its deadline is half-open."""
    if snapshot.state is OPEN and now >= snapshot.open_until:
        return HALF_OPEN
    return snapshot.state


def admit(snapshot: Snapshot, now: float, max_probes: int) -> Snapshot | None:
    """Return the snapshot after admitting one call, or ``None`` if the call is rejected.

    The admitted call's generation is the returned snapshot's generation.
    """
    state, generation, open_until, probes, _, tripped = snapshot
    if state is CLOSED:
        return snapshot
    if state is OPEN:
        if now < open_until:
            return None
        # The recovery timeout has passed: this caller moves the breaker to half-open and
        # becomes its first probe.
        return _new(Snapshot, (HALF_OPEN, generation + 1, open_until, 1, None, tripped))
    if probes >= max_probes:
        return None
    return _new(Snapshot, (state, generation, open_until, probes + 1, None, tripped))


def count_failures(snapshot: Snapshot) -> Snapshot:
    """Return the closed ``snapshot`` with a failure counter of its own (starting at zero)."""
    if snapshot.failures is not None:
        return snapshot
    state, generation, open_until, probes, _, _ = snapshot
    return _new(Snapshot, (state, generation, open_until, probes, itertools.count(), 0))


def trip(snapshot: Snapshot, failures: int, now: float, recovery_timeout: float) -> Snapshot:
    """Return the snapshot of a breaker that opens now, after ``failures`` failures."""
    return _new(
        Snapshot, (OPEN, snapshot.generation + 1, now + recovery_timeout, 0, None, failures)
    )


def close(snapshot: Snapshot) -> Snapshot:
    """Return the snapshot of a breaker that closes (a probe succeeded, or a reset)."""
    return _new(Snapshot, (CLOSED, snapshot.generation + 1, snapshot.open_until, 0, None, 0))


def forget_failures(snapshot: Snapshot) -> Snapshot:
    """Return the closed ``snapshot`` after a success: same generation, no failures."""
    return _new(Snapshot, (CLOSED, snapshot.generation, snapshot.open_until, 0, None, 0))


def release_probe(snapshot: Snapshot) -> Snapshot:
    """Return the half-open snapshot after a probe ended neutrally, giving its slot back."""
    state, generation, open_until, probes, failures, tripped = snapshot
    return _new(Snapshot, (state, generation, open_until, max(0, probes - 1), failures, tripped))
