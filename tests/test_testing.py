"""The public testing helpers."""

from __future__ import annotations

import contextvars
import gc
import logging
from typing import Any

import pytest

from aiocircuitbreaker import (
    CallCounts,
    CircuitBreaker,
    CircuitBreakerError,
    CircuitBreakerMonitor,
    State,
    StateChanged,
)
from aiocircuitbreaker.testing import FakeClock, force_state, passthrough

from .conftest import DependencyDown


def test_fake_clock_moves_only_when_advanced() -> None:
    """The clock returns its reading until advanced, and refuses to go back."""
    clock = FakeClock(5)
    assert clock() == 5.0
    clock.advance(2.5)
    assert clock() == 7.5
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance(-1)
    assert repr(clock) == "FakeClock(7.5)"


def make(clock: FakeClock, name: str, **options: Any) -> CircuitBreaker:
    options.setdefault("failure_threshold", 3)
    options.setdefault("recovery_timeout", 30)
    options.setdefault("expected_exception", DependencyDown)
    return CircuitBreaker(clock=clock, name=name, **options)


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(DependencyDown), breaker:
            raise DependencyDown("down")


def succeed(breaker: CircuitBreaker) -> None:
    with breaker:
        pass


def rejects(breaker: CircuitBreaker) -> bool:
    try:
        with breaker:
            pass
    except CircuitBreakerError:
        return True
    return False


def test_force_state_holds_the_breakers_and_gives_them_back(clock: FakeClock) -> None:
    """Inside the block the breakers are in the state asked for; after it, as they were."""
    closed = make(clock, "testing-closed")
    tripped = make(clock, "testing-tripped", failure_threshold=1)
    fail(tripped)
    clock.advance(10)
    with force_state("open", closed, tripped) as forced:
        assert forced == [closed, tripped]
        clock.advance(10**6)  # forced open stays open whatever the clock says
        assert closed.state is State.OPEN
        assert tripped.state is State.OPEN
        assert rejects(closed)
        assert rejects(tripped)
    assert closed.state is State.CLOSED
    assert not rejects(closed)
    assert tripped.state is State.HALF_OPEN  # its own deadline passed meanwhile
    assert tripped.failure_count == 1


@pytest.mark.parametrize("target", [*State, *(state.value for state in State)])
def test_force_state_accepts_each_state_or_its_value(clock: FakeClock, target: State | str) -> None:
    """force_state() takes a State or its string value, and the breaker reads as that state."""
    breaker = make(clock, "testing-each")
    fail(breaker)
    with force_state(target, breaker):
        assert breaker.state is State(target)
    assert breaker.state is State.CLOSED
    assert breaker.failure_count == 1


def test_force_state_refuses_unknown_states(clock: FakeClock) -> None:
    """An unknown state is a ValueError that names the allowed values."""
    breaker = make(clock, "testing-unknown")
    allowed = "closed, open, half_open, forced_open, disabled, metrics_only"
    refused = f"state must be a State or one of {allowed}; got 'shut'"
    with pytest.raises(ValueError, match=refused), force_state("shut", breaker):
        pass  # pragma: no cover - refused
    with pytest.raises(ValueError, match="got 5"), force_state(5, breaker):  # type: ignore[arg-type]
        pass  # pragma: no cover - refused
    assert breaker.closed


def test_forced_closed_and_half_open_behave_as_usual(clock: FakeClock) -> None:
    """Forced closed may still trip inside the block; forced half-open admits one probe."""
    breaker = make(clock, "testing-usual", failure_threshold=2)
    fail(breaker, 2)
    with force_state(State.CLOSED, breaker):
        assert breaker.failure_count == 0
        fail(breaker, 2)
        assert breaker.opened
    with force_state(State.HALF_OPEN, breaker):
        breaker.__enter__()
        assert rejects(breaker)  # the probe slot is taken
        breaker.__exit__(None, None, None)
        assert breaker.closed
    assert breaker.opened
    assert breaker.failure_count == 2


def test_force_state_without_breakers_forces_every_one_and_new_ones(clock: FakeClock) -> None:
    """With no breakers given, every live breaker and every one made inside the block is forced."""
    existing = make(clock, "testing-all-existing")
    with force_state(State.FORCED_OPEN) as forced:
        assert existing in forced
        assert all(b.state is State.FORCED_OPEN for b in CircuitBreakerMonitor.get_circuits())
        made_inside = make(clock, "testing-all-new")
        assert made_inside.state is State.FORCED_OPEN
        assert made_inside not in forced
        assert rejects(made_inside)
    assert existing.closed
    assert made_inside.closed
    assert not rejects(made_inside)
    later = make(clock, "testing-all-later")
    assert later.closed


def test_force_state_restores_a_failure_streak_counted_once(clock: FakeClock) -> None:
    """A closed breaker's failure streak survives the block and is counted once in statistics."""
    breaker = make(clock, "testing-streak")
    fail(breaker, 2)
    with force_state("open", breaker):
        pass
    assert breaker.failure_count == 2
    assert breaker.statistics().total == CallCounts(failures=2)
    fail(breaker)  # the third consecutive failure trips it
    assert breaker.opened
    assert breaker.statistics().total == CallCounts(failures=3)
    with force_state("metrics_only", breaker):
        fail(breaker, 2)
        succeed(breaker)
    assert breaker.statistics().total == CallCounts(successes=1, failures=5)


