"""The one primitive under every way in: admit a call, then finish it.

:meth:`Admission._admit` gives a call its permit, a :class:`~aiocircuitbreaker.Ticket`, or
``None`` when the call is rejected (then :meth:`Admission._reject` counts the rejection and
returns its error); :meth:`Admission._finish` reports how an admitted call ended. Decorated
functions and generators, ``call()``, ``with`` blocks and ``CircuitBreaker.admit()`` all go
through them (the wrappers with the module functions at the end of this file).

The fast path is that primitive for the common case. While the breaker is closed, with no
policy, no result predicate and no listener of call events, ``Engine._fast`` holds the
generation's :class:`~aiocircuitbreaker._parts.Gate`: a call admitted through it needs no
ticket, a success only advances the gate's total (and calls :func:`gate_success` when the
gate is dirty), and a failure is finished by :func:`gate_failure`. While the breaker is open
(or forced open) with no listener of call events, ``Engine._barrier`` holds the open period's
:class:`~aiocircuitbreaker._parts.Barrier`: ``_admit`` rejects a call that comes before its
deadline from what it carries, and hands a call that comes later on to ``_admit_at`` with the
clock's reading.
"""

from __future__ import annotations

import builtins
import sys
import time
from typing import TYPE_CHECKING, Any

from ._core import CLOSED, DISABLED, HALF_OPEN, METRICS_ONLY, OPEN, Outcome
from ._errors import CircuitBreakerError
from ._events import CallRejected, deliver
from ._probing import Probing
from ._ticket import NO_RESULT, Ticket

if TYPE_CHECKING:
    from ._parts import Gate, Live, View
    from ._settings import Settings

__all__ = ["Admission", "admit", "finish", "gate_failure", "gate_success", "refuse"]

SUCCESS, FAILURE, NEUTRAL = Outcome.SUCCESS, Outcome.FAILURE, Outcome.NEUTRAL
_new_error = CircuitBreakerError.__new__  # (the engine fills in its rejection errors)
_wall_clock = time.time  # for the error's raised_at (decisions use the breaker's clock)


