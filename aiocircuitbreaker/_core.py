"""The core: a breaker's state as one immutable value, and its pure transitions.

A :class:`Value` is plain data (an enum, ints and a float) that can be compared, written to a
store and read back. The functions below return the next value; none reads a clock, takes a
lock or calls user code. The shell (``_engine.py``) asks the user's callables first (the open
duration, a trip rule) and passes their answers in.

Time crosses this boundary only as durations: ``Value.open_for`` is measured from the moment
the value is stored, by the storage's clock, so a value means the same thing to every process
that reads it, whatever its own clock says.

What happens *within* a generation (failures in a row, a rate window, the half-open probes) is
counted by the storage (``_storage.py``), not held in the value.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, replace

__all__ = [
    "CLOSED",
    "DISABLED",
    "FORCED_OPEN",
    "HALF_OPEN",
    "INITIAL",
    "METRICS_ONLY",
    "MODES",
    "OPEN",
    "Outcome",
    "State",
    "Value",
    "parse_state",
]


class State(str, enum.Enum):
    """The states of a circuit breaker.

    ``CLOSED``, ``OPEN`` and ``HALF_OPEN`` are the state machine's own. The other three are
    modes an operator sets by hand, kept until the next change by hand (``close()`` to go
    back to normal):
    ``FORCED_OPEN`` rejects every call and ignores the recovery timeout; ``DISABLED`` lets every
    call through and records nothing; ``METRICS_ONLY`` lets every call through and records it
    (statistics, events, failure counts) but never trips.

    Members compare equal to their string values (``State.OPEN == "open"``) and print as them,
    which keeps code written for ``circuitbreaker``'s string constants working.
    """

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    DISABLED = "disabled"
    METRICS_ONLY = "metrics_only"

    def __str__(self) -> str:
        return self.value

    def __format__(self, format_spec: str) -> str:
        return format(self.value, format_spec)


CLOSED = State.CLOSED
OPEN = State.OPEN
HALF_OPEN = State.HALF_OPEN
FORCED_OPEN = State.FORCED_OPEN
DISABLED = State.DISABLED
METRICS_ONLY = State.METRICS_ONLY
MODES = frozenset({FORCED_OPEN, DISABLED, METRICS_ONLY})
COUNTING = frozenset({CLOSED, METRICS_ONLY})  # the states whose calls are counted as they end


class Outcome(str, enum.Enum):
    """How a guarded call ended, as far as the breaker is concerned.

    ``SUCCESS``: it returned normally (and ``failure_result``, if any, did not object).
    ``FAILURE``: it raised an expected exception, or returned a value judged failed.
    ``NEUTRAL``: anything else (another exception, cancellation): it counts neither way.
    """

    SUCCESS = "success"
    FAILURE = "failure"
    NEUTRAL = "neutral"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Value:
    """A breaker's state, as one immutable value of plain data.

    Attributes:
        state: The stored state. ``OPEN`` past the end of its open period is still stored as
            ``OPEN``: it reads as ``HALF_OPEN``, and becomes it when a call next arrives.
        generation: Bumped by every transition and every change by hand. A call belongs to the
            generation that admitted it; outcomes of older generations change nothing.
        failures: The failure count carried by this generation: while open (or in a mode), the
            count reported (the count at the trip, plus one per failed probe); while counting
            (closed, metrics-only), where the failure streak starts (0, or a restored count).
        openings: Openings since the breaker last closed (what ``Backoff`` grows with).
        open_for: Seconds from when this value was stored until its open period ends: the
            open duration when it opens, zero or less once that time has passed (a half-open
            value keeps how long before it the period ended), infinite while forced open.
    """

    state: State = CLOSED
    generation: int = 0
    failures: int = 0
    openings: int = 0
    open_for: float = 0.0


INITIAL = Value()


def opened(value: Value, failures: int, open_for: float) -> Value:
    """Return the value of a breaker that opens (it tripped, a probe failed, or by hand)."""
    return Value(OPEN, value.generation + 1, failures, value.openings + 1, open_for)


def half_opened(value: Value, overdue: float) -> Value:
    """Return the value of an open breaker whose open period ended ``overdue`` seconds ago."""
    return Value(HALF_OPEN, value.generation + 1, value.failures, value.openings, -overdue)


def closed(value: Value) -> Value:
    """Return the value of a breaker that closes (its probes succeeded, or by hand)."""
    return Value(CLOSED, value.generation + 1)


def entered(value: Value, mode: State, failures: int) -> Value:
    """Return the value of a breaker put into ``mode`` (one of ``MODES``) by hand.

    Forced open never admits a probe (its period never ends). Counting restarts from zero
    under metrics-only; the other modes keep ``failures`` for reporting.
    """
    open_for = math.inf if mode is FORCED_OPEN else 0.0
    return Value(mode, value.generation + 1, 0 if mode is METRICS_ONLY else failures, 0, open_for)


def restored(saved: Value, current: Value, open_for: float) -> Value:
    """Return ``saved`` brought back as a new generation after ``current`` (testing helpers)."""
    return replace(saved, generation=current.generation + 1, open_for=open_for)


def parse_state(state: object, what: str = "state") -> State:
    """Return ``state`` as a State (a State, or a State's value such as ``"open"``).

    Raises:
        ValueError: ``state`` is neither; the message names ``what`` and lists the values.
    """
    try:
        return State(state)
    except ValueError:
        allowed = ", ".join(member.value for member in State)
        msg = f"{what} must be a State or one of {allowed}; got {state!r}"
        raise ValueError(msg) from None
