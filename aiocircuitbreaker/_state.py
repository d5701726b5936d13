"""The pure core: states, the snapshot of a breaker's state machine, and its transitions.

Nothing here reads a clock, takes a lock or touches an event loop: every function takes the
current snapshot (and ``now`` where time matters) and returns the next one. The shell in
``_breaker.py`` owns the clock and the lock and swaps snapshots whole.

Failure *counting* is kept apart from the decisions (as gobreaker keeps its ``Counts``): a
closed snapshot carries the counter of its generation, an ``itertools.count`` whose ``next()`` is
one atomic step under the GIL, so the shell counts a failure without a lock and takes the lock
only to :func:`open_now`. A transition that forgets the failures starts a new counter; a late
failure of an older generation can only reach that generation's counter, which nobody reads any
more. Open and
half-open snapshots hold the count as a plain int, fixed when the breaker tripped. Under a
``RatePolicy`` a closed generation counts in a sliding window instead (its ``Tally``), under the
lock.

Opt-in behaviour (rate policies, several probes, probe time limits, open durations) reaches the
core as one :class:`Rules` value built at construction.
"""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ._policies import HalfOpen, RatePolicy, Tally

__all__ = [
    "CLOSED",
    "DISABLED",
    "FORCED_OPEN",
    "HALF_OPEN",
    "INITIAL",
    "METRICS_ONLY",
    "OPEN",
    "Snapshot",
    "State",
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


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A breaker's state machine as one immutable value.

    Attributes:
        state: The stored state. ``OPEN`` past its deadline is still stored as ``OPEN``; it
            reads as ``HALF_OPEN`` and becomes it on the next admission.
        generation: Bumped by every transition and by ``reset()``. A call remembers the
            generation it was admitted under; outcomes of older generations change nothing.
        open_until: Clock reading after which an open breaker admits a probe.
        probes: The half-open probes running, as ``(permit, started)`` pairs.
        failures: While closed, the counter of consecutive failures, or ``None`` while there
            are none (so a breaker that never failed shares one snapshot with every other).
        tripped_failures: While open or half-open, the failure count when the breaker tripped.
        openings: Openings since the breaker last closed (drives backoff).
        probe_successes: Successful probes of this half-open period.
        probe_counts: ``(calls, failures, slow_calls)`` of the probes that finished in this
            half-open period (judged by rate).
        tally: While closed under a ``RatePolicy``, the generation's sliding window.
        observed: Whether listeners want the breaker's per-call events (a breaker setting,
            carried from snapshot to snapshot so that the wrappers test one field).
        fast: Closed and not observed: a call takes the wrappers' fast path (derived).
    """

    # A slotted class rather than a NamedTuple: the hot path reads these fields on every call,
    # and slot reads are specialised by the interpreter where tuple field getters are not.
    state: State
    generation: int
    open_until: float
    probes: tuple[tuple[int, float], ...]
    failures: itertools.count[int] | None
    tripped_failures: int
    openings: int = 0
    probe_successes: int = 0
    probe_counts: tuple[int, int, int] = (0, 0, 0)
    tally: Tally | None = None
    observed: bool = False
    fast: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fast", self.state is CLOSED and not self.observed)


INITIAL = Snapshot(CLOSED, 0, 0.0, (), None, 0)

SUCCESS, FAILURE, NEUTRAL = "success", "failure", "neutral"


@dataclass(frozen=True, slots=True)
class Rules:
    """The configuration the transitions need, fixed when the breaker is built.

    Attributes:
        failure_threshold: Consecutive failures that open (when there is no policy).
        policy: The rate policy, if any.
        half_open: How the half-open state probes.
        open_duration: ``(openings, failure) -> seconds`` of the next opening.
        failure_result: Predicate on return values that marks a call failed (shell only).
        slow_call_duration: Seconds after which a call is slow (shell only).
        clocked: Whether calls must be timed (slow calls, or a time window).
        lock_free_successes: Whether plain successes may be counted without the lock (a
            count window and no slow calls).
        predicate: The ``expected_exception`` predicate, if one was given (shell only).
    """

    failure_threshold: int
    policy: RatePolicy | None
    half_open: HalfOpen
    open_duration: Callable[[int, BaseException | None], float]
    failure_result: Callable[[Any], object] | None = None
    slow_call_duration: float | None = None
    clocked: bool = False
    lock_free_successes: bool = False
    predicate: Callable[[type[BaseException], BaseException], object] | None = None


def failure_count(snapshot: Snapshot) -> int:
    """Return the number of consecutive failures counted in ``snapshot``."""
    if snapshot.tally is not None:
        return snapshot.tally.current_run()
    failures = snapshot.failures
    if failures is None:
        return snapshot.tripped_failures
    # itertools.count cannot be read without advancing it but through its repr, "count(N)";
    # this is for reporting and for the (locked, rare) trip decision only.
    return int(repr(failures)[6:-1])


def streak(snapshot: Snapshot) -> int:
    """Return the failures counted in the snapshot's lock-free streak counter (0 if none)."""
    return 0 if snapshot.failures is None else failure_count(snapshot)


