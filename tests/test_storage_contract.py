"""The storage contract: what every storage must do, whatever keeps the breaker's state.

A breaker keeps its value, and the counting of that value's generation, in a storage: the
protocol of ``aiocircuitbreaker/_storage.py`` (``read``, ``record``, ``acquire``, ``release``,
``replace``; each one atomic step, only durations crossing it). This suite uses nothing but
that protocol, and the optional lock-free ``failure_counter`` and ``success_counter`` where a
storage has them (their tests run for the kinds that ``OPTIONAL`` lists as having them), so
that every storage is checked by the same tests, unchanged:

- one behavioural test per rule of the protocol;
- threads racing on one storage (each operation is one atomic step);
- a hypothesis state machine checking every answer and every reading of random steps against a
  naive reference model.

Time is injected. A storage measures ages, leases and time windows with its own clock, and a
storage kind says how to move that clock forward. Every time in this suite is a whole number
of quarter seconds, exact in binary floating point, so answers are compared exactly; and the
time window tests never depend on where the storage's clock puts its bucket boundaries (no
call is looked at between ``seconds - bucket_length`` and ``seconds`` after it started, except
in the state machine, whose windows have quarter-second buckets: there the phase cancels out).

Adding a storage kind
---------------------
Write a factory, a context manager (for setup and teardown: a server, a key prefix, a flush),
that yields a *harness*, an object with two methods (see :class:`Harness`):

``storage(window=None) -> Storage``
    A fresh storage: value ``Value()`` (the initial value), nothing counted, counting closed
    calls in ``window`` (``None``, a ``CountWindow`` or a ``TimeWindow``: the rate window is
    a setting of the storage, given when it is made), measuring time on the harness's clock.
    Two storages made by one harness share nothing but that clock.
``advance(seconds)``
    Move the harness's clock, that of every storage it made, forward by exactly ``seconds``.
    For the in-memory storage that is a ``FakeClock`` passed as ``clock=``; a Redis storage
    would take its time in tests from a fake clock the harness controls (kept in the store,
    say), never from the server's ``TIME``.

Then add the factory to ``KINDS`` under a name (and to ``OPTIONAL`` the lock-free counters its
storages have, if any): every test below runs against the new kind
too (the ids show it: ``test_...[redis]``).
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from typing import Protocol, TypeAlias

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from aiocircuitbreaker import CountWindow, TimeWindow
from aiocircuitbreaker.storage import (
    InMemoryStorage,
    Outcome,
    Probes,
    Reading,
    State,
    Storage,
    Value,
)
from aiocircuitbreaker.testing import FakeClock

from .conftest import fast_switching
from .conftest import run_threads as run_all
from .redis import server as redis_server

WindowSetting: TypeAlias = CountWindow | TimeWindow | None
Tally: TypeAlias = tuple[int, int, int, int]
FailureCounter: TypeAlias = Callable[[int], Iterator[int] | None]

SUCCESS, FAILURE, NEUTRAL = Outcome.SUCCESS, Outcome.FAILURE, Outcome.NEUTRAL
CLOSED, OPEN, HALF_OPEN = State.CLOSED, State.OPEN, State.HALF_OPEN
FORCED_OPEN, DISABLED, METRICS_ONLY = State.FORCED_OPEN, State.DISABLED, State.METRICS_ONLY
COUNTING = (CLOSED, METRICS_ONLY)
NOT_COUNTING = (OPEN, HALF_OPEN, FORCED_OPEN, DISABLED)
NOT_HALF_OPEN = (CLOSED, OPEN, FORCED_OPEN, DISABLED, METRICS_ONLY)
INF = math.inf
QUARTER = 0.25
NOTHING: Tally = (0, 0, 0, 0)


# -- the storage kinds ------------------------------------------------------------------------


class Harness(Protocol):
    """One storage kind, as the tests see it: fresh storages on one clock they can advance."""

    def storage(self, window: WindowSetting = None) -> Storage:
        """Return a fresh storage counting in ``window``, on this harness's clock."""
        ...

    def advance(self, seconds: float) -> None:
        """Move this harness's clock (every storage it made) forward by ``seconds``."""
        ...


class MemoryHarness:
    """In-memory storages on one ``FakeClock`` (started away from zero, as a real clock is)."""

    def __init__(self) -> None:
        self.clock = FakeClock(1000.0)

    def storage(self, window: WindowSetting = None) -> Storage:
        """Return a fresh in-memory storage on the fake clock."""
        return InMemoryStorage(clock=self.clock, window=window)

    def advance(self, seconds: float) -> None:
        """Advance the fake clock."""
        self.clock.advance(seconds)


@contextmanager
def memory() -> Iterator[Harness]:
    """Make the in-memory kind's harness (nothing to set up or tear down)."""
    yield MemoryHarness()


# Every storage kind the suite runs against: name -> factory of its harness.
KINDS: dict[str, Callable[[], AbstractContextManager[Harness]]] = {
    "memory": memory,
    "redis": redis_server.harness,  # a real redis-server (tests/redis/server.py)
}


# The optional lock-free counters each kind's storages have (their tests run for those kinds).
OPTIONAL: dict[str, frozenset[str]] = {
    "memory": frozenset({"failure_counter", "success_counter"}),
    "redis": frozenset({"success_counter"}),
}


def _having(feature: str) -> list[str]:
    return sorted(kind for kind in KINDS if feature in OPTIONAL.get(kind, frozenset()))


@pytest.fixture(params=sorted(KINDS))
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    """Return the harness of one storage kind (every test runs once per kind)."""
    factory = KINDS[request.param]
    with factory() as made:
        yield made


@pytest.fixture(params=_having("failure_counter"))
def failure_counting(request: pytest.FixtureRequest) -> Iterator[Harness]:
    """Return the harness of a kind whose storages have the lock-free failure counter."""
    with KINDS[request.param]() as made:
        yield made


@pytest.fixture(params=_having("success_counter"))
def success_counting(request: pytest.FixtureRequest) -> Iterator[Harness]:
    """Return the harness of a kind whose storages have the lock-free success counter."""
    with KINDS[request.param]() as made:
        yield made


# The rate windows a storage can count in (a time window of one minute: every call the tests
# look at started well inside it, or a whole minute before).
WINDOWS: dict[str, WindowSetting] = {
    "no-window": None,
    "count-window": CountWindow(5),
    "time-window": TimeWindow(60.0),
}
each_window = pytest.mark.parametrize("window", list(WINDOWS.values()), ids=list(WINDOWS))

# A half-open value, generation G, as a breaker stores it (its open period ended 0.5 s before).
G = 1
HALF_OPENED = Value(HALF_OPEN, G, failures=3, openings=1, open_for=-0.5)


def half_open(harness: Harness, window: WindowSetting = None) -> Storage:
    """Return a fresh storage holding ``HALF_OPENED``."""
    storage = harness.storage(window)
    assert storage.replace(0, HALF_OPENED)
    return storage


