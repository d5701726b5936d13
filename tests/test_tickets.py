"""Permits by hand: admit() and finish(), tickets, and blocks entered and left elsewhere."""

from __future__ import annotations

import contextlib
import contextvars
import threading

import pytest

from aiocircuitbreaker import (
    CallCounts,
    CircuitBreakerError,
    Outcome,
    Ticket,
)
from aiocircuitbreaker.testing import FakeClock

from .conftest import DependencyDown, make


def test_admit_gives_a_ticket_and_finish_judges_its_outcome(clock: FakeClock) -> None:
    """A ticket's outcome is judged from the exception or the result, and returned."""
    breaker = make(clock, failure_result=lambda status: status >= 500)
    ticket = breaker.admit()
    assert isinstance(ticket, Ticket)
    assert ticket.breaker is breaker
    assert not ticket.finished
    assert "call of" in repr(ticket)
    assert breaker.finish(ticket, result=503) is Outcome.FAILURE
    assert ticket.finished
    assert "finished" in repr(ticket)
    assert breaker.finish(breaker.admit(), DependencyDown()) is Outcome.FAILURE
    assert breaker.finish(breaker.admit(), KeyError()) is Outcome.NEUTRAL
    assert breaker.finish(breaker.admit(), result=200) is Outcome.SUCCESS
    assert str(Outcome.SUCCESS) == "success"


def test_an_outcome_can_be_given_as_judged(clock: FakeClock) -> None:
    """An integration that judges for itself passes the outcome (a 503, say)."""
    breaker = make(clock, failure_threshold=1)
    ticket = breaker.admit()
    ticket.finish(outcome=Outcome.FAILURE)
    assert breaker.opened
    with pytest.raises(CircuitBreakerError):
        breaker.admit()


def test_a_ticket_is_finished_exactly_once(clock: FakeClock) -> None:
    """Finishing a ticket twice, or with another breaker, is an error that says so."""
    breaker, other = make(clock), make(clock)
    ticket = breaker.admit()
    with pytest.raises(ValueError, match="was not admitted by"):
        other.finish(ticket)
    breaker.finish(ticket)
    with pytest.raises(RuntimeError, match="already finished"):
        breaker.finish(ticket)
    assert breaker.statistics().total == CallCounts(successes=1)


def test_a_ticket_finished_in_another_thread_finishes_its_own_call(clock: FakeClock) -> None:
    """A probe's ticket finished by another thread closes the breaker it was admitted by."""
    breaker = make(clock, failure_threshold=1)
    with pytest.raises(DependencyDown), breaker:
        raise DependencyDown
    clock.advance(30)
    ticket = breaker.admit()
    assert ticket.probe is not None
    thread = threading.Thread(target=breaker.finish, args=(ticket,))
    thread.start()
    thread.join()
    assert breaker.closed


def test_a_disabled_breakers_ticket_records_nothing(clock: FakeClock) -> None:
    """A ticket of a disabled breaker is a bypass: finishing it records nothing."""
    breaker = make(clock)
    breaker.disable()
    ticket = breaker.admit()
    assert not ticket.counted
    assert "bypass" in repr(ticket)
    assert breaker.finish(ticket, DependencyDown()) is Outcome.NEUTRAL
    assert breaker.finish(breaker.admit(), outcome=Outcome.FAILURE) is Outcome.FAILURE
    assert breaker.statistics().total == CallCounts()


def test_admit_rejects_even_with_a_fallback(clock: FakeClock) -> None:
    """admit() has no call to answer for, so it raises even when a fallback is set."""
    breaker = make(clock, fallback_function=lambda: "cached")
    breaker.force_open()
    with pytest.raises(CircuitBreakerError):
        breaker.admit()
    assert breaker.statistics().total == CallCounts(rejected=1)


def test_a_block_entered_by_an_exit_stack_is_left_by_it(clock: FakeClock) -> None:
    """A breaker entered with an ExitStack ends its own block when the stack closes."""
    breaker = make(clock, failure_threshold=1)

    def run() -> None:
        with contextlib.ExitStack() as stack:
            stack.enter_context(breaker)
            raise DependencyDown

    with pytest.raises(DependencyDown):
        run()
    assert breaker.opened


def test_a_block_left_from_another_context_and_frame_ends_the_newest(clock: FakeClock) -> None:
    """A block left where nothing can tell it apart ends the newest open block."""
    breaker = make(clock, failure_threshold=1)

    def enter_elsewhere() -> None:
        contextvars.copy_context().run(breaker.__enter__)

    enter_elsewhere()
    breaker.__exit__(DependencyDown, DependencyDown(), None)
    assert breaker.opened
    with pytest.raises(RuntimeError, match="without a matching __enter__"):
        breaker.__exit__(None, None, None)
