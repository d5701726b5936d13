"""What the client integrations share: breakers by key, statuses, Retry-After, rejections.

Nothing here imports a client library: ``aiocircuitbreaker.httpx``, ``.aiohttp``,
``.requests`` and ``.grpc`` do, each for its own library, and re-export the public names below.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Hashable, Iterable
from email.utils import parsedate_to_datetime
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from ._breaker import CircuitBreaker
from ._core import Outcome
from ._errors import CircuitBreakerError
from ._groups import CircuitBreakerGroup
from ._policies import OpenDuration
from ._ticket import Ticket

__all__ = [
    "DEFAULT_FAILURE_STATUSES",
    "DEFAULT_MAX_RETRY_AFTER",
    "BreakerSource",
    "Breakers",
    "RetryAfter",
    "StatusFailure",
    "check_statuses",
    "copy_rejection",
    "origin",
    "parse_retry_after",
    "rejection_of",
]

DEFAULT_FAILURE_STATUSES: frozenset[int] = frozenset({429, 502, 503, 504})
# The statuses whose Retry-After says how long the upstream wants to be left alone (RFC 9110).
RETRY_AFTER_STATUSES: frozenset[int] = frozenset({429, 503})
DEFAULT_MAX_RETRY_AFTER = 300.0

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

Request = TypeVar("Request")
E = TypeVar("E", bound=CircuitBreakerError)


@runtime_checkable
class BreakerSource(Protocol):
    """Anything that admits calls by key, one breaker per key (a ``CircuitBreakerGroup``)."""

    def admit(self, key: Any, /) -> Ticket:
        """Admit a call through the breaker of ``key`` (raise ``CircuitBreakerError``)."""
        ...


class StatusFailure(Exception):  # noqa: N818 - it is recorded as a failure, never raised
    """The failure a breaker records for a response whose status counts as one.

    It is not raised: the caller gets the response. It is what ``last_failure``, listeners
    and ``open_duration`` see.

    Attributes:
        status: The response's status code.
        origin: The request's key (by default its origin, ``scheme://host:port``).
        retry_after: Seconds the upstream asked to be left alone (``Retry-After`` on a 429 or
            503, capped), or ``None``.
    """

    def __init__(self, status: int, origin: object, retry_after: float | None = None) -> None:
        super().__init__(status, origin, retry_after)
        self.status = status
        self.origin = origin
        self.retry_after = retry_after

    def __str__(self) -> str:
        after = "" if self.retry_after is None else f", Retry-After {self.retry_after:g} s"
        return f"{self.origin} answered {self.status}{after}"


class RetryAfter:
    """An ``open_duration`` that honours the upstream's ``Retry-After``.

    A failure carrying ``retry_after`` seconds (a :class:`StatusFailure` of a 429 or 503 with
    the header) opens the breaker for that long; any other opening lasts ``otherwise``: a
    number of seconds, or another ``open_duration`` such as a ``Backoff``.

    Args:
        otherwise: Seconds, or a function ``(openings, failure) -> seconds`` (default 30).
    """

    __slots__ = ("otherwise",)

    def __init__(self, otherwise: float | OpenDuration = 30.0) -> None:
        if not callable(otherwise) and not _is_seconds(otherwise):
            msg = (
                "otherwise must be seconds (a finite number >= 0) or a function "
                f"(openings, failure) -> seconds, got {otherwise!r}"
            )
            raise ValueError(msg)
        self.otherwise = otherwise

    def __call__(self, openings: int, failure: BaseException | None) -> float:
        """Return the upstream's ``Retry-After`` if ``failure`` carries one, else ``otherwise``."""
        seconds = getattr(failure, "retry_after", None)
        if isinstance(seconds, float):
            return seconds
        otherwise = self.otherwise
        return otherwise(openings, failure) if callable(otherwise) else float(otherwise)

    def __repr__(self) -> str:
        return f"RetryAfter({self.otherwise!r})"


def _is_seconds(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
        and float(value) >= 0
    )


def check_seconds(name: str, value: object) -> float:
    """Return ``value`` as float seconds, or raise ``ValueError`` naming ``name``."""
    if not _is_seconds(value):
        msg = f"{name} must be seconds (a finite number >= 0), got {value!r}"
        raise ValueError(msg)
    return float(value)  # type: ignore[arg-type]  # (a number: checked above)


def check_statuses(name: str, statuses: object) -> frozenset[int]:
    """Return ``statuses`` as a frozenset of HTTP status codes, or raise naming ``name``."""
    if isinstance(statuses, (str, bytes)) or not isinstance(statuses, Iterable):
        msg = f"{name} must be a collection of HTTP status codes (100-599), got {statuses!r}"
        raise TypeError(msg)
    codes: frozenset[object] = frozenset(statuses)
    for code in codes:
        if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599:
            msg = f"{name} must hold HTTP status codes (ints 100-599), got {code!r} in it"
            raise ValueError(msg)
    return frozenset(codes)  # type: ignore[arg-type]  # (ints: checked above)