def streak(counts: Tally | None) -> int:
    """Return the failure streak of a ``record()`` answer that must not be ``None``."""
    assert counts is not None
    return counts[3]


def in_window(window: WindowSetting, calls: int) -> int:
    """Return how many of ``calls`` recent calls a window counts (none without a window)."""
    return 0 if window is None else calls


def failure_counter(storage: Storage) -> FailureCounter:
    """Return the storage's optional lock-free failure counter (OPTIONAL says it has one)."""
    counter: FailureCounter | None = getattr(storage, "failure_counter", None)
    assert counter is not None, f"{storage!r} has no failure_counter: correct OPTIONAL"
    return counter


# -- reading a fresh storage ------------------------------------------------------------------


@each_window
def test_a_fresh_storage_reads_the_initial_value(harness: Harness, window: WindowSetting) -> None:
    """A fresh storage holds the initial value, aged 0, with nothing counted and no probes."""
    reading = harness.storage(window).read()
    assert reading == Reading(Value(), 0.0, NOTHING)
    assert reading.value == Value(CLOSED, 0, 0, 0, 0.0)
    assert reading.probes is None
    assert reading.leases == ()


# -- record() ---------------------------------------------------------------------------------


def test_record_counts_failures_in_a_row_and_a_success_ends_the_streak(harness: Harness) -> None:
    """Without a window, record() counts failures in a row, and a success ends the streak."""
    storage = harness.storage()
    assert [storage.record(0, True) for _ in range(3)] == [(0, 0, 0, 1), (0, 0, 0, 2), (0, 0, 0, 3)]
    assert storage.read().counts == (0, 0, 0, 3)
    assert storage.record(0, False) == NOTHING
    assert storage.read().counts == NOTHING
    assert storage.record(0, False) == NOTHING
    # Without a window slowness and durations count for nothing: only the streak.
    assert storage.record(0, True, True, 2.0) == (0, 0, 0, 1)
    assert storage.record(0, False, True, 2.0) == NOTHING


@each_window
@pytest.mark.parametrize("state", COUNTING)
def test_record_counts_closed_and_metrics_only_generations(
    harness: Harness, window: WindowSetting, state: State
) -> None:
    """record() counts the calls of a counting generation, closed or metrics-only alike."""
    storage = harness.storage(window)
    assert storage.replace(0, Value(state, 1))
    answers = [storage.record(1, failed) for failed in (True, True, False, True)]
    assert [streak(answer) for answer in answers] == [1, 2, 0, 1]
    assert storage.read().counts == (in_window(window, 4), in_window(window, 3), 0, 1)


@each_window
def test_record_of_another_generation_is_none_and_changes_nothing(
    harness: Harness, window: WindowSetting
) -> None:
    """record() for any generation but the current one returns None and counts nothing."""
    storage = harness.storage(window)
    storage.record(0, True)
    before = storage.read()
    assert storage.record(1, True) is None  # not yet
    assert storage.record(-1, False) is None  # never was
    assert storage.read() == before
    assert storage.replace(0, Value(CLOSED, 1))
    assert storage.record(0, True) is None  # no longer
    assert storage.record(0, False) is None
    assert storage.read().counts == NOTHING


@each_window
@pytest.mark.parametrize("state", NOT_COUNTING)
def test_record_in_a_state_that_does_not_count_is_none(
    harness: Harness, window: WindowSetting, state: State
) -> None:
    """record() for a current generation that does not count (open, half-open, ...) is None."""
    storage = harness.storage(window)
    assert storage.replace(0, Value(state, 1, failures=2, openings=1, open_for=5.0))
    before = storage.read()
    assert before.counts is None
    assert storage.record(1, True) is None
    assert storage.record(1, False, True, 1.0) is None
    assert storage.read() == before


def test_a_count_window_counts_the_last_calls_and_the_streak_beyond_them(harness: Harness) -> None:
    """A count window gives (calls, failures, slow_calls, streak) over its last calls only."""
    storage = harness.storage(CountWindow(3))
    assert storage.record(0, True) == (1, 1, 0, 1)
    assert storage.record(0, False, True) == (2, 1, 1, 0)
    assert storage.record(0, True, True) == (3, 2, 2, 1)
    assert storage.record(0, True) == (3, 2, 2, 2)  # the first call left: slow success, 2 failures
    assert storage.record(0, True) == (3, 3, 1, 3)  # the streak is not limited to the window
    harness.advance(1000.0)  # a count window does not age
    assert storage.read().counts == (3, 3, 1, 3)


def test_a_time_window_credits_a_call_to_when_it_started(harness: Harness) -> None:
    """A time window counts a call at its start (now minus its duration), not at its end."""
    storage = harness.storage(TimeWindow(10.0, buckets=10))
    assert storage.record(0, True) == (1, 1, 0, 1)  # started now
    assert storage.record(0, False, duration=30.0) == (1, 1, 0, 0)  # started before the window
    assert storage.record(0, True, True, 5.0) == (2, 2, 1, 1)  # started 5 s ago: in it
    harness.advance(6.0)
    # The slow call finished last but started 11 s ago: it left first. The first, 6 s ago, stays.
    assert storage.read().counts == (1, 1, 0, 1)
    harness.advance(4.0)
    assert storage.read().counts == (0, 0, 0, 1)  # the streak outlives the window
    assert storage.record(0, True, False, 2.0) == (1, 1, 0, 2)


# -- replace() --------------------------------------------------------------------------------


def test_replace_is_compare_and_set_on_the_generation(harness: Harness) -> None:
    """replace() stores its value only if the current generation is the one expected."""
    storage = harness.storage()
    opened = Value(OPEN, 1, failures=3, openings=1, open_for=30.0)
    assert not storage.replace(1, opened)
    assert storage.read().value == Value()
    assert storage.replace(0, opened)
    assert not storage.replace(0, Value(CLOSED, 1))  # a second writer that read generation 0
    assert storage.read().value == opened
    assert storage.replace(1, Value(CLOSED, 2))
    assert storage.read().value == Value(CLOSED, 2)


@pytest.mark.parametrize(
    "value",
    [
        Value(OPEN, 1, failures=5, openings=3, open_for=12.75),
        Value(HALF_OPEN, 2, failures=1, openings=2, open_for=-3.5),
        Value(FORCED_OPEN, 3, failures=4, openings=0, open_for=INF),
        Value(DISABLED, 4, failures=2),
        Value(METRICS_ONLY, 5),
        Value(CLOSED, 10**15, failures=7),
    ],
    ids=lambda value: str(value.state),
)
def test_replace_stores_the_value_as_given(harness: Harness, value: Value) -> None:
    """A stored value reads back equal, every field (an infinite or negative open_for too)."""
    storage = harness.storage()
    assert storage.replace(0, value)
    assert storage.read().value == value


