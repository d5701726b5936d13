"""What a breaker says about itself: state changes, faults of user callables, open durations.

The open duration is a user callable too: it is asked outside any lock, once per opening.
"""

from __future__ import annotations

import logging
import math
import threading
from numbers import Real
from typing import TYPE_CHECKING, Any

from ._core import CLOSED, DISABLED, FORCED_OPEN, HALF_OPEN, OPEN, State, Value
from ._events import StateChanged, deliver
from ._registry import global_subscriptions

if TYPE_CHECKING:
    from ._events import Subscription
    from ._settings import Settings

__all__ = ["Announcer", "asking", "logger"]

logger = logging.getLogger("aiocircuitbreaker")
# A library's logger gets a NullHandler, so that an application that configured no logging is
# not sent our WARNINGs through logging's last-resort handler on stderr.
logger.addHandler(logging.NullHandler())

# The (breaker, generation) pairs whose open duration this thread is asking right now: a read
# of the same breaker from inside open_duration must not ask it again (it would recurse).
asking = threading.local()

_LEVELS = {
    CLOSED: (logging.INFO, "circuit breaker %r closed: %s"),
    HALF_OPEN: (logging.INFO, "circuit breaker %r half-open: %s"),
    FORCED_OPEN: (
        logging.WARNING,
        "circuit breaker %r forced open: %s; rejecting calls until closed",
    ),
    DISABLED: (logging.WARNING, "circuit breaker %r disabled: %s; calls pass through unguarded"),
    State.METRICS_ONLY: (
        logging.INFO,
        "circuit breaker %r metrics-only: %s; recording calls, never tripping",
    ),
}


class Announcer:
    """The reporting half of a breaker's engine (a base class of ``Engine``)."""

    __slots__ = ()

    _settings: Settings
    _name: str | None
    _lock: threading.RLock

    def _own_subscriptions(self) -> tuple[Subscription, ...]:
        raise NotImplementedError  # pragma: no cover - Engine defines it

    def _subscriptions(self) -> tuple[Subscription, ...]:
        """Return this breaker's own subscriptions followed by the global ones."""
        return (*self._own_subscriptions(), *global_subscriptions(calls_only=False))

    def _announce(
        self,
        old: Value,
        view: Any,
        reason: str,
        now: float,
        last: BaseException | None,
        *,
        manual: bool = False,
    ) -> None:
        """Log a state change and tell the listeners (outside the lock).

        ``last`` is the breaker's last failure, reported with an opening.
        """
        new = view.value
        if new.state is old.state:
            if new.state is OPEN:  # open() of an open breaker: a new open period, same state
                logger.warning(
                    "circuit breaker %r opened again: %s; rejecting calls for %.3f s",
                    self._name,
                    reason,
                    view.deadline - now,
                )
            return
        if new.state is OPEN:
            logger.warning(
                "circuit breaker %r opened: %s; rejecting calls for %.3f s (last failure: %r)",
                self._name,
                reason,
                view.deadline - now,
                last,
            )
        else:
            level, message = _LEVELS[new.state]
            logger.log(level, message, self._name, reason)
        subscriptions = self._subscriptions()
        if subscriptions:
            exception = last if new.state is OPEN and not manual else None
            event = StateChanged(self, now, old.state, new.state, reason, exception)  # type: ignore[arg-type]
            deliver(subscriptions, event)

    def _log_fault(self, what: str, consequence: str) -> None:
        """Log that a user callable raised (call from inside the ``except`` block)."""
        logger.exception("%s of circuit breaker %r raised; %s", what, self._name, consequence)

    def _checked_duration(self, spec: Any, openings: int, failure: BaseException | None) -> float:
        """Call ``open_duration``; a fault or a bad answer falls back to recovery_timeout."""
        fallback = self._settings.recovery_timeout
        try:
            answer = spec(openings, failure)
        except Exception:  # noqa: BLE001 - logged by _log_fault; recovery_timeout is used
            self._log_fault("open_duration", "opening for recovery_timeout")
            return fallback
        if (
            isinstance(answer, bool)
            or not isinstance(answer, Real)
            or not (math.isfinite(float(answer)) and float(answer) > 0)
        ):
            logger.error(
                "open_duration of circuit breaker %r returned %r; opening for recovery_timeout",
                self._name,
                answer,
            )
            return fallback
        return float(answer)
