"""Redis stopped, killed, restarted or lost, under load: callers never see it.

These tests use real time: socket timeouts and the sync thread run on it. They stay short
(timeouts of 50 ms, syncs every 20 ms).
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from aiocircuitbreaker import CircuitBreaker, CircuitBreakerError, State
from aiocircuitbreaker.redis import RedisFleet
from aiocircuitbreaker.storage import Value
from aiocircuitbreaker.testing import FakeClock

from ..conftest import DependencyDown
from . import workers
from .server import RedisServer, unique

Fleets = Callable[..., RedisFleet]
TIMEOUT = 0.05
SLACK = 0.15  # what a loaded 2-core machine may add to a call that waits TIMEOUT


def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Wait (polling every few ms) until ``condition()`` holds; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.005)


class Load:
    """Threads calling one breaker (a failure every third call) until stopped."""

    def __init__(self, breaker: CircuitBreaker, threads: int = 4) -> None:
        self.breaker = breaker
        self.longest = 0.0
        self.calls = 0
        self.unexpected: list[BaseException] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _run(self, index: int) -> None:
        count = index
        while not self._stop.is_set():
            count += 1
            started = time.monotonic()
            try:
                with self.breaker:
                    if count % 3 == 0:
                        raise DependencyDown
            except (DependencyDown, CircuitBreakerError):
                pass
            except BaseException as error:  # anything else is a bug
                self.unexpected.append(error)
            self.longest = max(self.longest, time.monotonic() - started)
            self.calls += 1
            time.sleep(0.0005)


def fleet_breaker(fleets: Fleets, server: RedisServer, name: str, **options: Any) -> CircuitBreaker:
    fleet = fleets(server, sync_interval=0.02, timeout=TIMEOUT, **options)
    return CircuitBreaker(1000, 1, DependencyDown, name=name, storage=fleet.storage(name))


@pytest.mark.parametrize("fault", ["sigstop", "kill"])
def test_redis_stopped_or_killed_under_load_never_reaches_a_caller(
    fleets: Fleets, server: RedisServer, fault: str
) -> None:
    """While Redis is stopped (SIGSTOP) or killed, calls go on: no Redis exception reaches a
    caller, none waits longer than the timeout, and after Redis returns every process agrees
    on one state again."""
    name = unique()
    first = fleet_breaker(fleets, server, name)
    second = fleet_breaker(fleets, server, name)
    fleet = first._live.storage._fleet  # type: ignore[union-attr]
    with Load(first) as load, Load(second) as other:
        time.sleep(0.1)
        if fault == "sigstop":
            server.pause()
        else:
            server.kill()
        wait_for(lambda: not fleet.health.healthy)
        calls = load.calls
        wait_for(lambda: load.calls > calls + 50)  # calls go on meanwhile
        if fault == "sigstop":
            server.resume()
        else:
            server.start()
        wait_for(lambda: fleet.health.healthy)
        time.sleep(0.1)
    assert load.unexpected == other.unexpected == []
    assert max(load.longest, other.longest) < TIMEOUT + SLACK
    first.open()  # one more change, made through Redis, that the other process must see
    wait_for(lambda: second._view.value == first._view.value)


def test_an_open_breaker_survives_a_redis_restart_that_lost_its_data(
    fleets: Fleets, server: RedisServer
) -> None:
    """A Redis restarted empty gets the state back from the processes that knew it."""
    clock = FakeClock(1000.0)
    fleet = fleets(server, clock=clock, sync_interval=None, timeout=TIMEOUT)
    name = unique()
    breaker = CircuitBreaker(1, 30, DependencyDown, clock=clock, storage=fleet.storage(name))
    with pytest.raises(DependencyDown), breaker:
        raise DependencyDown
    server.restart()
    clock.advance(10)
    fleet.sync()
    newcomer = fleets(server, clock=clock, sync_interval=None)
    reading = newcomer.storage(name).read()
    assert reading.value.state is State.OPEN
    assert reading.value.open_for == 20.0  # what was left of the open period


def test_a_change_made_locally_while_redis_was_down_loses_to_one_made_through_redis(
    fleets: Fleets, server: RedisServer
) -> None:
    """Back from an outage, a process whose local change clashes with the fleet's takes the
    fleet's state."""
    clock = FakeClock(1000.0)
    name = unique()
    cut = fleets(server, clock=clock, sync_interval=None, timeout=TIMEOUT)
    breaker = CircuitBreaker(storage=cut.storage(name), clock=clock)
    breaker.call(lambda: None)
    link = cut._link
    link.failed(ConnectionError("a network partition"))  # as if this process lost Redis
    breaker.force_open()  # locally
    other = fleets(server, clock=clock, sync_interval=None)
    CircuitBreaker(storage=other.storage(name), clock=clock).disable()  # through Redis
    cut.sync()
    assert breaker.state is State.DISABLED
    assert cut.health.healthy