@each_window
@pytest.mark.parametrize("state", COUNTING)
def test_replace_starts_the_counting_afresh_from_the_values_failures(
    harness: Harness, window: WindowSetting, state: State
) -> None:
    """A counting value starts with an empty window and a streak of its ``failures``."""
    storage = harness.storage(window)
    for failed in (True, True, False, True):
        storage.record(0, failed, True)
    assert storage.replace(0, Value(state, 1, failures=4))
    assert storage.read().counts == (0, 0, 0, 4)
    one = in_window(window, 1)
    assert storage.record(1, True) == (one, one, 0, 5)
    assert storage.record(1, False) == (2 * one, one, 0, 0)


@each_window
def test_replace_does_not_carry_counts_through_other_states(
    harness: Harness, window: WindowSetting
) -> None:
    """Counts of a generation die with it: closing again starts from the new value's failures."""
    storage = harness.storage(window)
    for _ in range(3):
        storage.record(0, True)
    assert storage.replace(0, Value(OPEN, 1, failures=3, openings=1, open_for=30.0))
    assert storage.replace(1, Value(HALF_OPEN, 2))
    assert storage.replace(2, Value(CLOSED, 3))
    assert storage.read().counts == NOTHING
    one = in_window(window, 1)
    assert storage.record(3, True) == (one, one, 0, 1)


def test_replace_starts_half_open_with_no_probes(harness: Harness) -> None:
    """A half-open value starts with no probes: old slots, outcomes and leases are gone."""
    storage = half_open(harness)
    assert storage.acquire(G, 1, 3, None, 10.0) == Probes(running=1, admitted=True)
    assert storage.acquire(G, 2, 3, None, 10.0) == Probes(running=2, admitted=True)
    assert storage.release(G, 1, FAILURE, True) == Probes(running=1, failures=1, slow=1, run=1)
    assert storage.replace(G, Value(HALF_OPEN, G + 1, failures=4, openings=2))
    reading = storage.read()
    assert reading.probes == Probes()
    assert reading.leases == ()
    assert storage.release(G + 1, 2, SUCCESS) is None  # ticket 2's slot was of the old period
    harness.advance(20.0)  # the old lease would have run out by now: it is not counted here
    assert storage.acquire(G + 1, 3, 3, None, 10.0) == Probes(running=1, admitted=True)


def test_replace_resets_the_age(harness: Harness) -> None:
    """A stored value is aged from when it was stored; a refused replace() stores nothing."""
    storage = harness.storage()
    harness.advance(7.0)
    assert storage.read().age == 7.0
    assert not storage.replace(5, Value(OPEN, 6))
    assert storage.read().age == 7.0
    assert storage.replace(0, Value(OPEN, 1, open_for=30.0))
    assert storage.read().age == 0.0
    harness.advance(2.5)
    assert storage.read().age == 2.5


# -- read() -----------------------------------------------------------------------------------


def test_read_reports_the_age_by_the_storages_clock(harness: Harness) -> None:
    """read() gives the seconds since the value was stored, as the storage's clock measures."""
    storage = harness.storage()
    assert storage.read().age == 0.0
    harness.advance(2.5)
    assert storage.read().age == 2.5
    harness.advance(0.0)
    assert storage.read().age == 2.5
    harness.advance(1000.25)
    assert storage.read().age == 1002.75


def test_open_for_is_a_duration_from_when_the_value_was_stored(harness: Harness) -> None:
    """A value stored with open_for=30 reads back with open_for=30 and its age since storing."""
    storage = harness.storage()
    harness.advance(50.0)  # the storage's clock moved on before the value was stored
    opened = Value(OPEN, 1, failures=3, openings=1, open_for=30.0)
    assert storage.replace(0, opened)
    harness.advance(10.0)
    reading = storage.read()
    assert reading.value == opened  # a duration, not a deadline on anyone's clock
    assert reading.age == 10.0  # so 20 s of the open period are left, for every reader


Step: TypeAlias = Callable[[Storage], object]


def _script() -> list[Step | float]:
    """Return steps through counting and probing; a float is an advance of the clock."""
    return [
        lambda s: s.record(0, True),
        2.0,
        lambda s: s.record(0, False, True, 1.0),
        lambda s: s.record(0, True, False, 3.0),
        30.0,
        lambda s: s.record(0, True),
        45.0,  # the first calls left a one-minute time window
        lambda s: s.record(0, False, False, 10.0),
        lambda s: s.replace(0, HALF_OPENED),
        lambda s: s.acquire(G, 1, 2, None, 5.0),
        3.0,
        lambda s: s.acquire(G, 2, 2, None, 5.0),
        4.0,  # ticket 1 ran out 2 s ago, ticket 2 is still running
        lambda s: s.acquire(G, 3, 2, None, 5.0),
        lambda s: s.release(G, 2, SUCCESS, True),
        10.0,
        lambda s: s.release(G, 3, FAILURE),
        lambda s: s.replace(G, Value(CLOSED, G + 1, failures=1)),
        lambda s: s.record(G + 1, True, True, 0.5),
    ]


@each_window
def test_read_changes_nothing(harness: Harness, window: WindowSetting) -> None:
    """Reads change no later answer: a storage read at every step answers as one never read."""
    quiet, watched = harness.storage(window), harness.storage(window)
    for step in _script():
        if isinstance(step, float):
            harness.advance(step)
            continue
        first = watched.read()
        assert watched.read() == first  # reading twice: the same reading
        assert step(watched) == step(quiet)
    assert watched.read() == quiet.read()


def test_a_read_does_not_expire_a_lease(harness: Harness) -> None:
    """A lease that ran out still reads as running until a probe operation drops it."""
    storage = half_open(harness)
    assert storage.acquire(G, 1, 1, 1, 5.0) == Probes(running=1, admitted=True)
    harness.advance(8.0)
    for _ in range(3):
        assert storage.read().probes == Probes(running=1)
        assert storage.read().leases == (-3.0,)
    assert storage.acquire(G, 2, 1, 1, 5.0) == Probes(failures=1, expired=(3.0,), run=1)


# -- acquire() --------------------------------------------------------------------------------


@pytest.mark.parametrize("successes", [3, None], ids=["by-count", "by-rate"])
def test_acquire_admits_up_to_probes_at_once(harness: Harness, successes: int | None) -> None:
    """acquire() gives a slot while fewer than ``probes`` run, and refuses beyond."""
    storage = half_open(harness)
    assert storage.acquire(G, 1, 2, successes, INF) == Probes(running=1, admitted=True)
    assert storage.acquire(G, 2, 2, successes, INF) == Probes(running=2, admitted=True)
    assert storage.acquire(G, 3, 2, successes, INF) == Probes(running=2)
    assert storage.acquire(G, 4, 2, successes, INF) == Probes(running=2)
    assert storage.read().probes == Probes(running=2)


def test_acquire_gives_a_freed_slot_again_while_undecided(harness: Harness) -> None:
    """With ``successes`` set, a slot given back is free again until the period is decided."""
    storage = half_open(harness)
    assert storage.acquire(G, 1, 2, 3, INF) == Probes(running=1, admitted=True)
    assert storage.acquire(G, 2, 2, 3, INF) == Probes(running=2, admitted=True)
    assert storage.release(G, 1, SUCCESS) == Probes(running=1, successes=1)
    assert storage.acquire(G, 3, 2, 3, INF) == Probes(running=2, successes=1, admitted=True)


