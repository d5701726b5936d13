"""The breaker against a naive reference model, driven by hypothesis through ``with breaker:``.

Each call is entered and exited in a ``contextvars.Context`` of its own (``with`` permits are kept
per context), so any number of calls can be in flight at once and finish in any order, across
trips, recoveries, manual control (``open()``, ``close()``, ``reset()``, ``force_open()``,
``disable()``, ``metrics_only()``) and the modes these set. The model below is the
specification, written as plainly as possible; after every step the breaker's public view, its
``statistics()`` included, must equal the model's.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
from collections import Counter
from dataclasses import dataclass

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from aiocircuitbreaker import CircuitBreaker, CircuitBreakerError, State
from aiocircuitbreaker.testing import FakeClock

from .conftest import DependencyDown

# Durations are whole quarters of a second: exact in binary floating point, so the model and the
# breaker compute the same clock readings and deadlines, and "exactly at the deadline" happens.
QUARTER = 0.25
timeouts = st.integers(min_value=1, max_value=40).map(lambda quarters: quarters * QUARTER)

# The three ways of configuring "DependencyDown is a failure" (class, iterable, predicate).
EXPECTED = {
    "class": DependencyDown,
    "tuple": (DependencyDown,),
    "predicate": lambda exc_type, _exc: issubclass(exc_type, DependencyDown),
}

# Which call in flight to finish: an index into the calls in flight, modulo their number.
calls = st.integers(min_value=0, max_value=7)

SUCCESS = "success"
FAILURE = "failure"
NEUTRAL = "neutral"
REJECTED = "rejected"

# Exceptions that finish a call without counting: not expected (even OSError, the base class of
# the expected one), or not an Exception at all.
NEUTRAL_EXCEPTIONS = st.sampled_from(
    [KeyError("k"), OSError("base class only"), asyncio.CancelledError(), KeyboardInterrupt()]
)

# What a call of each outcome ends with, when the outcome does not matter beyond its class.
ENDINGS: dict[str, BaseException | None] = {
    SUCCESS: None,
    FAILURE: DependencyDown("down"),
    NEUTRAL: KeyError("k"),
}

# The breaker's manual control, each the name of a method of both the breaker and the model.
CONTROLS = ("open", "close", "reset", "force_open", "disable", "metrics_only")

# The generation of a call a disabled breaker let through: it belongs to no generation.
BYPASS = None

# States in which a call is never rejected, and open_remaining is zero.
PASSING = (State.CLOSED, State.DISABLED, State.METRICS_ONLY)


class Model:
    """The specification: a breaker with no concurrency concerns and no optimisations.

    Besides the state machine it keeps what ``statistics()`` reports: every rejected call, and
    every finished call by its outcome, in the period in which it finished (an outcome that
    changes the state counts in the period it ends); the totals when the current period began,
    and when it began; the openings and the transitions. ``failures`` is the failure count the
    breaker reports, in every state.

    The transition from open to half-open is lazy: it is made, dated at the deadline, by the
    next admission or manual change (a late outcome does not make it). ``statistics()`` only
    reads it: it reports the change as made at the deadline, with an empty period since.
    """

    def __init__(self, failure_threshold: int, recovery_timeout: float) -> None:
        self.failure_threshold = failure_threshold
        self.recovery_timeout = recovery_timeout
        self.now = 0.0
        self.stored = State.CLOSED  # OPEN past its deadline is still stored as OPEN
        self.generation = 0
        self.failures = 0
        self.deadline = 0.0
        self.probe_in_flight = False
        self.total: Counter[str] = Counter()
        self.base: Counter[str] = Counter()
        # The machine reads statistics() right after creating the breaker, at 0.0: its first use.
        self.began = 0.0
        self.openings = 0
        self.transitions: Counter[tuple[State, State]] = Counter()

    @property
    def state(self) -> State:
        """The state as read: OPEN past its deadline reads HALF_OPEN."""
        if self.due:
            return State.HALF_OPEN
        return self.stored

    @property
    def open_remaining(self) -> float:
        """Zero while calls pass, infinite while forced open, else the deadline minus now."""
        if self.stored in PASSING:
            return 0.0
        return self.deadline - self.now

    @property
    def due(self) -> bool:
        """Whether the breaker is half-open lazily: stored as open, past its deadline."""
        return self.stored is State.OPEN and self.now >= self.deadline

    @property
    def time_in_state(self) -> float:
        """Seconds since the state as read began: a lazy half-open began at the deadline."""
        return self.now - (self.deadline if self.due else self.began)

    def since_change(self) -> Counter[str]:
        """The counts of the current period."""
        return Counter({key: self.total[key] - self.base[key] for key in self.total})

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds

    def catch_up(self) -> None:
        """Make the lazy transition, if due: half-open as of the deadline, with no probe yet."""
        if self.due:
            self._enter(State.HALF_OPEN, self.deadline)

    def _change(self, state: State) -> None:
        """Move to ``state`` now, from the state as read (the lazy transition made first)."""
        self.catch_up()
        self._enter(state, self.now)

    def _enter(self, state: State, at: float) -> None:
        """Enter ``state`` at ``at``: a new generation, and a new statistics period."""
        before = self.stored
        if state is not before:
            self.transitions[before, state] += 1
        if state is State.OPEN and before is not State.OPEN:
            self.openings += 1
        self.stored = state
        self.generation += 1
        self.probe_in_flight = False
        self.began = at
        self.base = self.total.copy()

    def admit(self) -> tuple[int | None, bool] | None:
        """Return ``(generation, is_probe)`` of an admitted call, or ``None`` if rejected.

        A call a disabled breaker lets through has the generation ``BYPASS``.
        """
        if self.stored is State.CLOSED or self.stored is State.METRICS_ONLY:
            return self.generation, False
        if self.stored is State.DISABLED:
            return BYPASS, False
        self.catch_up()
        if self.stored is State.HALF_OPEN and not self.probe_in_flight:
            self.probe_in_flight = True
            return self.generation, True
        self.total[REJECTED] += 1  # open, forced open, or half-open with its probe running
        return None

    def _trip(self) -> None:
        self._change(State.OPEN)
        self.deadline = self.now + self.recovery_timeout

    def finish(self, generation: int | None, outcome: str) -> None:
        """Record the outcome of a call admitted under ``generation``."""
        if generation is BYPASS:
            return  # a disabled breaker records nothing about the calls it let through
        self.total[outcome] += 1  # every other finished call counts, however late
        if generation != self.generation:
            return  # an older generation: its outcome changes nothing else
        if self.stored is State.CLOSED or self.stored is State.METRICS_ONLY:
            if outcome == SUCCESS:
                self.failures = 0
            elif outcome == FAILURE:
                self.failures += 1
                if self.failures >= self.failure_threshold and self.stored is State.CLOSED:
                    self._trip()
        elif self.stored is State.HALF_OPEN:
            if outcome == SUCCESS:
                self.failures = 0
                self._change(State.CLOSED)
            elif outcome == FAILURE:
                self.failures += 1
                self._trip()
            else:
                self.probe_in_flight = False
        # OPEN, FORCED_OPEN: no call is ever admitted under their generations.

    # -- manual control: each starts a new generation, whatever the state ----------------------

    def open(self) -> None:
        """Open now, as if tripped: failures kept, half-open after the recovery timeout."""
        self._trip()

    def close(self) -> None:
        """Close, forget failures, and stop counting the calls in flight."""
        self.failures = 0
        self._change(State.CLOSED)

    reset = close

    def force_open(self) -> None:
        """Reject every call, whatever the clock, until closed; failures kept."""
        self._change(State.FORCED_OPEN)
        self.deadline = math.inf

    def disable(self) -> None:
        """Let every call through and record nothing; failures kept (for reporting)."""
        self._change(State.DISABLED)

    def metrics_only(self) -> None:
        """Let every call through and count it, never tripping; counting starts again."""
        self.failures = 0
        self._change(State.METRICS_ONLY)


@dataclass
class Call:
    """A call in flight: the context holding its permit, and what the model admitted it as."""

    context: contextvars.Context
    generation: int | None
    probe: bool


class BreakerMachine(RuleBasedStateMachine):
    """Drive a real breaker and the model side by side."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.in_flight: list[Call] = []

    @initialize(
        failure_threshold=st.integers(min_value=1, max_value=4),
        recovery_timeout=timeouts,
        expected=st.sampled_from(sorted(EXPECTED)),
    )
    def create(self, failure_threshold: int, recovery_timeout: float, expected: str) -> None:
        """Create the breaker and its model with small thresholds and exact timeouts."""
        self.breaker = CircuitBreaker(
            failure_threshold,
            recovery_timeout,
            EXPECTED[expected],
            "state-machine",
            clock=self.clock,
        )
        self.model = Model(failure_threshold, recovery_timeout)

    # -- starting calls ------------------------------------------------------------------------

    @rule(count=st.integers(min_value=1, max_value=4))
    def start_calls(self, count: int) -> None:
        """Start calls: the breaker must admit or reject each exactly as the model predicts."""
        for _ in range(count):
            self._start_call()

    def _start_call(self) -> bool:
        """Start one call; return whether it was admitted."""
        expected_remaining = self.model.open_remaining
        expected_failures = self.model.failures
        admitted = self.model.admit()
        context = contextvars.copy_context()
        if admitted is None:
            with pytest.raises(CircuitBreakerError) as raised:
                context.run(self.breaker.__enter__)
            error = raised.value
            assert error.circuit_breaker is self.breaker
            assert error.name == "state-machine"
            assert error.failure_count == expected_failures
            assert error.open_remaining == expected_remaining
            return False
        assert context.run(self.breaker.__enter__) is self.breaker
        generation, probe = admitted
        self.in_flight.append(Call(context, generation, probe))
        return True

    # -- finishing calls -----------------------------------------------------------------------

    def _finish(self, index: int, outcome: str, exc: BaseException | None) -> None:
        call = self.in_flight.pop(index % len(self.in_flight))
        self.model.finish(call.generation, outcome)
        if exc is None:
            result = call.context.run(self.breaker.__exit__, None, None, None)
        else:
            result = call.context.run(self.breaker.__exit__, type(exc), exc, None)
        assert result is None  # never swallows the call's exception

    @precondition(lambda self: self.in_flight)
    @rule(index=calls)
    def succeed(self, index: int) -> None:
        """Finish a call in flight (any of them, in any order) with a success."""
        self._finish(index, SUCCESS, None)

    @precondition(lambda self: self.in_flight)
    @rule(index=calls)
    def fail(self, index: int) -> None:
        """Finish a call in flight with the expected failure."""
        self._finish(index, FAILURE, DependencyDown("down"))

    @precondition(lambda self: self.in_flight)
    @rule(index=calls, exc=NEUTRAL_EXCEPTIONS)
    def end_neutrally(self, index: int, exc: BaseException) -> None:
        """Finish a call in flight with an exception that must not count (incl. cancellation)."""
        self._finish(index, NEUTRAL, exc)

    @rule(outcomes=st.lists(st.sampled_from(sorted(ENDINGS)), min_size=1, max_size=5))
    def run_calls(self, outcomes: list[str]) -> None:
        """Run fresh calls one after another, each finished before the next one starts."""
        for outcome in outcomes:
            if self._start_call():
                self._finish(len(self.in_flight) - 1, outcome, ENDINGS[outcome])

    @precondition(lambda self: self.model.state in PASSING)
    @rule(extra=st.integers(min_value=0, max_value=2))
    def fail_until_open(self, extra: int = 0) -> None:
        """Run fresh calls that fail until the breaker opens (reaching the trip in one step).

        Metrics-only and disabled breakers never open: they get as many failures as it takes to
        trip, and ``extra`` more. Calls already in flight stay in flight, which is how stale calls
        come to outlive a trip.
        """
        for _ in range(self.model.failure_threshold + extra):
            if self.model.state not in PASSING:
                break
            self.run_calls([FAILURE])

    # -- time and control ----------------------------------------------------------------------

    @rule(quarters=st.integers(min_value=0, max_value=200))
    def advance(self, quarters: int) -> None:
        """Advance the clock by any whole number of quarter seconds, zero included."""
        self._advance(quarters * QUARTER)

    @rule()
    def advance_by_recovery_timeout(self) -> None:
        """Advance the clock by exactly the recovery timeout."""
        self._advance(self.model.recovery_timeout)

    @precondition(lambda self: self.model.stored is State.OPEN)
    @rule(offset=st.sampled_from([-QUARTER, 0.0, QUARTER]))
    def advance_to_deadline(self, offset: float) -> None:
        """Advance the clock to just before, exactly at, or just after an open deadline."""
        seconds = self.model.deadline - self.model.now + offset
        if seconds >= 0:
            self._advance(seconds)

    def _advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.model.advance(seconds)

    @rule(action=st.sampled_from(CONTROLS))
    def control(self, action: str) -> None:
        """Open, close, reset, force open, disable or go metrics-only, from any state."""
        getattr(self.breaker, action)()
        getattr(self.model, action)()

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def clock_agrees(self) -> None:
        """The model's notion of now is the breaker's clock."""
        assert self.clock() == self.model.now

    @invariant()
    def state_agrees(self) -> None:
        """State, its three booleans, failure count and open_remaining match the model."""
        state = self.model.state
        assert self.breaker.state is state
        assert self.breaker.closed == (state is State.CLOSED)
        assert self.breaker.opened == (state in (State.OPEN, State.FORCED_OPEN))
        assert self.breaker.half_open == (state is State.HALF_OPEN)
        assert self.breaker.failure_count == self.model.failures
        assert self.breaker.open_remaining == self.model.open_remaining

    @invariant()
    def statistics_agree(self) -> None:
        """statistics() reports what the model counted, after every step (reading is free)."""
        self._check_statistics()

    @rule()
    def read_statistics(self) -> None:
        """Read statistics() at any time: it changes nothing, not even a due lazy transition."""
        self._check_statistics()
        self._check_statistics()

    def _check_statistics(self) -> None:
        """statistics() reports the model's state, counts, openings, timings and transitions."""
        model = self.model
        statistics = self.breaker.statistics()
        assert statistics.name == "state-machine"
        assert statistics.state is model.state
        assert statistics.failure_count == model.failures
        assert statistics.open_remaining == model.open_remaining
        assert statistics.time_in_state == model.time_in_state
        assert statistics.openings == model.openings
        transitions = model.transitions.copy()
        since_change = model.since_change()
        if model.due:  # read as made at the deadline, with nothing finished since
            transitions[State.OPEN, State.HALF_OPEN] += 1
            since_change = Counter()
        assert dict(statistics.transitions) == transitions
        for counts, expected in (
            (statistics.total, model.total),
            (statistics.since_change, since_change),
        ):
            assert counts.successes == expected[SUCCESS]
            assert counts.failures == expected[FAILURE]
            assert counts.neutral == expected[NEUTRAL]
            assert counts.rejected == expected[REJECTED]
            assert counts.slow == 0  # no policy, so no call is ever slow
        assert statistics.failure_rate is None  # no policy, so no window
        assert statistics.slow_call_rate is None

    @invariant()
    def at_most_one_probe(self) -> None:
        """At most one probe is in flight; every other call in flight is of an older generation."""
        current = [call for call in self.in_flight if call.generation == self.model.generation]
        if self.model.stored is State.HALF_OPEN:
            assert [call.probe for call in current] == (
                [True] if self.model.probe_in_flight else []
            )
        elif self.model.stored in (State.OPEN, State.FORCED_OPEN, State.DISABLED):
            assert current == []
        else:
            assert not any(call.probe for call in current)

    def check(self) -> None:
        """Check every invariant (for the scripted scenarios below); this changes nothing."""
        self.clock_agrees()
        self.state_agrees()
        self.statistics_agree()
        self.at_most_one_probe()


BreakerMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=50, deadline=None)
TestBreakerStateMachine = BreakerMachine.TestCase


# -- scripted scenarios ------------------------------------------------------------------------
# The machine explores at random; these replay, through the same rules and invariants, the
# sequences the specification singles out, so that they are checked on every run. In them,
# ``index=0`` finishes the oldest call in flight and ``index=-1`` the newest.


def replay(failure_threshold: int, recovery_timeout: float = 1.0) -> BreakerMachine:
    """Return a machine created with these settings, its invariants checked once."""
    machine = BreakerMachine()
    machine.create(failure_threshold, recovery_timeout, "class")
    machine.check()
    return machine


def test_a_slow_success_from_before_the_trip_never_closes() -> None:
    """Successes of calls admitted before the trip change nothing, open or half-open."""
    machine = replay(failure_threshold=1)
    machine.start_calls(3)
    machine.fail(index=-1)
    machine.check()
    assert machine.breaker.opened
    machine.succeed(index=0)
    machine.check()
    assert machine.breaker.opened
    machine.advance_by_recovery_timeout()
    machine.start_calls(1)  # the probe
    machine.check()
    machine.succeed(index=0)  # the last call from before the trip
    machine.check()
    assert machine.breaker.half_open
    machine.start_calls(1)  # rejected: the probe is still in flight
    machine.succeed(index=0)  # the probe
    machine.check()
    assert machine.breaker.closed
    assert machine.breaker.failure_count == 0


