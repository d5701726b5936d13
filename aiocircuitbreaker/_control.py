"""Changes by hand, listener registration, and reads of a breaker as of now.

Reads (``state``, ``failure_count``, ``open_remaining``, ``statistics()``) change nothing: lazy
transitions that are due (an open period over, a probe out of time) are reported as having
happened when they became due, and made by the next call or change as usual.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, NamedTuple

from . import _core
from ._admission import Admission
from ._core import CLOSED, COUNTING, HALF_OPEN, MODES, OPEN, Outcome, State, Value
from ._events import Event, Listener, same_listener, subscription
from ._parts import View
from ._statistics import Statistics, add_transition

if TYPE_CHECKING:
    from ._storage import Probes, Reading

__all__ = ["AsOf", "Control", "Saved", "hold", "release"]

Make = Callable[[View, float], Value]


@dataclass(frozen=True, slots=True)
class AsOf:
    """A breaker as of one moment, with the lazy transitions due by then applied."""

    state: State
    generation: int
    failures: int
    deadline: float
    since: float
    steps: tuple[tuple[State, State, float], ...]  # due transitions not made yet, and when
    reading: Reading


class Saved(NamedTuple):
    """A breaker's state as ``testing.force_state()`` found it."""

    value: Value
    failures: int
    deadline: float
    last_failure: BaseException | None