def test_acquire_refuses_once_a_probe_failed(harness: Harness) -> None:
    """With ``successes`` set, one failed probe decides the period: no slot is given after."""
    storage = half_open(harness)
    assert storage.acquire(G, 1, 3, 2, INF) == Probes(running=1, admitted=True)
    assert storage.acquire(G, 2, 3, 2, INF) == Probes(running=2, admitted=True)
    assert storage.release(G, 1, FAILURE) == Probes(running=1, failures=1, run=1)
    assert storage.acquire(G, 3, 3, 2, INF) == Probes(running=1, failures=1, run=1)
    assert storage.release(G, 2, SUCCESS) == Probes(successes=1, failures=1)
    assert storage.acquire(G, 4, 3, 2, INF) == Probes(successes=1, failures=1)


def test_acquire_refuses_once_enough_probes_succeeded(harness: Harness) -> None:
    """With ``successes`` set, that many successes decide the period, even with slots free."""
    storage = half_open(harness)
    assert storage.acquire(G, 1, 3, 2, INF) == Probes(running=1, admitted=True)
    assert storage.release(G, 1, SUCCESS) == Probes(successes=1)
    assert storage.acquire(G, 2, 3, 2, INF) == Probes(running=1, successes=1, admitted=True)
    assert storage.acquire(G, 3, 3, 2, INF) == Probes(running=2, successes=1, admitted=True)
    assert storage.release(G, 2, SUCCESS) == Probes(running=1, successes=2)
    assert storage.acquire(G, 4, 3, 2, INF) == Probes(running=1, successes=2)


def test_acquire_judged_by_rate_admits_probes_in_all(harness: Harness) -> None:
    """With ``successes=None``, finished probes keep their slots: ``probes`` in all, no more."""
    storage = half_open(harness)
    assert storage.acquire(G, 1, 2, None, INF) == Probes(running=1, admitted=True)
    assert storage.acquire(G, 2, 2, None, INF) == Probes(running=2, admitted=True)
    assert storage.release(G, 1, SUCCESS) == Probes(running=1, successes=1)
    assert storage.acquire(G, 3, 2, None, INF) == Probes(running=1, successes=1)
    assert storage.release(G, 2, FAILURE, True) == Probes(successes=1, failures=1, slow=1, run=1)
    assert storage.acquire(G, 4, 2, None, INF) == Probes(successes=1, failures=1, slow=1, run=1)


# -- leases -----------------------------------------------------------------------------------


def test_a_lease_that_ran_out_is_a_failed_probe_for_the_next_probe_operation(
    harness: Harness,
) -> None:
    """The next probe operation drops each lease that ran out, as a failure, saying when it did."""
    storage = half_open(harness)
    assert storage.acquire(G, 1, 2, 1, 5.0) == Probes(running=1, admitted=True)
    harness.advance(2.0)
    assert storage.acquire(G, 2, 2, 1, 5.0) == Probes(running=2, admitted=True)
    harness.advance(6.0)  # ticket 1 ran out 3 s ago, ticket 2 1 s ago
    assert storage.acquire(G, 3, 2, 1, 5.0) == Probes(failures=2, expired=(3.0, 1.0), run=2)
    assert storage.acquire(G, 4, 2, 1, 5.0) == Probes(failures=2, run=2)  # each reported once
    assert storage.release(G, 1, SUCCESS) is None  # its slot is gone: a late outcome is nothing
    assert storage.read().probes == Probes(failures=2, run=2)


def test_a_lease_runs_out_after_exactly_lease_seconds(harness: Harness) -> None:
    """A slot is held for at most ``lease`` seconds: still held just before, gone at it."""
    storage = half_open(harness)
    assert storage.acquire(G, 1, 2, None, 5.0) == Probes(running=1, admitted=True)
    assert storage.acquire(G, 2, 2, None, INF) == Probes(running=2, admitted=True)
    harness.advance(4.75)
    assert storage.read().leases == (0.25, INF)
    assert storage.acquire(G, 3, 2, None, 5.0) == Probes(running=2)
    harness.advance(0.25)
    # Judged by rate, the probe that ran out is a finished one: it keeps its slot in the count.
    assert storage.acquire(G, 3, 2, None, 5.0) == Probes(
        running=1, failures=1, expired=(0.0,), run=1
    )
    assert storage.release(G, 2, SUCCESS) == Probes(successes=1, failures=1)
    assert storage.acquire(G, 4, 2, None, 5.0) == Probes(successes=1, failures=1)


def test_release_reports_the_leases_that_ran_out(harness: Harness) -> None:
    """release() is a probe operation too: it drops the leases that ran out, as failures."""
    storage = half_open(harness)
    assert storage.acquire(G, 1, 2, 2, 5.0) == Probes(running=1, admitted=True)
    assert storage.acquire(G, 2, 2, 2, 10.0) == Probes(running=2, admitted=True)
    harness.advance(6.0)
    assert storage.release(G, 2, SUCCESS) == Probes(successes=1, failures=1, expired=(1.0,))
    assert storage.read().probes == Probes(successes=1, failures=1)


def test_reading_leases_gives_seconds_left_soonest_first(harness: Harness) -> None:
    """Reading.leases gives the seconds left on each running lease, soonest first."""
    storage = half_open(harness)
    assert storage.acquire(G, 1, 3, None, 10.0) == Probes(running=1, admitted=True)
    harness.advance(2.0)
    assert storage.acquire(G, 2, 3, None, 3.0) == Probes(running=2, admitted=True)
    assert storage.acquire(G, 3, 3, None, INF) == Probes(running=3, admitted=True)
    harness.advance(1.0)
    assert storage.read().leases == (2.0, 7.0, INF)
    harness.advance(4.0)
    reading = storage.read()
    assert reading.leases == (-2.0, 3.0, INF)  # nothing expired by reading
    assert reading.probes == Probes(running=3)
    assert storage.release(G, 3, SUCCESS) == Probes(
        running=1, successes=1, failures=1, expired=(2.0,)
    )
    assert storage.read().leases == (3.0,)


def test_a_ticket_holds_at_most_one_slot(harness: Harness) -> None:
    """A second acquire() for a ticket holding a slot never leaves a slot without a lease."""
    # (Tickets are numbered by each process on its own: processes sharing a storage reuse them.)
    storage = half_open(harness)
    assert storage.acquire(G, 7, 2, None, 5.0) == Probes(running=1, admitted=True)
    assert storage.acquire(G, 7, 2, None, 5.0) == Probes(running=1, admitted=True)  # kept
    reading = storage.read()
    assert reading.probes is not None
    assert reading.probes.running == len(reading.leases)  # one lease per running probe
    harness.advance(5.0)
    storage.release(G, 7, SUCCESS)  # a probe operation: drops every lease that ran out
    assert storage.read().probes == Probes(failures=1, run=1)  # no slot outlives its lease


