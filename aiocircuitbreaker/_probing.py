"""Half-open: the end of an open period, probe slots, and what the probes' outcomes decide.

An open breaker runs no timer: the first call after its open period makes it half-open
(:meth:`Probing._catch_up`). A probe takes a slot in the storage (``acquire``, one atomic
step, so that one probe runs among any number of tasks, threads or processes) and gives it
back with its outcome (``release``); the counts the storage answers decide whether the breaker
closes or opens again. A slot whose lease (``HalfOpen.max_duration``) ran out counts as a
failed probe, as of the moment it ran out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import _core
from ._core import CLOSED, HALF_OPEN, OPEN, Outcome, State
from ._engine import Engine
from ._ticket import Ticket, numbers

if TYPE_CHECKING:
    from ._core import Value
    from ._parts import View
    from ._storage import Probes

__all__ = ["EXPIRED", "Probing", "Verdict"]

EXPIRED = "a probe ran out of time (HalfOpen.max_duration)"
FAILED = "half-open probe failure"
SUCCEEDED = "half-open probe success"


class Probing(Engine):
    """The half-open part of the engine (a base class of ``CircuitBreaker``)."""

    __slots__ = ()

    def _start(self) -> float | None:
        """Return when a call starts, if anything needs its duration."""
        settings, live = self._settings, self._live
        if settings.clocked or (live is not None and live.listeners):
            return settings.clock()
        return None

    def _catch_up(self, now: float) -> View:
        """Make the open periods that ended by ``now`` half-open; return the view after."""
        view = self._view
        while view.value.state is OPEN and now >= view.deadline:
            new = _core.half_opened(view.value, now - view.deadline)
            reason = "the open period is over; admitting probes"
            view = self._transition(view, new, now, reason, at=view.deadline)
        return view

    def _admit_probe(self, now: float) -> Ticket | None:
        """Admit a probe if the breaker is (or is due to be) half-open with a slot free."""
        for _ in range(4):  # another writer, or probes out of time, may move it on meanwhile
            view = self._catch_up(now)
            state = view.value.state
            if state is not HALF_OPEN:
                return self._admit_changed(view)
            number = next(numbers)
            probes = self._acquire(view, number)
            if probes is None:
                self._refresh(now)
                continue
            if probes.expired:
                self._judge_probes(view, probes, now, None)
            if probes.admitted:
                started = now if self._settings.clocked or self._listeners() else None
                return Ticket(self, view.value.generation, number, started)  # type: ignore[arg-type]
            if not probes.expired:
                return None
            # Probes out of time may have reopened it, for a period that is already over.
        return None  # pragma: no cover - only a storage changed by others at every look

    def _acquire(self, view: View, number: int) -> Probes | None:
        half_open = self._settings.half_open
        return self._get_live().storage.acquire(
            view.value.generation,
            number,
            half_open.probes,
            None if half_open.judge_by_rate else half_open.successes,
            half_open.max_duration or float("inf"),
        )

    def _admit_changed(self, view: View) -> Ticket | None:
        """Admit a call that found the breaker changed meanwhile (not half-open any more)."""
        state = view.value.state
        if state is OPEN or state is _core.FORCED_OPEN:
            return None
        return self._ticket(view)

    def _ticket(self, view: View) -> Ticket:
        raise NotImplementedError  # pragma: no cover - Admission defines it

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
        verdict = self._verdict(view.value, probes, now)
        if verdict is None:
            return
        if verdict.state is OPEN:
            failure = None if verdict.expired else failure
            self._open_from(view, verdict.failures, failure, verdict.reason, None, at=verdict.at)
        else:
            closing = _core.closed(view.value)
            forget = not (verdict.expired or failure)  # a success decided it
            self._transition(view, closing, now, verdict.reason, at=verdict.at, forget=forget)

    def _verdict(self, value: Value, probes: Probes, now: float) -> Verdict | None:
        """Return what the probes of the half-open ``value`` decide, if anything yet.

        ``probes.expired`` lists the probes that just ran out of time (failed probes, as of
        then); the real path and the reads of a due reopening both ask this.
        """
        if self._settings.half_open.judge_by_rate:
            return self._verdict_by_rate(value, probes, now)
        expired = probes.expired
        if probes.failures:  # any failure re-opens; the first to run out failed first
            if expired:
                return Verdict(OPEN, value.failures + 1, now - expired[0], EXPIRED, expired=True)
            return Verdict(OPEN, value.failures + 1, now, FAILED)
        if probes.successes >= self._settings.half_open.successes:
            return Verdict(CLOSED, 0, now, SUCCEEDED)
        return None

    def _verdict_by_rate(self, value: Value, probes: Probes, now: float) -> Verdict | None:
        """Once all the probes are in, let the rate policy decide over them."""
        if probes.finished < self._settings.half_open.probes:
            return None
        policy = self._settings.policy
        assert policy is not None  # judge_by_rate is refused without a policy
        expired = bool(probes.expired)
        # The probe that completed the set decides, as of when it came in.
        at = now - probes.expired[-1] if expired else now
        # The failure streak runs on from the trip while no probe has succeeded.
        run = probes.run + (value.failures if not probes.successes else 0)
        finished, failures = probes.finished, probes.failures
        if policy.should_trip(finished, failures, probes.slow, run, ignore_minimum=True):
            reason = EXPIRED if expired else FAILED
            return Verdict(OPEN, value.failures + failures, at, reason, expired=expired)
        return Verdict(CLOSED, 0, at, SUCCEEDED, expired=expired)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a half-open breaker's probes decided.

    Attributes:
        state: What the breaker becomes: ``OPEN`` again, or ``CLOSED``.
        failures: The failure count of the opening.
        at: When it was decided (the moment a probe ran out of time, if one decided it).
        reason: Why, in words.
        expired: A probe that ran out of time decided it.
    """

    state: State
    failures: int
    at: float
    reason: str
    expired: bool = False
