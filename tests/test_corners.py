"""Rare paths a user can still meet: first calls and openings racing in threads, reads of
transitions that are due, odd iterables, and the testing helpers' weak holding.

Races are lined up by hand, not left to chance: a lock that tells when another thread waits
for it, or an ``open_duration`` that holds one thread until another got past it.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import threading
import weakref
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Any

import pytest

from aiocircuitbreaker import (
    CallCounts,
    CircuitBreaker,
    CircuitBreakerError,
    CircuitBreakerMonitor,
    CountWindow,
    HalfOpen,
    RatePolicy,
    State,
    StateChanged,
    TimeWindow,
)
from aiocircuitbreaker.testing import FakeClock, force_state, use_clock

from .conftest import DependencyDown, make


class Announcing:
    """A breaker's lock that sets ``waiting`` when a thread other than its maker waits for it."""

    def __init__(self, lock: Any) -> None:
        self._lock = lock
        self._owner = threading.get_ident()
        self.waiting = threading.Event()

    def __enter__(self) -> bool:
        if threading.get_ident() != self._owner:
            self.waiting.set()
        return bool(self._lock.__enter__())

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._lock.__exit__(kind, exc, tb)


def fail(breaker: CircuitBreaker) -> None:
    with pytest.raises(DependencyDown), breaker:
        raise DependencyDown


# -- races ------------------------------------------------------------------------------------


def test_first_calls_from_two_threads_share_one_breaker_state(clock: FakeClock) -> None:
    """A thread whose first call waits while another's first call sets the breaker up uses
    what that one made: both calls count, in one set of totals."""
    breaker = make(clock)
    lock = breaker._lock = Announcing(breaker._lock)  # type: ignore[assignment]
    with lock:  # the other thread's first call waits here...
        worker = threading.Thread(target=breaker.call, args=(lambda: None,))
        worker.start()
        assert lock.waiting.wait(5)
        breaker.call(lambda: None)  # ...while this thread's first call sets the breaker up
    worker.join(5)
    assert breaker.statistics().total == CallCounts(successes=2)


def test_a_breaker_never_used_reads_as_new(clock: FakeClock) -> None:
    """Reads of a breaker that has seen no call (its last failure first) answer the defaults."""
    breaker = make(clock)
    assert breaker.last_failure is None
    assert breaker.failure_count == 0
    assert breaker.state is State.CLOSED


def test_threads_tripping_at_once_open_the_breaker_once(clock: FakeClock) -> None:
    """While one thread decides an opening (asking open_duration), another thread's failure
    of the same closed period counts, and opens nothing more: one opening, asked once."""
    asked: list[str] = []
    deciding, go_on = threading.Event(), threading.Event()

    def duration(openings: int, failure: BaseException | None) -> float:
        asked.append(threading.current_thread().name)
        deciding.set()
        assert go_on.wait(5)
        return 30.0

    breaker = make(clock, failure_threshold=1, open_duration=duration)
    worker = threading.Thread(target=fail, args=(breaker,), name="first")
    worker.start()
    assert deciding.wait(5)
    fail(breaker)  # the same closed period: counted, and the opening left to the first thread
    go_on.set()
    worker.join(5)
    stats = breaker.statistics()
    assert asked == ["first"]
    assert stats.openings == 1
    assert stats.state is State.OPEN
    assert stats.total == CallCounts(failures=2)
    assert breaker.open_remaining == 30.0


