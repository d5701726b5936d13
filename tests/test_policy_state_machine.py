"""The opt-in policies against a naive reference model, driven by hypothesis through ``with``.

The companion of ``test_state_machine.py`` for the states and transitions the policies add: a
``RatePolicy`` over a count window, several half-open probes that need several successes, probes
that run out of time (``HalfOpen.max_duration``) and ``Backoff`` open durations. Each run draws one
configuration; as there, every call is entered and exited in a ``contextvars.Context`` of its own,
so any number of calls can be in flight and finish in any order. The model is the specification,
written as plainly as possible; after every step the breaker's public view must equal the model's.
"""

from __future__ import annotations

import asyncio
import contextvars
from dataclasses import dataclass
from typing import Any

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

from aiocircuitbreaker import (
    Backoff,
    CircuitBreaker,
    CircuitBreakerError,
    CountWindow,
    HalfOpen,
    RatePolicy,
    State,
)
from aiocircuitbreaker.testing import FakeClock

from .conftest import DependencyDown

# Times are whole quarters of a second: exact in binary floating point, so the model and the
# breaker compute the same deadlines and expiries, and "exactly at the deadline" happens.
QUARTER = 0.25

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

# Exceptions that finish a call without counting (not expected, or not an Exception at all).
NEUTRAL_EXCEPTIONS = st.sampled_from([KeyError("k"), asyncio.CancelledError()])


def _exception(outcome: str) -> BaseException | None:
    """Return what a call with ``outcome`` raises (``None`` for a success)."""
    return {SUCCESS: None, FAILURE: DependencyDown("down"), NEUTRAL: KeyError("k")}[outcome]


@dataclass(frozen=True)
class Config:
    """One breaker configuration; ``window=None`` means consecutive counting, no policy.

    Attributes:
        failure_threshold: Consecutive failures that open (consecutive counting only).
        window: ``n`` of ``CountWindow(n)``, or ``None`` for no policy.
        failure_rate: The policy's ``failure_rate``.
        minimum_calls: The policy's ``minimum_calls``.
        probes: ``HalfOpen.probes``.
        successes: ``HalfOpen.successes``.
        max_duration: ``HalfOpen.max_duration`` (``None``: probes never run out of time).
        recovery_timeout: The fixed open duration, when there is no backoff.
        backoff: ``(initial, factor, maximum)`` of a ``Backoff``, or ``None``.
        expected: Key of ``EXPECTED``.
    """

    failure_threshold: int = 1
    window: int | None = None
    failure_rate: float = 1.0
    minimum_calls: int = 1
    probes: int = 1
    successes: int = 1
    max_duration: float | None = None
    recovery_timeout: float = 1.0
    backoff: tuple[float, int, float] | None = None
    expected: str = "class"

    def options(self) -> dict[str, Any]:
        """Return the keyword arguments of the breaker this configuration describes."""
        options: dict[str, Any] = {
            "failure_threshold": self.failure_threshold,
            "recovery_timeout": self.recovery_timeout,
            "expected_exception": EXPECTED[self.expected],
            "name": "policy-machine",
            "half_open": HalfOpen(
                probes=self.probes, successes=self.successes, max_duration=self.max_duration
            ),
        }
        if self.window is not None:
            options["policy"] = RatePolicy(
                CountWindow(self.window),
                failure_rate=self.failure_rate,
                minimum_calls=self.minimum_calls,
            )
        if self.backoff is not None:
            initial, factor, maximum = self.backoff
            options["open_duration"] = Backoff(initial=initial, factor=factor, maximum=maximum)
        return options


def quarters(low: int, high: int) -> st.SearchStrategy[float]:
    """Return a strategy of whole quarter seconds from ``low`` to ``high`` quarters."""
    return st.integers(min_value=low, max_value=high).map(lambda count: count * QUARTER)


