"""The pure core, tested without a breaker, a clock or an event loop."""

from __future__ import annotations

from aiocircuitbreaker._state import CLOSED, FAILURE, HALF_OPEN, INITIAL, OPEN, Rules, Snapshot

from aiocircuitbreaker import _state
from aiocircuitbreaker._policies import HalfOpen

RULES = Rules(3, None, HalfOpen(), lambda openings, failure: 5.0 * openings)


def test_closed_admits_unchanged() -> None:
    """A closed snapshot admits every call without changing."""
    assert _state.admit(INITIAL, 123.0, RULES, -2) == (INITIAL, True)


def test_open_rejects_until_the_deadline_then_admits_one_probe() -> None:
    """Open rejects before its deadline; at it, the first admission makes it half-open."""
    opened = _state.open_now(INITIAL, 10.0, RULES, 3, None)
    assert opened == Snapshot(OPEN, 1, 15.0, (), None, 3, openings=1)
    assert _state.admit(opened, 14.999, RULES, -2) == (opened, False)
    probing, admitted = _state.admit(opened, 15.0, RULES, -2)
    assert admitted
    assert probing == Snapshot(HALF_OPEN, 2, 15.0, ((-2, 15.0),), None, 3, openings=1)
    assert _state.admit(probing, 99.0, RULES, -3) == (probing, False)


def test_backoff_sees_consecutive_openings() -> None:
    """Each re-opening without a close in between counts one more opening."""
    opened = _state.open_now(INITIAL, 0.0, RULES, 3, None)
    probing, _ = _state.admit(opened, 5.0, RULES, -2)
    reopened = _state.probe_finished(probing, -2, FAILURE, False, 6.0, RULES, None)
    assert reopened.openings == 2
    assert reopened.open_until == 6.0 + 10.0
    assert reopened.tripped_failures == 4
    assert _state.close(reopened).openings == 0


def test_current_state_is_lazy() -> None:
    """An open snapshot reads as half-open once its deadline has passed."""
    opened = _state.open_now(INITIAL, 0.0, RULES, 1, None)
    assert _state.current_state(opened, 4.0, RULES) is OPEN
    assert _state.current_state(opened, 5.0, RULES) is HALF_OPEN
    assert _state.current_state(INITIAL, 1.0, RULES) is CLOSED


def test_counting_failures() -> None:
    """A closed snapshot gets a counter on its first failure and keeps it after."""
    counting = _state.count_failures(INITIAL)
    assert counting.failures is not None
    assert _state.count_failures(counting) is counting
    assert _state.failure_count(counting) == 0
    next(counting.failures)
    next(counting.failures)
    assert _state.failure_count(counting) == 2
    assert _state.forget_failures(counting) == INITIAL


def test_close_and_stale_probes() -> None:
    """close() starts a new closed generation; unknown probe permits change nothing."""
    probing = Snapshot(HALF_OPEN, 4, 1.0, ((-7, 1.0),), None, 2)
    assert _state.close(probing) == Snapshot(CLOSED, 5, 1.0, (), None, 0)
    assert _state.probe_finished(probing, -8, FAILURE, False, 2.0, RULES, None) is probing
    assert _state.probe_finished(INITIAL, -7, FAILURE, False, 2.0, RULES, None) is INITIAL
