"""The value core, tested without a breaker, a clock, a lock or an event loop."""

from __future__ import annotations

import dataclasses
import math
import pickle

import pytest

from aiocircuitbreaker import _core
from aiocircuitbreaker._core import (
    CLOSED,
    DISABLED,
    FORCED_OPEN,
    HALF_OPEN,
    INITIAL,
    METRICS_ONLY,
    OPEN,
    Value,
)


def test_a_value_is_plain_comparable_data() -> None:
    """Values are frozen, compare by content, and survive a trip through pickle."""
    opened = _core.opened(INITIAL, 3, 30.0)
    assert opened == Value(OPEN, 1, 3, 1, 30.0)
    assert pickle.loads(pickle.dumps(opened)) == opened
    with pytest.raises(dataclasses.FrozenInstanceError):
        opened.state = CLOSED  # type: ignore[misc]
    assert {type(getattr(opened, f.name)) for f in dataclasses.fields(Value)} <= {
        _core.State,
        int,
        float,
    }


def test_every_transition_starts_a_new_generation() -> None:
    """Opening, half-opening, closing and entering a mode each bump the generation."""
    opened = _core.opened(INITIAL, 3, 30.0)
    half = _core.half_opened(opened, 2.5)
    reopened = _core.opened(half, 4, 60.0)
    closed = _core.closed(reopened)
    assert [v.generation for v in (INITIAL, opened, half, reopened, closed)] == [0, 1, 2, 3, 4]
    assert _core.entered(closed, FORCED_OPEN, 0).generation == 5


def test_openings_count_until_the_breaker_closes() -> None:
    """Consecutive openings grow (what backoff follows); closing starts over."""
    opened = _core.opened(INITIAL, 3, 30.0)
    reopened = _core.opened(_core.half_opened(opened, 0.0), 4, 60.0)
    assert (opened.openings, reopened.openings) == (1, 2)
    assert reopened.failures == 4
    assert _core.closed(reopened) == Value(CLOSED, 4)


def test_half_open_keeps_when_the_open_period_ended() -> None:
    """A half-open value says how long before it was stored its open period ended."""
    half = _core.half_opened(_core.opened(INITIAL, 3, 30.0), 2.5)
    assert half.state is HALF_OPEN
    assert half.open_for == -2.5
    assert half.failures == 3


def test_modes_set_by_hand() -> None:
    """Forced open never ends; metrics-only counts from zero; disabled keeps the count."""
    forced = _core.entered(INITIAL, FORCED_OPEN, 2)
    assert forced.open_for == math.inf
    assert forced.failures == 2
    assert _core.entered(INITIAL, METRICS_ONLY, 2).failures == 0
    assert _core.entered(INITIAL, DISABLED, 2).failures == 2


def test_restored_values_are_a_new_generation() -> None:
    """A value brought back by the testing helpers comes after the current generation."""
    saved = _core.opened(INITIAL, 3, 30.0)
    current = _core.entered(saved, FORCED_OPEN, 3)
    restored = _core.restored(saved, current, 12.0)
    assert restored == Value(OPEN, current.generation + 1, 3, 1, 12.0)