@st.composite
def configs(draw: st.DrawFn) -> Config:
    """Draw a configuration: consecutive or rate counting, probes, time limits, backoff."""
    window = draw(st.none() | st.integers(min_value=1, max_value=6))
    backoff = None
    if draw(st.booleans()):
        initial = draw(quarters(1, 12))
        factor = draw(st.sampled_from([1, 2, 3]))
        backoff = (initial, factor, initial + draw(quarters(0, 40)))
    return Config(
        failure_threshold=draw(st.integers(min_value=1, max_value=4)),
        window=window,
        failure_rate=draw(st.sampled_from([0.25, 0.5, 0.75, 1.0])),
        minimum_calls=draw(st.integers(min_value=1, max_value=window or 1)),
        probes=draw(st.integers(min_value=1, max_value=3)),
        successes=draw(st.integers(min_value=1, max_value=3)),
        max_duration=draw(st.none() | quarters(1, 20)),
        recovery_timeout=draw(quarters(1, 40)),
        backoff=backoff,
        expected=draw(st.sampled_from(sorted(EXPECTED))),
    )


class Model:
    """The specification: a breaker with no concurrency concerns and no optimisations.

    Probe time limits are applied eagerly, whenever time moves: a probe's expiry is computed as
    of the moment it ran out, so applying it then or at the next read gives the same view.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.now = 0.0
        self.stored = State.CLOSED  # OPEN past its deadline is still stored as OPEN
        self.generation = 0
        self.failures = 0  # closed: the current run; open / half-open: fixed at the trip
        self.outcomes: list[bool] = []  # closed under a policy: failed? per recorded call
        self.deadline = 0.0
        self.openings = 0  # consecutive openings since the last close
        self.probes: dict[int, float] = {}  # half-open probes in flight: call id -> start
        self.probe_successes = 0

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

    def duration(self) -> float:
        """The length of the current opening (``openings`` is already counted)."""
        if self.config.backoff is None:
            return self.config.recovery_timeout
        initial, factor, maximum = self.config.backoff
        growth: int = factor ** (self.openings - 1)  # an int: exact
        return min(maximum, initial * growth)

    def advance(self, seconds: float) -> None:
        """Move time forward; probes whose time ran out fail as of that moment."""
        self.now += seconds
        limit = self.config.max_duration
        while limit is not None and self.stored is State.HALF_OPEN and self.probes:
            expiry = min(self.probes.values()) + limit
            if self.now < expiry:
                break
            self.failures += 1
            self._open(at=expiry)

    def admit(self, ident: int) -> tuple[int, bool] | None:
        """Return ``(generation, is_probe)`` of call ``ident`` if admitted, else ``None``."""
        if self.stored is State.CLOSED:
            return self.generation, False
        if self.stored is State.OPEN:
            if self.now < self.deadline:
                return None
            self.stored = State.HALF_OPEN
            self.generation += 1
            self.probes = {}
            self.probe_successes = 0
        if len(self.probes) >= self.config.probes:
            return None
        self.probes[ident] = self.now
        return self.generation, True

    def _open(self, at: float) -> None:
        self.stored = State.OPEN
        self.generation += 1
        self.openings += 1
        self.deadline = at + self.duration()
        self.probes = {}

    def _close(self) -> None:
        self.stored = State.CLOSED
        self.generation += 1
        self.openings = 0
        self.failures = 0
        self.outcomes = []
        self.probes = {}

    def _should_open(self) -> bool:
        config = self.config
        if config.window is None:
            return self.failures >= config.failure_threshold
        window = self.outcomes[-config.window :]
        return (
            len(window) >= config.minimum_calls
            and window.count(True) / len(window) >= config.failure_rate
        )

    def finish(self, generation: int, ident: int, outcome: str) -> None:
        """Record the outcome of call ``ident``, admitted under ``generation``."""
        if generation != self.generation:
            return  # an older generation (or a probe that ran out of time): changes nothing
        if self.stored is State.CLOSED:
            if outcome == NEUTRAL:
                return
            failed = outcome == FAILURE
            self.failures = self.failures + 1 if failed else 0
            self.outcomes.append(failed)
            if self._should_open():
                self._open(at=self.now)
        elif self.stored is State.HALF_OPEN:
            del self.probes[ident]  # every call of a half-open generation is a probe
            if outcome == FAILURE:
                self.failures += 1
                self._open(at=self.now)
            elif outcome == SUCCESS:
                self.probe_successes += 1
                if self.probe_successes >= self.config.successes:
                    self._close()
        # OPEN: no call is ever admitted under the generation of an open breaker.

    def reset(self) -> None:
        """Close, forget everything counted, and stop counting the calls in flight."""
        self._close()


@dataclass
class Call:
    """A call in flight: its context (holding its permit), and what the model admitted it as."""

    context: contextvars.Context
    ident: int
    generation: int
    probe: bool


class PolicyMachine(RuleBasedStateMachine):
    """Drive a real breaker with opt-in policies and the model side by side."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.in_flight: list[Call] = []
        self.started = 0

    @initialize(config=configs())
    def create(self, config: Config) -> None:
        """Create the breaker and its model from one drawn configuration."""
        self.breaker = CircuitBreaker(clock=self.clock, **config.options())
        self.model = Model(config)

    # -- starting calls ------------------------------------------------------------------------

    @rule(count=st.integers(min_value=1, max_value=4))
    def start_calls(self, count: int) -> None:
        """Start calls: the breaker must admit or reject each exactly as the model predicts."""
        for _ in range(count):
            self._start_call()

    def _start_call(self) -> bool:
        self.started += 1
        admitted = self.model.admit(self.started)
        context = contextvars.copy_context()
        if admitted is None:
            with pytest.raises(CircuitBreakerError) as raised:
                context.run(self.breaker.__enter__)
            error = raised.value
            assert error.circuit_breaker is self.breaker
            assert error.failure_count == self.model.failures
            assert error.open_remaining == self.model.open_remaining
            return False
        assert context.run(self.breaker.__enter__) is self.breaker
        generation, probe = admitted
        self.in_flight.append(Call(context, self.started, generation, probe))
        return True

    @precondition(lambda self: self.model.stored is State.OPEN)
    @rule(offset=st.sampled_from([0.0, QUARTER]), count=st.integers(min_value=1, max_value=4))
    def start_probes_when_due(self, offset: float, count: int) -> None:
        """Advance to an open deadline (or just past it, if not past yet) and start calls."""
        self._advance(max(0.0, self.model.deadline - self.model.now + offset))
        self.start_calls(count)

    @precondition(lambda self: self.model.probes)
    @rule(quarters=st.integers(min_value=1, max_value=8))
    def start_a_later_probe(self, quarters: int) -> None:
        """While probes run, let a little time pass and start one more call (staggered probes)."""
        self._advance(quarters * QUARTER)
        self._start_call()

    @rule(outcomes=st.lists(st.sampled_from([SUCCESS, FAILURE, NEUTRAL]), min_size=1, max_size=6))
    def run_calls(self, outcomes: list[str]) -> None:
        """Run fresh calls in turn, each (if admitted) finished at once with its outcome."""
        for outcome in outcomes:
            if self._start_call():
                self._finish(-1, outcome, _exception(outcome))

    # -- finishing calls -----------------------------------------------------------------------

    def _finish(self, index: int, outcome: str, exc: BaseException | None) -> None:
        call = self.in_flight.pop(index % len(self.in_flight))
        self.model.finish(call.generation, call.ident, outcome)
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
        """Run fresh calls that fail until the breaker opens (reaching the trip in one step)."""
        while self.model.state is State.CLOSED:
            self.run_calls([FAILURE])

    @precondition(lambda self: self.model.state is State.HALF_OPEN)
    @rule()
    def succeed_probes(self) -> None:
        """Run fresh calls that succeed while the breaker reads half-open and admits them."""
        while self.model.state is State.HALF_OPEN and self._start_call():
            self._finish(-1, SUCCESS, None)

    # -- time and control ----------------------------------------------------------------------

    @rule(quarters=st.integers(min_value=0, max_value=3) | st.integers(min_value=0, max_value=60))
    def advance(self, quarters: int) -> None:
        """Advance the clock by a whole number of quarter seconds: often a little, zero included."""
        self._advance(quarters * QUARTER)

    @precondition(lambda self: self.model.stored is State.OPEN)
    @rule(offset=st.sampled_from([-QUARTER, 0.0, QUARTER]))
    def advance_to_deadline(self, offset: float) -> None:
        """Advance the clock to just before, exactly at, or just after an open deadline."""
        seconds = self.model.deadline - self.model.now + offset
        if seconds >= 0:
            self._advance(seconds)

    @precondition(lambda self: self.model.config.max_duration is not None and self.model.probes)
    @rule(offset=st.sampled_from([-QUARTER, 0.0, QUARTER]))
    def advance_to_probe_expiry(self, offset: float) -> None:
        """Advance the clock to just before, exactly at, or just after the first probe expiry."""
        limit = self.model.config.max_duration
        assert limit is not None
        seconds = min(self.model.probes.values()) + limit - self.model.now + offset
        if seconds >= 0:
            self._advance(seconds)

    def _advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.model.advance(seconds)

    @rule()
    def reset(self) -> None:
        """Reset the breaker: closed, nothing counted, calls in flight no longer count."""
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
    def probes_agree(self) -> None:
        """At most ``probes`` probes run, the model's exactly; other calls are older."""
        current = [call for call in self.in_flight if call.generation == self.model.generation]
        probes = self.model.probes
        assert len(probes) <= self.model.config.probes
        assert sorted(self._running_probes()) == sorted(probes.values())
        if self.model.stored is State.HALF_OPEN:
            assert all(call.probe for call in current)
            assert sorted(call.ident for call in current) == sorted(probes)
        else:
            assert probes == {}
            if self.model.stored is State.OPEN:
                assert current == []
            assert not any(call.probe for call in current)

    def _running_probes(self) -> list[float]:
        """Return when each probe still holding a slot started (as the storage counts them)."""
        if self.breaker.state is not State.HALF_OPEN:
            return []
        reading = self.breaker._read()[0]
        limit = self.model.config.max_duration
        if limit is None:  # leases never run out: every running probe, of unknown start
            running = 0 if reading.probes is None else reading.probes.running
            return sorted(self.model.probes.values()) if running == len(self.model.probes) else []
        return [self.model.now + left - limit for left in reading.leases if left > 0]

    def check(self) -> None:
        """Check every invariant (for the scripted scenarios below)."""
        self.clock_agrees()
        self.state_agrees()
        self.probes_agree()


PolicyMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestPolicyStateMachine = PolicyMachine.TestCase


# -- scripted scenarios ------------------------------------------------------------------------
# These replay, through the same rules and invariants, the trickiest sequences found, so that
# they are checked on every run. ``index=0`` finishes the oldest call in flight, ``-1`` the newest.


def replay(**options: Any) -> PolicyMachine:
    """Return a machine created with this configuration, its invariants checked once."""
    machine = PolicyMachine()
    machine.create(Config(**options))
    machine.check()
    return machine


def test_a_probe_finishing_exactly_at_its_expiry_has_run_out() -> None:
    """A probe still running at start + max_duration failed then, even if it succeeds then."""
    machine = replay(probes=2, max_duration=1.0, recovery_timeout=2.0)
    machine.fail_until_open()
    machine.advance_to_deadline(offset=0.0)  # t = 2
    machine.start_calls(1)  # probe A, started at 2
    machine.advance(quarters=2)
    machine.start_calls(1)  # probe B, started at 2.5
    machine.advance_to_probe_expiry(offset=0.0)  # t = 3: A's time is up, as B succeeds
    machine.succeed(index=-1)  # B: of the generation A's expiry ended, ignored
    machine.check()
    assert machine.breaker.opened
    assert machine.breaker.failure_count == 2
    assert machine.breaker.open_remaining == 2.0  # re-opened as of 3, for 2 s
    machine.succeed(index=0)  # A's own late success: ignored too
    machine.check()
    assert machine.breaker.opened


