#!/usr/bin/env python3
"""A/B: this checkout against another commit, both in one process, interleaved.

For checking that a change costs nothing on the call paths (``benchmarks/overhead.py`` compares
with a passthrough wrapper; this compares with the code as it was)::

    python benchmarks/ab.py 6b47558          # a commit, tag or branch; about a minute
    python benchmarks/ab.py HEAD~3 --rounds 51 --calls 20000

The other commit is checked out with ``git worktree`` into a temporary directory and imported
under another name, so both versions run in the same interpreter, on the same event loop, in
alternating rounds. Each round times the same loop over both and takes new/old; the median of
those ratios is reported with its spread. An A/A run (``python benchmarks/ab.py HEAD`` on a
clean tree) shows the noise floor of the machine: read differences smaller than its spread as
noise.

Paths: ``success``, ``failure`` and ``open`` (rejection) for an ``async def`` function, then
``sync success``, ``sync failure`` and ``sync open`` for a plain ``def`` function (the same
stand-ins as ``benchmarks/overhead.py``). The sync paths are compared only when the other commit
can guard a sync function; for an older commit (async only: decorating a ``def`` function is
refused) they are skipped with a note.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import inspect
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from overhead import (  # noqa: E402 - the same stand-ins
    Boom,
    fail,
    fail_sync,
    loop_ok,
    loop_ok_sync,
    ok,
    ok_sync,
)

import aiocircuitbreaker as new  # noqa: E402 - after the path is set


async def loop_catch(fn: Callable[[], Awaitable[Any]], n: int) -> None:
    """Like overhead.py's, but catching either version's CircuitBreakerError (two classes)."""
    for _ in range(n):
        try:
            await fn()
        except Exception:  # noqa: BLE001 - Boom or a rejection: the path being measured
            pass


def loop_catch_sync(fn: Callable[[], Any], n: int) -> None:
    """:func:`loop_catch` for sync functions."""
    for _ in range(n):
        try:
            fn()
        except Exception:  # noqa: BLE001 - Boom or a rejection: the path being measured
            pass


def load(path: Path, name: str) -> ModuleType:
    """Import the package at ``path`` under the module name ``name``."""
    spec = importlib.util.spec_from_file_location(
        name, path / "__init__.py", submodule_search_locations=[str(path)]
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


async def make(package: ModuleType, scenario: str) -> Callable[[], Awaitable[Any]]:
    """Return the guarded function for ``scenario``, built with ``package``."""
    if scenario == "success":
        return package.CircuitBreaker(10**9, 3600, Boom)(ok)  # type: ignore[no-any-return]
    if scenario == "failure":
        return package.CircuitBreaker(10**9, 3600, Boom)(fail)  # type: ignore[no-any-return]
    guarded = package.CircuitBreaker(1, 3600, Boom)(fail)
    try:
        await guarded()  # trips: every later call is rejected
    except Boom:
        pass
    return guarded  # type: ignore[no-any-return]


def make_sync(package: ModuleType, scenario: str) -> Callable[[], Any]:
    """Return the guarded sync function for ``scenario`` ("sync success" ...), built with it."""
    if scenario == "sync success":
        return package.CircuitBreaker(10**9, 3600, Boom)(ok_sync)  # type: ignore[no-any-return]
    if scenario == "sync failure":
        return package.CircuitBreaker(10**9, 3600, Boom)(fail_sync)  # type: ignore[no-any-return]
    guarded = package.CircuitBreaker(1, 3600, Boom)(fail_sync)
    try:
        guarded()  # trips: every later call is rejected
    except Boom:
        pass
    return guarded  # type: ignore[no-any-return]


def no_sync_support(package: ModuleType) -> str | None:
    """Why ``package`` cannot guard a plain ``def`` function, or ``None`` if it can."""
    try:
        guarded = package.CircuitBreaker(10**9, 3600, Boom)(ok_sync)
    except (TypeError, ValueError) as exc:  # 2.x and the 3.0 commits before sync support
        return f"decorating a def function raises {type(exc).__name__}"
    if inspect.iscoroutinefunction(guarded):
        return "it turns a def function into an async def one"
    if guarded() != 1:
        return "a guarded def function does not return its result"
    return None


async def compare(old: ModuleType, scenario: str, n: int, rounds: int) -> list[float]:
    loop = loop_ok if scenario == "success" else loop_catch
    fns = {"old": await make(old, scenario), "new": await make(new, scenario)}
    for fn in fns.values():
        await loop(fn, n // 5)  # warm-up
    ratios = []
    for index in range(rounds):
        times = {}
        order = ("old", "new") if index % 2 else ("new", "old")
        for name in order:
            start = time.perf_counter()
            await loop(fns[name], n)
            times[name] = time.perf_counter() - start
        ratios.append(times["new"] / times["old"])
    return ratios


def compare_sync(old: ModuleType, scenario: str, n: int, rounds: int) -> list[float]:
    """:func:`compare` for the sync paths (same warm-up, alternation and ratio)."""
    loop = loop_ok_sync if scenario == "sync success" else loop_catch_sync
    fns = {"old": make_sync(old, scenario), "new": make_sync(new, scenario)}
    for fn in fns.values():
        loop(fn, n // 5)  # warm-up
    ratios = []
    for index in range(rounds):
        times = {}
        order = ("old", "new") if index % 2 else ("new", "old")
        for name in order:
            start = time.perf_counter()
            loop(fns[name], n)
            times[name] = time.perf_counter() - start
        ratios.append(times["new"] / times["old"])
    return ratios


def report(scenario: str, ratios: list[float]) -> None:
    print(f"{scenario:<14}{statistics.median(ratios):>16.3f}{min(ratios):>8.3f}{max(ratios):>8.3f}")


async def measure(old: ModuleType, calls: int, rounds: int) -> None:
    for scenario in ("success", "failure", "open"):
        report(scenario, await compare(old, scenario, calls, rounds))


def measure_sync(old: ModuleType, ref: str, calls: int, rounds: int) -> None:
    why = no_sync_support(old)
    if why is not None:
        print(f"sync paths skipped: {ref} has no sync support ({why})")
        return
    for scenario in ("sync success", "sync failure", "sync open"):
        report(scenario, compare_sync(old, scenario, calls, rounds))


def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        tree = Path(scratch) / "old"
        git = ["git", "-C", str(ROOT), "worktree"]
        subprocess.run([*git, "add", "--detach", "-q", str(tree), args.ref], check=True)
        try:
            old = load(tree / "aiocircuitbreaker", "aiocircuitbreaker_old")
            print(
                f"Python {sys.version.split()[0]}: this checkout vs {args.ref}, "
                f"{args.rounds} alternating rounds of {args.calls:,} calls\n"
            )
            print(f"{'path':<14}{'new/old median':>16}{'min':>8}{'max':>8}")
            asyncio.run(measure(old, args.calls, args.rounds))
            measure_sync(old, args.ref, args.calls, args.rounds)
        finally:
            subprocess.run([*git, "remove", "--force", str(tree)], check=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("ref", help="the commit to compare with (e.g. a tag or a hash)")
    parser.add_argument("--calls", type=int, default=20_000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=31, help="alternating rounds")
    main(parser.parse_args())
