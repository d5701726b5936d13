"""The pure core, tested without a breaker, a clock or an event loop."""

from __future__ import annotations

from aiocircuitbreaker import _state
from aiocircuitbreaker._state import CLOSED, HALF_OPEN, INITIAL, OPEN, Snapshot


def test_closed_admits_unchanged() -> None:
    """A closed snapshot admits every call without changing."""
    assert _state.admit(INITIAL, 123.0, 1) is INITIAL


def test_open_rejects_until_the_deadline_then_admits_one_probe() -> None:
    """Open rejects before its deadline; at it, the first admission makes it half-open."""
    opened = _state.trip(INITIAL, 3, now=10.0, recovery_timeout=5.0)
    assert opened == Snapshot(OPEN, 1, 15.0, 0, None, 3)
    assert _state.admit(opened, 14.999, 1) is None
    probing = _state.admit(opened, 15.0, 1)
    assert probing == Snapshot(HALF_OPEN, 2, 15.0, 1, None, 3)
    assert _state.admit(probing, 99.0, 1) is None
    assert _state.admit(probing, 99.0, 2) == Snapshot(HALF_OPEN, 2, 15.0, 2, None, 3)


def test_current_state_is_lazy() -> None:
    """An open snapshot reads as half-open once its deadline has passed."""
    opened = _state.trip(INITIAL, 1, now=0.0, recovery_timeout=1.0)
    assert _state.current_state(opened, 0.5) is OPEN
    assert _state.current_state(opened, 1.0) is HALF_OPEN
    assert _state.current_state(INITIAL, 1.0) is CLOSED


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


def test_close_and_release() -> None:
    """close() starts a new closed generation; release_probe() frees one probe slot."""
    probing = Snapshot(HALF_OPEN, 4, 1.0, 1, None, 2)
    assert _state.close(probing) == Snapshot(CLOSED, 5, 1.0, 0, None, 0)
    assert _state.release_probe(probing) == Snapshot(HALF_OPEN, 4, 1.0, 0, None, 2)
    assert _state.release_probe(_state.release_probe(probing)).probes == 0