def test_force_state_restores_the_last_failure(clock: FakeClock) -> None:
    """The last failure a breaker reports is the same after the block as before it."""
    breaker = make(clock, "testing-last-failure")
    fail(breaker, 2)
    last = breaker.last_failure
    assert isinstance(last, DependencyDown)
    with force_state("open", breaker):
        pass
    assert breaker.last_failure is last
    assert breaker.statistics().last_failure is last


def test_force_state_starts_a_new_statistics_period(clock: FakeClock) -> None:
    """Giving the state back is a change: since_change restarts at zero, totals do not."""
    breaker = make(clock, "testing-since")
    succeed(breaker)
    fail(breaker, 2)
    with force_state("disabled", breaker):
        pass
    statistics = breaker.statistics()
    assert statistics.total == CallCounts(successes=1, failures=2)
    assert statistics.since_change == CallCounts()


def test_force_state_gives_the_state_back_after_an_exception(clock: FakeClock) -> None:
    """The breakers are given back even when the block raises."""
    breaker = make(clock, "testing-raises")
    with pytest.raises(KeyError), force_state("forced_open", breaker):
        raise KeyError
    assert breaker.closed


def test_calls_inside_the_block_change_nothing_after_it(clock: FakeClock) -> None:
    """A call admitted inside the block and finished after it leaves the restored state alone."""
    breaker = make(clock, "testing-inside", failure_threshold=1)
    with force_state("closed", breaker):
        inside = contextvars.copy_context()
        inside.run(breaker.__enter__)
    assert breaker.closed
    inside.run(breaker.__exit__, DependencyDown, DependencyDown(), None)
    assert breaker.closed
    assert breaker.failure_count == 0


def test_nested_force_state(clock: FakeClock) -> None:
    """Nested blocks each give back the state they found."""
    breaker = make(clock, "testing-nested")
    fail(breaker)
    with force_state("open", breaker):
        with force_state("closed", breaker):
            assert breaker.closed
            assert breaker.failure_count == 0
        assert breaker.state is State.OPEN
        with force_state("disabled"):
            assert breaker.state is State.DISABLED
            made_inside = make(clock, "testing-nested-new")
            assert made_inside.state is State.DISABLED
        assert breaker.state is State.OPEN
        assert made_inside.closed  # it was made closed, outside the outer block's reach
    assert breaker.closed
    assert breaker.failure_count == 1


def test_force_state_changes_are_reported(clock: FakeClock) -> None:
    """Forcing and giving back are reported as state changes that say why."""
    changes: list[tuple[State, State, str]] = []
    breaker = make(clock, "testing-reported")
    breaker.add_listener(
        lambda e: changes.append((e.old_state, e.new_state, e.reason)), StateChanged
    )
    with force_state("forced_open", breaker):
        pass
    assert changes == [
        (State.CLOSED, State.FORCED_OPEN, "testing.force_state('forced_open')"),
        (State.FORCED_OPEN, State.CLOSED, "the end of testing.force_state('forced_open')"),
    ]


def test_a_probe_ending_inside_the_block_does_not_hold_its_slot_after(clock: FakeClock) -> None:
    """A half-open probe that ends inside the block leaves no probe slot taken after it."""
    breaker = make(clock, "testing-probe", failure_threshold=1)
    fail(breaker)
    clock.advance(30)
    probe = contextvars.copy_context()
    probe.run(breaker.__enter__)
    with force_state("closed", breaker):
        probe.run(breaker.__exit__, None, None, None)
    assert breaker.state is State.HALF_OPEN
    assert not rejects(breaker)  # a new probe is admitted, and it closes the breaker
    assert breaker.closed


def test_passthrough_disables_every_breaker_and_new_ones(clock: FakeClock) -> None:
    """Inside passthrough() every breaker, old or new, lets every call through unrecorded."""
    tripped = make(clock, "testing-passthrough-tripped", failure_threshold=1)
    fail(tripped)
    with passthrough():
        assert tripped.state is State.DISABLED
        assert not rejects(tripped)
        made_inside = make(clock, "testing-passthrough-new", failure_threshold=1)
        fail(made_inside, 3)
        assert made_inside.state is State.DISABLED
        assert made_inside.statistics().total == CallCounts()
    assert tripped.opened
    assert made_inside.closed


def test_passthrough_does_not_keep_breakers_alive() -> None:
    """Breakers made and dropped inside passthrough() are freed (it may wrap a whole session)."""
    with passthrough():
        gc.collect()
        before = len(CircuitBreakerMonitor.get_circuits())
        for _ in range(1_000):
            CircuitBreaker(name="testing-per-request")
        gc.collect()
        assert len(CircuitBreakerMonitor.get_circuits()) == before


def test_passthrough_says_nothing(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    """passthrough() switches breakers silently: no log record, no event, on entry or exit."""
    caplog.set_level(logging.DEBUG, logger="aiocircuitbreaker")
    events: list[object] = []
    CircuitBreakerMonitor.add_listener(events.append)
    try:
        breaker = make(clock, "testing-quiet")
        with passthrough():
            made_inside = make(clock, "testing-quiet-new")
            assert made_inside.state is State.DISABLED
            assert breaker.state is State.DISABLED
        assert breaker.state is State.CLOSED
    finally:
        CircuitBreakerMonitor.remove_listener(events.append)
    assert events == []
    assert caplog.records == []