def test_backoff_grows_over_failed_and_expired_probes_and_restarts_on_close() -> None:
    """Failed and timed-out probes both lengthen the next opening, up to the cap; closing resets."""
    machine = replay(failure_threshold=2, max_duration=0.5, backoff=(0.5, 3, 4.0))
    machine.fail_until_open()
    assert machine.breaker.open_remaining == 0.5
    machine.advance_to_deadline(offset=0.0)
    machine.run_calls([FAILURE])  # a failed probe: the second opening
    assert machine.breaker.open_remaining == 1.5
    machine.advance_to_deadline(offset=QUARTER)
    machine.start_calls(1)  # a probe that hangs
    machine.advance(quarters=2)  # it runs out of time now: the third opening, from now
    machine.check()
    assert machine.breaker.open_remaining == 4.0  # 0.5 * 3 ** 2 = 4.5, capped at 4
    assert machine.breaker.failure_count == 4
    machine.advance_to_deadline(offset=0.0)
    machine.run_calls([SUCCESS])  # closes (and the hung probe is long forgotten)
    machine.succeed(index=0)
    machine.fail_until_open()
    machine.check()
    assert machine.breaker.open_remaining == 0.5
    assert machine.breaker.failure_count == 2


def test_an_expired_probe_is_seen_by_reads_even_past_the_new_deadline() -> None:
    """A read long after a probe ran out sees the re-opening dated at the expiry, already due."""
    machine = replay(max_duration=1.0, recovery_timeout=2.0)
    machine.fail_until_open()
    machine.advance_to_deadline(offset=0.0)  # t = 2
    machine.start_calls(2)  # a probe, and a rejected call
    machine.advance(quarters=16)  # t = 6: ran out at 3, re-opened until 5, due since then
    machine.check()
    assert machine.breaker.state is State.HALF_OPEN
    assert machine.breaker.open_remaining == -1.0
    assert machine.breaker.failure_count == 2
    machine.start_calls(1)  # a fresh probe: the old one no longer holds the slot
    machine.fail(index=0)  # the expired probe's late failure changes nothing
    machine.check()
    assert machine.breaker.half_open
    assert len(machine.in_flight) == 1


