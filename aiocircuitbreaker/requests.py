"""A requests transport adapter that guards every request with a circuit breaker.

Install with ``pip install "aiocircuitbreaker[requests]"``::

    session = requests.Session()
    adapter = CircuitBreakerAdapter(breaker=CircuitBreakerGroup("upstream"))
    session.mount("http://", adapter)
    session.mount("https://", adapter)

It wraps another adapter (default ``requests.adapters.HTTPAdapter()``) and behaves as the
httpx transports do (see :mod:`aiocircuitbreaker.httpx`): errors are reported to the breaker
and re-raised, failure statuses (default 429, 502, 503, 504) are counted and the response is
returned all the same, a 429 or 503's ``Retry-After`` travels with the failure
(:class:`~aiocircuitbreaker.httpx.StatusFailure`, for
:class:`~aiocircuitbreaker.httpx.RetryAfter`), and a rejection raises
:class:`CircuitOpenError` without touching the network. The breaker times the call to the
response headers when ``stream=True``, to the whole body otherwise (requests reads it inside
the adapter). Retries of the wrapped ``HTTPAdapter`` (``max_retries``) happen inside one
guarded call: the breaker sees one outcome for all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Mapping
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter, HTTPAdapter

from ._breaker import CircuitBreaker
from ._errors import CircuitBreakerError
from ._http import (
    DEFAULT_FAILURE_STATUSES,
    DEFAULT_MAX_RETRY_AFTER,
    Breakers,
    BreakerSource,
    RetryAfter,
    StatusFailure,
    origin,
)

__all__ = [
    "CircuitBreakerAdapter",
    "CircuitOpenError",
    "RetryAfter",
    "StatusFailure",
    "request_origin",
]

KeyFunction = Callable[[requests.PreparedRequest], Hashable]


class CircuitOpenError(requests.RequestException):
    """A request rejected by its breaker: a ``requests.RequestException`` carrying the rejection.

    It is neither a ``requests.ConnectionError`` nor a ``requests.Timeout``, the errors retry
    policies usually retry: retrying a rejection would only be rejected again. It cannot also
    be a ``CircuitBreakerError`` (requests' errors are ``OSError`` instances, whose layout does not
    mix with it), so it carries one: ``rejection``, and a copy of its attributes. The retry
    helpers and the ASGI handler recognise it by that attribute.

    Attributes:
        rejection: The breaker's ``CircuitBreakerError``.
        name, failure_count, open_remaining, last_failure, raised_at, circuit_breaker: As on
            ``rejection``.
    """

    def __init__(self, error: CircuitBreakerError, request: requests.PreparedRequest) -> None:
        super().__init__(str(error), request=request)
        self.rejection = error
        self.name = error.name
        self.failure_count = error.failure_count
        self.open_remaining = error.open_remaining
        self.last_failure = error.last_failure
        self.raised_at = error.raised_at
        self.circuit_breaker = error.circuit_breaker


def request_origin(request: requests.PreparedRequest) -> str:
    """Return the origin of ``request``, ``scheme://host:port`` (the default breaker key)."""
    url = urlsplit(request.url or "")
    return origin(url.scheme, url.hostname or "", url.port)


class CircuitBreakerAdapter(BaseAdapter):
    """A requests adapter guarding each request with a breaker (see the module docs).

    Args:
        adapter: The adapter that sends the requests (default ``HTTPAdapter()``).
        breaker: A ``CircuitBreaker`` for every request, or a ``CircuitBreakerGroup``: one
            breaker per key (default: a new group named ``"requests"``, each breaker with the
            default options and ``open_duration=RetryAfter(30)``).
        key: With a group, the key of a request (default: its origin).
        failure_statuses: Statuses counted as failures (default 429, 502, 503, 504).
        max_retry_after: Cap, in seconds, on the ``Retry-After`` a failure carries (300).
    """

    def __init__(
        self,
        adapter: BaseAdapter | None = None,
        *,
        breaker: CircuitBreaker | BreakerSource | None = None,
        key: KeyFunction | None = None,
        failure_statuses: Collection[int] = DEFAULT_FAILURE_STATUSES,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
    ) -> None:
        super().__init__()
        self._breakers: Breakers[requests.PreparedRequest] = Breakers(
            breaker,
            key,
            request_origin,
            failure_statuses,
            max_retry_after,
            "requests",
            rejection=CircuitOpenError,
        )
        self._adapter = HTTPAdapter() if adapter is None else adapter

    @property
    def breaker(self) -> CircuitBreaker | BreakerSource:
        """The breaker, or the group, requests go through."""
        return self._breakers.breaker

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,  # noqa: FBT001, FBT002 - requests' own signature
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,  # noqa: FBT001, FBT002
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send ``request`` through the wrapped adapter if its breaker admits it."""
        breakers = self._breakers
        ticket = breakers.admit(request)
        try:
            response = self._adapter.send(request, stream, timeout, verify, cert, proxies)
        except BaseException as exc:
            ticket.finish(exc)
            raise
        breakers.finish(
            ticket, request, response.status_code, response.headers.get("retry-after"), response
        )
        return response

    def close(self) -> None:
        """Close the wrapped adapter."""
        self._adapter.close()