def test_reads_racing_for_a_due_reopening_agree_on_its_deadline(clock: FakeClock) -> None:
    """Two threads reading a reopening that is due (a probe out of time) at once both ask
    open_duration; the first answer kept is the one both reads, and the opening, use."""
    answers = {"reader": 99.0, "MainThread": 10.0}
    asked: list[tuple[int, str]] = []
    asking, go_on = threading.Event(), threading.Event()

    def duration(openings: int, failure: BaseException | None) -> float:
        name = threading.current_thread().name
        asked.append((openings, name))
        if openings == 1:
            return 30.0
        if name == "reader":  # held until the main thread's read has kept its answer
            asking.set()
            assert go_on.wait(5)
        return answers[name]

    breaker = make(
        clock, failure_threshold=1, open_duration=duration, half_open=HalfOpen(max_duration=1)
    )
    fail(breaker)
    clock.advance(30)
    probe = breaker.admit()  # the probe, left running
    clock.advance(3)  # it ran out of time 2 s ago: the breaker opened again then, for ...
    seen: list[float] = []
    reader = threading.Thread(target=lambda: seen.append(breaker.open_remaining), name="reader")
    reader.start()
    assert asking.wait(5)
    remaining = breaker.open_remaining
    go_on.set()
    reader.join(5)
    assert remaining == 10.0 - 2
    assert seen == [remaining]
    assert sorted(asked) == [(1, "MainThread"), (2, "MainThread"), (2, "reader")]
    with pytest.raises(CircuitBreakerError) as rejected:
        breaker.admit()  # stores the reopening, with the deadline the reads saw
    assert rejected.value.open_remaining == remaining
    breaker.finish(probe)  # late: of an older period, ignored
    assert breaker.state is State.OPEN


# -- due transitions, seen by reads and by changes by hand -------------------------------------


def test_a_change_by_hand_applies_a_probe_out_of_time_first(clock: FakeClock) -> None:
    """Closing by hand while a probe is out of time: the probe failed first (it reopened the
    breaker, as announced), then the breaker closes."""
    changes: list[tuple[State, State, str]] = []

    def listen(event: object) -> None:
        if isinstance(event, StateChanged):
            changes.append((event.old_state, event.new_state, event.reason))

    breaker = make(clock, failure_threshold=1, half_open=HalfOpen(max_duration=5))
    breaker.add_listener(listen)
    fail(breaker)
    clock.advance(30)
    breaker.admit()  # the probe, hung
    clock.advance(6)
    breaker.close()
    assert [(old, new) for old, new, _ in changes] == [
        (State.CLOSED, State.OPEN),
        (State.OPEN, State.HALF_OPEN),
        (State.HALF_OPEN, State.OPEN),
        (State.OPEN, State.CLOSED),
    ]
    assert "ran out of time" in changes[2][2]
    assert breaker.statistics().openings == 2
    assert breaker.closed


def rated(clock: FakeClock, probes: int) -> CircuitBreaker:
    policy = RatePolicy(CountWindow(4), failure_rate=0.5, minimum_calls=4)
    half_open = HalfOpen(probes=probes, judge_by_rate=True, max_duration=5)
    breaker = make(clock, policy=policy, half_open=half_open)
    for _ in range(4):
        fail(breaker)
    assert breaker.opened
    clock.advance(30)
    return breaker


def test_a_read_waits_for_the_probes_still_running_when_one_ran_out(clock: FakeClock) -> None:
    """Judged by rate, one probe out of time decides nothing while the others run: reads say
    half-open, and the remaining probes decide."""
    breaker = rated(clock, probes=2)
    hung = breaker.admit()
    clock.advance(3)
    running = breaker.admit()
    clock.advance(3)  # the first ran out 1 s ago; the second has 2 s left
    assert breaker.state is State.HALF_OPEN
    breaker.finish(running)  # a success: 1 failure in 2 probes is not below 50 %
    assert breaker.state is State.OPEN
    breaker.finish(hung)  # late, ignored
    assert breaker.statistics().openings == 2


def test_a_read_closes_when_the_probes_that_finished_outvote_one_out_of_time(
    clock: FakeClock,
) -> None:
    """Judged by rate, a probe out of time is one failed probe: when the others succeeded and
    the rate is below the threshold, reads say closed at once, and calls go through."""
    breaker = rated(clock, probes=3)
    hung = breaker.admit()
    for _ in range(2):
        breaker.finish(breaker.admit())
    assert breaker.state is State.HALF_OPEN  # the third probe still runs
    clock.advance(6)
    assert breaker.state is State.CLOSED  # it ran out of time: 1 failure in 3 is below 50 %
    assert breaker.failure_count == 0
    assert breaker.call(lambda: "through") == "through"
    breaker.finish(hung)
    stats = breaker.statistics()
    assert stats.state is State.CLOSED
    assert stats.openings == 1