def parse_retry_after(value: str | None, cap: float, now: float | None = None) -> float | None:
    """Return the seconds a ``Retry-After`` header asks for, at most ``cap``.

    Both forms are read: delta-seconds (``"120"``) and an HTTP-date, taken against the wall
    clock (``now``, default ``time.time()``). ``None`` when there is nothing to honour: no
    header, an unreadable one, or one asking for no wait at all (zero, a date in the past),
    which leaves the opening to the breaker's own duration (an opening lasts more than zero).
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        seconds = float(text)
    else:
        try:
            when = parsedate_to_datetime(text).timestamp()
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when - (time.time() if now is None else now)
    return min(seconds, cap) if seconds > 0 else None


def origin(scheme: str, host: str, port: int | None) -> str:
    """Return ``scheme://host:port``, the default port filled in (the default breaker key)."""
    scheme = scheme.lower()
    if port is None:
        port = _DEFAULT_PORTS.get(scheme)
    host = host.lower()
    if ":" in host and not host.startswith("["):  # an IPv6 literal
        host = f"[{host}]"
    return f"{scheme}://{host}" if port is None else f"{scheme}://{host}:{port}"


class Breakers(Generic[Request]):
    """The breaker of each request: one for all, or one per key of a group.

    Args:
        breaker: A ``CircuitBreaker`` (one for every request), a group with
            ``admit(key)`` (one breaker per key), or ``None``: a new ``CircuitBreakerGroup`` named
            ``name``, with the default options and ``open_duration=RetryAfter(30)``.
        key: A function of the request giving its key (used only with a group).
        default_key: The key function used when ``key`` is ``None``.
        failure_statuses: The statuses that count as failures.
        max_retry_after: The cap on a ``Retry-After``, in seconds.
        name: The name of the group made when ``breaker`` is ``None``.
    """

    __slots__ = ("failure_statuses", "group", "key", "max_retry_after", "rejection", "single")

    @property
    def breaker(self) -> CircuitBreaker | BreakerSource:
        """The breaker, or the group, requests go through."""
        return self.single or self.group  # type: ignore[return-value]  # (one is set)

    def __init__(
        self,
        breaker: object,
        key: object,
        default_key: Callable[[Request], Hashable],
        failure_statuses: Collection[int] = DEFAULT_FAILURE_STATUSES,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
        name: str = "upstreams",
        *,
        rejection: Callable[[CircuitBreakerError, Request], BaseException],
    ) -> None:
        self.rejection = rejection  # the client's own error for a rejected request
        self.single: CircuitBreaker | None = None
        self.group: BreakerSource | None = None
        if breaker is None:
            breaker = CircuitBreakerGroup(name, open_duration=RetryAfter(30.0))
        if isinstance(breaker, CircuitBreaker):
            self.single = breaker
        elif isinstance(breaker, BreakerSource):
            self.group = breaker
        else:
            msg = (
                "breaker must be a CircuitBreaker (one for every request) or a "
                f"CircuitBreakerGroup (one per key), got {breaker!r}"
            )
            raise TypeError(msg)
        if key is not None and not callable(key):
            msg = f"key must be a function of the request returning its key, got {key!r}"
            raise TypeError(msg)
        self.key: Callable[[Request], Hashable] = default_key if key is None else key
        self.failure_statuses = check_statuses("failure_statuses", failure_statuses)
        self.max_retry_after = check_seconds("max_retry_after", max_retry_after)

    def admit(self, request: Request) -> Ticket:
        """Return the ticket of ``request``, or raise the client's rejection of it."""
        try:
            single = self.single
            if single is not None:
                return single.admit()
            # The group counts the request in flight until its ticket is finished.
            return self.group.admit(self.key(request))  # type: ignore[union-attr]  # (one is set)
        except CircuitBreakerError as error:
            raise self.rejection(error, request) from None

    def finish(
        self, ticket: Ticket, request: Request, status: int, retry_after: str | None, result: Any
    ) -> Outcome:
        """Report to ``ticket`` a response with ``status`` and this ``Retry-After`` header."""
        if status not in self.failure_statuses:
            return ticket.finish(result=result)
        seconds = None
        if status in RETRY_AFTER_STATUSES:
            seconds = parse_retry_after(retry_after, self.max_retry_after)
        failure = StatusFailure(status, self.key(request), seconds)
        return ticket.finish(failure, outcome=Outcome.FAILURE)


def rejection_of(exception: BaseException) -> CircuitBreakerError | None:
    """Return the rejection ``exception`` is or carries (as ``rejection``), else ``None``.

    The requests integration's rejection carries it: requests' errors cannot also be
    ``CircuitBreakerError`` instances.
    """
    if isinstance(exception, CircuitBreakerError):
        return exception
    carried = getattr(exception, "rejection", None)
    return carried if isinstance(carried, CircuitBreakerError) else None


def copy_rejection(error: CircuitBreakerError, into: E) -> E:
    """Give ``into`` what ``error`` captured at the rejection (name, counts, open time)."""
    for attribute in CircuitBreakerError.__slots__:
        setattr(into, attribute, getattr(error, attribute))
    return into
