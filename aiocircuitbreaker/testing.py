"""Helpers for testing code that uses circuit breakers.

- :class:`FakeClock`: a clock to inject (``clock=``) and advance instead of sleeping.
- :func:`use_clock`: give existing breakers (one made at import time, say) a clock inside a
  ``with`` block.
- :func:`force_state`: hold some breakers, or all of them, in a state inside a ``with`` block.
- :func:`passthrough`: turn every breaker into a pass-through, e.g. for a whole test session.

The context managers give the breakers back as they found them: the state each had before the
block returns (as a new generation, so calls made inside the block change nothing after it).
They hold breakers weakly: a breaker dropped inside a block is freed as usual.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Generator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from . import _registry
from ._control import hold, release
from ._core import State, parse_state
from ._engine import rebase

if TYPE_CHECKING:
    from ._breaker import CircuitBreaker

__all__ = ["FakeClock", "force_state", "passthrough", "use_clock"]


class FakeClock:
    """A monotonic clock that only moves when told to.

    Pass it as ``clock=`` to a breaker (or to existing breakers with :func:`use_clock`), then
    :meth:`advance` it instead of sleeping::

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
def force_state(
    state: State | str, *breakers: CircuitBreaker
) -> Generator[list[CircuitBreaker], None, None]:
    """Hold ``breakers`` in ``state`` inside the ``with`` block, then put them back.

    With no breakers given, every live breaker is forced, and so is every breaker created
    inside the block. ``OPEN`` stays open for the whole block (its open period has no end,
    so the clock does not matter); ``HALF_OPEN`` admits its probe; ``CLOSED`` is freshly closed
    (calls inside the block may still trip it); the modes (``FORCED_OPEN``, ``DISABLED``,
    ``METRICS_ONLY``) behave as set by hand. Yields the breakers forced at entry.

    Raises:
        ValueError: ``state`` is not a State (or a State's value).
    """
    target = parse_state(state)
    held = [weakref.ref(breaker) for breaker in breakers]
    del breakers  # held weakly from here on
    with _holding(target, held, pin=False) as forced:
        yield [b for b in (ref() for ref in forced) if b is not None]  # (not kept here)


@contextmanager
def passthrough() -> Generator[None, None, None]:
    """Make every breaker, present and future, let every call through inside the block.

    Breakers are disabled: nothing is rejected, counted, logged or reported to listeners (not
    even the switch itself), and changes by hand (``reset()``, ``close()``, the monitor's group
    operations) do nothing until the block ends. For a whole pytest session, use it in a
    session-scoped autouse fixture::

        @pytest.fixture(autouse=True, scope="session")
        def _no_circuit_breakers():
            with passthrough():
                yield
    """
    with _holding(State.DISABLED, [], pin=True):
        yield


@contextmanager
def use_clock(clock: Callable[[], float], *breakers: CircuitBreaker) -> Generator[None, None, None]:
    """Give ``breakers`` (or every breaker, present and future) ``clock`` inside the block.

    For breakers made at import time with the default clock: inside the block they read
    ``clock`` (a :class:`FakeClock`, typically), and what they measure so far carries over
    (an open breaker with 20 s left still has 20 s left on the new clock). After the block
    each goes back to its own clock the same way. A time window's buckets start over.

    Raises:
        TypeError: ``clock`` is not callable, or a breaker keeps its state outside this
            process (its storage is not the in-memory one).
    """
    given: object = clock  # checked as any object: callers may pass anything
    if not callable(given):
        msg = f"clock must be callable, got {given!r} ({type(given).__name__})"
        raise TypeError(msg)
    swapped: list[tuple[weakref.ref[CircuitBreaker], Callable[[], float]]] = []

    def swap(breaker: CircuitBreaker) -> None:
        swapped.append((weakref.ref(breaker), rebase(breaker, clock)))

    held = [weakref.ref(breaker) for breaker in breakers]
    del breakers  # held weakly from here on
    with _every(held, swap):
        try:
            yield
        finally:
            for ref, own in reversed(swapped):
                breaker = ref()
                if breaker is not None:
                    rebase(breaker, own)


@contextmanager
def _holding(
    target: State, breakers: list[weakref.ref[CircuitBreaker]], *, pin: bool
) -> Generator[list[weakref.ref[CircuitBreaker]], None, None]:
    token = object()
    forced: list[weakref.ref[CircuitBreaker]] = []

    def force(breaker: CircuitBreaker) -> None:
        hold(breaker, target, token, pin=pin)
        forced.append(weakref.ref(breaker))

    with _every(breakers, force):
        try:
            yield forced[:]  # the breakers forced at entry, weakly
        finally:
            for ref in reversed(forced):
                breaker = ref()
                if breaker is not None:
                    release(breaker, token, target)


@contextmanager
def _every(
    breakers: list[weakref.ref[CircuitBreaker]], apply: Callable[[CircuitBreaker], None]
) -> Generator[None, None, None]:
    """Apply ``apply`` to ``breakers`` now; with none given, to every live and new one.

    Holds no breaker while the block runs (they are held weakly: one dropped inside is freed).
    """
    _apply_each(apply, breakers)
    if breakers:
        yield
        return
    _registry.add_creation_hook(apply)
    try:
        yield
    finally:
        _registry.remove_creation_hook(apply)


def _apply_each(
    apply: Callable[[CircuitBreaker], None], breakers: list[weakref.ref[CircuitBreaker]]
) -> None:
    """Apply ``apply`` to the breakers (those still alive), or to every live one if none."""
    for breaker in [ref() for ref in breakers] if breakers else _registry.live():
        if breaker is not None:
            apply(breaker)
