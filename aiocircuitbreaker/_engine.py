"""The shell around the core: admission, outcomes and transitions of one breaker.

Every way in (the wrappers, ``call()``, ``with`` blocks, integrations) goes through one
primitive: :meth:`Engine._admit` gives a call its permit (a :class:`Ticket`, or ``None`` when
the call is rejected) and :meth:`Engine._finish` reports how it ended. The wrappers' fast path
is that primitive for the one case that needs no bookkeeping (closed, clean, unobserved): the
engine keeps a :class:`Gate` in ``_fast`` exactly while a success would change nothing but its
total, and the wrappers read that one attribute.

Locking: each breaker has a lock (one of a small striped pool, so a breaker costs no lock
object) under which the storage is called and the local view updated; nothing else runs under
it. User callables (predicates, trip rules, the open duration, listeners, logging) run before
or after, never while it is held.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from . import _core
from ._core import (
    CLOSED,
    DISABLED,
    FORCED_OPEN,
    HALF_OPEN,
    METRICS_ONLY,
    OPEN,
    Outcome,
    Value,
)
from ._events import CallFailed, CallNeutral, CallRejected, CallSucceeded, Event, deliver
from ._reporting import Announcer
from ._statistics import Counters
from ._storage import InMemoryStorage, Probes, Reading, Storage
from ._ticket import NO_RESULT, Ticket, numbers

if TYPE_CHECKING:
    from ._events import Subscription
    from ._settings import Settings

__all__ = ["Engine", "Gate", "View"]

SUCCESS, FAILURE, NEUTRAL = Outcome.SUCCESS, Outcome.FAILURE, Outcome.NEUTRAL
EXPIRED = "a probe ran out of time (HalfOpen.max_duration)"
_STRIPES = tuple(threading.RLock() for _ in range(64))


@dataclass(frozen=True, slots=True)
class View:
    """The breaker's value as this process sees it, with its times on the breaker's clock.

    Attributes:
        value: The stored value.
        deadline: When the open period ends (``OPEN``; ``HALF_OPEN`` keeps it for reporting).
        since: When this state began (for ``time_in_state``).
    """

    value: Value
    deadline: float = 0.0
    since: float = 0.0


class Gate:
    """The fast path's permit, in ``Engine._fast`` while a success would change nothing.

    That is while the breaker is closed, has no failure pending, needs no per-call bookkeeping
    (no policy, no result predicate) and has no listener of call events.
    """

    __slots__ = ("generation", "successes")

    def __init__(self, generation: int, successes: itertools.count[int]) -> None:
        self.generation = generation
        self.successes = successes


_INITIAL_VIEW = View(_core.INITIAL)


class _Rare:
    """What few breakers ever use, kept out of the breaker itself to keep it small."""

    __slots__ = ("blocks", "opening", "pending", "saved", "subscriptions")

    def __init__(self) -> None:
        self.subscriptions: tuple[Subscription, ...] = ()  # the breaker's own listeners
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
        "_counters",
        "_fast",
        "_last_failure",
        "_listeners",
        "_lock",
        "_name",
        "_rare",
        "_settings",
        "_storage",
        "_view",
    )

    _settings: Settings
    _name: str | None
    _storage: Storage | None  # None: an in-memory one, made on first need
    _fast: Gate | None
    _view: View
    _counters: Counters  # made on first use (see _get_counters)
    _listeners: tuple[Subscription, ...]  # subscriptions wanting call events (own and global)
    _last_failure: BaseException | None
    _rare: _Rare | None

    def _start_engine(self, settings: Settings, storage: Storage | None) -> None:
        self._settings = settings
        self._storage = storage
        self._lock = _STRIPES[id(self) >> 4 & 63]
        self._view = _INITIAL_VIEW
        self._fast = None  # the first call makes the counters, and the gate with them
        self._listeners = ()
        self._last_failure = None
        self._rare = None

    # -- pieces made on first use -------------------------------------------------------------

    def _get_storage(self) -> Storage:
        storage = self._storage
        if storage is None:
            with self._lock:
                storage = self._storage
                if storage is None:
                    policy = self._settings.policy
                    storage = self._storage = InMemoryStorage(
                        clock=self._settings.clock,
                        window=None if policy is None else policy.window,
                        lock=self._lock,
                    )
        return storage

    def _get_counters(self) -> Counters:
        try:
            return self._counters
        except AttributeError:
            with self._lock:
                try:
                    return self._counters
                except AttributeError:
                    # The fast path opens at the first success recorded under the lock.
                    counters = self._counters = Counters(self._settings.clock())
                    return counters

    @property
    def _pending(self) -> tuple[int, float] | None:
        return self._get_rare().pending

    @_pending.setter
    def _pending(self, pending: tuple[int, float] | None) -> None:
        self._get_rare().pending = pending

    def _own_subscriptions(self) -> tuple[Subscription, ...]:
        rare = self._rare
        return () if rare is None else rare.subscriptions

    def _get_rare(self) -> _Rare:
        rare = self._rare
        if rare is None:
            with self._lock:
                rare = self._rare
                if rare is None:
                    rare = self._rare = _Rare()
        return rare

    # -- the local view (under the lock) ------------------------------------------------------

    def _set_view(self, value: Value, now: float, *, since: float | None = None) -> View:
        """Make ``value``, stored at ``now``, the breaker's view (the lock is held)."""
        view = self._view = View(value, now + value.open_for, now if since is None else since)
        self._update_gate(clean=value.failures == 0)
        return view

    def _update_gate(self, *, clean: bool) -> None:
        """Open or shut the fast path for the current view (the lock is held)."""
        value = self._view.value
        try:
            counters = self._counters
        except AttributeError:
            self._fast = None
            return
        if value.state is CLOSED and clean and self._settings.simple and not self._listeners:
            gate = self._fast
            if gate is None or gate.generation != value.generation:
                self._fast = Gate(value.generation, counters.successes)
        else:
            self._fast = None

    def _refresh_listeners(self) -> None:
        """Recompute which listeners want call events after one was added or removed."""
        with self._lock:
            self._listeners = tuple(s for s in self._subscriptions() if s.wants_calls)
            counts = self._get_storage().read().counts
            self._update_gate(clean=counts is not None and counts.consecutive_failures == 0)

    def _refresh(self, now: float) -> View:
        """Read the storage again (another writer moved it on); return the new view."""
        reading = self._get_storage().read()
        with self._lock:
            view = self._view
            if reading.value.generation != view.value.generation:
                view = self._set_view(reading.value, now - reading.age)
            return view

    # -- admission ----------------------------------------------------------------------------

    def _admit(self) -> Ticket | None:
        """Return a new call's ticket, or ``None`` if the call is rejected."""
        view = self._view
        state = view.value.state
        if state is CLOSED or state is METRICS_ONLY:
            return Ticket(self, view.value.generation, None, self._start())  # type: ignore[arg-type]
        if state is DISABLED:
            return Ticket(self, view.value.generation, counted=False)  # type: ignore[arg-type]
        if state is FORCED_OPEN:
            return None
        now = self._settings.clock()
        if state is OPEN and now < view.deadline:
            return None
        return self._admit_probe(now)

    def _start(self) -> float | None:
        """Return when a call starts, if anything needs its duration."""
        if self._settings.clocked or self._listeners:
            return self._settings.clock()
        return None

    def _admit_probe(self, now: float) -> Ticket | None:
        """Admit a probe if the breaker is (or is due to be) half-open with a slot free."""
        for _ in range(4):  # another writer, or probes out of time, may move it on meanwhile
            view = self._catch_up(now)
            value = view.value
            if value.state is not HALF_OPEN:
                return None if value.state in (OPEN, FORCED_OPEN) else self._admit()
            half_open = self._settings.half_open
            number = next(numbers)
            probes = self._get_storage().acquire(
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
            started = now if self._settings.clocked or self._listeners else None
            return Ticket(self, value.generation, number, started)  # type: ignore[arg-type]
        return None  # pragma: no cover - only a storage changed by others at every look

    def _catch_up(self, now: float) -> View:
        """Make the open periods that ended by ``now`` half-open; return the view after."""
        view = self._view
        while view.value.state is OPEN and now >= view.deadline:
            new = _core.half_opened(view.value, now - view.deadline)
            view = self._transition(
                view,
                new,
                now,
                "the open period is over; admitting probes",
                at=view.deadline,
            )
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
        slow = (
            outcome is not NEUTRAL
            and settings.clocked
            and (limit := settings.slow_call_duration) is not None
            and duration > limit
        )
        counters = self._get_counters()
        if outcome is SUCCESS:
            next(counters.successes)
        elif outcome is FAILURE:
            next(counters.failures)
        else:
            next(counters.neutral)
        if slow:
            next(counters.slow)
        failure = exc if outcome is FAILURE else None
        if probe is not None:
            self._release(generation, probe, outcome, slow=slow, failure=failure)
        elif outcome is not NEUTRAL:
            self._record(generation, outcome, slow=slow, duration=duration, failure=failure)
        if started is not None and now is not None and self._listeners:
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
            self._log_fault(
                "expected_exception predicate",
                f"treating the call's {type(exc).__name__} as neutral",
            )
            return False

    def _record(
        self,
        generation: int,
        outcome: Outcome,
        *,
        slow: bool,
        duration: float,
        failure: BaseException | None,
    ) -> None:
        """Count a finished call of a counting generation; trip the breaker if it must."""
        failed = outcome is FAILURE
        with self._lock:
            counts = self._get_storage().record(generation, failed, slow, duration)
            view = self._view
            if counts is None or view.value.generation != generation:
                return  # an outcome of an older generation changes nothing
            if failed:
                if failure is not None:
                    self._last_failure = failure
            else:
                self._last_failure = None  # the failure streak is over, as in 2.x
            self._update_gate(clean=counts.consecutive_failures == 0)
        if view.value.state is not CLOSED:
            return  # metrics-only records the same way, and never trips
        policy = self._settings.policy
        if policy is None:
            if not failed or counts.consecutive_failures < self._settings.failure_threshold:
                return
            failures = counts.consecutive_failures
            reason = f"{failures} consecutive failure{'' if failures == 1 else 's'}"
        elif policy.should_trip(
            counts.calls, counts.failures, counts.slow_calls, counts.consecutive_failures
        ):
            reason = "the rate policy tripped"
        else:
            return
        self._open_from(view, counts.consecutive_failures, failure, reason, counts)

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
        with self._lock:
            probes = self._get_storage().release(generation, probe, outcome, slow)
            view = self._view
            if probes is None or view.value.generation != generation:
                return  # not a probe of this half-open period (or its time had run out)
            if failure is not None:
                self._last_failure = failure
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
            completed_at = now - probes.expired[-1] if probes.expired else now
            if policy.should_trip(
                probes.finished, probes.failures, probes.slow, 0, ignore_minimum=True
            ):
                reason = EXPIRED if probes.expired else "half-open probe failure"
                self._reopen(view, value.failures + probes.failures, failure, reason, completed_at)
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
        counts: Any,
        *,
        at: float | None = None,
    ) -> None:
        """Open the breaker from ``view`` (if no other thread is already doing it)."""
        generation = view.value.generation
        rare = self._get_rare()
        with self._lock:
            if rare.opening == generation or self._view is not view:
                return  # another thread decides this opening, or the breaker moved on
            rare.opening = generation
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
        counts: Any = None,
        manual: bool = False,
        quiet: bool = False,
        forget: bool = False,
    ) -> View:
        """Store ``new`` if the breaker is still at ``view``; announce it; return the view.

        Closing by hand, or by a success (``forget``), clears the last failure.
        """
        at = now if at is None else min(at, now)
        old = view.value
        with self._lock:
            if self._view is not view or not self._get_storage().replace(old.generation, new):
                stale = True
            else:
                stale = False
                counters = self._get_counters()
                counters.changed(old.state, new.state, at)
                if counts is not None and counts.calls:
                    counters.last_rates = (counts.failure_rate, counts.slow_call_rate)
                if new.state is CLOSED and (manual or forget):
                    self._last_failure = None
                view = self._set_view(new, now, since=at)
        if stale:
            return self._refresh(now)
        if not quiet:
            self._announce(old, view, reason, now, manual=manual)
        return view

    # -- rejections and reports ---------------------------------------------------------------

    def _count_rejection(self) -> None:
        """Count a rejected call, and tell the listeners."""
        next(self._get_counters().rejected)
        if self._listeners:
            view = self._view
            deliver(self._listeners, CallRejected(self, self._settings.clock(), view.value.state))  # type: ignore[arg-type]

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
        deliver(self._listeners, event)

    def _read(self) -> tuple[Reading, View]:
        """Return the storage's reading and the view, taken together."""
        with self._lock:
            return self._get_storage().read(), self._view


