"""The Redis storage's helpers: its options checked, values to and from the script, and more.

Numbers go to the script as ``repr`` of a float (exact), and come back as ``%.17g`` strings.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import replace

from ._core import COUNTING, HALF_OPEN, State, Value
from ._redis_link import logger
from ._storage import Probes, Reading

__all__ = [
    "Pending",
    "call_hook",
    "carried",
    "check_options",
    "fields",
    "probes",
    "reading",
    "text",
]

_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def check_options(
    prefix: object,
    sync_interval: float | None,
    timeout: float,
    lease: float | None,
    ttl: float,
    quorum: object,
    quorum_window: float,
) -> None:
    """Check a fleet's options.

    Raises:
        ValueError: one is wrong; the message names it, its value and what is allowed.
    """
    if not isinstance(prefix, str) or not prefix or prefix.strip("_-.:" + _ALNUM):
        msg = f"prefix must be a non-empty string of letters, digits and _-.:, got {prefix!r}"
        raise ValueError(msg)
    _check_seconds("sync_interval", sync_interval, optional=True)
    _check_seconds("timeout", timeout)
    _check_seconds("lease", lease, optional=True)
    _check_seconds("ttl", ttl)
    _check_seconds("quorum_window", quorum_window)
    if isinstance(quorum, bool) or not isinstance(quorum, int) or quorum < 1:
        msg = f"quorum must be an int >= 1 (processes), got {quorum!r}"
        raise ValueError(msg)
    if sync_interval is not None:
        _check_against_sync(sync_interval, lease, ttl)


def _check_against_sync(sync_interval: float, lease: float | None, ttl: float) -> None:
    if ttl < 4 * sync_interval:
        msg = f"ttl must be at least 4 * sync_interval ({4 * sync_interval!r}), got {ttl!r}"
        raise ValueError(msg)
    if lease is not None and lease < 2 * sync_interval:
        msg = (
            f"lease must be at least 2 * sync_interval ({2 * sync_interval!r}: a live probe "
            f"renews it at each sync), got {lease!r}"
        )
        raise ValueError(msg)


def text(number: float) -> str:
    """Return ``number`` as the script reads it (exact: ``repr`` round-trips a float)."""
    return repr(float(number))


def _check_seconds(name: str, value: object, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if number is None or not (math.isfinite(number) and number > 0):
        allowed = "a finite number of seconds > 0" + (" or None" if optional else "")
        msg = f"{name} must be {allowed}, got {value!r}"
        raise ValueError(msg)


def fields(value: Value) -> tuple[str, ...]:
    return (
        str(value.generation),
        value.state.value,
        str(value.failures),
        str(value.openings),
        text(value.open_for),
    )


def carried(reading: Reading) -> Value:
    """Return the value of ``reading`` as it would be stored now (with its streak, if any)."""
    value = reading.value
    value = replace(value, open_for=value.open_for - reading.age)
    if reading.counts is not None:
        value = replace(value, failures=reading.counts[3])
    return value


def reading(answer: list[str]) -> Reading:
    generation, state, failures, openings, open_for, age = answer[:6]
    value = Value(State(state), int(generation), int(failures), int(openings), float(open_for))
    rest = answer[6:]
    if value.state in COUNTING:
        calls, fails, slow, streak = (int(float(x)) for x in rest[:4])
        return Reading(value, float(age), (calls, fails, slow, streak))
    if value.state is HALF_OPEN:
        counted = probes(rest[:6])
        return Reading(value, float(age), probes=counted, leases=tuple(map(float, rest[6:])))
    return Reading(value, float(age))


def probes(answer: list[str]) -> Probes:
    admitted, running, successes, failures, slow, run = answer[:6]
    return Probes(
        running=int(running),
        successes=int(successes),
        failures=int(failures),
        slow=int(slow),
        admitted=admitted == "1",
        expired=tuple(float(x) for x in answer[6:]),
        run=int(run),
    )


def call_hook(watcher: Callable[[], bool]) -> bool:
    """Call a breaker's hook; return whether to keep it (a hook that raises is logged, kept)."""
    try:
        return watcher()
    except Exception:  # noqa: BLE001 - logged; a hook never stops the sync of the others
        logger.exception("a breaker failed to read its shared state again; it will at next sync")
        return True


class Pending:
    """Successes of one generation counted in this process, and how many were sent."""

    __slots__ = ("counter", "flushed", "generation")

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.counter = itertools.count()
        self.flushed = 0