class Control(Admission):
    """Changes by hand, listeners and reads (a base class of ``CircuitBreaker``)."""

    __slots__ = ()

    # -- changes by hand ----------------------------------------------------------------------

    def _change(self, make: Make, reason: str, *, quiet: bool = False, held: bool = False) -> View:
        """Apply a change by hand (after the lazy transitions due now); return the view.

        Inside ``testing.passthrough()`` a change by hand does nothing (``held`` is the
        helpers' own changes).
        """
        live = self._live
        if not held and live is not None and any(pin for _, _, pin in live.saved):
            return self._view
        now = self._settings.clock()
        while True:
            view = self._settle(now)
            new = make(view, now)
            after = self._transition(view, new, now, reason, manual=True, quiet=quiet)
            if after.value is new:
                return after

    def _settle(self, now: float) -> View:
        """Make every lazy transition due by ``now`` (probes out of time included)."""
        view = self._catch_up(now)
        value = view.value
        if value.state is HALF_OPEN and self._settings.half_open.max_duration is not None:
            probes = self._get_live().storage.release(value.generation, 0, Outcome.NEUTRAL)
            if probes is not None and probes.expired:
                self._judge_probes(view, probes, now, None)
                view = self._catch_up(now)
        return self._view

    def _open_by_hand(self, view: View, now: float) -> Value:
        seconds = self._ask_open_duration(view.value, None)
        return _core.opened(view.value, self._current_failures(view), seconds)

    def _current_failures(self, view: View) -> int:
        if view.value.state in COUNTING:
            counts = self._get_live().storage.read().counts
            return 0 if counts is None else counts[3]
        return view.value.failures

    def _enter(self, mode: State) -> Make:
        def make(view: View, now: float) -> Value:
            return _core.entered(view.value, mode, self._current_failures(view))

        return make

    # -- listeners ----------------------------------------------------------------------------

    def add_listener(self, listener: Listener, *event_types: type[Event]) -> None:
        """Call ``listener(event)`` for this breaker's events (of ``event_types``, or all).

        ``listener`` may be sync or async (an async one is scheduled as a task, never awaited
        by the call); what it raises is logged and ignored. Adding the same listener again
        replaces its event types.

        Raises:
            TypeError: ``listener`` is not callable, or an event type is not an Event class.
        """
        added = subscription(listener, event_types)
        live = self._get_live()
        with self._lock:
            kept = (s for s in live.subscriptions if not same_listener(s.listener, listener))
            live.subscriptions = (*kept, added)
        self._refresh_listeners()

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener``.

        Raises:
            ValueError: ``listener`` was not added to this breaker.
        """
        live = self._get_live()
        with self._lock:
            kept = tuple(s for s in live.subscriptions if not same_listener(s.listener, listener))
            found = len(kept) != len(live.subscriptions)
            live.subscriptions = kept
        if not found:
            msg = f"{listener!r} is not a listener of circuit breaker {self._name!r}"
            raise ValueError(msg)
        self._refresh_listeners()

    # -- reads --------------------------------------------------------------------------------

    def _as_of(self, now: float) -> AsOf:
        """Return the breaker as of ``now``, the lazy transitions due by then applied."""
        reading, view = self._read()  # (the view is of the reading's generation)
        value = reading.value
        as_of = AsOf(
            value.state, value.generation, value.failures, view.deadline, view.since, (), reading
        )
        if value.state in COUNTING and reading.counts is not None:
            as_of = _with(as_of, failures=reading.counts[3])
        elif value.state is HALF_OPEN and reading.leases and reading.leases[0] <= 0:
            as_of = self._expired_as_of(as_of, now)
        if as_of.state is OPEN and now >= as_of.deadline:
            as_of = _step(as_of, HALF_OPEN, as_of.deadline, failures=as_of.failures)
        return as_of

    def _expired_as_of(self, as_of: AsOf, now: float) -> AsOf:
        """Apply the probes that ran out of time by ``now`` (they failed then)."""
        reading = as_of.reading
        ran_out = tuple(-left for left in reading.leases if left <= 0)  # ages, oldest first
        value = reading.value
        probes = reading.probes
        assert probes is not None  # a half-open reading has its probes
        verdict = self._verdict(value, _expiring(probes, ran_out), now)
        if verdict is None:
            return as_of
        if verdict.state is CLOSED:
            return _step(as_of, CLOSED, verdict.at, failures=0)
        seconds = self._ask_open_duration(value, None)
        deadline = verdict.at + seconds
        return _step(as_of, OPEN, verdict.at, failures=verdict.failures, deadline=deadline)

    def statistics(self) -> Statistics:
        """Return what the breaker looks like now, and what it has counted, as one value.

        A read, safe from any thread (a metrics exporter's, say): it changes nothing. Lazy
        transitions that are due (an open period over, a probe out of time) are reported as
        having happened when they became due, and made by the next call as usual.
        """
        now = self._settings.clock()
        counters = self._get_live()
        as_of = self._as_of(now)
        with self._lock:
            total = counters.totals()
            base, changed_at = counters.base, counters.changed_at
            openings, transitions = counters.openings, counters.transitions
            last_rates = counters.last_rates
            last_failure = self._last_failure
        for old, new, at in as_of.steps:
            transitions = add_transition(transitions, old, new)
            openings += new is OPEN
            changed_at = at
            base = total  # nothing has finished in a period that no call has seen yet
        counts = as_of.reading.counts
        if as_of.state in COUNTING and not as_of.steps and counts is not None and counts[0]:
            rates: tuple[float | None, float | None] = (
                counts[1] / counts[0],
                counts[2] / counts[0],
            )
        else:
            rates = last_rates
        group, key = self._membership or (None, None)
        return Statistics(
            name=self._name,
            state=as_of.state,
            generation=as_of.generation,
            since_change=total - base,
            total=total,
            failure_count=as_of.failures,
            failure_rate=rates[0],
            slow_call_rate=rates[1],
            time_in_state=max(0.0, now - changed_at),
            openings=openings,
            open_remaining=_remaining(as_of, now),
            last_failure=last_failure,
            transitions=transitions,
            storage=_storage_statistics(counters.storage),
            group=group,
            key=key,
        )

    # -- for the testing helpers --------------------------------------------------------------

    def _hold(self, target: State, token: object, *, pin: bool) -> None:
        """Save the state, then put the breaker in ``target`` (``testing.force_state()``).

        ``pin`` (``testing.passthrough()``): changes by hand do nothing until released.
        """
        live = self._get_live()
        saved: list[Saved] = []

        def make(view: View, now: float) -> Value:
            saved.append(
                Saved(view.value, self._current_failures(view), view.deadline, self._last_failure)
            )
            value = view.value
            failures = saved[-1].failures
            if target in MODES:
                return _core.entered(value, target, failures)
            if target is OPEN:  # open with no end: the block decides when it ends
                return Value(OPEN, value.generation + 1, failures, value.openings, math.inf)
            if target is HALF_OPEN:
                return Value(HALF_OPEN, value.generation + 1, failures, value.openings, 0.0)
            return _core.closed(value)

        self._change(make, f"testing.force_state({target.value!r})", quiet=pin, held=True)
        with self._lock:
            live.saved = (*live.saved, (token, saved[-1], pin))

    def _release_hold(self, token: object, target: State) -> None:
        """Give back the state saved by :meth:`_hold` under ``token``."""
        live = self._get_live()
        with self._lock:
            (entry,) = [entry for entry in live.saved if entry[0] is token]
            live.saved = tuple(other for other in live.saved if other is not entry)
        _, saved, pin = entry

        def make(view: View, now: float) -> Value:
            # A new generation: calls made inside the block, probes included, do not count.
            value = replace(saved.value, failures=saved.failures)
            return _core.restored(value, view.value, saved.deadline - now)

        self._change(
            make, f"the end of testing.force_state({target.value!r})", quiet=pin, held=True
        )
        with self._lock:
            self._last_failure = saved.last_failure


def _expiring(probes: Probes, ran_out: tuple[float, ...]) -> Probes:
    """Return ``probes`` with the leases that ran out ``ran_out`` seconds ago as failures."""
    n = len(ran_out)
    return replace(
        probes,
        running=probes.running - n,
        failures=probes.failures + n,
        run=probes.run + n,
        expired=tuple(sorted(ran_out, reverse=True)),
    )


def _with(as_of: AsOf, **changes: Any) -> AsOf:
    fields = {name: getattr(as_of, name) for name in AsOf.__slots__}
    fields.update(changes)
    return AsOf(**fields)


def _step(
    as_of: AsOf, state: State, at: float, *, failures: int, deadline: float | None = None
) -> AsOf:
    return _with(
        as_of,
        state=state,
        generation=as_of.generation + 1,
        failures=failures,
        deadline=as_of.deadline if deadline is None else deadline,
        since=at,
        steps=(*as_of.steps, (as_of.state, state, at)),
    )


def _remaining(as_of: AsOf, now: float) -> float:
    if as_of.state in COUNTING or as_of.state is State.DISABLED:
        return 0.0
    return as_of.deadline - now


def hold(breaker: Control, target: State, token: object, *, pin: bool) -> None:
    """Put ``breaker`` in ``target`` for a testing helper, saving what it had."""
    breaker._hold(target, token, pin=pin)


def release(breaker: Control, token: object, target: State) -> None:
    """Give ``breaker`` back what :func:`hold` saved under ``token``."""
    breaker._release_hold(token, target)


def _storage_statistics(storage: object) -> object | None:
    """Return what a storage reports of itself (``statistics()``, if it has one; no I/O)."""
    report = getattr(storage, "statistics", None)
    return None if report is None else report()
