#!/usr/bin/env python3
"""The Redis storage's cost per call, against the in-memory breaker measured in the same run.

Run from the repository root (needs ``redis-server`` on PATH and ``pip install redis``)::

    python benchmarks/redis_storage.py            # about half a minute
    python benchmarks/redis_storage.py --quick    # a smoke run

It starts its own redis-server on a free 127.0.0.1 port (nothing persisted) and measures, with
the variants interleaved round by round (in-memory, Redis, in-memory, ...) and the median of
the per-round ratios reported:

  success        closed breaker, the guarded function returns (async and sync)   [<= 1.10x]
  rejection      open breaker, each call rejected and caught (async and sync)    [<= 1.10x]
  failure        closed breaker, an expected failure every call (threshold never reached):
                 one script run per failure; its cost in microseconds, and the ratio
  1,000 breakers on one fleet: bytes per breaker (breaker and storage, after a call), and
                 the background work of one sync of all of them (wall time, per breaker)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis

from aiocircuitbreaker import CircuitBreaker, CircuitBreakerError
from aiocircuitbreaker.redis import RedisFleet

HUGE = 10**9


class DownError(Exception):
    pass


def start_server() -> tuple[subprocess.Popen[bytes], int, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not on PATH")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    directory = tempfile.mkdtemp(prefix="aiocb-bench-")
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", "--dir", directory]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(1000):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.01)
    client.close()
    return server, port, directory


def interleaved(variants: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Run each variant once per round, in turn; return its per-call times (ns) by name."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, run in variants.items():
            times[name].append(run())
    return times


def ratio(times: dict[str, list[float]], base: str, other: str) -> float:
    return statistics.median(o / b for o, b in zip(times[other], times[base], strict=True))


def sync_loop(fn: Callable[[], Any], n: int, *, catch: type[BaseException] | None) -> float:
    start = time.perf_counter_ns()
    if catch is None:
        for _ in range(n):
            fn()
    else:
        for _ in range(n):
            try:
                fn()
            except catch:
                pass
    return (time.perf_counter_ns() - start) / n


def async_loop(fn: Callable[[], Any], n: int, *, catch: type[BaseException] | None) -> float:
    async def main() -> float:
        start = time.perf_counter_ns()
        if catch is None:
            for _ in range(n):
                await fn()
        else:
            for _ in range(n):
                try:
                    await fn()
                except catch:
                    pass
        return (time.perf_counter_ns() - start) / n

    return asyncio.run(main())


def breakers(fleet: RedisFleet, name: str, **options: Any) -> dict[str, CircuitBreaker]:
    options.setdefault("expected_exception", DownError)
    return {
        "memory": CircuitBreaker(name=f"m-{name}", **options),
        "redis": CircuitBreaker(name=name, storage=fleet.storage(name), **options),
    }


def paths(fleet: RedisFleet, n: int, rounds: int) -> list[tuple[str, float, str]]:
    rows: list[tuple[str, float, str]] = []

    def ok() -> int:
        return 1

    async def aok() -> int:
        return 1

    def fail() -> int:
        raise DownError

    async def afail() -> int:
        raise DownError

    for kind, loop, target in (("sync", sync_loop, ok), ("async", async_loop, aok)):
        made = breakers(fleet, f"success-{kind}", failure_threshold=HUGE)
        fns = {name: b(target) for name, b in made.items()}
        runs = {name: (lambda f=f, loop=loop: loop(f, n, catch=None)) for name, f in fns.items()}
        times = interleaved(runs, rounds)
        rows.append((f"success ({kind})", ratio(times, "memory", "redis"), "<= 1.10x"))
    for kind, loop, target in (("sync", sync_loop, ok), ("async", async_loop, aok)):
        made = breakers(fleet, f"open-{kind}", recovery_timeout=HUGE)
        fns = {}
        for name, b in made.items():
            b.open()
            fns[name] = b(target)
        runs = {
            name: (lambda f=f, loop=loop: loop(f, n, catch=CircuitBreakerError))
            for name, f in fns.items()
        }
        times = interleaved(runs, rounds)
        rows.append((f"rejection ({kind})", ratio(times, "memory", "redis"), "<= 1.10x"))
    for kind, loop, target in (("sync", sync_loop, fail), ("async", async_loop, afail)):
        made = breakers(fleet, f"failure-{kind}", failure_threshold=HUGE)
        fns = {name: b(target) for name, b in made.items()}
        few = max(50, n // 50)
        runs = {
            name: (lambda f=f, loop=loop, few=few: loop(f, few, catch=DownError))
            for name, f in fns.items()
        }
        times = interleaved(runs, rounds)
        cost = statistics.median(times["redis"]) / 1000
        rows.append((f"failure ({kind})", ratio(times, "memory", "redis"), f"{cost:.0f} us/call"))
    return rows


def fleet_of_1000(port: int) -> list[str]:
    lines = []
    client = redis.Redis(port=port)
    fleet = RedisFleet(client, prefix="bench1000", sync_interval=None)
    client.close()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    kept = []
    for i in range(1000):
        breaker = CircuitBreaker(name=f"b{i}", storage=fleet.storage(f"b{i}"))
        breaker.call(lambda: None)
        kept.append(breaker)
    gc.collect()
    after = tracemalloc.take_snapshot()
    redis_bytes = sum(s.size_diff for s in after.compare_to(before, "filename"))
    before = tracemalloc.take_snapshot()
    local = []
    for i in range(1000):
        breaker = CircuitBreaker(name=f"m{i}")
        breaker.call(lambda: None)
        local.append(breaker)
    gc.collect()
    after = tracemalloc.take_snapshot()
    memory_bytes = sum(s.size_diff for s in after.compare_to(before, "filename"))
    tracemalloc.stop()
    lines.append(
        f"1,000 breakers: {redis_bytes / 1000:.0f} B each on Redis storage, "
        f"{memory_bytes / 1000:.0f} B in memory ({redis_bytes / memory_bytes:.1f}x); "
        "one sync thread for the fleet"
    )
    ticks = []
    for _ in range(20):
        start = time.perf_counter()
        fleet.sync()
        ticks.append(time.perf_counter() - start)
    tick = statistics.median(ticks)
    lines.append(
        f"one sync of 1,000 breakers: {tick * 1000:.1f} ms ({tick * 1e6 / 1000:.1f} us per "
        "breaker; one pipelined HGET each); at sync_interval=0.5 s: "
        f"{tick / 0.5 * 100:.1f} % of one core"
    )
    fleet.close()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    quick = parser.parse_args().quick
    n, rounds = (2000, 3) if quick else (20000, 15)
    server, port, directory = start_server()
    try:
        client = redis.Redis(port=port)
        fleet = RedisFleet(client, prefix="bench", sync_interval=0.5)
        client.close()
        try:
            rows = paths(fleet, n, rounds)
        finally:
            fleet.close()
        version = sys.version.split()[0]
        print(f"Redis storage vs in-memory, median of {rounds} interleaved rounds ({version})")
        for name, value, note in rows:
            print(f"  {name:<18} {value:6.2f}x   {note}")
        for line in fleet_of_1000(port):
            print(f"  {line}")
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