def test_several_probes_need_several_successes() -> None:
    """Two probes at once, three successes to close; neutral and successful probes free slots."""
    machine = replay(probes=2, successes=3)
    machine.fail_until_open()
    machine.advance_to_deadline(offset=0.0)
    machine.start_calls(3)  # two probes, one rejected
    machine.succeed(index=0)
    machine.end_neutrally(index=0, exc=asyncio.CancelledError())
    machine.check()
    assert machine.breaker.half_open
    machine.start_calls(3)  # two more probes, one rejected
    machine.succeed(index=0)
    machine.check()
    assert machine.breaker.half_open
    machine.succeed(index=0)
    machine.check()
    assert machine.breaker.closed
    assert machine.breaker.failure_count == 0


def test_a_rate_policy_trips_on_a_success_and_counts_the_run() -> None:
    """The call that fills the window to minimum_calls trips, even a success; failures then grow."""
    machine = replay(window=4, failure_rate=0.5, minimum_calls=4, probes=2)
    machine.run_calls([FAILURE, FAILURE, SUCCESS])
    machine.check()
    assert machine.breaker.closed
    machine.run_calls([SUCCESS])  # 2 failures in 4 calls: opens with a run of 0 failures
    machine.check()
    assert machine.breaker.opened
    assert machine.breaker.failure_count == 0
    machine.advance_to_deadline(offset=0.0)
    machine.start_calls(2)
    machine.fail(index=0)
    machine.check()
    assert machine.breaker.failure_count == 1
    machine.advance_to_deadline(offset=0.0)
    machine.run_calls([SUCCESS])  # closes: the window starts empty
    machine.succeed(index=0)  # a probe of the failed period: ignored
    machine.run_calls([FAILURE])
    machine.check()
    assert machine.breaker.closed
    assert machine.breaker.failure_count == 1
