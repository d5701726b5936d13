"""Retries that know about the breaker: tenacity strategies and a stamina backoff hook.

Install with ``pip install "aiocircuitbreaker[tenacity]"`` or ``"aiocircuitbreaker[stamina]"``.

The order this module is made for puts the breaker inside the retry loop: every attempt is
one call of the breaker, so it records one outcome per attempt, and a retry never hides a
failure from it. Around that loop:

* a rejection (:class:`~aiocircuitbreaker.CircuitBreakerError`, including the httpx, aiohttp
  and requests rejections) is never retried: the next attempt would be rejected too, so the
  error reaches the caller at once;
* after a failure that left the breaker open, the wait lasts until the breaker's probe is due
  (at most ``maximum`` seconds), so that the next attempt is the probe rather than a rejection.

``breaker=`` is the breaker the attempts go through, or a function of the attempt's exception
returning it (or ``None``), for a group where each request has a breaker of its own.
"""

from __future__ import annotations

from collections.abc import Callable

import tenacity
from tenacity.wait import wait_base

from ._breaker import CircuitBreaker
from ._core import State
from ._http import check_seconds, rejection_of

__all__ = [
    "BreakerLookup",
    "is_rejection",
    "probe_wait",
    "retry_unless_rejected",
    "stamina_on",
    "wait_for_probe",
]

BreakerLookup = Callable[[BaseException], "CircuitBreaker | None"]
DEFAULT_MAXIMUM = 60.0


def is_rejection(exception: BaseException) -> bool:
    """Return whether ``exception`` is a breaker's rejection (a call that was not made).

    That is a :class:`~aiocircuitbreaker.CircuitBreakerError`, or an error carrying one as
    ``rejection`` (the requests integration's ``CircuitOpenError``).
    """
    return rejection_of(exception) is not None


def probe_wait(
    breaker: CircuitBreaker | BreakerLookup, exception: BaseException, maximum: float
) -> float:
    """Return the seconds until the probe of ``exception``'s breaker is due, up to ``maximum``.

    0.0 when that breaker is not open (closed, half-open, forced open, or not found).
    """
    found = breaker if isinstance(breaker, CircuitBreaker) else breaker(exception)
    if found is None or found.state is not State.OPEN:
        return 0.0
    return min(max(found.open_remaining, 0.0), maximum)


def _check_breaker(breaker: object) -> None:
    if not isinstance(breaker, CircuitBreaker) and not callable(breaker):
        msg = (
            "breaker must be a CircuitBreaker or a function of the exception returning one "
            f"(or None), got {breaker!r}"
        )
        raise TypeError(msg)


class retry_unless_rejected(tenacity.retry_base):  # noqa: N801 - tenacity's naming
    """A tenacity ``retry=`` strategy: never retry a rejection, else ask ``retry``.

    Args:
        retry: The strategy for everything else (default: retry on any exception,
            ``tenacity.retry_if_exception_type()``).
    """

    def __init__(self, retry: tenacity.retry_base | None = None) -> None:
        self.retry = tenacity.retry_if_exception_type() if retry is None else retry

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        """Return ``False`` after a rejection, else what ``retry`` says."""
        outcome = retry_state.outcome
        exception = None if outcome is None else outcome.exception()
        if exception is not None and is_rejection(exception):
            return False
        return self.retry(retry_state)


class wait_for_probe(wait_base):  # noqa: N801 - tenacity's naming
    """A tenacity ``wait=`` strategy: wait until the breaker's probe is due, if it is open.

    Args:
        breaker: The breaker of the attempts, or a function of the exception returning it.
        otherwise: The wait when the breaker is closed, and the least wait when it is open
            (default ``tenacity.wait_none()``).
        maximum: The longest wait, in seconds (default 60): a breaker open for longer is left
            to the next attempt, whose rejection ends the retries.
    """

    def __init__(
        self,
        breaker: CircuitBreaker | BreakerLookup,
        otherwise: wait_base | None = None,
        *,
        maximum: float = DEFAULT_MAXIMUM,
    ) -> None:
        _check_breaker(breaker)
        self.breaker = breaker
        self.otherwise = tenacity.wait_none() if otherwise is None else otherwise
        self.maximum = check_seconds("maximum", maximum)

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        """Return the wait before the next attempt."""
        wait = float(self.otherwise(retry_state))
        outcome = retry_state.outcome
        exception = None if outcome is None else outcome.exception()
        if exception is None:
            return wait
        return max(wait, probe_wait(self.breaker, exception, self.maximum))


def stamina_on(
    on: type[Exception] | tuple[type[Exception], ...],
    breaker: CircuitBreaker | BreakerLookup | None = None,
    *,
    maximum: float = DEFAULT_MAXIMUM,
) -> Callable[[Exception], bool | float]:
    """Return a stamina backoff hook (``stamina.retry(on=...)``) that respects the breaker.

    The hook retries the exceptions ``on`` except rejections; with ``breaker``, after an
    exception that left the breaker open it asks stamina to wait until the probe is due (at
    most ``maximum`` seconds) instead of its own backoff (stamina >= 25.1).

    Args:
        on: The exception classes to retry (as stamina's own ``on=``).
        breaker: The breaker of the attempts, or a function of the exception returning it.
        maximum: The longest wait for a probe, in seconds (default 60).
    """
    classes = on if isinstance(on, tuple) else (on,)
    if not classes or not all(isinstance(c, type) and issubclass(c, Exception) for c in classes):
        msg = f"on must be an exception class or a tuple of them, got {on!r}"
        raise TypeError(msg)
    if breaker is not None:
        _check_breaker(breaker)
    limit = check_seconds("maximum", maximum)

    def hook(exception: Exception) -> bool | float:
        if is_rejection(exception) or not isinstance(exception, classes):
            return False
        if breaker is None:
            return True
        return probe_wait(breaker, exception, limit) or True

    return hook
