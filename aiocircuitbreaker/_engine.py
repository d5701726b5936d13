"""The shell around the core: admission, outcomes and transitions of one breaker.

Every way in (the wrappers, ``call()``, ``with`` blocks, integrations) goes through one
primitive: :meth:`Engine._admit` gives a call its permit (a :class:`Ticket`, or ``None`` when
the call is rejected) and :meth:`Engine._finish` reports how it ended. The wrappers' fast path
is that primitive for the common case: while the breaker is closed, with no policy, no result
predicate and no listener of call events, ``Engine._fast`` holds the generation's
:class:`Gate`; a call admitted through it is finished by :func:`gate_failure` or by counting a
success (and :func:`gate_success` when the gate says a failure streak is pending).

Locking: each breaker has a lock (one of a small striped pool, so a breaker costs no lock
object), shared with its in-memory storage. Transitions, and the few updates that must agree
with the storage's counts, happen under it; a failure of the default breaker needs none (the
storage counts it in one atomic step). User callables (predicates, trip rules, the open
duration, listeners, logging) run before or after, never while the lock is held.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from . import _core
from ._core import CLOSED, DISABLED, FORCED_OPEN, HALF_OPEN, METRICS_ONLY, OPEN, Outcome, Value
from ._errors import CircuitBreakerError
from ._events import CallFailed, CallNeutral, CallRejected, CallSucceeded, Event, deliver
from ._reporting import Announcer
from ._statistics import Counters
from ._storage import InMemoryStorage, Probes, Reading, Storage
from ._ticket import NO_RESULT, Ticket, numbers

if TYPE_CHECKING:
    from ._events import Subscription
    from ._settings import Settings
    from ._storage import Tally as Counts

__all__ = ["Engine", "Gate", "View"]

SUCCESS, FAILURE, NEUTRAL = Outcome.SUCCESS, Outcome.FAILURE, Outcome.NEUTRAL
EXPIRED = "a probe ran out of time (HalfOpen.max_duration)"
_STRIPES = tuple(threading.RLock() for _ in range(64))
_new_error = CircuitBreakerError.__new__  # (the engine fills in its rejection errors)
_wall_clock = time.time  # for the error's raised_at (decisions use the breaker's clock)


class Gate:
    """The fast path's permit for one closed generation (see the module docstring).

    It carries what a call through it needs, so that finishing one takes no further lookups:
    the totals, the expected exceptions, the threshold and a failure counter: the storage's
    lock-free one, or one that goes through ``record()`` for a storage without it. Each
    ``next(counter)`` counts one failure and returns the streak before it.
    ``dirty`` is true while a failure streak may be pending: a success must then reach the
    storage to end it. It is set after a failure is counted, and cleared only under the lock,
    right after a success ended the streak, so it is never false while a streak is pending.
    """

    __slots__ = (
        "counter",
        "dirty",
        "expected",
        "failures",
        "generation",
        "last",
        "limit",
        "neutral",
        "successes",
    )

    def __init__(
        self,
        generation: int,
        live: Live,
        settings: Settings,
        counter: Iterator[int],
        *,
        dirty: bool,
    ) -> None:
        self.generation = generation
        self.successes = live.successes
        self.failures = live.failures
        self.neutral = live.neutral
        self.expected = settings.expected
        self.limit = settings.failure_threshold - 1  # the streak before a failure that trips
        self.counter = counter
        self.dirty = dirty
        # The last failure through this gate (the breaker's, while the gate is current: see
        # Engine._last_failure); a failure of an older generation lands on an older gate.
        self.last: BaseException | None = None


@dataclass(frozen=True, slots=True)
class View:
    """The breaker's value as this process sees it, with its times on the breaker's clock.

    Attributes:
        value: The stored value.
        deadline: When the open period ends (``OPEN``; ``HALF_OPEN`` keeps it for reporting).
        since: When this state began (for ``time_in_state``).
        gate: The fast path's gate, for a closed generation that can have one.
    """

    value: Value
    deadline: float = 0.0
    since: float = 0.0
    gate: Gate | None = None


_INITIAL_VIEW = View(_core.INITIAL)


class Live(Counters):
    """What a breaker needs once it is used (made on first use, to keep unused ones small)."""

    __slots__ = (
        "blocks",
        "last_failure",
        "listeners",
        "opening",
        "pending",
        "saved",
        "storage",
        "subscriptions",
    )

    def __init__(self, now: float, storage: Storage) -> None:
        super().__init__(now)
        self.storage = storage
        self.last_failure: BaseException | None = None
        self.subscriptions: tuple[Subscription, ...] = ()  # the breaker's own listeners
        self.listeners: tuple[Subscription, ...] = ()  # those (own and global) of call events
        self.blocks: list[tuple[object, Ticket]] = []  # open `with` blocks: (frame, ticket)
        self.opening = -1  # the generation whose opening a thread is deciding now
        # (generation, seconds): the open duration asked for the opening after that generation
        self.pending: tuple[int, float] | None = None
        # What the testing helpers saved, newest last: (token, saved state, pinned).
        self.saved: list[tuple[object, Any, bool]] = []


class Engine(Announcer):
    """The internals of :class:`~aiocircuitbreaker.CircuitBreaker` (see the module docstring)."""

    __slots__ = (
        "__dict__",
        "__weakref__",
        "_fast",
        "_live",
        "_lock",
        "_name",
        "_settings",
        "_view",
    )

    _settings: Settings
    _name: str | None
    _fast: Gate | None
    _view: View
    _live: Live | None

    def _start_engine(self, settings: Settings, storage: Storage | None) -> None:
        self._settings = settings
        self._lock = _STRIPES[id(self) >> 4 & 63]
        self._view = _INITIAL_VIEW
        self._fast = None  # opened with the first use (see _get_live)
        self._live = None
        if storage is not None:
            self._make_live(storage)

    # -- what is made on first use ------------------------------------------------------------

    def _get_live(self) -> Live:
        live = self._live
        if live is None:
            live = self._make_live(None)
        return live

    def _make_live(self, storage: Storage | None) -> Live:
        with self._lock:
            live = self._live
            if live is not None:
                return live
            settings = self._settings
            if storage is None:
                policy = settings.policy
                storage = InMemoryStorage(
                    clock=settings.clock,
                    window=None if policy is None else policy.window,
                    lock=self._lock,
                )
            now = settings.clock()
            live = self._live = Live(now, storage)
            reading = storage.read()
            self._set_view(reading.value, now - reading.age, counts=reading.counts)
            return live

    @property
    def _last_failure(self) -> BaseException | None:
        live = self._live
        if live is None:
            return None
        gate = self._view.gate
        if gate is not None and gate.last is not None:
            return gate.last
        return live.last_failure

    @_last_failure.setter
    def _last_failure(self, failure: BaseException | None) -> None:
        self._get_live().last_failure = failure
        gate = self._view.gate
        if gate is not None:
            gate.last = None

    @property
    def _pending(self) -> tuple[int, float] | None:
        return self._get_live().pending

    @_pending.setter
    def _pending(self, pending: tuple[int, float] | None) -> None:
        self._get_live().pending = pending

    def _listeners(self) -> tuple[Subscription, ...]:
        live = self._live
        return () if live is None else live.listeners

    def _own_subscriptions(self) -> tuple[Subscription, ...]:
        live = self._live
        return () if live is None else live.subscriptions

    # -- the local view (under the lock) ------------------------------------------------------

    def _set_view(
        self, value: Value, stored_at: float, *, since: float | None = None, counts: Any = None
    ) -> View:
        """Make ``value``, stored at ``stored_at``, the breaker's view (the lock is held)."""
        gate = None
        live = self._live
        old = self._view.gate
        if live is not None and old is not None and old.last is not None:
            live.last_failure = old.last  # the gate retires: the breaker keeps its last failure
        if value.state is CLOSED and self._settings.simple and live is not None:
            pending = value.failures if counts is None else counts[3]
            counter = _failure_counter(live.storage, value.generation)
            gate = Gate(value.generation, live, self._settings, counter, dirty=pending > 0)
        view = self._view = View(
            value, stored_at + value.open_for, stored_at if since is None else since, gate
        )
        self._fast = None if live is None or live.listeners else gate
        return view

    def _refresh_listeners(self) -> None:
        """Recompute which listeners want call events after one was added or removed."""
        live = self._get_live()
        with self._lock:
            live.listeners = tuple(s for s in self._subscriptions() if s.wants_calls)
            self._fast = None if live.listeners else self._view.gate

    def _refresh(self, now: float) -> View:
        """Read the storage again (another writer moved it on); return the new view."""
        reading = self._get_live().storage.read()
        with self._lock:
            view = self._view
            if reading.value.generation != view.value.generation:
                view = self._set_view(reading.value, now - reading.age, counts=reading.counts)
            return view

    # -- admission ----------------------------------------------------------------------------

    def _admit(self, refused: bool = False) -> Ticket | CircuitBreakerError | None:  # noqa: FBT001, FBT002
        """Admit a new call: return its ticket, or the rejection.

        A rejection is counted and reported, then returned as the error to raise, or as
        ``None`` when the fallback answers it. (It is returned, not raised, for speed: a frame
        an exception passes through has to be kept for its traceback.) ``refused``: the call
        is rejected whatever the state (an overridden ``opened`` said so).
        """
        view = self._view
        value = view.value
        state = value.state
        settings = self._settings
        if state is OPEN and not refused:
            now = settings.clock()
            if now >= view.deadline:
                ticket = self._admit_probe(now)
                if ticket is not None:
                    return ticket
                view = self._view
                value = view.value
        elif refused or state is FORCED_OPEN:
            now = settings.clock()
        elif state is CLOSED or state is METRICS_ONLY:
            if self._live is None:
                self._get_live()
                value = self._view.value
            return Ticket(self, value.generation, None, self._start())  # type: ignore[arg-type]
        elif state is DISABLED:
            return Ticket(self, value.generation, counted=False)  # type: ignore[arg-type]
        else:  # half-open
            now = settings.clock()
            ticket = self._admit_probe(now)
            if ticket is not None:
                return ticket
            view = self._view
            value = view.value
        live = self._live or self._get_live()
        next(live.rejected)
        if live.listeners:
            event = CallRejected(self, settings.clock(), value.state)  # type: ignore[arg-type]
            deliver(live.listeners, event)
        if settings.fallback is not None:
            return None
        error = _new_error(CircuitBreakerError)
        error.circuit_breaker = self  # type: ignore[assignment]
        error.name = self._name
        error.failure_count = value.failures
        error.open_remaining = view.deadline - now
        gate = view.gate  # (only a call refused while closed finds one)
        error.last_failure = live.last_failure if gate is None else self._last_failure
        error.raised_at = _wall_clock()
        return error

    def _start(self) -> float | None:
        """Return when a call starts, if anything needs its duration."""
        if self._settings.clocked or self._listeners():
            return self._settings.clock()
        return None

    def _admit_probe(self, now: float) -> Ticket | None:
        """Admit a probe if the breaker is (or is due to be) half-open with a slot free."""
        for _ in range(4):  # another writer, or probes out of time, may move it on meanwhile
            view = self._catch_up(now)
            value = view.value
            if value.state is not HALF_OPEN:
                return None if value.state in (OPEN, FORCED_OPEN) else self._admit_again()
            half_open = self._settings.half_open
            number = next(numbers)
            probes = self._get_live().storage.acquire(
                value.generation,
                number,
                half_open.probes,
                None if half_open.judge_by_rate else half_open.successes,
                half_open.max_duration or float("inf"),
            )
            if probes is None:
                self._refresh(now)
                continue
            if probes.expired:
                self._judge_probes(view, probes, now, None)
                if not probes.admitted:
                    continue  # it may have reopened, for a period that is already over
            if not probes.admitted:
                return None
            started = now if self._settings.clocked or self._listeners() else None
            return Ticket(self, value.generation, number, started)  # type: ignore[arg-type]
        return None  # pragma: no cover - only a storage changed by others at every look

    def _admit_again(self) -> Ticket | None:
        """Admit a call that found the breaker changed meanwhile (closed, or in a mode)."""
        view = self._view
        state = view.value.state
        if state is CLOSED or state is METRICS_ONLY:
            return Ticket(self, view.value.generation, None, self._start())  # type: ignore[arg-type]
        return Ticket(self, view.value.generation, counted=False)  # type: ignore[arg-type]

    def _catch_up(self, now: float) -> View:
        """Make the open periods that ended by ``now`` half-open; return the view after."""
        view = self._view
        while view.value.state is OPEN and now >= view.deadline:
            new = _core.half_opened(view.value, now - view.deadline)
            reason = "the open period is over; admitting probes"
            view = self._transition(view, new, now, reason, at=view.deadline)
        return view

    # -- outcomes -----------------------------------------------------------------------------

    def _finish(
        self,
        generation: int,
        probe: int | None,
        started: float | None,
        exc: BaseException | None,
        result: Any = NO_RESULT,
        outcome: Outcome | None = None,
    ) -> Outcome:
        """Record how a call of ``generation`` ended; return its outcome.

        ``outcome`` is judged from ``exc`` and ``result`` unless given (a generator's consumer
        closing it is neutral whatever it raised).
        """
        settings = self._settings
        if outcome is None:
            outcome = self._judge(exc, result)
        now = settings.clock() if started is not None else None
        duration = 0.0 if now is None or started is None else now - started
        limit = settings.slow_call_duration
        slow = outcome is not NEUTRAL and limit is not None and now is not None and duration > limit
        live = self._get_live()
        if outcome is SUCCESS:
            next(live.successes)
        elif outcome is FAILURE:
            next(live.failures)
        else:
            next(live.neutral)
        if slow:
            next(live.slow)
        failure = exc if outcome is FAILURE else None
        if probe is not None:
            self._release(generation, probe, outcome, slow=slow, failure=failure)
        elif outcome is FAILURE:
            self._record_failure(generation, failure, slow, duration)
        elif outcome is SUCCESS:
            self._record_success(generation, slow, duration)
        if now is not None and live.listeners:
            self._report(outcome, now, duration, exc)
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
        """Finish a call admitted through ``gate`` that succeeded while a streak was pending."""
        self._record_success(gate.generation, False, 0.0)  # noqa: FBT003 - (already counted)

    def _record_failure(
        self,
        generation: int,
        failure: BaseException | None,
        slow: bool = False,  # noqa: FBT001, FBT002
        duration: float = 0.0,
    ) -> None:
        """Count a failure of a counting generation; trip the breaker if it must.

        No lock: the storage counts it in one step, and the gate is marked dirty after (a
        success clears that mark only under the lock, after ending the streak).
        """
        live = self._get_live()
        counts = live.storage.record(generation, True, slow, duration)  # noqa: FBT003
        if counts is None:
            return  # an outcome of an older generation changes nothing
        view = self._view
        value = view.value
        if value.generation != generation:
            return
        gate = view.gate
        if gate is not None:
            gate.dirty = True
        if failure is not None:
            live.last_failure = failure
            if gate is not None:
                gate.last = None
        if value.state is CLOSED:  # metrics-only records the same way, and never trips
            if self._settings.policy is not None:
                self._policy_trip(view, counts, failure)
            else:
                self._streak_trip(view, counts[3], failure)

    def _streak_trip(self, view: View, streak: int, failure: BaseException | None) -> None:
        """Open the breaker if a failure streak of ``streak`` reached the threshold."""
        if streak >= self._settings.failure_threshold:
            reason = f"{streak} consecutive failure{'' if streak == 1 else 's'}"
            self._open_from(view, streak, failure, reason, (0, 0, 0, streak))

    def _record_success(self, generation: int, slow: bool, duration: float) -> None:  # noqa: FBT001
        """Count a success of a counting generation (it ends the failure streak)."""
        live = self._get_live()
        with self._lock:
            counts = live.storage.record(generation, False, slow, duration)  # noqa: FBT003
            view = self._view
            if counts is None or view.value.generation != generation:
                return
            live.last_failure = None  # the failure streak is over, as in 2.x
            gate = view.gate
            if gate is not None:
                gate.counter = _failure_counter(live.storage, generation)  # a new streak
                gate.dirty = counts[3] > 0
                gate.last = None
        if view.value.state is CLOSED and self._settings.policy is not None:
            self._policy_trip(view, counts, None)

    def _policy_trip(self, view: View, counts: Counts, failure: BaseException | None) -> None:
        """Open the breaker if its rate policy says ``counts`` trip it."""
        policy = self._settings.policy
        assert policy is not None
        if policy.should_trip(*counts):
            reason = "the rate policy tripped"
            self._open_from(view, counts[3], failure, reason, counts)

    def _release(
        self,
        generation: int,
        probe: int,
        outcome: Outcome,
        *,
        slow: bool,
        failure: BaseException | None,
    ) -> None:
        """Give back a probe's slot with its outcome, and decide what the probes say."""
        live = self._get_live()
        with self._lock:
            probes = live.storage.release(generation, probe, outcome, slow)
            view = self._view
            if probes is None or view.value.generation != generation:
                return  # not a probe of this half-open period (or its time had run out)
            if failure is not None:
                live.last_failure = failure
        self._judge_probes(view, probes, self._settings.clock(), failure)

    def _judge_probes(
        self, view: View, probes: Probes, now: float, failure: BaseException | None
    ) -> None:
        """Open or close a half-open breaker if its probes' counts decide it."""
        half_open = self._settings.half_open
        value = view.value
        if half_open.judge_by_rate:
            if probes.finished < half_open.probes:
                return
            policy = self._settings.policy
            assert policy is not None  # judge_by_rate is refused without a policy
            # The probe whose outcome completed the set decides, as of when it came in.
            at = now - probes.expired[-1] if probes.expired else now
            if policy.should_trip(
                probes.finished, probes.failures, probes.slow, 0, ignore_minimum=True
            ):
                reason = EXPIRED if probes.expired else "half-open probe failure"
                self._reopen(view, value.failures + probes.failures, failure, reason, at)
            else:
                closing = _core.closed(value)
                self._transition(view, closing, now, "half-open probe success", forget=not failure)
        elif probes.failures:
            if probes.expired:  # the first to run out failed first, as of then
                self._reopen(view, value.failures + 1, None, EXPIRED, now - probes.expired[0])
            else:
                self._reopen(view, value.failures + 1, failure, "half-open probe failure", now)
        elif probes.successes >= half_open.successes:
            closing = _core.closed(value)
            self._transition(view, closing, now, "half-open probe success", forget=True)

    def _reopen(
        self, view: View, failures: int, failure: BaseException | None, reason: str, at: float
    ) -> None:
        self._open_from(view, failures, failure, reason, None, at=at)

    def _open_from(
        self,
        view: View,
        failures: int,
        failure: BaseException | None,
        reason: str,
        counts: Counts | None,
        *,
        at: float | None = None,
    ) -> None:
        """Open the breaker from ``view`` (if no other thread is already doing it)."""
        generation = view.value.generation
        live = self._get_live()
        with self._lock:
            if live.opening == generation or self._view is not view:
                return  # another thread decides this opening, or the breaker moved on
            live.opening = generation
        now = self._settings.clock()
        at = now if at is None else at
        seconds = self._ask_open_duration(view.value, failure)
        new = _core.opened(view.value, failures, seconds - (now - at))
        self._transition(view, new, now, reason, at=at, counts=counts)

    def _transition(
        self,
        view: View,
        new: Value,
        now: float,
        reason: str,
        *,
        at: float | None = None,
        counts: Counts | None = None,
        manual: bool = False,
        quiet: bool = False,
        forget: bool = False,
    ) -> View:
        """Store ``new`` if the breaker is still at ``view``; announce it; return the view.

        Closing by hand, or by a success (``forget``), clears the last failure.
        """
        at = now if at is None else min(at, now)
        old = view.value
        live = self._get_live()
        with self._lock:
            stored = self._view is view and live.storage.replace(old.generation, new)
            if stored:
                live.changed(old.state, new.state, at)
                if counts is not None and counts[0]:
                    live.last_rates = (counts[1] / counts[0], counts[2] / counts[0])
                view = self._set_view(new, now, since=at)
                if new.state is CLOSED and (manual or forget):
                    live.last_failure = None
        if not stored:
            return self._refresh(now)
        if not quiet:
            self._announce(old, view, reason, now, manual=manual)
        return view

    # -- rejections and reports ---------------------------------------------------------------

    def _report(
        self, outcome: Outcome, now: float, duration: float, exc: BaseException | None
    ) -> None:
        """Tell the call listeners how a call ended."""
        event: Event
        if outcome is SUCCESS:
            event = CallSucceeded(self, now, duration)  # type: ignore[arg-type]
        elif outcome is FAILURE:
            event = CallFailed(self, now, duration, exc)  # type: ignore[arg-type]
        else:
            event = CallNeutral(self, now, duration, exc)  # type: ignore[arg-type]
        deliver(self._get_live().listeners, event)

    def _read(self) -> tuple[Reading, View]:
        """Return the storage's reading and the view, taken together."""
        live = self._get_live()
        with self._lock:
            return live.storage.read(), self._view


