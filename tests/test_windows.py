"""Sliding windows count exactly what a naive list of records would, in fixed memory."""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
from array import array
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiocircuitbreaker._windows import (
    BucketRing,
    CallRing,
    CountWindow,
    TimeWindow,
    Window,
    WindowCounts,
)

# ---------------------------------------------------------------------------------------------
# Validation


@pytest.mark.parametrize(
    ("config", "args", "error", "message"),
    [
        (CountWindow, (0,), ValueError, r"CountWindow size must be an int >= 1, got 0$"),
        (CountWindow, (-5,), ValueError, "got -5"),
        (CountWindow, (True,), TypeError, r"CountWindow size .* got True \(bool\)"),
        (CountWindow, (10.0,), TypeError, r"got 10.0 \(float\)"),
        (CountWindow, ("10",), TypeError, r"got '10' \(str\)"),
        (TimeWindow, (0,), ValueError, r"TimeWindow seconds must be a finite .* got 0$"),
        (TimeWindow, (-1.5,), ValueError, "got -1.5"),
        (TimeWindow, (math.inf,), ValueError, "got inf"),
        (TimeWindow, (math.nan,), ValueError, "got nan"),
        (TimeWindow, (True,), TypeError, r"TimeWindow seconds .* got True \(bool\)"),
        (TimeWindow, ("60",), TypeError, r"got '60' \(str\)"),
        (TimeWindow, (None,), TypeError, r"got None \(NoneType\)"),
        (TimeWindow, (Fraction(1, 2),), TypeError, r"int or float .* \(Fraction\)"),
        (TimeWindow, (60, 0), ValueError, r"TimeWindow buckets must be an int >= 1, got 0"),
        (TimeWindow, (60, -2), ValueError, "got -2"),
        (TimeWindow, (60, False), TypeError, r"TimeWindow buckets .* \(bool\)"),
        (TimeWindow, (60, 2.5), TypeError, r"got 2.5 \(float\)"),
        (TimeWindow, (5e-324, 10), ValueError, "cannot be split into 10 buckets"),
    ],
)
def test_bad_config_is_refused(
    config: type[Any], args: tuple[Any, ...], error: type[Exception], message: str
) -> None:
    """Each bad value is refused with a message naming the parameter, the value and the rule."""
    with pytest.raises(error, match=message):
        config(*args)


def test_good_configs_keep_their_values() -> None:
    """Good values are kept as given, with the documented defaults and capacities."""
    assert CountWindow(1).size == 1
    assert CountWindow(100).capacity == 100
    assert TimeWindow(60).buckets == 10
    assert TimeWindow(60).capacity is None
    assert TimeWindow(60).bucket_length == 6.0
    assert TimeWindow(0.5, 1).bucket_length == 0.5
    assert type(TimeWindow(60).seconds) is int


def test_configs_are_frozen_slotted_values() -> None:
    """Configs compare by value, hash, cannot be changed and have no __dict__."""
    assert CountWindow(5) == CountWindow(5)
    assert hash(TimeWindow(60, 6)) == hash(TimeWindow(60, 6))
    with pytest.raises(dataclasses.FrozenInstanceError):
        CountWindow(5).size = 6  # type: ignore[misc]
    assert not hasattr(TimeWindow(60), "__dict__")
    assert not hasattr(WindowCounts(0, 0, 0), "__dict__")


def test_new_makes_independent_empty_states() -> None:
    """Each new() is a fresh, empty window of the right kind."""
    config = CountWindow(3)
    first, second = config.new(), config.new()
    first.record(True, True, 0.0, 0.0)
    assert isinstance(first, CallRing)
    assert isinstance(TimeWindow(1).new(), BucketRing)
    assert second.counts(0.0) == WindowCounts(0, 0, 0)


# ---------------------------------------------------------------------------------------------
# Rates


@pytest.mark.parametrize(
    ("counts", "failure_rate", "slow_call_rate"),
    [
        (WindowCounts(0, 0, 0), 0.0, 0.0),
        (WindowCounts(4, 1, 3), 0.25, 0.75),
        (WindowCounts(3, 3, 0), 1.0, 0.0),
        (WindowCounts(10, 0, 10), 0.0, 1.0),
    ],
)
def test_rates(counts: WindowCounts, failure_rate: float, slow_call_rate: float) -> None:
    """Rates are fractions of the calls, and 0.0 when there are no calls."""
    assert counts.failure_rate == failure_rate
    assert counts.slow_call_rate == slow_call_rate


# ---------------------------------------------------------------------------------------------
# Count windows


