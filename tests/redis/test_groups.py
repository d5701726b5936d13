"""Per-key breakers (a CircuitBreakerGroup) shared by the processes of a fleet."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from aiocircuitbreaker import CircuitBreakerError, CircuitBreakerGroup, State
from aiocircuitbreaker.redis import RedisFleet
from aiocircuitbreaker.testing import FakeClock

from ..conftest import DependencyDown
from .server import RedisServer, unique

Fleets = Callable[..., RedisFleet]


def test_a_group_keeps_each_keys_breaker_in_the_fleet(
    fleets: Fleets, shared_server: RedisServer, clock: FakeClock
) -> None:
    """With storage= a function of the key, each key's breaker is shared by the processes:
    a key that trips in one process is rejected in the other, the other keys are not."""
    name = unique("group")
    groups = []
    for _ in range(2):
        fleet = fleets(shared_server, clock=clock, sync_interval=None)
        groups.append(
            CircuitBreakerGroup(
                name,
                failure_threshold=2,
                expected_exception=DependencyDown,
                clock=clock,
                storage=lambda key, fleet=fleet: fleet.storage(f"{name}/{key}"),
            )
        )
    first, second = groups

    def down() -> None:
        raise DependencyDown

    for _ in range(2):
        with pytest.raises(DependencyDown):
            first.call("eu", down)
    with pytest.raises(CircuitBreakerError):
        second.call("eu", lambda: None)
    assert second.call("us", lambda: "ok") == "ok"
    assert first.breaker("us").state is State.CLOSED
