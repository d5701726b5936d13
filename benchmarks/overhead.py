#!/usr/bin/env python3
"""Per-call cost of a guarded call, as a ratio to a bare functools.wraps passthrough wrapper.

Run from the repository root (standard library + this package only)::

    python benchmarks/overhead.py            # about a minute
    python benchmarks/overhead.py --quick    # a smoke run, a few seconds

Every figure is a ratio to a baseline measured in the same process, in the same rounds, with the
variants interleaved (bare, passthrough, breaker, bare, ...), because absolute times on a shared
machine drift by tens of percent. For each round the ratio breaker/passthrough is taken; the
report gives the median of those per-round ratios and the ratio of the best times.

Scenarios (targets from the issue tracker in brackets):
  success   closed breaker, the guarded function returns                    [<= 1.5x]
  failure   closed breaker, the function raises an expected exception that
            the caller catches (threshold never reached); the baseline
            raises and catches through the passthrough                      [<= 1.6x]
  open      open breaker, each call rejected with CircuitBreakerError and
            caught; baseline as for failure                                 [<= 1.5x]
  memory    bytes per breaker decorating one function, vs the passthrough  [<= 1.5x]
            (and, reported, after one call: statistics counters are made on
            first use)
  leak      bytes retained per call on each path after many calls           [0]
  policy    closed, success path under RatePolicy(CountWindow(100))         [<= 2.0x]
  listener  closed, success path with one synchronous listener registered
            (each call builds and delivers a CallSucceeded event)           [reported]
  windows   per-call cost (alternating success/failure, failure rate 0.5
            never reached) with CountWindow(10), (1,000) and (100,000): the
            largest over the smallest                                       [< 1.2x]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import statistics
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiocircuitbreaker import CircuitBreaker, CircuitBreakerError, CountWindow, Event, RatePolicy

HUGE = 10**9
LONG = 3600.0
TARGETS = {"success": 1.5, "failure": 1.6, "open": 1.5, "memory": 1.5, "policy": 2.0}


class Boom(Exception):  # noqa: N818 - the benchmark's stand-in failure
    """The expected failure."""


async def ok() -> int:
    return 1


async def fail() -> int:
    raise Boom


def passthrough(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        return await fn(*args, **kwargs)

    return wrapper


def guarded(fn: Callable[..., Awaitable[Any]], threshold: int = HUGE) -> Any:
    return CircuitBreaker(threshold, LONG, Boom)(fn)


async def loop_ok(fn: Callable[[], Awaitable[Any]], n: int) -> None:
    for _ in range(n):
        await fn()


async def loop_catch(fn: Callable[[], Awaitable[Any]], n: int) -> None:
    for _ in range(n):
        try:
            await fn()
        except (Boom, CircuitBreakerError):
            pass


async def timed(loop: Any, fn: Callable[[], Awaitable[Any]], n: int) -> float:
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        await loop(fn, n)
        return (time.perf_counter_ns() - start) / n
    finally:
        gc.enable()


async def compare(
    variants: dict[str, Callable[[], Awaitable[Any]]], loop: Any, n: int, rounds: int
) -> dict[str, Any]:
    for fn in variants.values():
        await loop(fn, n // 5)  # warm-up
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            samples[name].append(await timed(loop, fn, n))
    per_round = [i / p for i, p in zip(samples["breaker"], samples["passthrough"], strict=True)]
    return {
        "ns": {name: min(values) for name, values in samples.items()},
        "median_ratio": statistics.median(per_round),
        "best_ratio": min(samples["breaker"]) / min(samples["passthrough"]),
    }


def with_listener(fn: Callable[..., Awaitable[Any]]) -> Any:
    """A breaker with one synchronous listener that does nothing with its events."""

    def on_event(event: Event) -> None:
        del event

    return CircuitBreaker(HUGE, LONG, Boom, listeners=[on_event])(fn)


def with_policy(fn: Callable[..., Awaitable[Any]], size: int = 100) -> Any:
    policy = RatePolicy(CountWindow(size), failure_rate=1.0)
    return CircuitBreaker(expected_exception=Boom, policy=policy)(fn)


async def alternate() -> int:
    """Succeed and fail in turn (a failure rate of 0.5, under the 1.0 that would trip)."""
    alternate.calls += 1  # type: ignore[attr-defined]
    if alternate.calls % 2:  # type: ignore[attr-defined]
        raise Boom
    return 1


alternate.calls = 0  # type: ignore[attr-defined]


async def open_breaker() -> Callable[[], Awaitable[Any]]:
    fn = guarded(fail, threshold=1)
    try:
        await fn()
    except Boom:
        pass
    assert fn.circuit_breaker.opened
    return fn  # type: ignore[no-any-return]


async def memory_per_wrapper(decorate: Callable[[Any], Any], count: int) -> tuple[float, float]:
    """Return bytes per decorated function: after decorating, and after one call of each."""
    functions = []
    for i in range(count):

        async def f() -> int:
            return 1

        f.__qualname__ = f"guarded_{i}"
        functions.append(f)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        wrappers = [decorate(f) for f in functions]
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - before
        for wrapper in wrappers:
            await wrapper()
        gc.collect()
        called = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    del wrappers
    return used / count, called / count


async def retained_per_call(loop: Any, fn: Callable[[], Awaitable[Any]], n: int) -> float:
    await loop(fn, n)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        await loop(fn, n)
        gc.collect()
        return (tracemalloc.get_traced_memory()[0] - before) / n
    finally:
        tracemalloc.stop()


async def main(args: argparse.Namespace) -> int:
    n, rounds = (5_000, 5) if args.quick else (args.calls, args.rounds)
    print(f"Python {sys.version.split()[0]}, {rounds} interleaved rounds of {n:,} calls each\n")
    results = {
        "success": await compare(
            {"bare": ok, "passthrough": passthrough(ok), "breaker": guarded(ok)},
            loop_ok,
            n,
            rounds,
        ),
        "failure": await compare(
            {"bare": fail, "passthrough": passthrough(fail), "breaker": guarded(fail)},
            loop_catch,
            n // 2,
            rounds,
        ),
        "open": await compare(
            {"bare": fail, "passthrough": passthrough(fail), "breaker": await open_breaker()},
            loop_catch,
            n // 2,
            rounds,
        ),
        "policy": await compare(
            {"bare": ok, "passthrough": passthrough(ok), "breaker": with_policy(ok)},
            loop_ok,
            n,
            rounds,
        ),
        "listener": await compare(
            {"bare": ok, "passthrough": passthrough(ok), "breaker": with_listener(ok)},
            loop_ok,
            n,
            rounds,
        ),
    }
    print(
        f"{'scenario':<10}{'bare ns':>10}{'pass ns':>10}{'breaker ns':>12}"
        f"{'median x':>10}{'best x':>8}{'target':>8}"
    )
    failed = []
    for name, result in results.items():
        ns = result["ns"]
        ratio = result["median_ratio"]
        target = TARGETS.get(name)
        verdict = "" if target is None or ratio <= target else "  over"
        if verdict:
            failed.append(name)
        print(
            f"{name:<10}{ns['bare']:>10.0f}{ns['passthrough']:>10.0f}{ns['breaker']:>12.0f}"
            f"{ratio:>10.2f}{result['best_ratio']:>8.2f}"
            + (f"{target:>7.1f}x" if target is not None else "       -")
            + verdict
        )
    cost = results["listener"]["median_ratio"] / results["success"]["median_ratio"]
    print(f"one sync listener: {cost:.2f}x the closed success path without listeners")
    count = 1_000 if args.quick else 10_000
    pass_bytes, pass_called = await memory_per_wrapper(passthrough, count)
    breaker_bytes, breaker_called = await memory_per_wrapper(
        lambda f: CircuitBreaker(5, 30, Boom)(f),  # noqa: PLW0108 - a new breaker per function
        count,
    )
    memory_ratio = breaker_bytes / pass_bytes
    verdict = "" if memory_ratio <= TARGETS["memory"] else "  over"
    if verdict:
        failed.append("memory")
    print(
        f"\nmemory per decorated function: passthrough {pass_bytes:.0f} B, "
        f"breaker {breaker_bytes:.0f} B: {memory_ratio:.2f}x (target {TARGETS['memory']}x){verdict}"
        f"\n  after one call each: passthrough {pass_called:.0f} B, breaker {breaker_called:.0f} B "
        "(statistics counters are made on first use)"
    )
    leaks = {
        "success": await retained_per_call(loop_ok, guarded(ok), count),
        "failure": await retained_per_call(loop_catch, guarded(fail), count),
        "open": await retained_per_call(loop_catch, await open_breaker(), count),
    }
    print("bytes retained per call: " + ", ".join(f"{k} {v:.1f}" for k, v in leaks.items()))
    sizes = (10, 1_000, 100_000)
    windows = await compare(
        {
            "passthrough": with_policy(alternate, sizes[0]),
            "middle": with_policy(alternate, sizes[1]),
            "breaker": with_policy(alternate, sizes[2]),
        },
        loop_catch,
        n // 2,
        rounds,
    )
    spread = windows["median_ratio"]
    verdict = "" if spread < 1.2 else "  over"
    if verdict:
        failed.append("windows")
    print(
        "per-call cost with CountWindow(10 / 1,000 / 100,000): "
        + " / ".join(f"{windows['ns'][k]:.0f} ns" for k in ("passthrough", "middle", "breaker"))
        + f"; largest / smallest {spread:.2f}x (target < 1.2x){verdict}"
    )
    if failed:
        print(f"\nover target: {', '.join(failed)} (noisy machine? rerun before believing it)")
    return 1 if failed and args.strict else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a few seconds; smoke test only")
    parser.add_argument("--calls", type=int, default=100_000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    sys.exit(asyncio.run(main(parser.parse_args())))