# -- release() --------------------------------------------------------------------------------


def test_release_of_a_ticket_without_a_slot_is_none_and_changes_nothing(harness: Harness) -> None:
    """release() of a ticket that holds no slot (never had one, or gave it back) is None."""
    storage = half_open(harness)
    assert storage.acquire(G, 1, 2, 2, 5.0) == Probes(running=1, admitted=True)
    before = storage.read()
    assert storage.release(G, 99, FAILURE) is None
    assert storage.read() == before
    assert storage.release(G, 1, SUCCESS) == Probes(successes=1)
    assert storage.release(G, 1, FAILURE) is None  # an outcome counts once
    assert storage.read().probes == Probes(successes=1)


def test_release_of_a_ticket_without_a_slot_reports_the_leases_it_found_run_out(
    harness: Harness,
) -> None:
    """release() of a ticket without a slot still drops the leases that ran out, and says so."""
    storage = half_open(harness)
    assert storage.acquire(G, 1, 3, None, 5.0) == Probes(running=1, admitted=True)
    assert storage.acquire(G, 2, 3, None, 6.0) == Probes(running=2, admitted=True)
    harness.advance(7.0)
    # Ticket 99 never had a slot; ticket 1's lease ran out 2 s ago, ticket 2's 1 s ago.
    assert storage.release(G, 99, SUCCESS) == Probes(failures=2, expired=(2.0, 1.0), run=2)
    assert storage.release(G, 99, SUCCESS) is None  # nothing left to report
    assert storage.read().probes == Probes(failures=2, run=2)


def test_release_of_a_ticket_whose_lease_ran_out_only_reports_the_expiry(
    harness: Harness,
) -> None:
    """A late outcome of a probe that ran out is not counted: its lease counts as a failure."""
    storage = half_open(harness)
    assert storage.acquire(G, 1, 3, None, 5.0) == Probes(running=1, admitted=True)
    assert storage.acquire(G, 2, 3, None, 6.0) == Probes(running=2, admitted=True)
    harness.advance(7.0)
    assert storage.release(G, 1, SUCCESS) == Probes(failures=2, expired=(2.0, 1.0), run=2)
    assert storage.release(G, 2, SUCCESS) is None
    assert storage.read().probes == Probes(failures=2, run=2)


@pytest.mark.parametrize("successes", [1, None], ids=["by-count", "by-rate"])
def test_release_with_a_neutral_outcome_only_frees_the_slot(
    harness: Harness, successes: int | None
) -> None:
    """A neutral outcome frees its slot and counts nothing: no success, failure or slowness."""
    storage = half_open(harness)
    assert storage.acquire(G, 1, 1, successes, INF) == Probes(running=1, admitted=True)
    assert storage.acquire(G, 2, 1, successes, INF) == Probes(running=1)
    assert storage.release(G, 1, NEUTRAL, True) == Probes()
    assert storage.read().probes == Probes()
    assert storage.acquire(G, 2, 1, successes, INF) == Probes(running=1, admitted=True)


def test_release_counts_finished_probes_that_were_slow(harness: Harness) -> None:
    """A slow success or failure counts as slow; a slow neutral outcome does not."""
    storage = half_open(harness)
    for ticket in (1, 2, 3):
        assert storage.acquire(G, ticket, 3, None, INF) == Probes(running=ticket, admitted=True)
    assert storage.release(G, 1, SUCCESS, True) == Probes(running=2, successes=1, slow=1)
    assert storage.release(G, 2, FAILURE, True) == Probes(
        running=1, successes=1, failures=1, slow=2, run=1
    )
    assert storage.release(G, 3, NEUTRAL, True) == Probes(successes=1, failures=1, slow=2, run=1)


# -- stale generations and other states -------------------------------------------------------


def test_operations_on_a_stale_generation_change_nothing(harness: Harness) -> None:
    """Every operation for an older or a newer generation answers None/False, changing nothing."""
    storage = half_open(harness)
    assert storage.acquire(G, 1, 1, 1, 5.0) == Probes(running=1, admitted=True)
    harness.advance(6.0)  # ticket 1 ran out: a probe operation of generation G would count it
    before = storage.read()
    for generation in (G - 1, G + 1):
        assert storage.record(generation, True) is None
        assert storage.acquire(generation, 2, 1, 1, 5.0) is None
        assert storage.release(generation, 1, FAILURE) is None
        assert not storage.replace(generation, Value(CLOSED, 9))
    assert storage.read() == before


@pytest.mark.parametrize("state", NOT_HALF_OPEN)
def test_probe_operations_outside_half_open_are_none(harness: Harness, state: State) -> None:
    """acquire() and release() for a current generation that is not half-open are None."""
    storage = harness.storage()
    assert storage.replace(0, Value(state, 1, failures=1))
    before = storage.read()
    assert before.probes is None
    assert before.leases == ()
    assert storage.acquire(1, 1, 1, 1, 5.0) is None
    assert storage.release(1, 1, SUCCESS) is None
    assert storage.read() == before


# -- the optional lock-free failure counter ---------------------------------------------------


def test_the_failure_counter_counts_failures_like_record(failure_counting: Harness) -> None:
    """Each next() on the lock-free counter counts a failure, returning the streak before it."""
    harness = failure_counting
    storage = harness.storage()
    counter_of = failure_counter(storage)
    counter = counter_of(0)
    assert counter is not None
    assert [next(counter) for _ in range(3)] == [0, 1, 2]
    assert storage.read().counts == (0, 0, 0, 3)
    assert storage.record(0, True) == (0, 0, 0, 4)
    assert next(counter) == 4
    assert storage.record(0, False) == NOTHING  # the streak ends: the old counter with it
    assert storage.read().counts == NOTHING
    fresh = counter_of(0)
    assert fresh is not None
    assert next(fresh) == 0
    assert storage.read().counts == (0, 0, 0, 1)
    assert storage.replace(0, Value(CLOSED, 1, failures=2))
    restored = counter_of(1)
    assert restored is not None
    assert next(restored) == 2
    next(fresh)  # a counter of an older generation counts nowhere
    assert storage.read().counts == (0, 0, 0, 3)


@pytest.mark.parametrize("state", NOT_COUNTING)
def test_the_failure_counter_is_only_for_a_counting_generation_without_a_window(
    failure_counting: Harness, state: State
) -> None:
    """failure_counter() is None for another generation, a state not counting, or a window."""
    harness = failure_counting
    storage = harness.storage()
    counter_of = failure_counter(storage)
    assert counter_of(1) is None
    assert storage.replace(0, Value(state, 1))
    assert counter_of(1) is None
    for window in (CountWindow(3), TimeWindow(10.0)):
        windowed = harness.storage(window)
        assert failure_counter(windowed)(0) is None


# -- concurrency ------------------------------------------------------------------------------

THREADS = 32


def run_threads(count: int, target: Callable[[int], None]) -> None:
    """Run ``target(index)`` in ``count`` threads released together, switching as often as
    the interpreter can; re-raise what one raises."""
    with fast_switching():
        run_all(count, target)