class Admission(Probing):
    """The admit/finish primitive (a base class of ``CircuitBreaker``)."""

    __slots__ = ()

    def _admit(self) -> Ticket | CircuitBreakerError | None:
        """Admit a new call: return its ticket, or the rejection.

        A rejection is counted and reported, then returned as the error to raise, or as
        ``None`` when the fallback answers it. It is returned, not raised: the caller raises it
        from its own frame (each frame an exception passes through must be kept for its
        traceback, and a rejection is the one path an open breaker takes for every call).
        """
        barrier = self._barrier
        if barrier is not None:  # open, no listener: the rejection below, in the fewest steps
            now = barrier.clock()
            if now >= barrier.deadline:  # due for a probe (a NaN reading is not: rejected)
                return self._admit_at(barrier.view, now)
            live = barrier.live
            next(live.rejected)
            if barrier.fallback:
                return None
            error = _new_error(CircuitBreakerError)
            error.circuit_breaker = self  # type: ignore[assignment]
            error.name = self._name
            error.failure_count = barrier.failures
            error.open_remaining = barrier.deadline - now
            error.last_failure = live.last_failure
            error.raised_at = _wall_clock()
            return error
        view = self._view
        state = view.value.state
        if state is CLOSED or state is METRICS_ONLY or state is DISABLED:
            return self._ticket(view)
        return self._admit_at(view, self._settings.clock())

    def _admit_at(self, view: View, now: float) -> Ticket | CircuitBreakerError | None:
        """Admit a call that found ``view`` (not closed, metrics-only or disabled) at ``now``."""
        state = view.value.state
        if state is HALF_OPEN or (state is OPEN and now >= view.deadline):
            ticket = self._admit_probe(now)
            if ticket is not None:
                return ticket
            view = self._view
        # Rejected.
        live: Live = self._live  # type: ignore[assignment]  # it changed state: it was used
        next(live.rejected)
        value = view.value
        settings = self._settings
        if live.listeners:
            deliver(live.listeners, CallRejected(self, settings.clock(), value.state))  # type: ignore[arg-type]
        if settings.fallback is not None:
            return None
        error = _new_error(CircuitBreakerError)
        error.circuit_breaker = self  # type: ignore[assignment]
        error.name = self._name
        error.failure_count = value.failures
        error.open_remaining = view.deadline - now
        error.last_failure = live.last_failure  # (no gate: the breaker is not closed)
        error.raised_at = _wall_clock()
        return error

    def _ticket(self, view: View) -> Ticket:
        """Return the ticket of a call that a closed, metrics-only or disabled breaker admits."""
        value = view.value
        if value.state is DISABLED:
            return Ticket(self, value.generation, counted=False)  # type: ignore[arg-type]
        if self._live is None:
            self._get_live()
            value = self._view.value
        return Ticket(self, value.generation, None, self._start())  # type: ignore[arg-type]

    def _finish(
        self,
        generation: int,
        probe: int | None,
        started: float | None,
        exc: BaseException | None,
        result: Any = NO_RESULT,
        outcome: Outcome | None = None,
        *,
        late: bool = False,
    ) -> Outcome:
        """Record how a call of ``generation`` ended; return its outcome.

        ``outcome`` is judged from ``exc`` and ``result`` unless given (a generator's consumer
        closing it is neutral whatever it raised). ``late``: the call ran out of the breaker's
        timeout, which makes it slow whatever it took.
        """
        if outcome is None:
            outcome = self._judge(exc, result)
        if started is None:  # not timed: nothing is slow
            now, duration, slow = None, 0.0, late
        else:
            now, duration, slow = _timed(self._settings, started, outcome, late=late)
        live = self._live or self._get_live()
        _count(live, outcome, slow)
        failure = exc if outcome is FAILURE else None
        if probe is not None:
            self._release(generation, probe, outcome, slow=slow, failure=failure)
        elif outcome is FAILURE:
            self._record_failure(generation, failure, slow, duration)
        elif outcome is SUCCESS:
            self._record_success(generation, slow, duration)
        if now is not None and live.listeners:
            self._report(live, outcome, now, duration, exc)
        return outcome

    def _judge(self, exc: BaseException | None, result: Any) -> Outcome:
        """Return the outcome of a call that raised ``exc`` or returned ``result``."""
        if exc is not None:
            return FAILURE if self._is_failure(exc) else NEUTRAL
        predicate = self._settings.failure_result
        if predicate is None or result is NO_RESULT:
            return SUCCESS
        try:
            failed = bool(predicate(result))
        except Exception:  # noqa: BLE001 - logged by _log_fault; the call's result stands
            self._log_fault("failure_result predicate", "counting the call as a success")
            return SUCCESS
        return FAILURE if failed else SUCCESS

    def _is_failure(self, exc: BaseException) -> bool:
        """Return whether ``exc`` is an expected failure (else the outcome is neutral)."""
        settings = self._settings
        # Only Exception subclasses are ever expected (checked at construction), so
        # isinstance() alone keeps cancellation and other BaseExceptions neutral.
        if isinstance(exc, settings.expected):
            return True
        members = _members(exc)
        if members is not None:  # a group is a failure if any exception in it is one
            return any(self._is_failure(member) for member in members)
        predicate = settings.predicate
        if predicate is None or not isinstance(exc, Exception):
            return False
        try:
            return bool(predicate(type(exc), exc))
        except Exception:  # noqa: BLE001 - logged by _log_fault; the call's exception stands
            what = f"treating the call's {type(exc).__name__} as neutral"
            self._log_fault("expected_exception predicate", what)
            return False

    def _gate_success(self, gate: Gate) -> None:
        """Finish a call admitted through a dirty ``gate`` that succeeded (already counted).

        A streak may be pending, or a policy's window wants the success.
        """
        pending = gate.pending
        if pending is not None:  # a count window that successes can no longer trip
            next(pending)
            live = self._live
            if live is not None and live.last_failure is not None:
                live.last_failure = None  # the failure streak is over, as in 2.x
            return
        self._record_success(gate.generation, False, 0.0)  # noqa: FBT003