# -- the primitive as the wrappers use it (functions of this module: the engine's own state) --


# The primitive's entry points for the wrappers (called with the breaker first):
admit = Engine._admit  # (breaker[, refused]) -> Ticket, or the error to raise, or None
gate_success = Engine._gate_success  # (breaker, gate): a success through a dirty gate


def gate_failure(breaker: Engine, gate: Gate, exc: BaseException) -> None:
    """Finish a call admitted through ``gate`` that raised ``exc``.

    The engine's failure recording (``_record_failure``) for the one case the gate serves, in
    the fewest steps: the gate's counter, and the last failure kept on the gate.
    """
    if not isinstance(exc, gate.expected) and not breaker._is_failure(exc):
        next(gate.neutral)
        return
    next(gate.failures)
    gate.last = exc
    streak = next(gate.counter)
    gate.dirty = True
    if streak >= gate.limit:
        view = breaker._view
        if view.gate is gate:  # else: of an older generation, or of a streak already ended
            breaker._streak_trip(view, streak + 1, exc)


def _failure_counter(storage: Storage, generation: int) -> Iterator[int]:
    """Return the gate's failure counter: the storage's lock-free one, or ``record()``."""
    counter = getattr(storage, "failure_counter", None)
    found: Iterator[int] | None = None if counter is None else counter(generation)
    return _ThroughRecord(storage, generation) if found is None else found