def test_count_window_keeps_the_last_size_calls() -> None:
    """The oldest call leaves as the size+1-th arrives, taking its flags with it."""
    window = CountWindow(3).new()
    window.record(True, True, 0.0, 0.0)
    window.record(False, True, 0.0, 0.0)
    window.record(True, False, 0.0, 0.0)
    assert window.counts(0.0) == WindowCounts(3, 2, 2)
    window.record(False, False, 0.0, 0.0)
    assert window.counts(0.0) == WindowCounts(3, 1, 1)


def test_count_window_of_one() -> None:
    """A window of one call holds exactly the latest outcome."""
    window = CountWindow(1).new()
    window.record(True, False, 0.0, 0.0)
    assert window.counts(0.0) == WindowCounts(1, 1, 0)
    window.record(False, True, 0.0, 0.0)
    assert window.counts(0.0) == WindowCounts(1, 0, 1)


def test_count_window_ignores_time() -> None:
    """Calls stay in a count window however much time passes."""
    window = CountWindow(2).new()
    window.record(True, False, -1e9, 1e18)
    assert window.counts(-5.0) == window.counts(1e300) == WindowCounts(1, 1, 0)


def test_count_window_reset() -> None:
    """After reset() the window is empty and fills again from scratch."""
    window = CountWindow(2).new()
    window.record(True, True, 0.0, 0.0)
    window.record(True, True, 0.0, 0.0)
    window.reset()
    assert window.counts(0.0) == WindowCounts(0, 0, 0)
    window.record(False, False, 0.0, 0.0)
    assert window.counts(0.0) == WindowCounts(1, 0, 0)


def test_count_window_memory_is_one_byte_per_call() -> None:
    """A count window stores a bytearray of `size` bytes, however many calls it has seen."""
    window = CountWindow(1000).new()
    assert isinstance(window, CallRing)
    for index in range(5000):
        window.record(index % 3 == 0, index % 5 == 0, 0.0, 0.0)
    assert type(window._outcomes) is bytearray
    assert len(window._outcomes) == 1000
    assert sys.getsizeof(window._outcomes) < 1000 + 100
    assert not hasattr(window, "__dict__")


# ---------------------------------------------------------------------------------------------
# Time windows


def test_time_window_counts_calls_by_start_bucket() -> None:
    """A call counts in the bucket it started in, and leaves with that bucket."""
    window = TimeWindow(4, 4).new()  # buckets [0, 1), [1, 2), ...
    window.record(True, False, 0.5, 3.5)  # started in epoch 0, finished in epoch 3
    assert window.counts(3.99) == WindowCounts(1, 1, 0)
    assert window.counts(4.0) == WindowCounts(0, 0, 0)  # epoch 4: epoch 0 has left


def test_time_window_bucket_boundaries_are_multiples_of_the_bucket_length() -> None:
    """A start exactly on a boundary belongs to the bucket that begins there."""
    window = TimeWindow(2, 2).new()
    window.record(False, True, 1.0, 2.0)  # epoch 1, window epochs {1, 2}
    window.record(False, False, 0.999, 2.0)  # epoch 0: already out of the window, dropped
    assert window.counts(2.0) == WindowCounts(1, 0, 1)
    assert window.counts(2.999) == WindowCounts(1, 0, 1)
    assert window.counts(3.0) == WindowCounts(0, 0, 0)


def test_time_window_drops_a_call_whose_start_bucket_has_left() -> None:
    """A call that started more than a window ago is never counted."""
    window = TimeWindow(1, 4).new()
    window.record(True, True, 0.0, 10.0)
    assert window.counts(10.0) == WindowCounts(0, 0, 0)


def test_time_window_clamps_a_start_in_the_future_to_the_newest_bucket() -> None:
    """A start later than the latest time seen counts in the newest bucket, and leaves with it."""
    window = TimeWindow(2, 2).new()
    window.record(True, False, 50.0, 1.5)  # newest epoch is 1
    assert window.counts(1.5) == WindowCounts(1, 1, 0)
    assert window.counts(2.0) == WindowCounts(1, 1, 0)
    assert window.counts(3.0) == WindowCounts(0, 0, 0)  # epoch 1 left, not epoch 50


def test_time_window_ignores_a_clock_that_steps_back() -> None:
    """A `now` earlier than the latest seen is read as the latest seen."""
    window = TimeWindow(2, 2).new()
    window.record(True, False, 5.0, 5.0)
    window.record(False, False, 0.0, 0.0)  # start and finish far behind: dropped
    assert window.counts(-100.0) == WindowCounts(1, 1, 0)
    window.record(False, True, 4.0, 1.0)  # started in epoch 4, still in the window of epoch 5
    assert window.counts(5.5) == WindowCounts(2, 1, 1)
    assert window.counts(6.0) == WindowCounts(1, 1, 0)  # epoch 4 left


