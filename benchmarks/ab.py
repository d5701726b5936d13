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
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
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

from overhead import Boom, fail, loop_ok, ok  # noqa: E402 - the same stand-ins

import aiocircuitbreaker as new  # noqa: E402 - after the path is set


async def loop_catch(fn: Callable[[], Awaitable[Any]], n: int) -> None:
    """Like overhead.py's, but catching either version's CircuitBreakerError (two classes)."""
    for _ in range(n):
        try:
            await fn()
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


async def measure(old: ModuleType, ref: str, calls: int, rounds: int) -> None:
    print(
        f"Python {sys.version.split()[0]}: this checkout vs {ref}, "
        f"{rounds} alternating rounds of {calls:,} calls\n"
    )
    print(f"{'path':<10}{'new/old median':>16}{'min':>8}{'max':>8}")
    for scenario in ("success", "failure", "open"):
        ratios = await compare(old, scenario, calls, rounds)
        print(
            f"{scenario:<10}{statistics.median(ratios):>16.3f}"
            f"{min(ratios):>8.3f}{max(ratios):>8.3f}"
        )


def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        tree = Path(scratch) / "old"
        git = ["git", "-C", str(ROOT), "worktree"]
        subprocess.run([*git, "add", "--detach", "-q", str(tree), args.ref], check=True)
        try:
            old = load(tree / "aiocircuitbreaker", "aiocircuitbreaker_old")
            asyncio.run(measure(old, args.ref, args.calls, args.rounds))
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