@pytest.mark.parametrize("window", [None, CountWindow(10_000)], ids=["no-window", "count-window"])
def test_concurrent_failures_make_an_exact_streak(harness: Harness, window: WindowSetting) -> None:
    """N threads recording K failures each make a streak of N*K, each failure its own place."""
    storage = harness.storage(window)
    per_thread = 100
    places: list[list[int]] = [[] for _ in range(THREADS)]

    def fail(index: int) -> None:
        mine = places[index]
        for _ in range(per_thread):
            mine.append(streak(storage.record(0, True)))

    run_threads(THREADS, fail)
    total = THREADS * per_thread
    assert sorted(itertools.chain.from_iterable(places)) == list(range(1, total + 1))
    calls = in_window(window, total)
    assert storage.read().counts == (calls, calls, 0, total)


def test_concurrent_lock_free_failures_make_an_exact_streak(failure_counting: Harness) -> None:
    """N threads counting K failures each on failure_counter() make a streak of N*K."""
    storage = failure_counting.storage()
    counter = failure_counter(storage)(0)
    assert counter is not None
    per_thread = 200
    before: list[list[int]] = [[] for _ in range(THREADS)]

    def fail(index: int) -> None:
        mine = before[index]
        for _ in range(per_thread):
            mine.append(next(counter))

    run_threads(THREADS, fail)
    total = THREADS * per_thread
    assert sorted(itertools.chain.from_iterable(before)) == list(range(total))
    assert storage.read().counts == (0, 0, 0, total)


@pytest.mark.parametrize("window", [None, CountWindow(10_000)], ids=["no-window", "count-window"])
def test_records_racing_replaces_count_in_exactly_one_generation(
    harness: Harness, window: WindowSetting
) -> None:
    """A failure recorded during a replace() counts in the generation it names, or nowhere."""
    storage = harness.storage(window)
    replaces = 300
    counted: list[list[tuple[int, int]]] = [[] for _ in range(THREADS)]

    def work(index: int) -> None:
        if index == 0:
            for generation in range(replaces):
                storage.read()  # (give the recorders a moment between replaces)
                assert storage.replace(generation, Value(CLOSED, generation + 1))
            return
        mine = counted[index]
        for _ in range(100):
            generation = storage.read().value.generation
            counts = storage.record(generation, True)
            if counts is not None:
                mine.append((generation, counts[3]))

    run_threads(THREADS, work)
    places: dict[int, list[int]] = {}
    for generation, place in itertools.chain.from_iterable(counted):
        places.setdefault(generation, []).append(place)
    for generation, found in places.items():  # each generation's streak: 1, 2, ... exactly
        assert sorted(found) == list(range(1, len(found) + 1)), generation
    assert streak(storage.read().counts) == len(places.get(replaces, []))


def test_concurrent_acquires_admit_exactly_one_probe(harness: Harness) -> None:
    """Threads racing acquire() for one slot (probes=1): exactly one gets it, every time."""
    storage = harness.storage()
    rounds = 100
    admitted: list[list[int]] = [[] for _ in range(rounds)]

    def next_round() -> None:  # (run by one thread while all wait: a fresh half-open period)
        generation = storage.read().value.generation
        assert storage.replace(generation, Value(HALF_OPEN, generation + 1))

    turn = threading.Barrier(THREADS, action=next_round)

    def probe(index: int) -> None:
        try:
            for round_ in range(rounds):
                turn.wait()
                probes = storage.acquire(round_ + 1, index + 1, 1, 1, INF)
                assert probes is not None
                if probes.admitted:
                    admitted[round_].append(index)
        except BaseException:
            turn.abort()  # (no thread waits for this one in vain)
            raise

    run_threads(THREADS, probe)
    assert [len(winners) for winners in admitted] == [1] * rounds
    assert storage.read().probes == Probes(running=1)


@pytest.mark.parametrize("probes", [1, 3])
def test_concurrent_probes_never_run_more_than_probes_at_once(
    harness: Harness, probes: int
) -> None:
    """Threads taking and giving back slots, over and over, never hold more than ``probes``."""
    storage = half_open(harness)
    tickets = itertools.count(1)
    books = threading.Lock()  # (for the test's own bookkeeping only)
    holders = [0]
    most = [0]

    def work(_index: int) -> None:
        for _ in range(1000):
            ticket = next(tickets)
            answer = storage.acquire(G, ticket, probes, 10**9, INF)
            assert answer is not None
            if not answer.admitted:
                continue
            with books:  # from after its slot is given until before it is given back
                holders[0] += 1
                most[0] = max(most[0], holders[0])
            storage.read()  # (holding the slot a moment)
            with books:
                holders[0] -= 1
            assert storage.release(G, ticket, NEUTRAL) is not None

    run_threads(THREADS, work)
    assert 1 <= most[0] <= probes
    assert storage.read().probes == Probes()


def test_concurrent_probes_judged_by_rate_never_exceed_probes_in_all(harness: Harness) -> None:
    """Threads acquiring and releasing probes (by rate) finish at most ``probes`` of them."""
    storage = half_open(harness)
    probes = 3
    tickets = itertools.count(1)
    finished: list[Outcome] = []
    outcomes = (SUCCESS, FAILURE, NEUTRAL)

    def work(index: int) -> None:
        for attempt in range(20):
            ticket = next(tickets)
            answer = storage.acquire(G, ticket, probes, None, INF)
            assert answer is not None
            assert answer.running <= probes
            if answer.admitted:
                outcome = outcomes[(index + attempt) % 3]
                released = storage.release(G, ticket, outcome)
                assert released is not None
                if outcome is not NEUTRAL:
                    finished.append(outcome)

    run_threads(THREADS, work)
    reading = storage.read()
    assert reading.probes is not None
    assert reading.probes.running == 0
    assert len(finished) == reading.probes.finished <= probes
    assert reading.probes.failures == finished.count(FAILURE)


def _race_to_replace(storage: Storage, generation: int) -> list[Value]:
    """Let threads race replace() expecting ``generation``; return the values stored."""
    stored: list[Value] = []

    def replace(index: int) -> None:
        value = Value(OPEN, generation + 1, failures=index, open_for=float(index))
        if storage.replace(generation, value):
            stored.append(value)

    run_threads(THREADS, replace)
    return stored


def test_concurrent_replaces_of_one_generation_store_exactly_one(harness: Harness) -> None:
    """Threads racing replace() with the same expected generation: exactly one succeeds."""
    storage = harness.storage()
    for generation in range(10):
        stored = _race_to_replace(storage, generation)
        assert len(stored) == 1
        assert storage.read().value == stored[0]


# -- the state machine ------------------------------------------------------------------------


def quarters(low: int, high: int) -> st.SearchStrategy[float]:
    """Return a strategy of whole quarter seconds from ``low`` to ``high`` quarters."""
    return st.integers(min_value=low, max_value=high).map(lambda count: count * QUARTER)


