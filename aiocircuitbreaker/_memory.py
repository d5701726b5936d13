"""The in-memory storage: a breaker's value and counts in this process (the default).

It follows the protocol of ``_storage.py``: everything under one re-entrant lock, which the
breaker shares, except the failure streak without a window, an ``itertools.count`` advanced
without the lock (see ``_Tally``). Its lock-free counters (``failure_counter``,
``success_counter``) serve the breaker's fast path; other storages need not have them.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

from ._core import CLOSED, HALF_OPEN, INITIAL, METRICS_ONLY, Outcome, State, Value
from ._counting import count_value
from ._storage import Probes, Reading, Tally
from ._windows import CountWindow, TimeWindow, Window

__all__ = ["InMemoryStorage"]

_NO_LEASES: dict[int, float] = {}  # shared while empty: never written to (see acquire)
_NO_COUNTS: Tally = (0, 0, 0, 0)


def _counting_state(state: State) -> bool:
    """Whether calls of a generation in ``state`` are counted (closed, or metrics-only)."""
    return state is CLOSED or state is METRICS_ONLY  # (identity: hashing an enum costs)


_NO_PROBES = Probes()


class _Tally:
    """The counting of one generation in memory.

    Without a window, the failure streak is an ``itertools.count``: a failure advances it
    without the lock, in one atomic step, and a success replaces it with a new one. A failure
    racing a success then lands on the count being replaced, which orders it before the
    success: the streak is never wrong. With a count window, successes handed out through
    :meth:`InMemoryStorage.success_counter` wait in ``pending`` (advanced lock-free) and are
    moved into the window before anything else is done with it. Everything else happens under
    the storage's lock.
    """

    __slots__ = (
        "consecutive",
        "counter",
        "counting",
        "drained",
        "generation",
        "leases",
        "pending",
        "probes",
        "window",
    )

    def __init__(self, value: Value) -> None:
        # The tally knows its value's generation: the lock-free ``record()`` reads the tally
        # alone (one read), so that it never pairs one generation's value with another's tally.
        self.generation = value.generation
        self.counting = _counting_state(value.state)
        streak = value.failures if self.counting else 0
        self.counter = itertools.count(streak)
        self.consecutive = streak  # the streak under a window (kept under the lock)
        self.window: Window | None = None
        self.pending: itertools.count[int] | None = None  # lock-free successes, not yet in
        self.drained = 0  # how many of ``pending`` are in the window already
        self.leases: dict[int, float] = _NO_LEASES  # ticket -> when its lease runs out
        self.probes = _NO_PROBES

    def streak(self) -> int:
        return count_value(self.counter)

    def drain(self, config: CountWindow | TimeWindow | None) -> None:
        """Move the successes waiting in ``pending`` into the window (under the lock)."""
        pending = self.pending
        if pending is None or config is None:  # (only a count window has them)
            return
        total = count_value(pending)
        waiting = total - self.drained
        if waiting:
            self.drained = total
            self.consecutive = 0
            window = self.window
            if window is None:
                window = self.window = config.new()
            # More successes than a count window holds leave it holding only successes.
            for _ in range(min(waiting, config.capacity or 0)):
                window.record(False, False, 0.0, 0.0)  # noqa: FBT003


class InMemoryStorage:
    """Keep a breaker's value and counts in this process (the default storage).

    Args:
        clock: The storage's clock, in seconds (default ``time.monotonic``; the breaker passes
            its own, so that a fake clock drives both).
        window: The rate window to count closed calls in (``None``: failures in a row only).
        lock: The re-entrant lock its operations run under (default: one of its own).
    """

    __slots__ = ("_clock", "_lock", "_stored_at", "_tally", "_value", "_window")

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        window: CountWindow | TimeWindow | None = None,
        lock: threading.RLock | None = None,
    ) -> None:
        self._clock = clock
        self._window = window
        self._lock = threading.RLock() if lock is None else lock
        self._value = INITIAL
        self._stored_at = clock()
        self._tally = _Tally(INITIAL)

    @property
    def window(self) -> CountWindow | TimeWindow | None:
        """The window the storage counts calls in (a breaker's policy must use the same)."""
        return self._window

    def read(self) -> Reading:
        """Return the current value, its age and its generation's counts; change nothing."""
        with self._lock:
            now = self._clock()
            value, tally = self._value, self._tally
            age = max(0.0, now - self._stored_at)
            if _counting_state(value.state):
                return Reading(value, age, self._counts(tally, now))
            if value.state is HALF_OPEN:
                leases = tuple(sorted(until - now for until in tally.leases.values()))
                return Reading(value, age, probes=tally.probes, leases=leases)
            return Reading(value, age)

    def record(
        self,
        generation: int,
        failed: bool,  # noqa: FBT001
        slow: bool = False,  # noqa: FBT001, FBT002
        duration: float = 0.0,
    ) -> Tally | None:
        """Count one finished call of ``generation``; return the new counts, or ``None``."""
        if self._window is not None:
            return self._record_in_window(generation, failed, slow, duration)
        tally = self._tally  # (no lock: see _Tally)
        if tally.generation != generation or not tally.counting:
            return None
        if not failed:
            tally.counter = itertools.count()  # the streak is over (see _Tally)
            return _NO_COUNTS
        return (0, 0, 0, next(tally.counter) + 1)

    def failure_counter(self, generation: int) -> Iterator[int] | None:
        """Return a lock-free counter of the failures of ``generation`` (in-memory only).

        For a generation counted without a window: each ``next()`` on it counts one failure in
        one atomic step, as ``record()`` would, and returns the length of the streak before it.
        A success ends the streak and gives the generation a new counter (ask again after one).
        ``None`` for any other generation. The breaker's fast path uses it.
        """
        with self._lock:
            tally = self._tally
            if tally.generation != generation or not tally.counting:
                return None
            return None if self._window is not None else tally.counter

    def _record_in_window(
        self,
        generation: int,
        failed: bool,  # noqa: FBT001
        slow: bool,  # noqa: FBT001
        duration: float,
    ) -> Tally | None:
        with self._lock:
            value, tally = self._value, self._tally
            if value.generation != generation or not _counting_state(value.state):
                return None
            tally.drain(self._window)
            tally.consecutive = tally.consecutive + 1 if failed else 0
            now = self._clock()
            window = tally.window
            if window is None:
                window = tally.window = self._window.new()  # type: ignore[union-attr]
            window.record(failed, slow, now - duration, now)
            calls, failures, slow_calls = window.totals(now)
            return (calls, failures, slow_calls, tally.consecutive)

    def success_counter(self, generation: int) -> Iterator[int] | None:
        """Return a lock-free counter of successes of ``generation`` (in-memory only).

        For a generation counted in a count window: each ``next()`` on it counts one success,
        moved into the window before anything else is done with it (a success cannot raise a
        rate, so nothing needs to be decided on it). ``None`` for any other generation.
        """
        with self._lock:
            tally = self._tally
            if tally.generation != generation or not tally.counting:
                return None
            if not isinstance(self._window, CountWindow):
                return None
            if tally.pending is None:
                tally.pending = itertools.count()
            return tally.pending

    def _counts(self, tally: _Tally, now: float) -> Tally:
        """Return the counts of a counting generation, for a read (the lock is held)."""
        if self._window is None:
            return (0, 0, 0, tally.streak())
        tally.drain(self._window)
        window = tally.window
        if window is None:
            return (0, 0, 0, tally.consecutive)
        totals = window.peek(now)
        return (totals.calls, totals.failures, totals.slow_calls, tally.consecutive)

    def acquire(
        self, generation: int, ticket: int, probes: int, successes: int | None, lease: float
    ) -> Probes | None:
        """Take a half-open probe slot for ``ticket`` if one is free; ``None`` if stale."""
        with self._lock:
            value, tally = self._value, self._tally
            if value.generation != generation or value.state is not HALF_OPEN:
                return None
            now = self._clock()
            expired = self._expire(tally, now)
            counts = tally.probes
            if ticket in tally.leases:  # it holds a slot already: one slot per ticket
                return replace(counts, admitted=True, expired=expired)
            undecided = (
                counts.finished < probes
                if successes is None
                else counts.failures == 0 and counts.successes < successes
            )
            taken = counts.running + (counts.finished if successes is None else 0)
            admitted = undecided and taken < probes
            if admitted:
                if tally.leases is _NO_LEASES:
                    tally.leases = {}
                tally.leases[ticket] = now + lease
                tally.probes = replace(counts, running=counts.running + 1)
            return replace(tally.probes, admitted=admitted, expired=expired)

    def release(
        self,
        generation: int,
        ticket: int,
        outcome: Outcome,
        slow: bool = False,  # noqa: FBT001, FBT002
    ) -> Probes | None:
        """Give back ``ticket``'s slot with its outcome; ``None`` if it holds none."""
        with self._lock:
            value, tally = self._value, self._tally
            if value.generation != generation or value.state is not HALF_OPEN:
                return None
            expired = self._expire(tally, self._clock())
            if tally.leases.pop(ticket, None) is None:
                return replace(tally.probes, expired=expired) if expired else None
            counts = tally.probes
            if outcome is Outcome.NEUTRAL:
                tally.probes = replace(counts, running=counts.running - 1)
            else:
                success = outcome is Outcome.SUCCESS
                tally.probes = replace(
                    counts,
                    running=counts.running - 1,
                    successes=counts.successes + success,
                    failures=counts.failures + (not success),
                    slow=counts.slow + slow,
                    run=0 if success else counts.run + 1,
                )
            return replace(tally.probes, expired=expired)

    def _expire(self, tally: _Tally, now: float) -> tuple[float, ...]:
        """Drop the leases that ran out by ``now``, as failed probes; return how long ago."""
        if not tally.leases:
            return ()
        ran_out = sorted((until, ticket) for ticket, until in tally.leases.items() if until <= now)
        if not ran_out:
            return ()
        for _, ticket in ran_out:
            del tally.leases[ticket]
        counts = tally.probes
        tally.probes = replace(
            counts,
            running=counts.running - len(ran_out),
            failures=counts.failures + len(ran_out),
            run=counts.run + len(ran_out),
        )
        return tuple(now - until for until, _ in ran_out)

    def replace(self, generation: int, value: Value) -> bool:
        """Store ``value`` if ``generation`` is still current; return whether it was.

        Raises:
            ValueError: ``value`` is not of a later generation than ``generation``.
        """
        with self._lock:
            if self._value.generation != generation:
                return False
            if value.generation <= generation:
                msg = f"replace() needs a value of a generation after {generation}, got {value!r}"
                raise ValueError(msg)
            self._value = value
            self._stored_at = self._clock()
            self._tally = _Tally(value)
            return True

    def rebase(self, clock: Callable[[], float]) -> None:
        """Measure with ``clock`` from now on, keeping every age and lease (testing helpers).

        A time window starts over: its buckets belong to the old clock's readings.
        """
        with self._lock:
            shift = clock() - self._clock()
            self._clock = clock
            self._stored_at += shift
            tally = self._tally
            if tally.leases:
                tally.leases = {ticket: until + shift for ticket, until in tally.leases.items()}
            if isinstance(self._window, TimeWindow):
                tally.window = None

    def __repr__(self) -> str:
        return f"<InMemoryStorage {self._value!r}>"