def settle(snapshot: Snapshot, now: float, rules: Rules) -> Snapshot:
    """Return ``snapshot`` after the lazy transitions due by ``now``.

    A half-open probe running for longer than ``HalfOpen.max_duration`` stops holding its slot
    and counts as a failed probe, as of the moment its time ran out.
    """
    limit = rules.half_open.max_duration
    while limit is not None and snapshot.state is HALF_OPEN and snapshot.probes:
        permit, started = min(snapshot.probes, key=lambda probe: probe[1])
        expiry = started + limit
        if now < expiry:
            break
        snapshot = probe_finished(snapshot, permit, FAILURE, False, expiry, rules, None)  # noqa: FBT003
    return snapshot


def catch_up(snapshot: Snapshot, now: float, rules: Rules) -> Snapshot:
    """Return ``snapshot`` with every lazy transition due by ``now`` applied.

    That is :func:`settle`, and then an open breaker whose open period is over becomes
    half-open (with no probe running yet).
    """
    return end_open_period(settle(snapshot, now, rules), now)


def end_open_period(snapshot: Snapshot, now: float) -> Snapshot:
    """Return ``snapshot``, half-open (no probe running yet) if it is open past its deadline."""
    if snapshot.state is OPEN and now >= snapshot.open_until:
        return Snapshot(
            HALF_OPEN,
            snapshot.generation + 1,
            snapshot.open_until,
            (),
            None,
            snapshot.tripped_failures,
            snapshot.openings,
            observed=snapshot.observed,
        )
    return snapshot


def current_state(snapshot: Snapshot, now: float, rules: Rules) -> State:
    """Return the state as callers see it: an open breaker past its deadline is half-open."""
    snapshot = settle(snapshot, now, rules)
    if snapshot.state is OPEN and now >= snapshot.open_until:
        return HALF_OPEN
    return snapshot.state


def admit(snapshot: Snapshot, now: float, rules: Rules, permit: int) -> tuple[Snapshot, bool]:
    """Return the snapshot after one admission attempt, and whether the call is admitted.

    Keep the returned snapshot even when the call is rejected: lazy transitions may have
    happened. A half-open probe is admitted under ``permit``, its own (negative) number.
    """
    snapshot = catch_up(snapshot, now, rules)
    state = snapshot.state
    if state is CLOSED or state is METRICS_ONLY or state is DISABLED:
        return snapshot, True
    if state is FORCED_OPEN or state is OPEN:
        return snapshot, False
    half_open = rules.half_open
    running = len(snapshot.probes)
    if running >= half_open.probes or (
        half_open.judge_by_rate and snapshot.probe_counts[0] + running >= half_open.probes
    ):
        return snapshot, False
    return replace(snapshot, probes=(*snapshot.probes, (permit, now))), True


def open_now(
    snapshot: Snapshot, now: float, rules: Rules, failures: int, failure: BaseException | None
) -> Snapshot:
    """Return the snapshot of a breaker that opens at ``now`` after ``failures`` failures."""
    openings = snapshot.openings + 1
    duration = rules.open_duration(openings, failure)
    return Snapshot(
        OPEN,
        snapshot.generation + 1,
        now + duration,
        (),
        None,
        failures,
        openings,
        observed=snapshot.observed,
    )


def close(snapshot: Snapshot) -> Snapshot:
    """Return the snapshot of a breaker that closes (probes succeeded, or a reset)."""
    return Snapshot(
        CLOSED,
        snapshot.generation + 1,
        snapshot.open_until,
        (),
        None,
        0,
        observed=snapshot.observed,
    )


def count_failures(snapshot: Snapshot) -> Snapshot:
    """Return the closed ``snapshot`` with a failure counter of its own (starting at zero)."""
    if snapshot.failures is not None:
        return snapshot
    return replace(snapshot, failures=itertools.count())


