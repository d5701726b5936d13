"""CircuitBreakerMonitor: lookups, shared names, and no leaks."""

from __future__ import annotations

import gc

import pytest

from aiocircuitbreaker import CircuitBreaker, CircuitBreakerMonitor, _registry, circuit
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
