"""One breaker name in 4 processes on a real redis-server, on real time (the server's TIME).

Each test spawns the processes (``workers.py``), lets them run for well under a few seconds and
reads what they logged in Redis.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from aiocircuitbreaker import CircuitBreaker
from aiocircuitbreaker.redis import RedisFleet

from . import workers
from .server import RedisServer, unique

PROCESSES = 4
SLACK = 0.25  # spawned interpreters on 2 busy cores


@pytest.fixture
def log(shared_server: RedisServer) -> Iterator[redis.Redis]:
    """Return a client to read what the workers logged."""
    client = redis.Redis(port=shared_server.port, decode_responses=True)
    yield client
    client.close()


def run(target: Callable[..., None], *args: object, count: int = PROCESSES) -> None:
    """Run ``target(*args, count)`` in ``count`` spawned processes and wait for them."""
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=target, args=(*args, count)) for _ in range(count)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(20)
        assert process.exitcode == 0


def run_probes(server: RedisServer, name: str, first: str) -> None:
    """Open the breaker ``name`` fleet-wide, then let 4 processes call it until it closes."""
    client = server.client()
    fleet = RedisFleet(client, sync_interval=None)
    client.close()
    try:
        CircuitBreaker(3, workers.OPEN, storage=fleet.storage(name)).open()
    finally:
        fleet.close()
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=workers.probe, args=(server.port, name, PROCESSES, first))
        for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(20)
        assert process.exitcode == 0


def test_four_processes_fail_at_most_once_each_after_the_threshold(
    shared_server: RedisServer, log: redis.Redis
) -> None:
    """Four processes calling a dead dependency fail threshold + 3 calls at most between
    them (not 4 x threshold): each finds out at its next failure, or its next sync."""
    name = unique()
    run(workers.trip, shared_server.port, name)
    failed = [int(x) for x in log.lrange(f"{name}:failed", 0, -1)]
    assert len(failed) == PROCESSES
    assert 3 <= sum(failed) <= 3 + PROCESSES - 1


def test_a_trip_reaches_every_process_within_the_sync_interval(
    shared_server: RedisServer, log: redis.Redis
) -> None:
    """Processes whose calls succeed reject within the sync interval of another's trip."""
    name = unique()
    context = multiprocessing.get_context("spawn")
    args = (shared_server.port, name, PROCESSES + 1)
    processes = [context.Process(target=workers.watch, args=args) for _ in range(PROCESSES)]
    for process in processes:
        process.start()
    client = shared_server.client()
    fleet = RedisFleet(client, sync_interval=None)
    client.close()
    try:
        log.incr(f"{name}:ready")
        while int(log.get(f"{name}:ready") or 0) < PROCESSES + 1:
            time.sleep(0.002)
        time.sleep(0.05)
        tripped = time.time()
        CircuitBreaker(storage=fleet.storage(name)).open()
    finally:
        fleet.close()
    for process in processes:
        process.join(20)
        assert process.exitcode == 0
    delays = [float(x) - tripped for x in log.lrange(f"{name}:rejected", 0, -1)]
    assert len(delays) == PROCESSES
    assert max(delays) < workers.SYNC + SLACK


@pytest.mark.parametrize(
    ("first", "probes"),
    [("succeed", 1), ("cancel", 2), ("die", 2)],
    ids=["one-probe", "cancelled-probe", "killed-probe"],
)
def test_exactly_one_probe_at_a_time_runs_across_the_fleet(
    shared_server: RedisServer, log: redis.Redis, first: str, probes: int
) -> None:
    """After the open period one probe runs fleet-wide; a cancelled one is followed by one
    more at once, and one whose process died by one more after its lease ran out."""
    name = unique()
    started = time.monotonic()
    run_probes(shared_server, name, first)
    assert len(log.lrange(f"{name}:probes", 0, -1)) == probes
    if first == "die":  # the lease, then a new open period, then the probe
        assert time.monotonic() - started >= workers.LEASE + workers.OPEN
