"""Sliding windows that count recent outcomes for rate-based tripping (pure, O(1) per call).

Two kinds, as in resilience4j:

- :class:`CountWindow` keeps the last ``size`` recorded calls in a ring of one byte per call.
- :class:`TimeWindow` keeps the calls that *started* in the last ``seconds``, in ``buckets``
  buckets of ``seconds / buckets`` each. A call is credited to the bucket of its start (its
  admission), not of its finish, so a slow call counts in the window it was admitted in.

Both keep running totals and subtract what they evict, so recording a call and reading the
counts cost O(1) whatever the window's size, and memory is fixed at creation: O(size) for a
count window, O(buckets) for a time window, whatever the call volume.

The config values are frozen; :meth:`CountWindow.new` and :meth:`TimeWindow.new` make the
mutable state, which follows the :class:`Window` protocol. Nothing here reads a clock, takes a
lock or touches an event loop: times are passed in as ``now`` (seconds, any finite float from
one monotonic clock), and the owner serialises calls.

Time windows, precisely:

- A time ``t`` falls in epoch ``math.floor(t / bucket_length)``: bucket boundaries are at the
  multiples of ``bucket_length`` (as computed in floating point). The window as of ``now`` holds
  the ``buckets`` epochs ending with the epoch of ``now``, so its oldest bucket leaves whole when
  the clock enters a new bucket, and the window spans between ``seconds - bucket_length`` and
  ``seconds`` of start times.
- The window only moves forward: a ``now`` earlier than the latest seen is treated as the latest
  seen (a clock that stepped back changes nothing, and never corrupts the totals).
- A call whose start bucket has already left the window when it finishes is dropped.
- A call that started after the latest time seen (impossible with one monotonic clock) is
  clamped: it is credited to the newest bucket rather than lost, since it did happen.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from typing import Protocol

from ._config import check_count

__all__ = ["BucketRing", "CallRing", "CountWindow", "TimeWindow", "Window", "WindowCounts"]

# Bit flags of one call in a CallRing's bytearray.
_FAILED = 1
_SLOW = 2
# A one-item array to repeat: `_ZERO * n` allocates n zeroed counters in one step (no Python loop).
_ZERO = array("q", [0])


@dataclass(frozen=True, slots=True)
class WindowCounts:
    """The totals of a window at one moment.

    Attributes:
        calls: Calls recorded in the window.
        failures: Those of them that failed.
        slow_calls: Those of them that were slow (a call can be both failed and slow).
    """

    calls: int
    failures: int
    slow_calls: int

    @property
    def failure_rate(self) -> float:
        """Failures / calls, from 0.0 to 1.0 (0.0 with no calls)."""
        return self.failures / self.calls if self.calls else 0.0

    @property
    def slow_call_rate(self) -> float:
        """Slow calls / calls, from 0.0 to 1.0 (0.0 with no calls)."""
        return self.slow_calls / self.calls if self.calls else 0.0


class Window(Protocol):
    """The mutable state of a sliding window, as made by ``CountWindow(...).new()`` and kin."""

    # Positional flags: the shell calls this once per finished call, on the hot path.
    def record(self, failed: bool, slow: bool, started: float, now: float) -> None:  # noqa: FBT001
        """Add one finished call that started at ``started`` and finished at ``now``."""
        ...

    def counts(self, now: float) -> WindowCounts:
        """Return the totals over the window as of ``now`` (a time window moves forward)."""
        ...

    def peek(self, now: float) -> WindowCounts:
        """Return the totals as of ``now`` without changing anything (for reads)."""
        ...

    def totals(self, now: float) -> tuple[int, int, int]:
        """Return ``(calls, failures, slow_calls)`` as of ``now`` (the per-call form)."""
        ...

    def reset(self) -> None:
        """Forget every recorded call."""
        ...


@dataclass(frozen=True, slots=True)
class CountWindow:
    """A window over the last ``size`` recorded calls.

    Attributes:
        size: How many of the most recent calls count (an int >= 1).
    """

    size: int

    def __post_init__(self) -> None:
        check_count("CountWindow size", self.size)

    @property
    def capacity(self) -> int:
        """The most calls the window can hold: its size."""
        return self.size

    def new(self) -> Window:
        """Return a new, empty window state."""
        return CallRing(self.size)


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """A window over the calls that started in the last ``seconds``.

    Attributes:
        seconds: The window's length (a finite int or float > 0).
        buckets: How many buckets of ``seconds / buckets`` each the window is kept in (an
            int >= 1). The window moves a bucket at a time, so more buckets make it slide more
            smoothly, at O(buckets) memory.
    """

    seconds: float
    buckets: int = 10

    def __post_init__(self) -> None:
        seconds: object = self.seconds  # `object` so that the type checks below stay reachable
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            msg = (
                "TimeWindow seconds must be a finite int or float > 0, "
                f"got {seconds!r} ({type(seconds).__name__})"
            )
            raise TypeError(msg)
        if not (math.isfinite(seconds) and seconds > 0):
            msg = f"TimeWindow seconds must be a finite int or float > 0, got {seconds!r}"
            raise ValueError(msg)
        check_count("TimeWindow buckets", self.buckets)
        if not self.seconds / self.buckets > 0:
            msg = (
                f"TimeWindow seconds={self.seconds!r} cannot be split into {self.buckets} "
                "buckets: the bucket length rounds to 0.0"
            )
            raise ValueError(msg)

    @property
    def capacity(self) -> None:
        """The most calls the window can hold: no limit (``None``)."""
        return

    @property
    def bucket_length(self) -> float:
        """The length of one bucket in seconds; bucket boundaries are at its multiples."""
        return self.seconds / self.buckets

    def new(self) -> Window:
        """Return a new, empty window state."""
        return BucketRing(self.bucket_length, self.buckets)


class CallRing:
    """The state of a :class:`CountWindow`: the last ``size`` outcomes and their totals.

    Each call is one byte in a ring (bit 0: failed, bit 1: slow). Slots not yet written hold 0,
    which subtracts nothing when overwritten, so filling and sliding share one code path.

    Args:
        size: The number of calls kept (an int >= 1, checked by :class:`CountWindow`).
    """

    __slots__ = ("_calls", "_failures", "_next", "_outcomes", "_size", "_slow_calls")

    def __init__(self, size: int) -> None:
        self._size = size
        self._outcomes = bytearray(size)
        self._next = 0  # the slot the next call overwrites: the oldest call once full
        self._calls = 0
        self._failures = 0
        self._slow_calls = 0

    def record(self, failed: bool, slow: bool, started: float, now: float) -> None:  # noqa: FBT001 - see Window.record
        """Add one finished call, evicting the oldest once the window is full (times unused)."""
        outcome = (_FAILED if failed else 0) | (_SLOW if slow else 0)
        index = self._next
        outcomes = self._outcomes
        evicted = outcomes[index]
        outcomes[index] = outcome
        self._failures += (outcome & _FAILED) - (evicted & _FAILED)
        self._slow_calls += (outcome >> 1) - (evicted >> 1)
        if self._calls < self._size:
            self._calls += 1
        index += 1
        self._next = 0 if index == self._size else index

    def counts(self, now: float) -> WindowCounts:
        """Return the totals over the last ``size`` calls (``now`` is unused)."""
        return WindowCounts(self._calls, self._failures, self._slow_calls)

    peek = counts  # a count window does not move with time

    def totals(self, now: float) -> tuple[int, int, int]:
        """Return ``(calls, failures, slow_calls)`` over the last ``size`` calls."""
        return (self._calls, self._failures, self._slow_calls)

    def reset(self) -> None:
        """Forget every recorded call."""
        self._outcomes = bytearray(self._size)
        self._next = 0
        self._calls = 0
        self._failures = 0
        self._slow_calls = 0


class BucketRing:
    """The state of a :class:`TimeWindow`: per-bucket counters in a ring, and their totals.

    The bucket of epoch ``e`` lives in slot ``e % buckets``. Only the newest epoch seen is
    stored: the window always holds the ``buckets`` epochs up to it, and moving it forward
    zeroes the slots of the epochs it passes, so no slot needs an epoch of its own. Epochs are
    Python ints, so a clock reading of any size is fine.

    Args:
        bucket_length: The length of one bucket in seconds (> 0).
        buckets: The number of buckets (an int >= 1).
    """

    __slots__ = (
        "_bucket_length",
        "_buckets",
        "_calls",
        "_failures",
        "_head",
        "_slow_calls",
        "_total_calls",
        "_total_failures",
        "_total_slow_calls",
    )

    def __init__(self, bucket_length: float, buckets: int) -> None:
        self._bucket_length = bucket_length
        self._buckets = buckets
        self._head: int | None = None  # the newest epoch seen; None until the first reading
        self._calls = _ZERO * buckets
        self._failures = _ZERO * buckets
        self._slow_calls = _ZERO * buckets
        self._total_calls = 0
        self._total_failures = 0
        self._total_slow_calls = 0

    def _move_to(self, epoch: int) -> None:
        """Move the window forward to ``epoch`` (later than the head), evicting what it leaves.

        Costs O(min(k, buckets)) for a move of k buckets: a move of a whole window or more
        empties everything at once instead of bucket by bucket.
        """
        head = self._head
        # With no head yet (the first reading) the window is empty: there is nothing to evict.
        if head is not None:
            if epoch - head >= self._buckets:
                self._clear()
            else:
                buckets = self._buckets
                calls = self._calls
                for passed in range(head + 1, epoch + 1):
                    slot = passed % buckets
                    evicted = calls[slot]
                    if evicted:
                        # Failures and slow calls are never non-zero in a bucket without calls.
                        calls[slot] = 0
                        self._total_calls -= evicted
                        self._total_failures -= self._failures[slot]
                        self._failures[slot] = 0
                        self._total_slow_calls -= self._slow_calls[slot]
                        self._slow_calls[slot] = 0
        self._head = epoch

    def _clear(self) -> None:
        buckets = self._buckets
        self._calls = _ZERO * buckets
        self._failures = _ZERO * buckets
        self._slow_calls = _ZERO * buckets
        self._total_calls = 0
        self._total_failures = 0
        self._total_slow_calls = 0

    def record(self, failed: bool, slow: bool, started: float, now: float) -> None:  # noqa: FBT001 - see Window.record
        """Add one call that started at ``started`` and finished at ``now``.

        The window first moves to ``now``; the call then counts in the bucket of ``started``.
        It is dropped if that bucket has already left the window, and credited to the newest
        bucket if ``started`` is later than the latest time seen.
        """
        length = self._bucket_length
        head = self._head
        epoch = math.floor(now / length)
        # Only a later bucket moves the window: within the newest one (the common case), or on a
        # clock that stepped back, it stays put.
        if head is None or epoch > head:
            self._move_to(epoch)
            head = epoch
        start = math.floor(started / length)
        if start > head:
            start = head
        elif start <= head - self._buckets:
            return
        slot = start % self._buckets
        self._calls[slot] += 1
        self._total_calls += 1
        if failed:
            self._failures[slot] += 1
            self._total_failures += 1
        if slow:
            self._slow_calls[slot] += 1
            self._total_slow_calls += 1

    def counts(self, now: float) -> WindowCounts:
        """Return the totals over the window as of ``now`` (moving it forward first)."""
        return WindowCounts(*self.totals(now))

    def totals(self, now: float) -> tuple[int, int, int]:
        """Return ``(calls, failures, slow_calls)`` as of ``now`` (moving the window first)."""
        epoch = math.floor(now / self._bucket_length)
        head = self._head
        if head is None or epoch > head:
            self._move_to(epoch)
        return (self._total_calls, self._total_failures, self._total_slow_calls)

    def peek(self, now: float) -> WindowCounts:
        """Return the totals as of ``now`` without moving the window (O(buckets) at most)."""
        epoch = math.floor(now / self._bucket_length)
        head = self._head
        calls, failures, slow_calls = (
            self._total_calls,
            self._total_failures,
            self._total_slow_calls,
        )
        if head is not None and epoch > head:
            if epoch - head >= self._buckets:
                return WindowCounts(0, 0, 0)
            for passed in range(head + 1, epoch + 1):
                slot = passed % self._buckets
                calls -= self._calls[slot]
                failures -= self._failures[slot]
                slow_calls -= self._slow_calls[slot]
        return WindowCounts(calls, failures, slow_calls)

    def reset(self) -> None:
        """Forget every recorded call (the newest time seen is kept: the clock does not go back)."""
        self._clear()