def test_old_failures_never_push_the_deadline() -> None:
    """Failures of calls admitted before the trip neither move the deadline nor re-open."""
    machine = replay(failure_threshold=1, recovery_timeout=2.0)
    machine.start_calls(3)
    machine.fail(index=-1)
    machine.advance(quarters=4)
    machine.fail(index=0)
    machine.check()
    assert machine.breaker.open_remaining == 1.0
    assert machine.breaker.failure_count == 1
    machine.advance(quarters=4)
    machine.start_calls(1)  # the probe
    machine.fail(index=0)  # the last call from before the trip
    machine.check()
    assert machine.breaker.half_open
    assert machine.breaker.failure_count == 1


def test_a_failed_probe_reopens_with_a_fresh_deadline() -> None:
    """A failed probe re-opens for a whole recovery timeout and counts one more failure."""
    machine = replay(failure_threshold=2, recovery_timeout=1.5)
    machine.fail_until_open()
    machine.advance(quarters=9)  # 0.75 s past the deadline
    machine.start_calls(1)
    machine.fail(index=0)
    machine.check()
    assert machine.breaker.opened
    assert machine.breaker.open_remaining == 1.5
    assert machine.breaker.failure_count == 3


def test_a_neutral_probe_frees_the_slot_and_a_stale_one_does_not() -> None:
    """Only the probe's own neutral outcome lets the next call in as the new probe."""
    machine = replay(failure_threshold=1)
    machine.start_calls(2)
    machine.fail(index=-1)
    machine.advance_by_recovery_timeout()
    machine.start_calls(1)  # the probe
    machine.end_neutrally(index=0, exc=asyncio.CancelledError())  # the stale call
    machine.start_calls(1)  # rejected: the probe is still in flight
    machine.check()
    machine.end_neutrally(index=0, exc=KeyError("k"))  # the probe
    machine.check()
    assert machine.breaker.half_open
    machine.start_calls(2)  # a new probe, and a rejected call
    machine.check()
    assert len(machine.in_flight) == 1