# Windows of quarter-second buckets: with every time a whole number of quarters, a call is in
# the window exactly while it started less than ``seconds`` ago, wherever the bucket boundaries
# of the storage's clock fall.
machine_windows: st.SearchStrategy[WindowSetting] = st.one_of(
    st.none(),
    st.integers(min_value=1, max_value=5).map(CountWindow),
    st.integers(min_value=1, max_value=12).map(
        lambda buckets: TimeWindow(buckets * QUARTER, buckets=buckets)
    ),
)
# Which generation an operation names: mostly the current one, else an older or a newer one.
offsets = st.sampled_from([0, 0, 0, 0, 0, 0, -1, 1, -2])
states = st.sampled_from([HALF_OPEN, HALF_OPEN, *NOT_HALF_OPEN])
values = st.builds(
    lambda state, failures, openings, open_for: Value(state, 0, failures, openings, open_for),
    states,
    st.integers(min_value=0, max_value=3),
    st.integers(min_value=0, max_value=2),
    quarters(-8, 120) | st.just(INF),
)


@dataclass
class Model:
    """The specification: one storage's value and counts, plainly.

    Attributes:
        window: The storage's rate window.
        probes: The ``probes`` every acquire() passes.
        successes: The ``successes`` every acquire() passes (``None``: judged by rate).
        lease: The ``lease`` every acquire() passes.
        now: The storage's clock, from 0 when it was made.
        value: The stored value.
        stored_at: When it was stored.
        streak: Failures in a row in this generation.
        calls: Every call recorded in this generation: (started, failed, slow).
        leases: The running probes: ticket -> when its lease runs out.
        probe_successes: Probes of this generation that finished and succeeded.
        probe_failures: Those that failed, leases that ran out included.
        probe_slow: Finished probes that were slow.
    """

    window: WindowSetting
    probes: int
    successes: int | None
    lease: float
    now: float = 0.0
    value: Value = field(default_factory=Value)
    stored_at: float = 0.0
    streak: int = 0
    calls: list[tuple[float, bool, bool]] = field(default_factory=list)
    leases: dict[int, float] = field(default_factory=dict)
    probe_successes: int = 0
    probe_failures: int = 0
    probe_slow: int = 0
    probe_run: int = 0  # failed probes since the last successful one

    @property
    def counting(self) -> bool:
        """Whether the current generation counts its calls."""
        return self.value.state in COUNTING

    def counts(self) -> Tally:
        """Return (calls, failures, slow_calls, streak) of the current generation."""
        if self.window is None:
            return (0, 0, 0, self.streak)
        if isinstance(self.window, CountWindow):
            recent = self.calls[-self.window.size :]
        else:
            recent = [call for call in self.calls if self.now - call[0] < self.window.seconds]
        failures = sum(1 for _, failed, _ in recent if failed)
        slow = sum(1 for _, _, was_slow in recent if was_slow)
        return (len(recent), failures, slow, self.streak)

    def probe_counts(self, *, admitted: bool = False, expired: tuple[float, ...] = ()) -> Probes:
        """Return the probe counts, as an acquire() or release() would answer them."""
        return Probes(
            len(self.leases),
            self.probe_successes,
            self.probe_failures,
            self.probe_slow,
            admitted,
            expired,
            self.probe_run,
        )

    def reading(self) -> Reading:
        """Return what read() must answer."""
        age = self.now - self.stored_at
        if self.counting:
            return Reading(self.value, age, self.counts())
        if self.value.state is HALF_OPEN:
            leases = tuple(sorted(until - self.now for until in self.leases.values()))
            return Reading(self.value, age, probes=self.probe_counts(), leases=leases)
        return Reading(self.value, age)

    def record(self, generation: int, failed: bool, slow: bool, duration: float) -> Tally | None:
        """Count one call; return the new counts, or None."""
        if generation != self.value.generation or not self.counting:
            return None
        self.streak = self.streak + 1 if failed else 0
        self.calls.append((self.now - duration, failed, slow))
        return self.counts()

    def _expire(self) -> tuple[float, ...]:
        ran_out = sorted(until for until in self.leases.values() if until <= self.now)
        self.leases = {t: until for t, until in self.leases.items() if until > self.now}
        self.probe_failures += len(ran_out)
        self.probe_run += len(ran_out)
        return tuple(self.now - until for until in ran_out)

    def _undecided(self) -> bool:
        if self.successes is None:
            return self.probe_successes + self.probe_failures < self.probes
        return self.probe_failures == 0 and self.probe_successes < self.successes

    def acquire(self, generation: int, ticket: int) -> Probes | None:
        """Take a slot for ``ticket`` if one is free; return the probe counts, or None."""
        if generation != self.value.generation or self.value.state is not HALF_OPEN:
            return None
        expired = self._expire()
        if ticket in self.leases:  # one slot per ticket: it keeps the one it holds
            return self.probe_counts(admitted=True, expired=expired)
        taken = len(self.leases)
        if self.successes is None:
            taken += self.probe_successes + self.probe_failures
        admitted = self._undecided() and taken < self.probes
        if admitted:
            self.leases[ticket] = self.now + self.lease
        return self.probe_counts(admitted=admitted, expired=expired)

    def release(self, generation: int, ticket: int, outcome: Outcome, slow: bool) -> Probes | None:
        """Give back ``ticket``'s slot with ``outcome``; return the probe counts, or None."""
        if generation != self.value.generation or self.value.state is not HALF_OPEN:
            return None
        expired = self._expire()
        if ticket not in self.leases:
            return self.probe_counts(expired=expired) if expired else None
        del self.leases[ticket]
        if outcome is SUCCESS:
            self.probe_successes += 1
            self.probe_run = 0
        elif outcome is FAILURE:
            self.probe_failures += 1
            self.probe_run += 1
        if slow and outcome is not NEUTRAL:
            self.probe_slow += 1
        return self.probe_counts(expired=expired)

    def replace(self, generation: int, value: Value) -> bool:
        """Store ``value`` if ``generation`` is current, counting afresh; return whether."""
        if generation != self.value.generation:
            return False
        self.value, self.stored_at = value, self.now
        self.streak = value.failures if value.state in COUNTING else 0
        self.calls, self.leases = [], {}
        self.probe_successes = self.probe_failures = self.probe_slow = self.probe_run = 0
        return True

    def failure_counter(self, generation: int) -> bool:
        """Return whether a lock-free counter is given for ``generation``."""
        return self.window is None and self.counting and generation == self.value.generation


