#!/usr/bin/env python3
"""Per-call cost of a guarded call, as a ratio to a bare functools.wraps passthrough wrapper.

Run from the repository root (standard library + this package only)::

    python benchmarks/overhead.py            # about a minute
    python benchmarks/overhead.py --quick    # a smoke run, a few seconds

Every figure is a ratio to a baseline measured in the same process, in the same rounds, with the
variants interleaved (bare, passthrough, breaker, bare, ...), because absolute times on a shared
machine drift by tens of percent. For each round the ratio breaker/passthrough is taken; the
report gives the median of those per-round ratios and the ratio of the best times. Async
scenarios are measured against an ``async def`` passthrough (``return await fn(*a, **k)``), sync
ones against a ``def`` passthrough (``return fn(*a, **k)``).

Scenarios (targets from the issue tracker in brackets):
  success   closed breaker, the guarded coroutine function returns          [<= 1.3x]
  failure   closed breaker, the function raises an expected exception that
            the caller catches (threshold never reached); the baseline
            raises and catches through the passthrough                      [<= 1.6x]
  open      open breaker, each call rejected with CircuitBreakerError and
            caught; baseline as for failure                                 [<= 1.5x]
  memory    bytes per breaker decorating one function, vs the passthrough  [<= 1.5x]
            (and, reported, after one call: statistics counters are made on
            first use)
  leak      bytes retained per call on each path (async and sync) after
            many calls                                                      [0]
  policy    closed, success path under RatePolicy(CountWindow(100))         [<= 2.0x]
  listener  closed, success path with one synchronous listener registered
            (each call builds and delivers a CallSucceeded event)           [reported]
  windows   per-call cost (alternating success/failure, failure rate 0.5
            never reached) with CountWindow(10), (1,000) and (100,000): the
            largest over the smallest                                       [< 1.2x]
  sync success / sync failure / sync open
            the same three paths for a plain ``def`` function, each against
            the sync passthrough                                 [1.3x / 1.6x / 1.5x]
  threads   8 threads (started together by a threading.Barrier) calling one
            sync function through ONE closed breaker, vs the same 8 threads
            through the sync passthrough: wall time / total calls           [<= 2.0x]
  threads failure
            the same with an expected failure on every call (threshold never
            reached), vs raising and catching through the passthrough      [reported]

After every threaded run the breaker's ``statistics().total`` must equal exactly the calls made
(successes, or failures, == threads x calls, nothing else counted) and the breaker must still be
closed: otherwise the script prints an error and exits with status 2, whatever the options. That
is a correctness check, not a timing. ``--strict`` makes a missed target exit with status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import statistics
import sys
import threading
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiocircuitbreaker import (
    CallCounts,
    CircuitBreaker,
    CircuitBreakerError,
    CountWindow,
    Event,
    RatePolicy,
)

HUGE = 10**9
LONG = 3600.0
THREADS = 8
TARGETS = {
    "success": 1.3,
    "failure": 1.6,
    "open": 1.5,
    "memory": 1.5,
    "policy": 2.0,
    "sync success": 1.3,
    "sync failure": 1.6,
    "sync open": 1.5,
    "threads": 2.0,
}
BROKEN = 2  # the exit status when a correctness check fails


class Boom(Exception):  # noqa: N818 - the benchmark's stand-in failure
    """The expected failure."""


# -- async stand-ins ----------------------------------------------------------------------------


async def ok() -> int:
    return 1


async def fail() -> int:
    raise Boom


def passthrough(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        return await fn(*args, **kwargs)

    return wrapper


def guarded(fn: Callable[..., Any], threshold: int = HUGE) -> Any:
    """``fn`` (sync or async) behind a new breaker that trips after ``threshold`` failures."""
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


# -- sync stand-ins -----------------------------------------------------------------------------


def ok_sync() -> int:
    return 1


def fail_sync() -> int:
    raise Boom


def passthrough_sync(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return wrapper


def loop_ok_sync(fn: Callable[[], Any], n: int) -> None:
    for _ in range(n):
        fn()


def loop_catch_sync(fn: Callable[[], Any], n: int) -> None:
    for _ in range(n):
        try:
            fn()
        except (Boom, CircuitBreakerError):
            pass


# -- timing -------------------------------------------------------------------------------------


def summary(samples: dict[str, list[float]]) -> dict[str, Any]:
    """The best time of each variant, and breaker/passthrough per round (median) and at best."""
    per_round = [i / p for i, p in zip(samples["breaker"], samples["passthrough"], strict=True)]
    return {
        "ns": {name: min(values) for name, values in samples.items()},
        "median_ratio": statistics.median(per_round),
        "best_ratio": min(samples["breaker"]) / min(samples["passthrough"]),
    }


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
    return summary(samples)


def timed_sync(loop: Any, fn: Callable[[], Any], n: int) -> float:
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        loop(fn, n)
        return (time.perf_counter_ns() - start) / n
    finally:
        gc.enable()


def compare_sync(
    variants: dict[str, Callable[[], Any]], loop: Any, n: int, rounds: int
) -> dict[str, Any]:
    """:func:`compare` for sync callables (same warm-up, rounds and order)."""
    for fn in variants.values():
        loop(fn, n // 5)  # warm-up
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            samples[name].append(timed_sync(loop, fn, n))
    return summary(samples)


# -- threads ------------------------------------------------------------------------------------


def in_threads(loop: Any, fn: Callable[[], Any], calls: int, errors: list[BaseException]) -> float:
    """Run ``loop(fn, calls)`` in THREADS threads started together; return wall ns per call.

    The clock starts in the barrier's action (run once every thread has arrived, before any is
    released) and stops when the last thread has been joined, so thread creation is not timed.
    What a thread raises is added to ``errors``.
    """
    started: list[int] = []
    barrier = threading.Barrier(THREADS, action=lambda: started.append(time.perf_counter_ns()))

    def work() -> None:
        try:
            barrier.wait()
            loop(fn, calls)
        except BaseException as exc:  # noqa: BLE001 - reported below, after the join
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    gc.collect()
    gc.disable()
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stopped = time.perf_counter_ns()
    finally:
        gc.enable()
    return (stopped - started[0]) / (THREADS * calls)


def compare_threads(
    variants: dict[str, Callable[[], Any]],
    loop: Any,
    calls: int,
    rounds: int,
    counted: str,
    problems: list[str],
    label: str,
) -> dict[str, Any]:
    """:func:`compare_sync` with every variant run in THREADS threads at once.

    The order of the variants is reversed every other round. After each threaded run of the
    breaker, its ``statistics().total`` must show exactly the calls made so far, all of them
    ``counted`` ("successes" or "failures"); each mismatch, and anything a thread raised, is
    added to ``problems``.
    """
    breaker = variants["breaker"].circuit_breaker  # type: ignore[attr-defined]
    made = 0

    def check(run: str) -> None:
        expected = CallCounts(**{counted: made})
        total = breaker.statistics().total
        if total != expected or not breaker.closed:
            problems.append(
                f"{label}, {run}: after {made:,} calls ({THREADS} threads x {calls:,} per run) "
                f"statistics().total is {total}, expected {expected}; state {breaker.state}"
            )

    for fn in variants.values():
        loop(fn, calls // 5)  # warm-up, in this thread
    made += calls // 5
    check("warm-up")
    samples: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for index in range(rounds):
        for name in names if index % 2 == 0 else reversed(names):
            errors: list[BaseException] = []
            samples[name].append(in_threads(loop, variants[name], calls, errors))
            problems.extend(f"{label}, round {index + 1}, {name}: raised {e!r}" for e in errors)
            if name == "breaker":
                made += THREADS * calls
                check(f"round {index + 1}")
    return summary(samples)


# -- scenario builders --------------------------------------------------------------------------


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


def open_breaker_sync() -> Callable[[], Any]:
    fn = guarded(fail_sync, threshold=1)
    try:
        fn()
    except Boom:
        pass
    assert fn.circuit_breaker.opened
    return fn  # type: ignore[no-any-return]


# -- memory -------------------------------------------------------------------------------------


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


def retained_per_call_sync(loop: Any, fn: Callable[[], Any], n: int) -> float:
    loop(fn, n)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        loop(fn, n)
        gc.collect()
        return (tracemalloc.get_traced_memory()[0] - before) / n
    finally:
        tracemalloc.stop()


# -- the run ------------------------------------------------------------------------------------


async def async_scenarios(n: int, rounds: int) -> dict[str, dict[str, Any]]:
    return {
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


def sync_scenarios(n: int, rounds: int) -> dict[str, dict[str, Any]]:
    return {
        "sync success": compare_sync(
            {
                "bare": ok_sync,
                "passthrough": passthrough_sync(ok_sync),
                "breaker": guarded(ok_sync),
            },
            loop_ok_sync,
            n,
            rounds,
        ),
        "sync failure": compare_sync(
            {
                "bare": fail_sync,
                "passthrough": passthrough_sync(fail_sync),
                "breaker": guarded(fail_sync),
            },
            loop_catch_sync,
            n // 2,
            rounds,
        ),
        "sync open": compare_sync(
            {
                "bare": fail_sync,
                "passthrough": passthrough_sync(fail_sync),
                "breaker": open_breaker_sync(),
            },
            loop_catch_sync,
            n // 2,
            rounds,
        ),
    }


def thread_scenarios(calls: int, rounds: int, problems: list[str]) -> dict[str, dict[str, Any]]:
    return {
        "threads": compare_threads(
            {
                "bare": ok_sync,
                "passthrough": passthrough_sync(ok_sync),
                "breaker": guarded(ok_sync),
            },
            loop_ok_sync,
            calls,
            rounds,
            "successes",
            problems,
            "threads",
        ),
        "threads failure": compare_threads(
            {
                "bare": fail_sync,
                "passthrough": passthrough_sync(fail_sync),
                "breaker": guarded(fail_sync),
            },
            loop_catch_sync,
            calls // 4,
            rounds,
            "failures",
            problems,
            "threads failure",
        ),
    }


async def memory_and_leaks(
    count: int,
) -> tuple[tuple[float, float, float, float], dict[str, float]]:
    pass_bytes, pass_called = await memory_per_wrapper(passthrough, count)
    breaker_bytes, breaker_called = await memory_per_wrapper(
        lambda f: CircuitBreaker(5, 30, Boom)(f),  # noqa: PLW0108 - a new breaker per function
        count,
    )
    leaks = {
        "success": await retained_per_call(loop_ok, guarded(ok), count),
        "failure": await retained_per_call(loop_catch, guarded(fail), count),
        "open": await retained_per_call(loop_catch, await open_breaker(), count),
        "sync success": retained_per_call_sync(loop_ok_sync, guarded(ok_sync), count),
        "sync failure": retained_per_call_sync(loop_catch_sync, guarded(fail_sync), count),
        "sync open": retained_per_call_sync(loop_catch_sync, open_breaker_sync(), count),
    }
    return (pass_bytes, pass_called, breaker_bytes, breaker_called), leaks


async def window_sizes(n: int, rounds: int, sizes: tuple[int, int, int]) -> dict[str, Any]:
    return await compare(
        {
            "passthrough": with_policy(alternate, sizes[0]),
            "middle": with_policy(alternate, sizes[1]),
            "breaker": with_policy(alternate, sizes[2]),
        },
        loop_catch,
        n // 2,
        rounds,
    )


def main(args: argparse.Namespace) -> int:
    n, rounds = (5_000, 5) if args.quick else (args.calls, args.rounds)
    calls = 1_000 if args.quick else max(1, args.calls // 2)  # per thread and run
    gil = "" if getattr(sys, "_is_gil_enabled", lambda: True)() else ", free-threaded (no GIL)"
    print(
        f"Python {sys.version.split()[0]}{gil}, {rounds} interleaved rounds of {n:,} calls each"
        f" ({THREADS} threads x {calls:,} calls per threaded run)\n"
    )
    problems: list[str] = []
    results = asyncio.run(async_scenarios(n, rounds))
    results.update(sync_scenarios(n, rounds))
    results.update(thread_scenarios(calls, rounds, problems))
    print(
        f"{'scenario':<16}{'bare ns':>10}{'pass ns':>10}{'breaker ns':>12}"
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
            f"{name:<16}{ns['bare']:>10.0f}{ns['passthrough']:>10.0f}{ns['breaker']:>12.0f}"
            f"{ratio:>10.2f}{result['best_ratio']:>8.2f}"
            + (f"{target:>7.1f}x" if target is not None else "       -")
            + verdict
        )
    cost = results["listener"]["median_ratio"] / results["success"]["median_ratio"]
    print(f"one sync listener: {cost:.2f}x the closed success path without listeners")
    threads, alone = results["threads"]["median_ratio"], results["sync success"]["median_ratio"]
    print(
        f"{THREADS} threads on one breaker: {threads:.2f}x the passthrough under the same threads"
        f" ({alone:.2f}x from one thread); statistics().total exact after every threaded run: "
        + ("no" if problems else "yes")
    )
    count = 1_000 if args.quick else 10_000
    memory, leaks = asyncio.run(memory_and_leaks(count))
    pass_bytes, pass_called, breaker_bytes, breaker_called = memory
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
    print("bytes retained per call: " + ", ".join(f"{k} {v:.1f}" for k, v in leaks.items()))
    sizes = (10, 1_000, 100_000)
    windows = asyncio.run(window_sizes(n, rounds, sizes))
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
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return BROKEN
    return 1 if failed and args.strict else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a few seconds; smoke test only")
    parser.add_argument("--calls", type=int, default=100_000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    sys.exit(main(parser.parse_args()))