def test_exactly_at_the_deadline_is_half_open() -> None:
    """The breaker rejects until the clock reaches the deadline, and admits a probe at it."""
    machine = replay(failure_threshold=1, recovery_timeout=0.5)
    machine.fail_until_open()
    machine.advance_to_deadline(offset=-QUARTER)
    machine.start_calls(1)  # rejected
    machine.check()
    assert machine.breaker.opened
    machine.advance(quarters=1)
    machine.check()
    assert machine.breaker.half_open
    assert machine.breaker.open_remaining == 0.0
    machine.start_calls(1)  # the probe
    machine.check()
    assert machine.in_flight[0].probe


def test_reset_stops_calls_in_flight_from_counting() -> None:
    """After reset(), outcomes of calls admitted before it change nothing."""
    machine = replay(failure_threshold=2)
    machine.start_calls(3)
    machine.fail(index=0)
    machine.control("reset")
    machine.fail(index=0)
    machine.check()
    assert machine.breaker.failure_count == 0
    machine.start_calls(1)
    machine.fail(index=-1)
    machine.succeed(index=0)  # from before the reset: does not clear the new failure
    machine.check()
    assert machine.breaker.failure_count == 1
    assert machine.breaker.closed


def test_force_open_rejects_probes_whatever_the_clock() -> None:
    """Forced open rejects every call, however late, until close(); its probe no longer counts."""
    machine = replay(failure_threshold=1)
    machine.fail_until_open()
    machine.advance_by_recovery_timeout()
    machine.start_calls(1)  # the probe
    machine.control("force_open")
    machine.check()
    assert machine.breaker.opened
    assert machine.breaker.open_remaining == math.inf
    machine.advance(quarters=200)
    machine.start_calls(2)  # rejected, both
    machine.succeed(index=0)  # the probe: closes nothing
    machine.check()
    assert machine.breaker.state is State.FORCED_OPEN
    statistics = machine.breaker.statistics()
    assert (statistics.since_change.rejected, statistics.since_change.successes) == (2, 1)
    assert statistics.time_in_state == 50.0
    machine.control("close")
    machine.start_calls(1)
    machine.check()
    assert machine.breaker.closed


