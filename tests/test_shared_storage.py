"""Breakers over a storage they share, or over a storage of another kind than in-memory.

Two breakers on one storage stand for two processes on one shared store: each keeps its own
view, and finds out what the other did when it reads its state, or when the storage answers
one of its outcomes as stale. (Keeping a closed breaker's fast path current is the shared
storage's part, with a hook of its own; the in-memory storage serves one breaker.)
"""

from __future__ import annotations

from typing import Any

import pytest

from aiocircuitbreaker import (
    CallCounts,
    CircuitBreaker,
    CircuitBreakerError,
    CountWindow,
    HalfOpen,
    RatePolicy,
    State,
)
from aiocircuitbreaker.storage import InMemoryStorage, Outcome, Probes, Reading, Storage, Value
from aiocircuitbreaker.testing import FakeClock, use_clock

from .conftest import DependencyDown


class Delegating:
    """A storage of its own kind: the protocol's five operations, nothing more (no lock-free
    failure counter), over an in-memory storage; it can play another writer once."""

    def __init__(self, inner: InMemoryStorage) -> None:
        self.inner = inner
        self.before_acquire: Any = None

    def read(self) -> Reading:
        return self.inner.read()

    def record(
        self, generation: int, failed: bool, slow: bool = False, duration: float = 0.0
    ) -> tuple[int, int, int, int] | None:
        return self.inner.record(generation, failed, slow, duration)

    def acquire(
        self, generation: int, ticket: int, probes: int, successes: int | None, lease: float
    ) -> Probes | None:
        if self.before_acquire is not None:
            action, self.before_acquire = self.before_acquire, None
            action()
        return self.inner.acquire(generation, ticket, probes, successes, lease)

    def release(
        self, generation: int, ticket: int, outcome: Outcome, slow: bool = False
    ) -> Probes | None:
        return self.inner.release(generation, ticket, outcome, slow)

    def replace(self, generation: int, value: Value) -> bool:
        return self.inner.replace(generation, value)


def pair(clock: FakeClock, **options: Any) -> tuple[CircuitBreaker, CircuitBreaker]:
    storage = InMemoryStorage(clock=clock)
    options.setdefault("expected_exception", DependencyDown)
    return (
        CircuitBreaker(clock=clock, storage=storage, **options),
        CircuitBreaker(clock=clock, storage=storage, **options),
    )


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(DependencyDown), breaker:
            raise DependencyDown


def test_a_storage_of_another_kind_passes_the_protocol_check(clock: FakeClock) -> None:
    """Anything with the five operations is a storage; anything else is refused."""
    assert isinstance(Delegating(InMemoryStorage(clock=clock)), Storage)
    with pytest.raises(TypeError, match="storage must follow the Storage protocol"):
        CircuitBreaker(storage=object())  # type: ignore[arg-type]


def test_failures_count_through_record_without_a_lock_free_counter(clock: FakeClock) -> None:
    """Over a storage with no lock-free counter, decorated calls count and trip the same."""
    storage = Delegating(InMemoryStorage(clock=clock))
    breaker = CircuitBreaker(3, 30, DependencyDown, clock=clock, storage=storage)

    @breaker
    def call(value: object) -> object:
        if isinstance(value, BaseException):
            raise value
        return value

    assert call("ok") == "ok"
    for _ in range(2):
        with pytest.raises(DependencyDown):
            call(DependencyDown())
    assert breaker.failure_count == 2
    assert call("ok") == "ok"
    assert breaker.failure_count == 0
    for _ in range(3):
        with pytest.raises(DependencyDown):
            call(DependencyDown())
    assert breaker.opened
    assert storage.read().value.state is State.OPEN


def test_one_breakers_trip_is_seen_by_the_other(clock: FakeClock) -> None:
    """When one breaker trips, the other reads it open and, on its next call, rejects."""
    first, second = pair(clock, failure_threshold=2)
    fail(first)
    fail(second)  # the shared streak reaches the threshold through the second breaker
    assert second.opened
    assert first.state is State.OPEN  # read from the storage: the first never saw it happen
    with pytest.raises(CircuitBreakerError):
        first.call(lambda: None)


def test_a_stale_outcome_of_the_other_breaker_changes_nothing(clock: FakeClock) -> None:
    """A call admitted by one breaker before the other opened the storage is stale."""
    first, second = pair(clock, failure_threshold=1)
    ticket = first.admit()
    fail(second)  # opens the shared state
    first.finish(ticket, DependencyDown())
    assert first.state is State.OPEN
    assert second.statistics().openings == 1
    assert first.statistics().total == CallCounts(failures=1)


def test_a_change_by_hand_reaches_the_other_breaker(clock: FakeClock) -> None:
    """open() on one breaker is what the other finds when it next looks."""
    first, second = pair(clock)
    first.force_open()
    assert second.state is State.FORCED_OPEN
    second.close()  # over the forced state it read from the storage
    assert first.state is State.CLOSED


