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
from dataclasses import dataclass, replace

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


@dataclass(frozen=True, slots=True)
class Snapshot:
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

    # A slotted class rather than a NamedTuple: the hot path reads these fields on every call,
    # and slot reads are specialised by the interpreter where tuple field getters are not.
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


def current_state(snapshot: Snapshot, now: float) -> State:
    """Return the state as callers see it: an open breaker past its deadline is half-open."""
    if snapshot.state is OPEN and now >= snapshot.open_until:
        return HALF_OPEN
    return snapshot.state


def admit(snapshot: Snapshot, now: float, max_probes: int) -> Snapshot | None:
    """Return the snapshot after admitting one call, or ``None`` if the call is rejected.

    The admitted call's generation is the returned snapshot's generation.
    """
    state = snapshot.state
    if state is CLOSED:
        return snapshot
    if state is OPEN:
        if now < snapshot.open_until:
            return None
        # The recovery timeout has passed: this caller moves the breaker to half-open and
        # becomes its first probe.
        return replace(snapshot, state=HALF_OPEN, generation=snapshot.generation + 1, probes=1)
    if snapshot.probes >= max_probes:
        return None
    return replace(snapshot, probes=snapshot.probes + 1)


def count_failures(snapshot: Snapshot) -> Snapshot:
    """Return the closed ``snapshot`` with a failure counter of its own (starting at zero)."""
    if snapshot.failures is not None:
        return snapshot
    return replace(snapshot, failures=itertools.count())


def trip(snapshot: Snapshot, failures: int, now: float, recovery_timeout: float) -> Snapshot:
    """Return the snapshot of a breaker that opens now, after ``failures`` failures."""
    return Snapshot(OPEN, snapshot.generation + 1, now + recovery_timeout, 0, None, failures)


def close(snapshot: Snapshot) -> Snapshot:
    """Return the snapshot of a breaker that closes (a probe succeeded, or a reset)."""
    return Snapshot(CLOSED, snapshot.generation + 1, snapshot.open_until, 0, None, 0)


def forget_failures(snapshot: Snapshot) -> Snapshot:
    """Return the closed ``snapshot`` after a success: same generation, no failures."""
    return Snapshot(CLOSED, snapshot.generation, snapshot.open_until, 0, None, 0)


def release_probe(snapshot: Snapshot) -> Snapshot:
    """Return the half-open snapshot after a probe ended neutrally, giving its slot back."""
    return replace(snapshot, probes=max(0, snapshot.probes - 1))