def test_a_disabled_breaker_lets_everything_through_and_records_nothing() -> None:
    """Disabled, no call is rejected or counted, even after the breaker is closed again."""
    machine = replay(failure_threshold=1)
    machine.start_calls(1)  # admitted while closed: counted when it finishes
    machine.control("disable")
    machine.advance(quarters=1)
    machine.check()
    assert machine.breaker.open_remaining == machine.breaker.statistics().open_remaining == 0.0
    machine.start_calls(3)
    machine.fail(index=-1)
    machine.end_neutrally(index=-1, exc=asyncio.CancelledError())
    machine.control("close")
    machine.fail(index=-1)  # let through while disabled: still counts nothing
    machine.check()
    assert machine.breaker.closed
    machine.fail(index=0)  # admitted before disable(): a late, counted failure
    machine.check()
    statistics = machine.breaker.statistics()
    assert statistics.total.calls == statistics.total.failures == 1
    assert statistics.failure_count == 0
    assert machine.breaker.closed


def test_metrics_only_counts_failures_and_never_trips() -> None:
    """Metrics-only counts consecutive failures, reset by a success, and never opens.

    Calls admitted before it went metrics-only count in the totals, and in no failure count.
    """
    machine = replay(failure_threshold=2)
    machine.start_calls(1)  # admitted while closed
    machine.fail_until_open()
    machine.control("metrics_only")
    machine.check()
    assert machine.breaker.failure_count == 0
    machine.fail_until_open(extra=2)  # four failures, twice the threshold
    machine.check()
    assert machine.breaker.state is State.METRICS_ONLY
    assert machine.breaker.failure_count == 4
    machine.fail(index=0)  # the call from before: not a fifth consecutive failure
    machine.check()
    assert machine.breaker.failure_count == 4
    machine.start_calls(1)
    machine.succeed(index=0)
    machine.check()
    assert machine.breaker.failure_count == 0
    statistics = machine.breaker.statistics()
    assert (statistics.since_change.failures, statistics.since_change.successes) == (5, 1)
    assert statistics.openings == 1