def test_a_probe_slot_taken_by_the_other_breaker_is_respected(clock: FakeClock) -> None:
    """One probe among two breakers: the second is rejected while the first probes."""
    first, second = pair(clock, failure_threshold=1, half_open=HalfOpen(probes=1))
    fail(first)
    clock.advance(30)
    probe = first.admit()
    assert second.state is State.HALF_OPEN  # it reads what the first did
    with pytest.raises(CircuitBreakerError):
        second.admit()
    first.finish(probe)
    assert second.state is State.CLOSED


def test_admission_looks_again_when_another_writer_moved_on(clock: FakeClock) -> None:
    """A probe admission that finds the storage changed meanwhile reads it and tries again."""
    storage = Delegating(InMemoryStorage(clock=clock))
    breaker = CircuitBreaker(1, 30, DependencyDown, clock=clock, storage=storage)
    other = CircuitBreaker(1, 30, DependencyDown, clock=clock, storage=storage)
    fail(breaker)
    clock.advance(30)
    with breaker:  # half-open, probe, closed
        pass
    fail(breaker)
    clock.advance(30)
    storage.before_acquire = other.close  # another writer closes it just before the probe
    ticket = breaker.admit()
    assert ticket.probe is None  # admitted as an ordinary call of the closed generation
    breaker.finish(ticket)
    assert breaker.closed


def test_use_clock_needs_the_in_memory_storage(clock: FakeClock) -> None:
    """A breaker whose state lives elsewhere cannot change clocks."""
    breaker = CircuitBreaker(storage=Delegating(InMemoryStorage(clock=clock)))
    with (
        pytest.raises(TypeError, match="only breakers with in-memory storage"),
        use_clock(FakeClock(), breaker),
    ):
        pass  # pragma: no cover - refused


def test_a_storage_counting_in_another_window_than_the_policy_is_refused(clock: FakeClock) -> None:
    """A breaker's policy and its storage count in the same window, or the breaker says so."""
    policy = RatePolicy(CountWindow(4), failure_rate=0.5)
    with pytest.raises(ValueError, match=r"storage counts calls in None, but .* CountWindow"):
        CircuitBreaker(policy=policy, storage=InMemoryStorage(clock=clock))
    with pytest.raises(ValueError, match="window=None without a policy"):
        CircuitBreaker(storage=InMemoryStorage(clock=clock, window=CountWindow(4)))
    storage = InMemoryStorage(clock=clock, window=CountWindow(4))
    assert storage.window == CountWindow(4)
    assert "InMemoryStorage" in repr(storage)
    assert "CLOSED" in repr(storage)
    CircuitBreaker(policy=policy, storage=storage)


def test_a_gate_failure_found_stale_brings_the_breaker_up_to_date(clock: FakeClock) -> None:
    """A decorated call's failure that the storage answers as stale (the other breaker opened
    it meanwhile) moves the breaker to what the storage holds: its next call is rejected."""
    inner = InMemoryStorage(clock=clock)
    first = CircuitBreaker(2, 30, DependencyDown, clock=clock, storage=Delegating(inner))
    second = CircuitBreaker(2, 30, DependencyDown, clock=clock, storage=Delegating(inner))

    @first
    def call() -> None:
        raise DependencyDown

    fail(second, 2)  # opens the shared state; the first has not looked since
    with pytest.raises(DependencyDown):
        call()  # admitted by the first's closed view; its failure is stale
    with pytest.raises(CircuitBreakerError):
        call()
    assert second.statistics().openings == 1


@pytest.mark.parametrize("lock_free", [True, False], ids=["in-memory", "protocol only"])
def test_two_breakers_fill_one_count_window(clock: FakeClock, lock_free: bool) -> None:
    """Breakers on one storage count every call in one window, past minimum_calls too
    (where successes are counted lock-free, if the storage can), and trip on its rate."""
    policy = RatePolicy(CountWindow(6), failure_rate=0.5, minimum_calls=2)
    inner = InMemoryStorage(clock=clock, window=CountWindow(6))
    storage: Any = inner if lock_free else Delegating(inner)
    options: dict[str, Any] = {"policy": policy, "expected_exception": DependencyDown}
    breakers = [CircuitBreaker(clock=clock, storage=storage, **options) for _ in range(2)]
    guarded = [breaker(lambda: "ok") for breaker in breakers]
    for _ in range(3):
        for call in guarded:
            assert call() == "ok"
    assert inner.read().counts == (6, 0, 0, 0)
    fail(breakers[0], 2)
    assert breakers[1].state is State.CLOSED  # 2 failures in the last 6 calls
    fail(breakers[1])
    assert breakers[0].state is State.OPEN  # 3 in the last 6: 50 %
    assert sum(b.statistics().total.successes for b in breakers) == 6


def test_the_in_memory_storage_refuses_to_go_back_a_generation(clock: FakeClock) -> None:
    """replace() with a value that is not of a later generation is an error (it would make
    stale tickets and outcomes current again); a stale compare-and-set is just refused."""
    storage = InMemoryStorage(clock=clock)
    assert not storage.replace(3, Value(State.OPEN, 3))  # stale: generation 0 is current
    with pytest.raises(ValueError, match="generation after 0"):
        storage.replace(0, Value(State.OPEN, 0))
    assert storage.read().value == Value()
