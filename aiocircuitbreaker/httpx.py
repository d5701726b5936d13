"""httpx transports that guard every request with a circuit breaker.

Install with ``pip install "aiocircuitbreaker[httpx]"``::

    breakers = CircuitBreakerGroup("upstream", open_duration=RetryAfter(30))
    client = httpx.AsyncClient(transport=AsyncCircuitBreakerTransport(breaker=breakers))

Each request is admitted by its breaker (with a group: the breaker of its origin,
``scheme://host:port``, or of ``key(request)``) before it reaches the wrapped transport:

* a transport error (refused connection, timeout, ...) is reported to the breaker, which
  judges it with its ``expected_exception``, and re-raised;
* a response whose status is in ``failure_statuses`` (default 429, 502, 503, 504) is counted
  as a failure, a :class:`StatusFailure` carrying the ``Retry-After`` of a 429 or 503 (capped
  at ``max_retry_after``), and returned to the caller all the same; any other response is a
  success (or what the breaker's ``failure_result`` says of the ``httpx.Response``);
* a rejected request raises :class:`CircuitOpenError` without touching the network.

The breaker times the call to the response headers: the transport returns once they are in,
and reading the body is outside the guarded call (a body that stalls is the client's timeout's
business, not a failure the breaker sees).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable

import httpx

from ._breaker import CircuitBreaker
from ._errors import CircuitBreakerError
from ._http import (
    DEFAULT_FAILURE_STATUSES,
    DEFAULT_MAX_RETRY_AFTER,
    Breakers,
    BreakerSource,
    RetryAfter,
    StatusFailure,
    copy_rejection,
    origin,
)

__all__ = [
    "AsyncCircuitBreakerTransport",
    "CircuitBreakerTransport",
    "CircuitOpenError",
    "RetryAfter",
    "StatusFailure",
    "request_origin",
]

KeyFunction = Callable[[httpx.Request], Hashable]


class CircuitOpenError(httpx.TransportError, CircuitBreakerError):
    """A request rejected by its breaker: an ``httpx.TransportError`` and a ``CircuitBreakerError``.

    It is neither an ``httpx.ConnectError`` nor an ``httpx.TimeoutException``, the errors retry
    policies usually retry: retrying a rejection would only be rejected again.
    """

    def __init__(self, error: CircuitBreakerError, request: httpx.Request) -> None:
        # Not httpx's __init__: its super() chain would reach CircuitBreakerError's.
        self.args = error.args
        self.request = request
        copy_rejection(error, self)


def request_origin(request: httpx.Request) -> str:
    """Return the origin of ``request``, ``scheme://host:port`` (the default breaker key)."""
    url = request.url
    return origin(url.scheme, url.host, url.port)


def _breakers(
    breaker: CircuitBreaker | BreakerSource | None,
    key: KeyFunction | None,
    failure_statuses: Collection[int],
    max_retry_after: float,
) -> Breakers[httpx.Request]:
    return Breakers(
        breaker,
        key,
        request_origin,
        failure_statuses,
        max_retry_after,
        "httpx",
        rejection=CircuitOpenError,
    )


class CircuitBreakerTransport(httpx.BaseTransport):
    """A sync httpx transport guarding each request with a breaker (see the module docs).

    Args:
        transport: The transport that sends the requests (default ``httpx.HTTPTransport()``).
        breaker: A ``CircuitBreaker`` for every request, or a ``CircuitBreakerGroup``: one
            breaker per key (default: a new group named ``"httpx"``, each breaker with the
            default options and ``open_duration=RetryAfter(30)``).
        key: With a group, the key of a request (default: its origin).
        failure_statuses: Statuses counted as failures (default 429, 502, 503, 504).
        max_retry_after: Cap, in seconds, on the ``Retry-After`` a failure carries (300).
    """

    def __init__(
        self,
        transport: httpx.BaseTransport | None = None,
        *,
        breaker: CircuitBreaker | BreakerSource | None = None,
        key: KeyFunction | None = None,
        failure_statuses: Collection[int] = DEFAULT_FAILURE_STATUSES,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
    ) -> None:
        self._breakers = _breakers(breaker, key, failure_statuses, max_retry_after)
        self._transport = httpx.HTTPTransport() if transport is None else transport

    @property
    def breaker(self) -> CircuitBreaker | BreakerSource:
        """The breaker, or the group, requests go through."""
        return self._breakers.breaker

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` through the wrapped transport if its breaker admits it."""
        breakers = self._breakers
        ticket = breakers.admit(request)
        try:
            response = self._transport.handle_request(request)
        except BaseException as exc:
            ticket.finish(exc)
            raise
        breakers.finish(
            ticket, request, response.status_code, response.headers.get("retry-after"), response
        )
        return response

    def close(self) -> None:
        """Close the wrapped transport."""
        self._transport.close()


class AsyncCircuitBreakerTransport(httpx.AsyncBaseTransport):
    """An async httpx transport guarding each request with a breaker (see the module docs).

    Args:
        transport: The transport that sends the requests (default
            ``httpx.AsyncHTTPTransport()``).
        breaker: A ``CircuitBreaker`` for every request, or a ``CircuitBreakerGroup``: one
            breaker per key (default: a new group named ``"httpx"``, each breaker with the
            default options and ``open_duration=RetryAfter(30)``).
        key: With a group, the key of a request (default: its origin).
        failure_statuses: Statuses counted as failures (default 429, 502, 503, 504).
        max_retry_after: Cap, in seconds, on the ``Retry-After`` a failure carries (300).
    """

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        breaker: CircuitBreaker | BreakerSource | None = None,
        key: KeyFunction | None = None,
        failure_statuses: Collection[int] = DEFAULT_FAILURE_STATUSES,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
    ) -> None:
        self._breakers = _breakers(breaker, key, failure_statuses, max_retry_after)
        self._transport = httpx.AsyncHTTPTransport() if transport is None else transport

    @property
    def breaker(self) -> CircuitBreaker | BreakerSource:
        """The breaker, or the group, requests go through."""
        return self._breakers.breaker

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` through the wrapped transport if its breaker admits it."""
        breakers = self._breakers
        ticket = breakers.admit(request)
        try:
            response = await self._transport.handle_async_request(request)
        except BaseException as exc:
            ticket.finish(exc)
            raise
        breakers.finish(
            ticket, request, response.status_code, response.headers.get("retry-after"), response
        )
        return response

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self._transport.aclose()
