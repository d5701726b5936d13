"""Fixtures of the Redis tests: real redis-servers on free 127.0.0.1 ports, fleets on them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from aiocircuitbreaker.redis import RedisFleet

from .server import RedisServer, shared


@pytest.fixture
def server() -> Iterator[RedisServer]:
    """Return a redis-server of the test's own (to stop, kill or restart), torn down after."""
    made = RedisServer()
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def shared_server() -> RedisServer:
    """Return the redis-server shared by the tests that do it no harm."""
    return shared()


@pytest.fixture
def fleets() -> Iterator[Callable[..., RedisFleet]]:
    """Return a maker of fleets (``make(server, **options)``), each closed after the test.

    Their timeout is 2 s unless given: only the fault tests mean to see one run out.
    """
    made: list[RedisFleet] = []

    def make(on: RedisServer, **options: Any) -> RedisFleet:
        options.setdefault("timeout", 2.0)  # (a loaded machine is not an outage)
        fleet = on.fleet(**options)
        made.append(fleet)
        return fleet

    yield make
    for fleet in made:
        fleet.close()
