"""The public testing helpers."""

from __future__ import annotations

import pytest

from aiocircuitbreaker.testing import FakeClock


def test_fake_clock_moves_only_when_advanced() -> None:
    """The clock returns its reading until advanced, and refuses to go back."""
    clock = FakeClock(5)
    assert clock() == 5.0
    clock.advance(2.5)
    assert clock() == 7.5
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance(-1)
    assert repr(clock) == "FakeClock(7.5)"
