"""CircuitBreakerMonitor: lookups, shared names, and no leaks."""

from __future__ import annotations

import gc
import weakref

import pytest

from aiocircuitbreaker import (
    CallCounts,
    CircuitBreaker,
    CircuitBreakerMonitor,
    State,
    _registry,
    circuit,
)
from aiocircuitbreaker._registry import _refs
from aiocircuitbreaker.testing import FakeClock

from .conftest import DependencyDown


def test_get_by_name_and_listings(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """get(), get_circuits(), get_open(), get_closed() and all_closed() see live breakers."""
    monkeypatch.setattr(_registry, "_refs", [])  # only this test's breakers
    up = CircuitBreaker(name="registry-up", clock=clock)
    down = CircuitBreaker(failure_threshold=1, name="registry-down", clock=clock)
    assert CircuitBreakerMonitor.get("registry-up") is up
    assert CircuitBreakerMonitor.get("registry-missing") is None
    assert up in CircuitBreakerMonitor.get_circuits()
    with pytest.raises(DependencyDown), down:
        raise DependencyDown
    assert down in list(CircuitBreakerMonitor.get_open())
    assert up in list(CircuitBreakerMonitor.get_closed())
    assert down not in list(CircuitBreakerMonitor.get_closed())
    assert not CircuitBreakerMonitor.all_closed()
    down.reset()
    assert CircuitBreakerMonitor.all_closed()
    assert CircuitBreakerMonitor.get_circuits() == [up, down]


def test_half_open_is_neither_open_nor_closed(clock: FakeClock) -> None:
    """A half-open breaker is not listed as open (it admits a probe) nor as closed."""
    breaker = CircuitBreaker(
        failure_threshold=1, recovery_timeout=5, name="registry-half", clock=clock
    )
    with pytest.raises(DependencyDown), breaker:
        raise DependencyDown
    clock.advance(5)
    assert breaker not in list(CircuitBreakerMonitor.get_open())
    assert breaker not in list(CircuitBreakerMonitor.get_closed())


def test_shared_names_do_not_raise_and_newest_wins() -> None:
    """Two breakers may share a name; get() returns the newest, listings show both."""

    @circuit(name="registry-dup")
    async def first() -> None:
        pass  # pragma: no cover

    @circuit(name="registry-dup")
    async def second() -> None:
        pass  # pragma: no cover

    older = first.circuit_breaker  # type: ignore[attr-defined]
    newer = second.circuit_breaker  # type: ignore[attr-defined]
    assert CircuitBreakerMonitor.get("registry-dup") is newer
    circuits = CircuitBreakerMonitor.get_circuits()
    assert older in circuits
    assert newer in circuits
    assert CircuitBreakerMonitor.circuit_breakers["registry-dup"] is newer
    del second, newer, circuits
    gc.collect()
    assert CircuitBreakerMonitor.get("registry-dup") is older


def test_default_name_is_registered_when_decorating() -> None:
    """A breaker named by its function is found under the function's qualified name."""

    @circuit
    async def lookup_me() -> None:
        pass  # pragma: no cover

    name = "test_default_name_is_registered_when_decorating.<locals>.lookup_me"
    assert CircuitBreakerMonitor.get(name) is lookup_me.circuit_breaker  # type: ignore[attr-defined]


def test_breakers_made_per_request_are_freed() -> None:
    """The registry holds weak references only and prunes dead ones as it grows."""
    gc.collect()
    before = len(CircuitBreakerMonitor.get_circuits())
    for _ in range(10_000):
        CircuitBreaker(name="per-request")
    gc.collect()
    assert len(CircuitBreakerMonitor.get_circuits()) == before
    assert len(_refs) < 2 * before + 200


def test_register_is_idempotent() -> None:
    """register() (as in circuitbreaker 2.x) does not add a breaker twice."""
    breaker = CircuitBreaker(name="registry-once")
    CircuitBreakerMonitor.register(breaker)
    assert sum(b is breaker for b in CircuitBreakerMonitor.get_circuits()) == 1


def test_register_adds_an_untracked_breaker() -> None:
    """register() adds a breaker the registry does not know (e.g. after clearing it)."""
    breaker = CircuitBreaker(name="registry-readd")
    saved = list(_refs)
    _refs[:] = [ref for ref in _refs if ref() is not breaker]
    try:
        CircuitBreakerMonitor.register(breaker)
        assert CircuitBreakerMonitor.get("registry-readd") is breaker
    finally:
        _refs[:] = saved


def names(breakers: list[CircuitBreaker]) -> list[str | None]:
    return [breaker.name for breaker in breakers]


def trip(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.failure_threshold):
        with pytest.raises(DependencyDown), breaker:
            raise DependencyDown


def test_statistics_by_glob_predicate_or_all(clock: FakeClock) -> None:
    """statistics(match) picks breakers by a glob on names, a predicate, or takes them all."""
    first = CircuitBreaker(name="registry-stats.first", failure_threshold=2, clock=clock)
    second = CircuitBreaker(name="registry-stats.second", clock=clock)
    assert second.closed
    other = CircuitBreaker(name="registry-other", clock=clock)
    unnamed = CircuitBreaker(clock=clock)
    trip(first)
    picked = CircuitBreakerMonitor.statistics("registry-stats.*")
    assert [s.name for s in picked] == ["registry-stats.first", "registry-stats.second"]
    assert [s.state for s in picked] == [State.OPEN, State.CLOSED]
    assert picked[0].total == CallCounts(failures=2)
    by_predicate = CircuitBreakerMonitor.statistics(lambda b: b is other or b is unnamed)
    assert [s.name for s in by_predicate] == ["registry-other", None]
    everything = [s.name for s in CircuitBreakerMonitor.statistics()]
    assert len(everything) == len(CircuitBreakerMonitor.get_circuits())
    assert {"registry-stats.first", "registry-stats.second", "registry-other"} <= set(everything)
    assert CircuitBreakerMonitor.statistics("registry-stats.none*") == []


@pytest.mark.parametrize("match", [5, b"registry-*", ["registry-*"]])
def test_a_bad_match_is_a_type_error(match: object) -> None:
    """match must be None, a glob string or a predicate."""
    with pytest.raises(TypeError, match="match must be None, a glob on breaker names"):
        CircuitBreakerMonitor.statistics(match)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="match must be None"):
        CircuitBreakerMonitor.open_all(match)  # type: ignore[arg-type]