# -- odd iterables and values -----------------------------------------------------------------


class Numbers:
    """An iterator with no ``close()``: not a generator."""

    def __init__(self) -> None:
        self.left = [1, 2, 3]

    def __iter__(self) -> Iterator[int]:
        return self

    def __next__(self) -> int:
        if not self.left:
            raise StopIteration
        return self.left.pop(0)


class AsyncNumbers:
    """An async iterator with no ``aclose()``: not an async generator."""

    def __init__(self) -> None:
        self.left = [1, 2, 3]

    def __aiter__(self) -> AsyncIterator[int]:
        return self

    async def __anext__(self) -> int:
        if not self.left:
            raise StopAsyncIteration
        return self.left.pop(0)


def test_a_plain_iterator_stopped_early_is_a_neutral_call(clock: FakeClock) -> None:
    """call_generator() takes any iterable; left before its end, it counts as neutral."""
    breaker = make(clock)
    stream = breaker.call_generator(Numbers)
    assert next(stream) == 1
    stream.close()
    assert breaker.statistics().total == CallCounts(neutral=1)
    assert list(breaker.call_generator(Numbers)) == [1, 2, 3]
    assert breaker.statistics().total == CallCounts(successes=1, neutral=1)


@pytest.mark.asyncio
async def test_a_fallback_may_stream_a_plain_async_iterator(clock: FakeClock) -> None:
    """A rejected async generator streams what its fallback gives, whatever kind it is."""
    breaker = make(clock, fallback_function=AsyncNumbers)

    @breaker
    async def numbers() -> AsyncIterator[int]:
        yield 0

    breaker.open()
    assert [number async for number in numbers()] == [1, 2, 3]
    breaker.close()
    assert [number async for number in numbers()] == [0]


def test_finish_shows_what_a_missing_result_is(clock: FakeClock) -> None:
    """help() on finish() shows the result default by name (no result: nothing to judge)."""
    default = inspect.signature(make(clock).finish).parameters["result"].default
    assert repr(default) == "NO_RESULT"


def test_breakers_keep_their_own_fallback_and_an_unhashable_exception_class() -> None:
    """Two breakers with equal but distinct fallbacks each keep their own; an exception class
    whose metaclass makes it unhashable is expected as usual."""

    class Fallback:
        def __init__(self, answer: str) -> None:
            self.answer = answer

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Fallback)

        __hash__ = object.__hash__

        def __call__(self) -> str:
            return self.answer

    first, second = Fallback("first"), Fallback("second")
    assert first == second
    breakers = [CircuitBreaker(fallback_function=first), CircuitBreaker(fallback_function=second)]
    assert [b.fallback_function for b in breakers] == [first, second]
    assert breakers[1].fallback_function is second
    for breaker in breakers:
        breaker.open()
    assert [breaker.call(lambda: "real") for breaker in breakers] == ["first", "second"]

    class Unhashable(type):
        __hash__ = None  # type: ignore[assignment]

    class Odd(Exception, metaclass=Unhashable):
        pass

    for _ in range(2):  # (breakers of plain options share their settings, where they can)
        odd = CircuitBreaker(failure_threshold=1, expected_exception=Odd)
        with pytest.raises(Odd), odd:
            raise Odd
        assert odd.opened


def test_the_monitor_takes_only_a_dict_of_breakers(clock: FakeClock) -> None:
    """CircuitBreakerMonitor.circuit_breakers = a dict: those are the registered breakers;
    anything else is refused with an error that says what is wanted."""
    before = CircuitBreakerMonitor.circuit_breakers
    kept = make(clock, name="corners-kept")
    try:
        CircuitBreakerMonitor.circuit_breakers = {"corners-kept": kept}
        assert CircuitBreakerMonitor.circuit_breakers == {"corners-kept": kept}
        with pytest.raises(TypeError, match="must be a dict of breakers by name"):
            CircuitBreakerMonitor.circuit_breakers = [kept]  # type: ignore[assignment]
        assert CircuitBreakerMonitor.circuit_breakers == {"corners-kept": kept}
    finally:
        CircuitBreakerMonitor.circuit_breakers = before


