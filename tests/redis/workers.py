"""What each process of the multi-process tests runs (spawned: imported afresh in each)."""

from __future__ import annotations

import os
import time
from typing import Any

import redis

from aiocircuitbreaker import CircuitBreaker, CircuitBreakerError
from aiocircuitbreaker.redis import RedisFleet

SYNC = 0.05  # the workers' sync interval
LEASE = 0.5  # the workers' probe lease
OPEN = 0.3  # the workers' open period


class DependencyDown(OSError):
    """The failure the workers' dependency raises."""


def _breaker(port: int, name: str) -> tuple[CircuitBreaker, RedisFleet, redis.Redis]:
    client = redis.Redis(port=port)
    fleet = RedisFleet(client, sync_interval=SYNC, lease=LEASE, timeout=2.0)
    client.close()
    breaker = CircuitBreaker(3, OPEN, DependencyDown, name=name, storage=fleet.storage(name))
    return breaker, fleet, redis.Redis(port=port)


def _ready(log: redis.Redis, name: str, count: int) -> None:
    """Say this process is ready, and wait until ``count`` are."""
    log.incr(f"{name}:ready")
    while int(log.get(f"{name}:ready") or 0) < count:
        time.sleep(0.002)


def trip(port: int, name: str, count: int) -> None:
    """Call a dependency that is down until rejected; log how many calls failed here."""
    breaker, fleet, log = _breaker(port, name)
    _ready(log, name, count)
    failed = 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with breaker:
                raise DependencyDown
        except DependencyDown:
            failed += 1
        except CircuitBreakerError:
            break
        time.sleep(0.002)
    log.rpush(f"{name}:failed", failed)
    fleet.close()
    log.close()


def watch(port: int, name: str, count: int) -> None:
    """Succeed until rejected; log when (wall clock: the processes share one host)."""
    breaker, fleet, log = _breaker(port, name)
    guarded = breaker(lambda: None)
    _ready(log, name, count)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            guarded()
        except CircuitBreakerError:
            log.rpush(f"{name}:rejected", repr(time.time()))
            break
        time.sleep(0.001)
    fleet.close()
    log.close()


def probe(port: int, name: str, count: int, first: str) -> None:
    """Call until the breaker is closed again; log each probe this process ran.

    The first probe of the fleet does ``first``: ``"succeed"``, ``"cancel"`` (given back as
    cancelled) or ``"die"`` (the process exits at once, holding the probe's lease).
    """
    breaker, fleet, log = _breaker(port, name)
    _ready(log, name, count)
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        try:
            ticket = breaker.admit()
        except CircuitBreakerError:
            time.sleep(0.005)
            continue
        if ticket.probe is None:  # closed again: an ordinary call
            breaker.finish(ticket)
            break
        log.rpush(f"{name}:probes", os.getpid())
        if log.setnx(f"{name}:first", 1) and first != "succeed":
            if first == "die":
                os._exit(0)
            breaker.finish(ticket, KeyboardInterrupt())  # neither success nor failure
            continue
        time.sleep(0.05)
        breaker.finish(ticket)
    fleet.close()
    log.close()


def load(port: int, name: str, ready: Any, stop: Any, results: Any) -> None:
    """Call the breaker (a failure every third call) until ``stop`` is set; then report the
    longest call, anything unexpected raised, the calls made and the state seen."""
    client = redis.Redis(port=port)
    fleet = RedisFleet(client, sync_interval=0.02, timeout=0.05)
    client.close()
    breaker = CircuitBreaker(10**6, 1, DependencyDown, name=name, storage=fleet.storage(name))
    ready.put(os.getpid())
    longest, calls, unexpected = 0.0, 0, []
    while not stop.is_set():
        calls += 1
        started = time.monotonic()
        try:
            with breaker:
                if calls % 3 == 0:
                    raise DependencyDown
        except (DependencyDown, CircuitBreakerError):
            pass
        except BaseException as error:  # anything else is a bug
            unexpected.append(repr(error))
        longest = max(longest, time.monotonic() - started)
        time.sleep(0.001)
    deadline = time.monotonic() + 2
    while breaker._view.value.state != "forced_open" and time.monotonic() < deadline:
        time.sleep(0.005)  # the test forced it open through Redis: wait for the sync
    results.put((longest, unexpected, calls, str(breaker._view.value.state)))
    fleet.close()