class StorageMachine(RuleBasedStateMachine):
    """Drive one storage with random steps; every answer and reading must be the model's."""

    storage: Storage
    model: Model

    def __init__(self, harness: Harness) -> None:
        super().__init__()
        self.harness = harness
        self.tickets = itertools.count(1)
        self.issued: list[int] = []

    @initialize(
        window=machine_windows,
        probes=st.integers(min_value=1, max_value=3),
        successes=st.none() | st.integers(min_value=1, max_value=3),
        lease=quarters(1, 16) | st.just(INF),
        first=st.none() | values,
    )
    def create(
        self,
        window: WindowSetting,
        probes: int,
        successes: int | None,
        lease: float,
        first: Value | None,
    ) -> None:
        """Make a fresh storage and its model, counting in ``window``; store a first value."""
        self.storage = self.harness.storage(window)
        self.model = Model(window, probes, successes, lease)
        if first is not None:
            self._replace(0, first)

    def _generation(self, offset: int) -> int:
        return self.model.value.generation + offset

    def _replace(self, offset: int, value: Value, jump: int = 1) -> None:
        """Replace the value, as a generation ``jump`` after the current one."""
        generation = self._generation(offset)
        value = replace(value, generation=self.model.value.generation + jump)
        assert self.storage.replace(generation, value) == self.model.replace(generation, value)

    @rule(offset=offsets, failed=st.booleans(), slow=st.booleans(), duration=quarters(0, 16))
    def record(self, offset: int, failed: bool, slow: bool, duration: float) -> None:
        """Record a call's outcome (for the current generation, mostly)."""
        generation = self._generation(offset)
        expected = self.model.record(generation, failed, slow, duration)
        assert self.storage.record(generation, failed, slow, duration) == expected

    @rule(offset=offsets)
    def acquire(self, offset: int) -> None:
        """Ask for a probe slot under a new ticket."""
        self.acquire_as(offset, next(self.tickets))

    def acquire_as(self, offset: int, ticket: int) -> None:
        """Ask for a probe slot for ``ticket``."""
        generation = self._generation(offset)
        self.issued.append(ticket)
        model = self.model
        expected = model.acquire(generation, ticket)
        answer = self.storage.acquire(
            generation, ticket, model.probes, model.successes, model.lease
        )
        assert answer == expected

    def _release(self, ticket: int, offset: int, outcome: Outcome, slow: bool) -> None:
        generation = self._generation(offset)
        expected = self.model.release(generation, ticket, outcome, slow)
        assert self.storage.release(generation, ticket, outcome, slow) == expected

    @precondition(lambda self: self.model.leases)
    @rule(
        index=st.integers(min_value=0, max_value=7),
        offset=offsets,
        outcome=st.sampled_from(Outcome),
        slow=st.booleans(),
    )
    def release_a_probe(self, index: int, offset: int, outcome: Outcome, slow: bool) -> None:
        """Give back a running probe's slot (any of them) with an outcome."""
        held = sorted(self.model.leases)
        self._release(held[index % len(held)], offset, outcome, slow)

    @precondition(lambda self: self.issued)
    @rule(
        index=st.integers(min_value=0, max_value=7),
        offset=offsets,
        outcome=st.sampled_from(Outcome),
        slow=st.booleans(),
    )
    def release_any_ticket(self, index: int, offset: int, outcome: Outcome, slow: bool) -> None:
        """Give back a recent ticket, holding a slot or not (refused, given back, run out)."""
        self._release(self.issued[-1 - index % len(self.issued)], offset, outcome, slow)

    @rule(offset=offsets, value=values, jump=st.integers(min_value=1, max_value=3))
    def replace(self, offset: int, value: Value, jump: int) -> None:
        """Replace the value (expecting the current generation, mostly) with a newer one."""
        self._replace(offset, value, jump)

    @precondition(lambda self: self.model.value.state is not HALF_OPEN)
    @rule(failures=st.integers(min_value=0, max_value=3), overdue=quarters(0, 8))
    def store_half_open(self, failures: int, overdue: float) -> None:
        """Store a half-open value, as a breaker whose open period ended does."""
        self._replace(0, Value(HALF_OPEN, 0, failures, 1, -overdue))

    @precondition(lambda self: self.model.value.state is HALF_OPEN)
    @rule(outcome=st.sampled_from(Outcome), slow=st.booleans())
    def probe(self, outcome: Outcome, slow: bool) -> None:
        """Ask for a probe slot and, if given one, give it back at once with an outcome."""
        ticket = next(self.tickets)
        self.acquire_as(0, ticket)
        if ticket in self.model.leases:
            self._release(ticket, 0, outcome, slow)

    @rule(seconds=quarters(0, 4) | quarters(0, 80))
    def advance(self, seconds: float) -> None:
        """Move the storage's clock forward: often a little, zero included."""
        self.harness.advance(seconds)
        self.model.now += seconds

    @precondition(lambda self: any(math.isfinite(u) for u in self.model.leases.values()))
    @rule(offset=st.sampled_from([-QUARTER, 0.0, QUARTER]))
    def advance_to_a_lease_end(self, offset: float) -> None:
        """Move the clock to just before, exactly at, or just after the soonest lease end."""
        ends = [until for until in self.model.leases.values() if math.isfinite(until)]
        seconds = min(ends) - self.model.now + offset
        if seconds >= 0:
            self.advance(seconds)

    @precondition(lambda self: hasattr(self.storage, "failure_counter"))
    @rule(offset=offsets, count=st.integers(min_value=1, max_value=3))
    def count_failures_lock_free(self, offset: int, count: int) -> None:
        """Count failures on the optional lock-free counter (where the storage has one)."""
        generation = self._generation(offset)
        counter = failure_counter(self.storage)(generation)
        if not self.model.failure_counter(generation):
            assert counter is None
            return
        assert counter is not None
        for _ in range(count):
            assert next(counter) == self.model.streak
            self.model.streak += 1

    @invariant()
    def reading_agrees(self) -> None:
        """Every reading is the model's (and reading again gives the same)."""
        expected = self.model.reading()
        assert self.storage.read() == expected
        assert self.storage.read() == expected


MACHINE_SETTINGS = settings(max_examples=200, stateful_step_count=40, deadline=None)


def test_the_storage_against_a_naive_model(harness: Harness) -> None:
    """Random steps on one storage answer, and read, exactly as the naive model says."""

    # (Run from a test, not as a TestCase, so that every storage kind's harness drives it.)
    class Machine(StorageMachine):
        def __init__(self) -> None:
            super().__init__(harness)

    run_state_machine_as_test(Machine, settings=MACHINE_SETTINGS)


def test_the_success_counter_is_only_for_a_counting_generation_in_a_count_window(
    success_counting: Harness,
) -> None:
    """success_counter() counts successes into a count window; it is None for another
    generation, a state not counting, or another window."""
    harness = success_counting
    storage = harness.storage(CountWindow(3))
    counter_of = getattr(storage, "success_counter", None)
    assert counter_of is not None, "correct OPTIONAL"
    counter = counter_of(0)
    assert counter is not None
    assert counter_of(0) is counter  # one counter per generation
    next(counter)
    next(counter)
    assert storage.read().counts == (2, 0, 0, 0)
    assert counter_of(1) is None
    assert storage.replace(0, Value(OPEN, 1, open_for=5.0))
    assert counter_of(1) is None
    for window in (None, TimeWindow(10.0)):
        assert getattr(harness.storage(window), "success_counter")(0) is None  # noqa: B009