# -- the testing helpers hold breakers weakly ---------------------------------------------------


def test_helpers_given_a_breaker_nobody_keeps_do_nothing_with_it(clock: FakeClock) -> None:
    """A breaker passed to a helper and kept by nobody else is freed: nothing is forced."""
    with force_state(State.OPEN, CircuitBreaker()) as forced:
        assert forced == []
    with use_clock(clock, CircuitBreaker()):
        pass


def test_a_breaker_dropped_inside_use_clock_is_freed(clock: FakeClock) -> None:
    """use_clock() does not keep its breakers alive; one dropped in the block is just gone."""
    breaker = make(clock)
    ref = weakref.ref(breaker)
    with use_clock(FakeClock(), breaker):
        del breaker
        gc.collect()
        assert ref() is None


@pytest.mark.asyncio
async def test_a_probe_lease_keeps_its_time_left_on_a_new_clock(clock: FakeClock) -> None:
    """A probe running when use_clock() swaps clocks still runs out after the time it had."""
    breaker = make(clock, failure_threshold=1, half_open=HalfOpen(max_duration=5))
    fail(breaker)
    clock.advance(30)
    release = asyncio.Event()

    async def hang() -> None:
        await release.wait()

    probe = asyncio.create_task(breaker.call(hang))
    await asyncio.sleep(0)
    clock.advance(2)  # 3 s left
    other = FakeClock(1000.0)
    with use_clock(other, breaker):
        other.advance(2.5)
        assert breaker.state is State.HALF_OPEN
        other.advance(1)
        assert breaker.state is State.OPEN  # ran out of time
    release.set()
    await probe


def test_a_time_window_starts_over_on_a_new_clock(clock: FakeClock) -> None:
    """use_clock() starts a time window over (its buckets were the old clock's readings)."""
    policy = RatePolicy(TimeWindow(60), failure_rate=1.0, minimum_calls=2)
    breaker = make(clock, policy=policy)
    fail(breaker)
    with use_clock(FakeClock(5.0), breaker):
        fail(breaker)
        assert breaker.closed  # one call in the new window: fewer than minimum_calls
        fail(breaker)
        assert breaker.opened


def test_rejections_follow_listeners_and_clocks_changed_while_open(clock: FakeClock) -> None:
    """An open breaker's rejections see a listener added or removed, and a clock swapped,
    while it stays open (rejections take a shortcut that must not go stale)."""
    events: list[object] = []
    breaker = make(clock, failure_threshold=1)
    fail(breaker)
    with pytest.raises(CircuitBreakerError):
        breaker.call(lambda: None)
    breaker.add_listener(events.append)
    with pytest.raises(CircuitBreakerError):
        breaker.call(lambda: None)
    assert [type(event).__name__ for event in events] == ["CallRejected"]
    breaker.remove_listener(events.append)
    other = FakeClock(0.0)
    with use_clock(other, breaker):
        other.advance(20)
        with pytest.raises(CircuitBreakerError) as rejected:
            breaker.call(lambda: None)
        assert rejected.value.open_remaining == 10.0
        other.advance(10)
        assert breaker.call(lambda: "probe") == "probe"
    assert len(events) == 1
    assert breaker.statistics().total.rejected == 3


@pytest.mark.parametrize("change", ["reset", "open"])
def test_a_success_under_a_policy_after_a_change_counts_for_nothing(
    clock: FakeClock, change: str
) -> None:
    """A call under a rate policy that ends after a reset or an opening is stale."""
    breaker = make(clock, policy=RatePolicy(CountWindow(10), minimum_calls=10))

    @breaker
    def call() -> str:
        getattr(breaker, change)()
        return "done"

    assert call() == "done"
    stats = breaker.statistics()
    assert stats.total.successes == 1  # counted in the totals, not in the window
    assert stats.failure_rate is None