def forget_failures(snapshot: Snapshot) -> Snapshot:
    """Return the closed (or metrics-only) ``snapshot`` after a success: no failures."""
    return Snapshot(
        snapshot.state,
        snapshot.generation,
        snapshot.open_until,
        (),
        None,
        0,
        observed=snapshot.observed,
    )


def enter_mode(snapshot: Snapshot, mode: State) -> Snapshot:
    """Return the snapshot of a breaker put into ``mode`` by hand (one of MODES).

    Forced open never admits a probe (its deadline is infinite). The failure count of the
    state left behind is kept for reporting; counting restarts under metrics-only.
    """
    until = math.inf if mode is FORCED_OPEN else snapshot.open_until
    failures = 0 if mode is METRICS_ONLY else failure_count(snapshot)
    return Snapshot(
        mode, snapshot.generation + 1, until, (), None, failures, observed=snapshot.observed
    )


def record_closed(
    snapshot: Snapshot,
    policy: RatePolicy,
    outcome: str,
    slow: bool,  # noqa: FBT001
    started: float,
    now: float,
    rules: Rules,
    failure: BaseException | None,
) -> Snapshot:
    """Return the closed (or metrics-only) snapshot after one of its calls finished (locked).

    The caller has checked that the call belongs to this closed generation; neutral outcomes
    are not recorded at all.
    """
    tally = snapshot.tally
    capacity = policy.window.capacity
    if tally is None:
        tally = Tally(policy.window.new(), lock_free_successes=rules.lock_free_successes)
        snapshot = replace(snapshot, tally=tally)
    else:
        tally.drain(capacity or 0)
    tally.record(failed=outcome == FAILURE, slow=slow, started=started, now=now)
    # Judged after every call, successes included: the call that brings the window up to
    # minimum_calls may be the one that makes the rate count.
    counts = tally.counts(now)
    run = tally.consecutive_failures
    if snapshot.state is CLOSED and policy.should_trip(
        counts.calls, counts.failures, counts.slow_calls, run
    ):  # metrics-only records the same way, and never trips
        return open_now(snapshot, now, rules, run, failure)
    # A count window never holds fewer calls later in the same generation, so once it holds
    # minimum_calls a plain success can no longer trip: successes may skip the lock.
    tally.ready = counts.calls >= policy.required_calls
    return snapshot


def probe_finished(  # noqa: PLR0911 - one return per outcome reads better than nesting
    snapshot: Snapshot,
    permit: int,
    outcome: str,
    slow: bool,  # noqa: FBT001
    now: float,
    rules: Rules,
    failure: BaseException | None,
) -> Snapshot:
    """Return the snapshot after the half-open probe ``permit`` finished with ``outcome``."""
    if snapshot.state is not HALF_OPEN:
        return snapshot
    remaining = tuple(probe for probe in snapshot.probes if probe[0] != permit)
    if len(remaining) == len(snapshot.probes):
        return snapshot  # not a probe of this half-open period (or already timed out)
    if outcome == NEUTRAL:
        return replace(snapshot, probes=remaining)
    half_open = rules.half_open
    if half_open.judge_by_rate:
        return _judge_probe(snapshot, remaining, outcome, slow, now, rules, failure)
    if outcome == FAILURE:
        # A failed probe re-opens at once; the count grows by one, as it always has.
        return open_now(snapshot, now, rules, snapshot.tripped_failures + 1, failure)
    successes = snapshot.probe_successes + 1
    if successes >= half_open.successes:
        return close(snapshot)
    return replace(snapshot, probes=remaining, probe_successes=successes)


def _judge_probe(
    snapshot: Snapshot,
    remaining: tuple[tuple[int, float], ...],
    outcome: str,
    slow: bool,  # noqa: FBT001
    now: float,
    rules: Rules,
    failure: BaseException | None,
) -> Snapshot:
    """Count one probe outcome; once all N are in, let the policy decide: open or close."""
    calls, failures, slow_calls = snapshot.probe_counts
    counts = (calls + 1, failures + (outcome == FAILURE), slow_calls + slow)
    if counts[0] < rules.half_open.probes:
        return replace(snapshot, probes=remaining, probe_counts=counts)
    policy = rules.policy  # judge_by_rate is refused at construction without a policy
    if policy is not None and policy.should_trip(*counts, 0, ignore_minimum=True):
        return open_now(snapshot, now, rules, snapshot.tripped_failures + counts[1], failure)
    return close(snapshot)