def test_time_window_slides_a_bucket_at_a_time() -> None:
    """Moving forward by a few buckets evicts exactly the buckets passed, empty or not."""
    window = TimeWindow(4, 4).new()
    for second in (0.0, 0.5, 2.0, 3.0, 3.5):
        window.record(second < 1, second == 3.0, second, second)
    assert window.counts(3.5) == WindowCounts(5, 2, 1)
    assert window.counts(4.0) == WindowCounts(3, 0, 1)  # epoch 0 left
    assert window.counts(5.0) == WindowCounts(3, 0, 1)  # epoch 1 was empty
    assert window.counts(6.0) == WindowCounts(2, 0, 1)  # epoch 2 left
    assert window.counts(6.9) == WindowCounts(2, 0, 1)


def test_time_window_huge_jump_empties_it_at_once() -> None:
    """A jump of very many windows clears everything without stepping through each bucket."""
    window = TimeWindow(1, 1000).new()
    for index in range(100):
        window.record(True, True, index / 1000, index / 1000)
    window.counts(0.5)
    assert window.counts(1e15) == WindowCounts(0, 0, 0)
    window.record(False, True, 1e15, 1e15 + 0.0005)
    assert window.counts(2e15) == WindowCounts(0, 0, 0)  # O(k) stepping would never finish
    window.record(True, False, 3e15, 3e15)
    assert window.counts(3e15) == WindowCounts(1, 1, 0)


def test_time_window_of_one_bucket() -> None:
    """With one bucket the window is the current bucket only."""
    window = TimeWindow(0.5, 1).new()
    window.record(True, False, 0.25, 0.25)
    window.record(False, True, 0.0, 0.49)
    assert window.counts(0.4) == WindowCounts(2, 1, 1)
    window.record(False, False, 0.4, 0.5)  # epoch 0 left as the call finished: dropped
    assert window.counts(0.5) == WindowCounts(0, 0, 0)


def test_time_window_handles_negative_times() -> None:
    """Clock readings below zero bucket and slide like any others."""
    window = TimeWindow(1, 2).new()
    window.record(True, False, -0.75, -0.5)  # epoch -2
    window.record(False, True, -0.25, -0.1)  # epoch -1
    assert window.counts(-0.1) == WindowCounts(2, 1, 1)
    assert window.counts(0.0) == WindowCounts(1, 0, 1)


def test_time_window_reset() -> None:
    """After reset() the window is empty and still never moves back in time."""
    window = TimeWindow(2, 2).new()
    window.record(True, True, 4.0, 4.0)
    window.reset()
    assert window.counts(4.0) == WindowCounts(0, 0, 0)
    window.record(False, False, 0.5, 0.5)  # the window is still at epoch 4: dropped
    window.record(True, False, 3.0, 4.5)
    assert window.counts(4.5) == WindowCounts(1, 1, 0)


def test_time_window_memory_does_not_grow() -> None:
    """A time window's stored state is the same size after 100,000 calls as before any."""
    window = TimeWindow(10, 50).new()
    assert isinstance(window, BucketRing)
    window.counts(0.0)

    def footprint() -> list[tuple[str, int]]:
        arrays = {"_calls", "_failures", "_slow_calls"}
        return [
            (name, sys.getsizeof(getattr(window, name)))
            for name in BucketRing.__slots__
            if name in arrays
        ]

    before = footprint()
    for index in range(100_000):
        now = index * 0.01
        window.record(index % 7 == 0, index % 11 == 0, now - 0.5, now)
    newest = math.floor(now / 0.2)
    started_in_window = sum(
        newest - 50 < math.floor((index * 0.01 - 0.5) / 0.2) for index in range(98_000, 100_000)
    )
    assert footprint() == before
    for name in ("_calls", "_failures", "_slow_calls"):
        stored = getattr(window, name)
        assert type(stored) is array
        assert len(stored) == 50
    assert not hasattr(window, "__dict__")
    assert window.counts(now).calls == started_in_window > 900


# ---------------------------------------------------------------------------------------------
# Against a naive oracle

# Times are whole multiples of 1/8 s, so that every float below is exact.
EIGHTH = 0.125


