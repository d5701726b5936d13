"""Tickets: the permit of one admitted call or block.

``CircuitBreaker.admit()`` returns a :class:`Ticket`; the call's outcome is reported with
``CircuitBreaker.finish(ticket, ...)`` (or ``ticket.finish(...)``), exactly once, from whichever
task or thread. A ticket knows the generation that admitted it, whether it holds a half-open
probe slot, and when the call started, so its outcome always reaches its own call's period:
a late outcome of an older generation changes nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._breaker import CircuitBreaker
    from ._core import Outcome

__all__ = ["NO_RESULT", "Ticket"]

# Probe slots are held under numbers of their own (the storage's ``ticket``); 0 is never used.
numbers = itertools.count(1)


class _NoResult:
    """What a block or a generator "returns": nothing for ``failure_result`` to judge."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_RESULT"


NO_RESULT: Any = _NoResult()


class Ticket:
    """The permit of one admitted call or block (made by ``CircuitBreaker.admit()``).

    Attributes:
        breaker: The breaker that admitted it.
        generation: The generation it was admitted under.
        probe: The number of the half-open probe slot it holds, or ``None``.
        started: The breaker's clock reading when it was admitted, if the call is timed
            (``None`` when nothing needs its duration: no slow calls, no time window, no
            listener of call events).
        counted: Whether its outcome is recorded at all (``False`` while the breaker is
            disabled).
        finished: Whether its outcome has been reported.
        on_finish: Called with no arguments once the ticket is finished (``None``: nothing).
            A :class:`CircuitBreakerGroup` counts the calls it admitted in flight so.
    """

    __slots__ = (
        "__weakref__",
        "breaker",
        "counted",
        "finished",
        "generation",
        "on_finish",
        "probe",
        "started",
    )

    def __init__(
        self,
        breaker: CircuitBreaker,
        generation: int,
        probe: int | None = None,
        started: float | None = None,
        *,
        counted: bool = True,
    ) -> None:
        self.breaker = breaker
        self.generation = generation
        self.probe = probe
        self.started = started
        self.counted = counted
        self.finished = False
        self.on_finish: Callable[[], object] | None = None

    def finish(
        self,
        exception: BaseException | None = None,
        result: Any = NO_RESULT,
        *,
        outcome: Outcome | None = None,
    ) -> Outcome:
        """Report how the call ended (the same as ``breaker.finish(self, ...)``)."""
        return self.breaker.finish(self, exception, result, outcome=outcome)

    def __repr__(self) -> str:
        kind = "probe" if self.probe is not None else "call" if self.counted else "bypass"
        done = " finished" if self.finished else ""
        return f"<Ticket {kind} of {self.breaker.name!r} generation={self.generation}{done}>"