def test_open_by_hand_keeps_the_failures_and_half_opens_after_the_timeout() -> None:
    """open() opens for the recovery timeout with the failure count kept, from any state."""
    machine = replay(failure_threshold=3, recovery_timeout=2.0)
    machine.start_calls(2)
    machine.fail(index=0)
    machine.control("open")
    machine.fail(index=0)  # admitted before open(): counted in the totals only
    machine.check()
    assert machine.breaker.opened
    assert machine.breaker.failure_count == 1
    assert machine.breaker.open_remaining == 2.0
    machine.control("force_open")
    machine.control("open")  # the forced deadline is gone: a fresh one
    machine.advance_by_recovery_timeout()
    machine.check()
    assert machine.breaker.half_open
    machine.start_calls(1)  # the probe
    machine.fail(index=0)
    machine.check()
    assert machine.breaker.failure_count == 2
    assert machine.breaker.statistics().openings == 3


def test_time_in_state_of_a_due_breaker_counts_from_its_deadline() -> None:
    """An open breaker past its deadline has been half-open since the deadline, however seen."""
    machine = replay(failure_threshold=1, recovery_timeout=1.5)
    machine.advance(quarters=4)
    machine.fail_until_open()  # open at 1.0, due at 2.5
    machine.advance(quarters=10)
    machine.start_calls(1)  # the probe makes the lazy transition, as of the deadline
    machine.check()
    assert machine.breaker.statistics().time_in_state == 1.0
    machine.fail(index=0)  # open again at 3.5, due at 5.0
    machine.advance(quarters=8)
    machine.read_statistics()  # reading reports the lazy transition as of the deadline too
    assert machine.breaker.statistics().time_in_state == 0.5
    assert dict(machine.breaker.statistics().transitions)[State.OPEN, State.HALF_OPEN] == 2


def test_the_failure_that_trips_a_threshold_of_one_is_counted() -> None:
    """A failure that trips the breaker on its own counts in the totals, once."""
    machine = replay(failure_threshold=1)
    machine.fail_until_open()
    machine.check()
    statistics = machine.breaker.statistics()
    assert statistics.total.failures == 1
    assert statistics.since_change.failures == 0  # it belongs to the closed period it ended


def test_opening_a_due_breaker_by_hand_is_an_opening() -> None:
    """open() on a breaker that reads half-open (no probe yet) counts as an opening."""
    machine = replay(failure_threshold=1)
    machine.fail_until_open()
    machine.advance_by_recovery_timeout()
    machine.control("open")
    machine.check()
    statistics = machine.breaker.statistics()
    assert statistics.openings == 2
    assert dict(statistics.transitions)[State.HALF_OPEN, State.OPEN] == 1


def test_a_failed_probe_counts_in_the_half_open_period() -> None:
    """The probe whose failure re-opens the breaker counts before the change, as a success does."""
    machine = replay(failure_threshold=2)
    machine.fail_until_open()
    machine.advance_by_recovery_timeout()
    machine.start_calls(1)
    machine.fail(index=0)
    machine.check()
    assert machine.breaker.statistics().since_change.failures == 0
