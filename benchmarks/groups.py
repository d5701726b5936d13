#!/usr/bin/env python3
"""What per-key breakers cost: the key lookup per call, an idle key's memory, and the bound.

Run from the repository root (standard library + this package only)::

    python benchmarks/groups.py            # about half a minute
    python benchmarks/groups.py --quick    # a smoke run

Measured, in interleaved rounds (median of the per-round ratios):
  lookup        a call through a group-decorated function (``key=`` a function of the
                argument, 100 keys already made) vs the same function decorated by one plain
                breaker, sync and async
  idle key      bytes per key of a group (a closed breaker that has been called once)
  bound         100,000 distinct keys through a group of ``max_keys=1,000``: breakers kept,
                bytes still allocated after, and the time per new key vs per known key
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiocircuitbreaker import CircuitBreaker, CircuitBreakerGroup

HUGE = 10**9


def ok(key: int) -> int:
    return key


async def aok(key: int) -> int:
    return key


def by_key(key: int) -> int:
    return key


def sync_loop(fn: Callable[[int], Any], n: int) -> float:
    keys = [i % 100 for i in range(n)]
    start = time.perf_counter()
    for key in keys:
        fn(key)
    return (time.perf_counter() - start) / n


def async_loop(fn: Callable[[int], Any], n: int) -> float:
    async def run() -> float:
        keys = [i % 100 for i in range(n)]
        start = time.perf_counter()
        for key in keys:
            await fn(key)
        return (time.perf_counter() - start) / n

    return asyncio.run(run())


def lookup(n: int, rounds: int) -> dict[str, tuple[float, float, float]]:
    plain_sync = CircuitBreaker(HUGE, name="plain-sync")(ok)
    plain_async = CircuitBreaker(HUGE, name="plain-async")(aok)
    group_sync = CircuitBreakerGroup("group-sync", key=by_key, failure_threshold=HUGE)(ok)
    group_async = CircuitBreakerGroup("group-async", key=by_key, failure_threshold=HUGE)(aok)
    results: dict[str, tuple[float, float, float]] = {}
    for label, loop, plain, grouped in (
        ("sync", sync_loop, plain_sync, group_sync),
        ("async", async_loop, plain_async, group_async),
    ):
        loop(grouped, n)  # makes the 100 keys
        ratios, plain_ns, group_ns = [], [], []
        for _ in range(rounds):
            p = loop(plain, n)
            g = loop(grouped, n)
            ratios.append(g / p)
            plain_ns.append(p * 1e9)
            group_ns.append(g * 1e9)
        results[label] = (
            statistics.median(plain_ns),
            statistics.median(group_ns),
            statistics.median(ratios),
        )
    return results


def idle_key_bytes(keys: int) -> float:
    group = CircuitBreakerGroup("idle", max_keys=keys + 1, failure_threshold=HUGE)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for key in range(keys):
        group.call(key, ok, key)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(group) == keys
    return (after - before) / keys


def bound(keys: int, max_keys: int) -> tuple[int, float, float, float]:
    group = CircuitBreakerGroup("bound", max_keys=max_keys, failure_threshold=HUGE)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    start = time.perf_counter()
    for key in range(keys):
        group.call(key, ok, key)
    new_key = (time.perf_counter() - start) / keys
    gc.collect()
    after, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    start = time.perf_counter()
    for key in range(keys - max_keys, keys):  # the keys still held
        group.call(key, ok, key)
    known_key = (time.perf_counter() - start) / max_keys
    return len(group), after - before, peak - before, new_key / known_key


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    args = parser.parse_args()
    n, rounds, keys = (2_000, 3, 10_000) if args.quick else (100_000, 9, 100_000)
    print(f"Python {sys.version.split()[0]}, {rounds} interleaved rounds of {n:,} calls")
    print()
    print("lookup    plain ns   group ns   median x plain")
    for label, (plain, grouped, ratio) in lookup(n, rounds).items():
        print(f"{label:8} {plain:9.0f} {grouped:10.0f} {ratio:12.2f}")
    print()
    print(f"memory of an idle key: {idle_key_bytes(keys // 10):,.0f} B")
    held, retained, peak, slower = bound(keys, 1_000)
    print(
        f"{keys:,} distinct keys, max_keys=1,000: {held:,} breakers kept, "
        f"{retained / 1e6:.1f} MB still allocated ({peak / 1e6:.1f} MB at the peak); "
        f"a new key (made, and an idle one evicted) costs {slower:.1f}x a known key"
    )
    return 0 if held == 1_000 else 2


if __name__ == "__main__":
    sys.exit(main())