def test_the_sync_thread_brings_changes_within_its_interval(
    fleets: Fleets, shared_server: RedisServer
) -> None:
    """With the sync thread, a trip in one process reaches the others within the interval."""
    name = unique()
    interval = 0.05
    first = CircuitBreaker(
        1, 30, DependencyDown, storage=fleets(shared_server, sync_interval=interval).storage(name)
    )
    second = CircuitBreaker(
        1, 30, DependencyDown, storage=fleets(shared_server, sync_interval=interval).storage(name)
    )
    second.call(lambda: None)
    with pytest.raises(DependencyDown), first:
        raise DependencyDown
    tripped = time.monotonic()
    wait_for(lambda: second._barrier is not None)
    assert time.monotonic() - tripped < interval + SLACK


def test_a_failing_sync_and_a_broken_storage_key_never_raise(
    fleets: Fleets, shared_server: RedisServer
) -> None:
    """A sync meeting a key of the wrong type (someone else's data) counts as a Redis error
    and carries on; the storage answers from its local state."""
    name = unique()
    fleet = fleets(shared_server, sync_interval=None)
    storage = fleet.storage(name)
    client = shared_server.client()
    try:
        client.delete(storage.state_key)
        client.set(storage.state_key, "not a hash")
        fleet.sync()
        assert not fleet.health.healthy
        assert storage.read().value == Value()
        client.delete(storage.state_key)
    finally:
        client.close()
    fleet.sync()
    assert fleet.health.healthy


def test_a_change_made_locally_while_redis_was_down_is_written_back(
    fleets: Fleets, shared_server: RedisServer
) -> None:
    """Back from an outage, a change made locally that nobody contested becomes the fleet's."""
    clock = FakeClock(1000.0)
    name = unique()
    cut = fleets(shared_server, clock=clock, sync_interval=None, timeout=TIMEOUT)
    breaker = CircuitBreaker(storage=cut.storage(name), clock=clock)
    cut._link.failed(ConnectionError("a network partition"))
    breaker.force_open()
    cut.sync()
    other = fleets(shared_server, clock=clock, sync_interval=None)
    assert CircuitBreaker(storage=other.storage(name), clock=clock).state is State.FORCED_OPEN


def test_four_processes_under_load_ride_out_a_stopped_then_killed_redis(
    server: RedisServer,
) -> None:
    """Four processes calling one breaker while Redis is stopped (SIGSTOP), resumed, killed and
    restarted: none sees a Redis error, no call waits past the timeout, and afterwards all of
    them follow a change made through Redis."""
    context = multiprocessing.get_context("spawn")
    ready, results, stop = context.Queue(), context.Queue(), context.Event()
    name = unique()
    processes = [
        context.Process(target=workers.load, args=(server.port, name, ready, stop, results))
        for _ in range(4)
    ]
    for process in processes:
        process.start()
    try:
        for _ in processes:
            ready.get(timeout=30)
        time.sleep(0.2)
        server.pause()
        time.sleep(0.3)
        server.resume()
        time.sleep(0.2)
        server.kill()
        time.sleep(0.3)
        server.start()
        time.sleep(0.3)
        client = server.client()
        fleet = RedisFleet(client, sync_interval=None, timeout=2.0)
        client.close()
        try:
            CircuitBreaker(storage=fleet.storage(name)).force_open()
        finally:
            fleet.close()
        time.sleep(0.1)
        stop.set()
        reports = [results.get(timeout=30) for _ in processes]
    finally:
        stop.set()
        for process in processes:
            process.join(30)
    for longest, unexpected, calls, state in reports:
        assert unexpected == []
        assert longest < TIMEOUT + SLACK
        assert calls > 100
        assert state == "forced_open"
    assert all(process.exitcode == 0 for process in processes)
    ready.close()
    results.close()
