"""The breaker against a naive reference model, driven by hypothesis through ``with breaker:``.

Each call is entered and exited in a ``contextvars.Context`` of its own (``with`` permits are kept
per context), so any number of calls can be in flight at once and finish in any order, across
trips, recoveries and resets. The model below is the specification, written as plainly as
possible; after every step the breaker's public view must equal the model's.
"""

from __future__ import annotations

import asyncio
import contextvars
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

# Exceptions that finish a call without counting: not expected (even OSError, the base class of
# the expected one), or not an Exception at all.
NEUTRAL_EXCEPTIONS = st.sampled_from(
    [KeyError("k"), OSError("base class only"), asyncio.CancelledError(), KeyboardInterrupt()]
)


class Model:
    """The specification: a breaker with no concurrency concerns and no optimisations."""

    def __init__(self, failure_threshold: int, recovery_timeout: float) -> None:
        self.failure_threshold = failure_threshold
        self.recovery_timeout = recovery_timeout
        self.now = 0.0
        self.stored = State.CLOSED  # OPEN past its deadline is still stored as OPEN
        self.generation = 0
        self.failures = 0
        self.deadline = 0.0
        self.probe_in_flight = False

    @property
    def state(self) -> State:
        """The state as read: OPEN past its deadline reads HALF_OPEN."""
        if self.stored is State.OPEN and self.now >= self.deadline:
            return State.HALF_OPEN
        return self.stored

    @property
    def open_remaining(self) -> float:
        """Zero while closed, else the deadline minus now."""
        if self.stored is State.CLOSED:
            return 0.0
        return self.deadline - self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds

    def admit(self) -> tuple[int, bool] | None:
        """Return ``(generation, is_probe)`` of an admitted call, or ``None`` if rejected."""
        if self.stored is State.CLOSED:
            return self.generation, False
        if self.stored is State.OPEN:
            if self.now < self.deadline:
                return None
            self.stored = State.HALF_OPEN
            self.generation += 1
            self.probe_in_flight = True
            return self.generation, True
        if self.probe_in_flight:
            return None
        self.probe_in_flight = True
        return self.generation, True

    def _trip(self) -> None:
        self.stored = State.OPEN
        self.generation += 1
        self.deadline = self.now + self.recovery_timeout
        self.probe_in_flight = False

    def finish(self, generation: int, outcome: str) -> None:
        """Record the outcome of a call admitted under ``generation``."""
        if generation != self.generation:
            return  # an older generation: its outcome changes nothing
        if self.stored is State.CLOSED:
            if outcome == SUCCESS:
                self.failures = 0
            elif outcome == FAILURE:
                self.failures += 1
                if self.failures >= self.failure_threshold:
                    self._trip()
        elif self.stored is State.HALF_OPEN:
            if outcome == SUCCESS:
                self.stored = State.CLOSED
                self.failures = 0
                self.generation += 1
                self.probe_in_flight = False
            elif outcome == FAILURE:
                self.failures += 1
                self._trip()
            else:
                self.probe_in_flight = False
        # OPEN: no call is ever admitted under the generation of an open breaker.

    def reset(self) -> None:
        """Close, forget failures, and stop counting the calls in flight."""
        self.stored = State.CLOSED
        self.failures = 0
        self.generation += 1
        self.probe_in_flight = False


@dataclass
class Call:
    """A call in flight: the context holding its permit, and what the model admitted it as."""

    context: contextvars.Context
    generation: int
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

    def _start_call(self) -> None:
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
            return
        assert context.run(self.breaker.__enter__) is self.breaker
        generation, probe = admitted
        self.in_flight.append(Call(context, generation, probe))

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

    @precondition(lambda self: self.model.state is State.CLOSED)
    @rule()
    def fail_until_open(self) -> None:
        """Run fresh calls that fail until the breaker opens (reaching the trip in one step).

        Calls already in flight stay in flight, which is how stale calls come to outlive a trip.
        """
        while self.model.state is State.CLOSED:
            self._start_call()
            self._finish(len(self.in_flight) - 1, FAILURE, DependencyDown("down"))

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

    @rule()
    def reset(self) -> None:
        """Reset the breaker: closed, no failures, calls in flight no longer count."""
        self.breaker.reset()
        self.model.reset()

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
        assert self.breaker.opened == (state is State.OPEN)
        assert self.breaker.half_open == (state is State.HALF_OPEN)
        assert self.breaker.failure_count == self.model.failures
        assert self.breaker.open_remaining == self.model.open_remaining

    @invariant()
    def at_most_one_probe(self) -> None:
        """At most one probe is in flight; every other call in flight is of an older generation."""
        current = [call for call in self.in_flight if call.generation == self.model.generation]
        if self.model.stored is State.HALF_OPEN:
            assert [call.probe for call in current] == (
                [True] if self.model.probe_in_flight else []
            )
        elif self.model.stored is State.OPEN:
            assert current == []
        else:
            assert not any(call.probe for call in current)

    def check(self) -> None:
        """Check every invariant (for the scripted scenarios below)."""
        self.clock_agrees()
        self.state_agrees()
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
    machine.reset()
    machine.fail(index=0)
    machine.check()
    assert machine.breaker.failure_count == 0
    machine.start_calls(1)
    machine.fail(index=-1)
    machine.succeed(index=0)  # from before the reset: does not clear the new failure
    machine.check()
    assert machine.breaker.failure_count == 1
    assert machine.breaker.closed