def _members(exc: BaseException) -> tuple[BaseException, ...] | None:
    """Return the exceptions in ``exc`` if it is an exception group (a TaskGroup's, say)."""
    # Python 3.10 has none built in: the backport's, if a library (anyio, trio) uses it.
    group = getattr(builtins, "BaseExceptionGroup", None) or getattr(
        sys.modules.get("exceptiongroup"), "BaseExceptionGroup", None
    )
    if group is not None and isinstance(exc, group):
        members: tuple[BaseException, ...] = tuple(exc.exceptions)  # pyright: ignore[reportAttributeAccessIssue]
        return members
    return None


def _timed(
    settings: Settings, started: float, outcome: Outcome, *, late: bool
) -> tuple[float, float, bool]:
    """Return when a call that started at ``started`` ended, how long it took, and if slow.

    ``late``: it ran out of the breaker's timeout, which is slow whatever it took.
    """
    now = settings.clock()
    duration = now - started
    limit = settings.slow_call_duration
    slow = limit is not None and duration > limit and outcome is not NEUTRAL
    return now, duration, slow or late


def _count(live: Live, outcome: Outcome, slow: bool) -> None:  # noqa: FBT001
    """Add a finished call to the totals."""
    if outcome is SUCCESS:
        next(live.successes)
    elif outcome is FAILURE:
        next(live.failures)
    else:
        next(live.neutral)
    if slow:
        next(live.slow)


# -- the primitive as the wrappers call it (functions of this module, on its own state) -------

admit = Admission._admit  # (breaker) -> Ticket, or the rejection: error to raise, or None


def refuse(breaker: Admission) -> CircuitBreakerError | None:
    """Count and report a call refused before admission (an overridden ``opened`` said so).

    Returns the error to raise, or ``None`` when the fallback answers.
    """
    live = breaker._get_live()
    next(live.rejected)
    if live.listeners:
        state = breaker._view.value.state
        deliver(live.listeners, CallRejected(breaker, breaker._settings.clock(), state))  # type: ignore[arg-type]
    if breaker._settings.fallback is not None:
        return None
    return CircuitBreakerError(breaker)  # type: ignore[arg-type]


gate_success = Admission._gate_success  # (breaker, gate): a success through a dirty gate


def gate_failure(breaker: Admission, gate: Gate, exc: BaseException) -> None:
    """Finish a call admitted through ``gate`` that raised ``exc``.

    The engine's failure recording (``_record_failure``) for the one case the gate serves, in
    the fewest steps: the gate's counter, and the last failure kept on the gate.
    """
    if not isinstance(exc, gate.expected) and not breaker._is_failure(exc):
        next(gate.neutral)
        return
    next(gate.failures)
    if gate.policy:  # the window decides: the engine's recording, in full
        breaker._record_failure(gate.generation, exc)
        return
    gate.last = exc
    streak = next(gate.counter)
    gate.dirty = True
    if streak < 0:  # stale: a shared storage moved on
        breaker._stale(gate.generation)
    elif streak >= gate.limit:
        view = breaker._view
        if view.gate is gate:  # else: of an older generation, or of a streak already ended
            breaker._streak_trip(view, streak + 1, exc)


def finish(
    ticket: Ticket,
    exc: BaseException | None = None,
    result: Any = NO_RESULT,
    outcome: Outcome | None = None,
    *,
    late: bool = False,
) -> None:
    """Report the end of a call admitted by a wrapper (``late``: it ran out of time).

    The wrappers finish each counted ticket once, and call no further for one not counted
    (a disabled breaker's).
    """
    ticket.finished = True
    breaker = ticket.breaker
    breaker._finish(
        ticket.generation, ticket.probe, ticket.started, exc, result, outcome, late=late
    )