class CountOracle:
    """The last `size` records of a plain list."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.records: list[tuple[float, float, bool, bool]] = []

    def record(self, failed: bool, slow: bool, started: float, now: float) -> None:
        self.records.append((started, now, failed, slow))

    def counts(self, now: float) -> WindowCounts:
        kept = self.records[-self.size :]
        return WindowCounts(
            len(kept), sum(record[2] for record in kept), sum(record[3] for record in kept)
        )

    def reset(self) -> None:
        self.records.clear()


class TimeOracle:
    """A plain list of records, counted by start epoch against the newest epoch seen."""

    def __init__(self, config: TimeWindow) -> None:
        self.length = config.bucket_length
        self.buckets = config.buckets
        self.newest: int | None = None
        # (started, finished_at, failed, slow, the start epoch it is counted in)
        self.records: list[tuple[float, float, bool, bool, int]] = []

    def see(self, now: float) -> int:
        epoch = math.floor(now / self.length)
        self.newest = epoch if self.newest is None else max(self.newest, epoch)
        return self.newest

    def record(self, failed: bool, slow: bool, started: float, now: float) -> None:
        newest = self.see(now)
        epoch = min(math.floor(started / self.length), newest)
        if epoch > newest - self.buckets:
            self.records.append((started, now, failed, slow, epoch))

    def counts(self, now: float) -> WindowCounts:
        newest = self.see(now)
        kept = [record for record in self.records if newest - self.buckets < record[4]]
        return WindowCounts(
            len(kept), sum(record[2] for record in kept), sum(record[3] for record in kept)
        )

    def reset(self) -> None:
        self.records.clear()


@functools.cache  # one strategy per window length, not one per example
def operations(window_eighths: int) -> st.SearchStrategy[list[tuple[Any, ...]]]:
    """Sequences of records, clock moves (forward, back, by many windows), queries and resets."""
    durations = st.integers(-window_eighths, 3 * window_eighths)  # negative: start after finish
    record = st.tuples(
        st.just("record"),
        st.booleans(),
        st.booleans(),
        durations,
        st.integers(0, 2 * window_eighths),  # how far the clock moves before the call finishes
    )
    advance = st.tuples(
        st.just("advance"),
        st.one_of(
            st.integers(0, 2 * window_eighths),
            st.integers(1, 10_000).map(lambda windows: windows * window_eighths),
            st.integers(1, window_eighths).map(lambda back: -back),
        ),
    )
    count = st.tuples(st.just("counts"), st.integers(0, window_eighths))
    reset = st.tuples(st.just("reset"))
    return st.lists(
        st.one_of(record, record, record, advance, count, reset), min_size=1, max_size=40
    )


def run(window: Window, oracle: Any, ops: list[tuple[Any, ...]], start_eighths: int) -> None:
    """Apply `ops` to both, comparing their counts after every step."""
    clock = start_eighths
    for op in ops:
        kind = op[0]
        if kind == "record":
            _, failed, slow, duration, moved = op
            clock += moved
            now, started = clock * EIGHTH, (clock - duration) * EIGHTH
            window.record(failed, slow, started, now)
            oracle.record(failed, slow, started, now)
        elif kind == "advance":
            clock += op[1]
        elif kind == "counts":
            # A query a little ahead of the clock, leaving the clock where it was; a read's
            # peek (which moves nothing) sees what the counts then see.
            ahead = (clock + op[1]) * EIGHTH
            expected = oracle.counts(ahead)
            assert window.peek(ahead) == expected
            assert window.counts(ahead) == expected
        else:
            window.reset()
            oracle.reset()
        assert window.counts(clock * EIGHTH) == oracle.counts(clock * EIGHTH), ops


@settings(max_examples=250, deadline=None)
@given(
    size=st.integers(1, 6),
    data=st.data(),
)
def test_count_window_matches_oracle(size: int, data: st.DataObject) -> None:
    """A count window counts exactly the last `size` records of a plain list."""
    ops = data.draw(operations(8))
    run(CountWindow(size).new(), CountOracle(size), ops, 0)


@settings(max_examples=300, deadline=None)
@given(
    bucket_eighths=st.sampled_from([1, 2, 3, 4, 8, 16]),
    buckets=st.sampled_from([1, 2, 3, 4, 5, 10]),
    start_eighths=st.integers(-10_000, 10_000),
    data=st.data(),
)
def test_time_window_matches_oracle(
    bucket_eighths: int, buckets: int, start_eighths: int, data: st.DataObject
) -> None:
    """A time window counts exactly the records a plain list keeps by start epoch."""
    config = TimeWindow(bucket_eighths * buckets * EIGHTH, buckets)
    assert config.bucket_length == bucket_eighths * EIGHTH
    ops = data.draw(operations(bucket_eighths * buckets))
    run(config.new(), TimeOracle(config), ops, start_eighths)