class _ThroughRecord:
    """A failure counter for a storage without a lock-free one: ``record()`` each failure."""

    __slots__ = ("generation", "storage")

    def __init__(self, storage: Storage, generation: int) -> None:
        self.storage, self.generation = storage, generation

    def __iter__(self) -> _ThroughRecord:
        return self

    def __next__(self) -> int:
        counts = self.storage.record(self.generation, True)  # noqa: FBT003
        return -1 if counts is None else counts[3] - 1  # -1: stale, it trips nothing


def finish(
    ticket: Ticket,
    exc: BaseException | None = None,
    result: Any = NO_RESULT,
    outcome: Outcome | None = None,
) -> None:
    """Report the end of a call admitted by a wrapper (which finishes each ticket once)."""
    if ticket.counted:
        ticket.finished = True
        ticket.breaker._finish(
            ticket.generation, ticket.probe, ticket.started, exc, result, outcome
        )


def refresh_listeners(breaker: Engine) -> None:
    """Recompute which listeners want ``breaker``'s call events (the global ones changed)."""
    breaker._refresh_listeners()


def rebase(breaker: Engine, clock: Callable[[], float]) -> Callable[[], float]:
    """Give ``breaker`` a new clock, keeping what it measured so far; return the old one.

    Raises:
        TypeError: the breaker keeps its state outside this process.
    """
    live = breaker._get_live()
    storage = live.storage
    if not isinstance(storage, InMemoryStorage):
        msg = f"only breakers with in-memory storage can change clocks, not {storage!r}"
        raise TypeError(msg)
    with breaker._lock:
        settings = breaker._settings
        old = settings.clock
        shift = clock() - old()
        storage.rebase(clock)
        breaker._settings = replace(settings, clock=clock)
        view = breaker._view
        breaker._view = replace(view, deadline=view.deadline + shift, since=view.since + shift)
        live.changed_at += shift
    return old
