"""Helpers for testing code that uses circuit breakers.

- :class:`FakeClock`: a clock to inject (``clock=``) and advance instead of sleeping.
- :func:`force_state`: hold some breakers, or all of them, in a state inside a ``with`` block.
- :func:`passthrough`: turn every breaker into a pass-through, e.g. for a whole test session.

Both context managers give the breakers back as they found them: the state each had before the
block returns (as a new generation, so calls made inside the block change nothing after it).
"""

from __future__ import annotations

import itertools
import math
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, NamedTuple

from . import _registry, _state
from ._state import HALF_OPEN, MODES, OPEN, Snapshot, State

if TYPE_CHECKING:
    from ._breaker import CircuitBreaker

__all__ = ["FakeClock", "force_state", "passthrough"]


class FakeClock:
    """A monotonic clock that only moves when told to.

    Pass it as ``clock=`` to a breaker, then :meth:`advance` it instead of sleeping::

        clock = FakeClock()
        breaker = CircuitBreaker(recovery_timeout=30, clock=clock)
        ...
        clock.advance(30)  # the breaker is now due to admit a probe
    """

    __slots__ = ("_now",)

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def __call__(self) -> float:
        """Return the current reading."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (which must not be negative)."""
        if seconds < 0:
            msg = f"a monotonic clock cannot go back: advance({seconds!r})"
            raise ValueError(msg)
        self._now += seconds

    def __repr__(self) -> str:
        return f"FakeClock({self._now!r})"


@contextmanager
def force_state(state: State | str, *breakers: CircuitBreaker) -> Iterator[list[CircuitBreaker]]:
    """Hold ``breakers`` in ``state`` inside the ``with`` block, then put them back.

    With no breakers given, every live breaker is forced, and so is every breaker created
    inside the block. ``OPEN`` stays open for the whole block (its deadline is infinite, so
    the clock does not matter); ``HALF_OPEN`` admits its probe; ``CLOSED`` is freshly closed
    (calls inside the block may still trip it); the modes (``FORCED_OPEN``, ``DISABLED``,
    ``METRICS_ONLY``) behave as set by hand. Yields the breakers forced at entry.

    Raises:
        ValueError: ``state`` is not a State (or a State's value).
    """
    with _forcing(_parse_state(state), breakers, quiet=False) as forced:
        yield forced


@contextmanager
def _forcing(
    target: State, breakers: tuple[CircuitBreaker, ...], *, quiet: bool
) -> Iterator[list[CircuitBreaker]]:
    # Weakly held: a breaker dropped inside the block (one made per request, under a
    # session-wide passthrough()) is freed, and is simply not restored.
    saved: weakref.WeakKeyDictionary[CircuitBreaker, _Saved] = weakref.WeakKeyDictionary()

    def force(breaker: CircuitBreaker) -> None:
        saved[breaker] = _force(breaker, target, quiet=quiet)

    for breaker in breakers or _registry.live():
        force(breaker)
    if not breakers:
        _registry.add_creation_hook(force)
    try:
        yield list(saved)
    finally:
        if not breakers:
            _registry.remove_creation_hook(force)
        for breaker, before in reversed(list(saved.items())):
            _restore(breaker, before, target, quiet=quiet)


@contextmanager
def passthrough() -> Iterator[None]:
    """Make every breaker, present and future, let every call through inside the block.

    Breakers are disabled: nothing is rejected, counted, logged or reported to listeners (not
    even the switch itself). For a whole pytest session,
    use it in a session-scoped autouse fixture::

        @pytest.fixture(autouse=True, scope="session")
        def _no_circuit_breakers():
            with passthrough():
                yield
    """
    with _forcing(State.DISABLED, (), quiet=True):
        yield


def _parse_state(state: object) -> State:
    try:
        return State(state)
    except ValueError:
        allowed = ", ".join(member.value for member in State)
        msg = f"state must be a State or one of {allowed}; got {state!r}"
        raise ValueError(msg) from None


class _Saved(NamedTuple):
    snapshot: Snapshot
    last_failure: BaseException | None


def _force(breaker: CircuitBreaker, target: State, *, quiet: bool) -> _Saved:
    """Put ``breaker`` in ``target``; return what it had."""
    saved: list[_Saved] = []

    def transition(snapshot: Snapshot, now: float) -> Snapshot:
        saved.append(_Saved(snapshot, breaker._last_failure))
        if target in MODES:
            return _state.enter_mode(snapshot, target)
        if target is OPEN:
            # Open with no deadline: the block decides when it ends, not the clock.
            return _state.Snapshot(
                OPEN,
                snapshot.generation + 1,
                math.inf,
                (),
                None,
                _state.failure_count(snapshot),
                snapshot.openings,
                observed=snapshot.observed,
            )
        if target is HALF_OPEN:
            return _state.Snapshot(
                HALF_OPEN,
                snapshot.generation + 1,
                now,
                (),
                None,
                _state.failure_count(snapshot),
                snapshot.openings,
                observed=snapshot.observed,
            )
        return _state.close(snapshot)

    breaker._change(transition, f"testing.force_state({target.value!r})", quiet=quiet)
    return saved[0]


def _restore(breaker: CircuitBreaker, before: _Saved, target: State, *, quiet: bool) -> None:
    """Give ``breaker`` back the state (and last failure) it had before it was forced."""
    saved = before.snapshot

    def transition(snapshot: Snapshot, now: float) -> Snapshot:
        failures = saved.failures
        if failures is not None:
            # The saved streak counter was folded into the statistics when it was retired;
            # restore it as a fresh counter at the same count, and take that count back out
            # of the totals, so that it is not counted twice when it is retired again.
            count = _state.failure_count(saved)
            failures = itertools.count(count)
            breaker._counters_locked().failures -= count
        breaker._last_failure = before.last_failure
        # A new generation: calls made inside the block, probes included, do not count now.
        return replace(
            saved,
            generation=snapshot.generation + 1,
            failures=failures,
            probes=(),
            probe_successes=0,
            probe_counts=(0, 0, 0),
            observed=snapshot.observed,
        )

    breaker._change(
        transition,
        f"the end of testing.force_state({target.value!r})",
        forget_last_failure=False,
        quiet=quiet,
    )
