"""Permits by hand: ``admit()`` and ``finish()``, and ``with`` / ``async with`` blocks.

A block has a ticket of its own, like a call. Python gives ``__exit__`` nothing but the breaker
to find it by, so a block is matched by the frame that runs its ``with`` statement (blocks in
generators that interleave, or an async generator resumed by another task, each find their
own) and by the context it was entered in (for ``__enter__`` and ``__exit__`` called by hand,
an ``ExitStack`` say); failing both, the newest open block is the one that ends.
"""

from __future__ import annotations

import inspect
import weakref
from contextvars import ContextVar
from types import TracebackType
from typing import Any, TypeVar

from ._control import Control
from ._core import Outcome
from ._errors import CircuitBreakerError
from ._ticket import NO_RESULT, Ticket
from ._wrappers import untimed

__all__ = ["Permits"]

B = TypeVar("B", bound="Permits")

# The blocks entered in this context (weakly: a context never keeps a breaker alive).
_entered: ContextVar[tuple[weakref.ref[Ticket], ...]] = ContextVar(
    "aiocircuitbreaker_blocks", default=()
)


class Permits(Control):
    """Tickets by hand and blocks (a base class of ``CircuitBreaker``)."""

    __slots__ = ()

    def admit(self) -> Ticket:
        """Admit one call, or reject it; report its end with :meth:`finish`.

        Raises:
            CircuitBreakerError: The call is rejected (counted, and reported to listeners).
        """
        ticket = self._admit()
        if not isinstance(ticket, Ticket):
            error = ticket or CircuitBreakerError(self)  # type: ignore[arg-type]  # (no fallback here)
            try:
                raise error
            finally:  # not kept by this frame's traceback: no reference cycle
                del error, ticket
        return ticket

    def finish(
        self,
        ticket: Ticket,
        exception: BaseException | None = None,
        result: Any = NO_RESULT,
        *,
        outcome: Outcome | None = None,
    ) -> Outcome:
        """Report how the call admitted under ``ticket`` ended; return its outcome.

        The outcome is judged from ``exception`` (expected: a failure, else neutral) or from
        ``result`` (``failure_result``), unless ``outcome`` is given. A ticket of an older
        generation changes nothing but the totals.

        Raises:
            ValueError: ``ticket`` belongs to another breaker.
            RuntimeError: ``ticket`` was already finished.
        """
        if ticket.breaker is not self:
            msg = f"{ticket!r} was not admitted by circuit breaker {self._name!r}"
            raise ValueError(msg)
        with self._lock:
            if ticket.finished:
                msg = f"{ticket!r} was already finished"
                raise RuntimeError(msg)
            ticket.finished = True
        try:
            if not ticket.counted:
                return Outcome.NEUTRAL if outcome is None else outcome
            return self._finish(
                ticket.generation, ticket.probe, ticket.started, exception, result, outcome
            )
        finally:
            if ticket.on_finish is not None:
                ticket.on_finish()

    def __enter__(self: B) -> B:
        self._enter_block(_caller())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._exit_block(_caller(), exc_value)

    async def __aenter__(self: B) -> B:
        self._enter_block(_caller())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._exit_block(_caller(), exc_value)

    def _enter_block(self, frame: object) -> None:
        timeout = self._settings.timeout
        if timeout is not None:
            untimed(timeout, "a with block")
        ticket = self.admit()
        live = self._get_live()
        with self._lock:
            live.blocks = (*live.blocks, (frame, ticket))
        _entered.set((*_entered.get(), weakref.ref(ticket)))

    def _exit_block(self, frame: object, exc: BaseException | None) -> None:
        """Finish the block being left: the one entered by ``frame`` in this context.

        A block is found by the frame that runs the ``with`` statement (so blocks in
        generators that interleave, or an async generator resumed by another task, each find
        their own) and by the context it was entered in (for ``__enter__`` and ``__exit__``
        called by hand); failing both, the newest open block.
        """
        here = {id(t) for t in (ref() for ref in _entered.get()) if t is not None}
        live = self._get_live()
        with self._lock:
            blocks = live.blocks
            if not blocks:
                msg = "CircuitBreaker.__exit__ without a matching __enter__"
                raise RuntimeError(msg)
            index = _best_block(blocks, frame, here)
            _, ticket = blocks[index]
            live.blocks = blocks[:index] + blocks[index + 1 :]
        _entered.set(tuple(ref for ref in _entered.get() if ref() is not ticket))
        self.finish(ticket, exc)


def _caller() -> object:
    """Return the frame that called the caller (``None`` where frames are not available)."""
    frame = inspect.currentframe()
    return None if frame is None or frame.f_back is None else frame.f_back.f_back


def _best_block(blocks: tuple[tuple[object, Ticket], ...], frame: object, here: set[int]) -> int:
    """Return the index of the block to finish (see ``CircuitBreaker._exit_block``).

    The newest block entered by ``frame`` in this context; else by ``frame``; else in this
    context (``here``: the tickets entered in it); else the newest.
    """
    framed = frame is not None
    scores = [
        2 * (framed and entered is frame) + (id(ticket) in here) for entered, ticket in blocks
    ]
    best = max(scores)
    return len(scores) - 1 - scores[::-1].index(best)