# -- the primitive as the wrappers use it (functions of this module: the engine's own state) --


def admit(breaker: Engine) -> Ticket | None:
    """Return a call's ticket, or ``None`` (counted and reported) if it is rejected."""
    ticket = breaker._admit()
    if ticket is None:
        breaker._count_rejection()
    return ticket


def count_rejection(breaker: Engine) -> None:
    """Count a call turned away before admission (an overridden ``opened`` said so)."""
    breaker._count_rejection()


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


def fast_failure(breaker: Engine, gate: Gate, exc: BaseException) -> None:
    """Report an exception raised by a call admitted through the gate."""
    breaker._finish(gate.generation, None, None, exc)


def late_success(breaker: Engine, gate: Gate) -> None:
    """Record a success through the gate (already counted) that the gate closed behind."""
    breaker._record(gate.generation, SUCCESS, slow=False, duration=0.0, failure=None)


def refresh_listeners(breaker: Engine) -> None:
    """Recompute which listeners want ``breaker``'s call events (the global ones changed)."""
    breaker._refresh_listeners()


def describe(breaker: Engine) -> tuple[str | None, int, float, BaseException | None]:
    """Return what a rejection reports: name, failure count, seconds left, last failure.

    Read from the view for a breaker that rejects (no storage read on that path); a breaker
    that admits calls (an error raised by hand) reports its current count and 0.0.
    """
    view = breaker._view
    value = view.value
    name, last = breaker._name, breaker._last_failure
    if value.state is OPEN or value.state is FORCED_OPEN or value.state is HALF_OPEN:
        return name, value.failures, view.deadline - breaker._settings.clock(), last
    return name, breaker.failure_count, 0.0, last  # type: ignore[attr-defined]


def rebase(breaker: Engine, clock: Callable[[], float]) -> Callable[[], float]:
    """Give ``breaker`` a new clock, keeping what it measured so far; return the old one.

    Raises:
        TypeError: the breaker keeps its state outside this process.
    """
    storage = breaker._get_storage()
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
        breaker._view = View(view.value, view.deadline + shift, view.since + shift)
        with contextlib.suppress(AttributeError):  # no counters yet: nothing measured
            breaker._counters.changed_at += shift
    return old
