"""The engine of a breaker: its view of the state, transitions, and closed-state outcomes.

A breaker's state lives in its storage (``_storage.py``); the engine keeps a local
:class:`~aiocircuitbreaker._parts.View` of it, times on the breaker's clock, and changes it
only by a compare-and-set on the storage (:meth:`Engine._transition`). The half-open probes are
``_probing.py``'s, the admit/finish primitive ``_admission.py``'s.

Locking: each breaker has a lock (one of a small striped pool, so a breaker costs no lock
object), shared with its in-memory storage. Transitions, and the few updates that must agree
with the storage's counts, happen under it; a failure of the default breaker needs none (the
storage counts it in one atomic step). User callables (predicates, trip rules, the open
duration, listeners, logging) run before or after, never while the lock is held.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from . import _core
from ._core import CLOSED, FORCED_OPEN, OPEN, Outcome, Value
from ._events import CallFailed, CallNeutral, CallSucceeded, Event, deliver
from ._memory import InMemoryStorage
from ._parts import INITIAL_VIEW, Barrier, Gate, Live, View, failure_counter
from ._reporting import Announcer, asking
from ._storage import Reading, Storage

if TYPE_CHECKING:
    from ._events import Subscription
    from ._settings import Settings
    from ._storage import Tally as Counts

__all__ = ["Engine", "join_group", "rebase", "refresh_listeners"]

SUCCESS, FAILURE = Outcome.SUCCESS, Outcome.FAILURE
_STRIPES = tuple(threading.RLock() for _ in range(64))


class Engine(Announcer):
    """The internals of :class:`~aiocircuitbreaker.CircuitBreaker` (see the module docstring)."""

    __slots__ = (
        "__dict__",
        "__weakref__",
        "_barrier",
        "_fast",
        "_live",
        "_lock",
        "_membership",
        "_name",
        "_settings",
        "_view",
    )

    _settings: Settings
    _name: str | None
    _fast: Gate | None  # the fast path's gate (see _admission); None: every call is general
    _barrier: Barrier | None  # the rejections' shortcut while open (see _admission)
    _view: View
    _live: Live | None
    _membership: tuple[str | None, str] | None  # (group name, key) of a group's breaker

    def _start_engine(self, settings: Settings, storage: Storage | None) -> None:
        self._settings = settings
        self._lock = _STRIPES[id(self) >> 4 & 63]
        self._view = INITIAL_VIEW
        self._fast = None  # opened with the first use (see _get_live)
        self._barrier = None
        self._live = None
        self._membership = None
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
            own = storage is None
            if storage is None:
                policy = settings.policy
                storage = InMemoryStorage(
                    clock=settings.clock,
                    window=None if policy is None else policy.window,
                    lock=self._lock,
                )
            now = settings.clock()
            live = self._live = Live(now, storage, own=own)
            reading = storage.read()
            self._set_view(reading.value, now - reading.age, counts=reading.counts)
        watch = getattr(storage, "watch", None)
        if watch is not None:  # a shared storage tells of changes made elsewhere
            watch(_watcher(self))
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
            if failure is not None:
                gate.dirty = True  # the next success must reach the engine, to clear it

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
        live = self._live
        old = self._view.gate
        if live is not None and old is not None and old.last is not None:
            live.last_failure = old.last  # the gate retires: the breaker keeps its last failure
        gate = None if live is None else self._gate_for(value, live, counts)
        view = self._view = View(
            value, stored_at + value.open_for, stored_at if since is None else since, gate
        )
        self._fast = None if live is None or live.listeners else gate
        self._barrier = self._barrier_for(view, live)
        return view

    def _barrier_for(self, view: View, live: Live | None) -> Barrier | None:
        """Return the rejections' barrier for ``view``, if it can have one."""
        state = view.value.state
        if live is None or live.listeners or (state is not OPEN and state is not FORCED_OPEN):
            return None
        return Barrier(view, live, self._settings)

    def _gate_for(self, value: Value, live: Live, counts: Counts | None) -> Gate | None:
        """Return the fast path's gate for ``value``, if it can have one."""
        settings = self._settings
        if value.state is not CLOSED or not settings.gated:
            return None
        pending = value.failures if counts is None else counts[3]
        counter = failure_counter(live.storage, value.generation)
        # Under a policy every outcome feeds the window: the gate stays dirty for good.
        dirty = pending > 0 or settings.policy is not None
        return Gate(value.generation, live, settings, counter, dirty=dirty)

    def _refresh_listeners(self) -> None:
        """Recompute which listeners want call events after one was added or removed."""
        live = self._get_live()
        with self._lock:
            live.listeners = tuple(s for s in self._subscriptions() if s.wants_calls)
            view = self._view
            self._fast = None if live.listeners else view.gate
            self._barrier = self._barrier_for(view, live)

    def _refresh(self, now: float) -> View:
        """Read the storage again (another writer moved it on); return the new view."""
        reading = self._get_live().storage.read()
        with self._lock:
            view = self._view
            if reading.value.generation != view.value.generation:
                view = self._set_view(reading.value, now - reading.age, counts=reading.counts)
            return view

    # -- transitions --------------------------------------------------------------------------

    def _ask_open_duration(self, value: Value, failure: BaseException | None) -> float:
        """Return how long the opening after ``value`` lasts; ask ``open_duration`` once.

        The answer is kept with ``value``'s generation, so that a read of a due reopening (a
        probe out of time) and the call that makes it agree, jitter or not.
        """
        settings = self._settings
        spec = settings.open_duration
        if spec is None:
            return settings.recovery_timeout
        live = self._get_live()
        pending = live.pending
        if pending is not None and pending[0] == value.generation:
            return pending[1]
        keys: set[tuple[int, int]] = asking.__dict__.setdefault("keys", set())
        key = (id(self), value.generation)
        if key in keys:
            return settings.recovery_timeout  # a read from inside open_duration itself
        keys.add(key)
        try:
            seconds = self._checked_duration(spec, value.openings + 1, failure)
        finally:
            keys.discard(key)
        with self._lock:
            pending = live.pending
            if pending is None or pending[0] != value.generation:
                pending = live.pending = (value.generation, seconds)
            return pending[1]  # (another thread may have asked at the same time: one answer)

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
        after = self._store(view, new, now, at, counts, forget=manual or forget)
        if after is None:
            return self._refresh(now)
        if not quiet:
            self._announce(old, after, reason, now, self._last_failure, manual=manual)
        return after

    def _store(
        self,
        view: View,
        new: Value,
        now: float,
        at: float,
        counts: Counts | None,
        *,
        forget: bool,
    ) -> View | None:
        """Replace ``view``'s value by ``new`` in the storage; return the new view, or ``None``."""
        live = self._get_live()
        with self._lock:
            if self._view is not view or not live.storage.replace(view.value.generation, new):
                return None
            live.changed(view.value.state, new.state, at)
            if counts is not None and counts[0]:
                live.last_rates = (counts[1] / counts[0], counts[2] / counts[0])
            after = self._set_view(new, now, since=at)
            if new.state is CLOSED and forget:
                live.last_failure = None
            return after

    # -- outcomes of a counting generation ----------------------------------------------------

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
        view = self._view
        if counts is None or view.value.generation != generation:
            self._stale(generation)
            return  # an outcome of an older generation changes nothing
        gate = view.gate
        if gate is not None:
            gate.dirty = True
        if failure is not None:
            self._last_failure = failure
        if view.value.state is not CLOSED:
            return  # metrics-only records the same way, and never trips
        if self._settings.policy is not None:
            self._policy_trip(view, counts, failure)
        else:
            self._streak_trip(view, counts[3], failure)

    def _stale(self, generation: int) -> None:
        """An outcome of ``generation`` was stale: if the view is of it, the storage moved on."""
        if self._view.value.generation == generation:
            self._refresh(self._settings.clock())

    def _streak_trip(self, view: View, streak: int, failure: BaseException | None) -> None:
        """Open the breaker if a failure streak of ``streak`` reached the threshold."""
        if streak >= self._settings.failure_threshold:
            reason = f"{streak} consecutive failure{'' if streak == 1 else 's'}"
            self._open_from(view, streak, failure, reason, (0, 0, 0, streak))

    def _record_success(self, generation: int, slow: bool, duration: float) -> None:  # noqa: FBT001
        """Count a success of a counting generation (it ends the failure streak)."""
        view = self._view
        gate = view.gate
        if gate is not None and not gate.dirty and gate.generation == generation:
            return  # closed with no streak pending, and no window: nothing to record
        live = self._get_live()
        if self._settings.policy is not None:
            self._window_success(live, generation, slow, duration)
            return
        with self._lock:
            counts = live.storage.record(generation, False, slow, duration)  # noqa: FBT003
            view = self._view
            if counts is None or view.value.generation != generation:
                self._stale(generation)
                return
            live.last_failure = None  # the failure streak is over, as in 2.x
            gate = view.gate
            if gate is not None:
                gate.counter = failure_counter(live.storage, generation)  # a new streak
                gate.dirty = counts[3] > 0
                gate.last = None

    def _window_success(self, live: Live, generation: int, slow: bool, duration: float) -> None:  # noqa: FBT001
        """Record a success in the rate window (the storage's lock is enough: no gate to keep)."""
        counts = live.storage.record(generation, False, slow, duration)  # noqa: FBT003
        view = self._view
        if counts is None or view.value.generation != generation:
            self._stale(generation)
            return
        live.last_failure = None  # the failure streak is over, as in 2.x
        if view.value.state is not CLOSED:
            return
        self._policy_trip(view, counts, None)
        gate = view.gate
        if gate is not None and gate.pending is None:
            self._settle_successes(live, gate, counts)

    def _settle_successes(self, live: Live, gate: Gate, counts: Counts) -> None:
        """Let the gate count successes lock-free once a count window holds minimum_calls.

        A success never raises a failure or slow-call rate, and a count window never holds
        fewer calls later in its generation: from then on successes decide nothing.
        """
        policy = self._settings.policy
        assert policy is not None
        if counts[0] >= policy.required_calls:
            counter = getattr(live.storage, "success_counter", None)
            if counter is not None:
                gate.pending = counter(gate.generation)

    def _policy_trip(self, view: View, counts: Counts, failure: BaseException | None) -> None:
        """Open the breaker if its rate policy says ``counts`` trip it."""
        policy = self._settings.policy
        assert policy is not None
        if policy.should_trip(*counts):
            reason = "the rate policy tripped"
            self._open_from(view, counts[3], failure, reason, counts)

    # -- reports ------------------------------------------------------------------------------

    def _report(
        self, live: Live, outcome: Outcome, now: float, duration: float, exc: BaseException | None
    ) -> None:
        """Tell the call listeners how a call ended."""
        event: Event
        if outcome is SUCCESS:
            event = CallSucceeded(self, now, duration)  # type: ignore[arg-type]
        elif outcome is FAILURE:
            event = CallFailed(self, now, duration, exc)  # type: ignore[arg-type]
        else:
            event = CallNeutral(self, now, duration, exc)  # type: ignore[arg-type]
        deliver(live.listeners, event)

    def _read(self) -> tuple[Reading, View]:
        """Return the storage's reading and the view, taken together.

        A storage shared with other writers may have moved on: the view is brought up to date
        (silently: what another writer did was announced where it was done).
        """
        live = self._get_live()
        with self._lock:
            reading = live.storage.read()
            view = self._view
            if reading.value.generation != view.value.generation:
                now = self._settings.clock()
                view = self._set_view(reading.value, now - reading.age, counts=reading.counts)
            return reading, view


def _watcher(breaker: Engine) -> Callable[[], bool]:
    """Return the hook a shared storage calls when another writer may have moved it on.

    It reads the storage again, which brings the view, and with it the fast path's gate and
    the rejections' barrier, up to date. It answers whether the breaker still exists (it holds
    it weakly: a storage may drop a hook that answers false).
    """
    ref = weakref.ref(breaker)

    def changed() -> bool:
        engine = ref()
        if engine is None:
            return False
        engine._refresh(engine._settings.clock())
        return True

    return changed


def join_group(breaker: Engine, group: str | None, key: str) -> None:
    """Make ``breaker`` the breaker of ``key`` in the group called ``group``."""
    breaker._membership = (group, key)


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
        view = replace(view, deadline=view.deadline + shift, since=view.since + shift)
        breaker._view = view
        breaker._barrier = breaker._barrier_for(view, live)
        live.changed_at += shift
    return old