def test_group_operations_act_on_the_matching_breakers(clock: FakeClock) -> None:
    """open_all() and the like change the matching breakers only, and return them."""
    first = CircuitBreaker(name="registry-group.first", clock=clock)
    second = CircuitBreaker(name="registry-group.second", clock=clock)
    bystander = CircuitBreaker(name="registry-bystander", clock=clock)
    group = "registry-group.*"
    assert CircuitBreakerMonitor.open_all(group) == [first, second]
    assert first.state is second.state is State.OPEN
    assert bystander.closed
    assert CircuitBreakerMonitor.close_all(group) == [first, second]
    assert first.closed
    assert second.closed
    assert CircuitBreakerMonitor.force_open_all(lambda b: b is second) == [second]
    assert second.state is State.FORCED_OPEN
    assert CircuitBreakerMonitor.disable_all(group) == [first, second]
    assert first.state is second.state is State.DISABLED
    assert CircuitBreakerMonitor.metrics_only_all(group) == [first, second]
    assert first.state is second.state is State.METRICS_ONLY
    assert CircuitBreakerMonitor.reset_all(group) == [first, second]
    assert first.closed
    assert second.closed
    assert bystander.closed
    assert bystander.statistics().transitions == ()
    assert CircuitBreakerMonitor.open_all("registry-group.none*") == []


def test_get_open_includes_forced_open_breakers(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forced-open breakers are listed as open; disabled and metrics-only ones are not."""
    monkeypatch.setattr(_registry, "_refs", [])  # only this test's breakers
    forced = CircuitBreaker(name="registry-forced", clock=clock)
    disabled = CircuitBreaker(name="registry-disabled", clock=clock)
    metrics = CircuitBreaker(name="registry-metrics", clock=clock)
    forced.force_open()
    disabled.disable()
    metrics.metrics_only()
    assert list(CircuitBreakerMonitor.get_open()) == [forced]
    assert list(CircuitBreakerMonitor.get_closed()) == []
    assert not CircuitBreakerMonitor.all_closed()
    forced.close()
    assert CircuitBreakerMonitor.all_closed()


def test_used_breakers_made_per_request_are_freed(clock: FakeClock) -> None:
    """Breakers that were called, observed and read, then dropped, are freed and unlisted."""
    gc.collect()
    before = len(CircuitBreakerMonitor.get_circuits())
    last: weakref.ref[CircuitBreaker] | None = None
    for i in range(10_000):
        breaker = CircuitBreaker(name="registry-used", failure_threshold=2, clock=clock)
        breaker.add_listener(lambda event, breaker=breaker: None)  # a reference cycle
        with pytest.raises(DependencyDown), breaker:
            raise DependencyDown
        with breaker:
            pass
        if i % 1_000 == 0:
            assert breaker.statistics().total.calls == 2
            breaker.open()  # and some opened (which logs)
        last = weakref.ref(breaker)
    del breaker
    gc.collect()
    assert last is not None
    assert last() is None
    assert len(CircuitBreakerMonitor.get_circuits()) == before
    assert CircuitBreakerMonitor.get("registry-used") is None
