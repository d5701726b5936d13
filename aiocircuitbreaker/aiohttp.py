"""An aiohttp client middleware that guards every request with a circuit breaker.

Install with ``pip install "aiocircuitbreaker[aiohttp]"`` (aiohttp >= 3.12)::

    breakers = CircuitBreakerGroup("upstream", open_duration=RetryAfter(30))
    timeout = aiohttp.ClientTimeout(sock_connect=2, sock_read=5)
    async with aiohttp.ClientSession(
        middlewares=(CircuitBreakerMiddleware(breaker=breakers),), timeout=timeout
    ) as session:
        ...

It behaves as the httpx transports do (see :mod:`aiocircuitbreaker.httpx`): client errors are
reported to the breaker and re-raised, failure statuses (default 429, 502, 503, 504) are
counted and the response is returned all the same, a 429 or 503's ``Retry-After`` travels
with the failure (:class:`~aiocircuitbreaker.httpx.StatusFailure`, for
:class:`~aiocircuitbreaker.httpx.RetryAfter`), and a rejection raises
:class:`CircuitOpenError` without touching the network. The breaker times the call to the
response headers (the middleware returns before the body is read).

Timeouts: ``sock_connect`` and ``sock_read`` raise inside the request
(``aiohttp.ServerTimeoutError``), and a ``total`` timeout that expires while the response
headers are awaited raises ``TimeoutError`` there too: the breaker counts the stall as a
failure. aiohttp enforces ``total`` by cancelling the request, so where it expires outside the
reading of the response (waiting for a pooled connection, say), the middleware sees a
cancellation, which is neutral. Give the session ``sock_read`` and ``sock_connect`` for a
breaker that sees every dependency that hangs.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable

import aiohttp

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
    "CircuitBreakerMiddleware",
    "CircuitOpenError",
    "RetryAfter",
    "StatusFailure",
    "request_origin",
]

KeyFunction = Callable[[aiohttp.ClientRequest], Hashable]


class CircuitOpenError(aiohttp.ClientError, CircuitBreakerError):
    """A request rejected by its breaker: an ``aiohttp.ClientError`` and a ``CircuitBreakerError``.

    It is not an ``aiohttp.ClientConnectionError`` (nor a timeout), the errors retry policies
    usually retry: retrying a rejection would only be rejected again.

    Attributes:
        request_info: The rejected request's ``aiohttp.RequestInfo``.
    """

    def __init__(self, error: CircuitBreakerError, request: aiohttp.ClientRequest) -> None:
        # Not aiohttp's __init__: its super() chain would reach CircuitBreakerError's.
        self.args = error.args
        self.request_info = request.request_info
        copy_rejection(error, self)


def request_origin(request: aiohttp.ClientRequest) -> str:
    """Return the origin of ``request``, ``scheme://host:port`` (the default breaker key)."""
    url = request.url
    return origin(url.scheme, url.host or "", url.port)


class CircuitBreakerMiddleware:
    """An aiohttp client middleware guarding each request with a breaker (see the module docs).

    Args:
        breaker: A ``CircuitBreaker`` for every request, or a ``CircuitBreakerGroup``: one
            breaker per key (default: a new group named ``"aiohttp"``, each breaker with the
            default options and ``open_duration=RetryAfter(30)``).
        key: With a group, the key of a request (default: its origin).
        failure_statuses: Statuses counted as failures (default 429, 502, 503, 504).
        max_retry_after: Cap, in seconds, on the ``Retry-After`` a failure carries (300).
    """

    __slots__ = ("_breakers",)

    def __init__(
        self,
        *,
        breaker: CircuitBreaker | BreakerSource | None = None,
        key: KeyFunction | None = None,
        failure_statuses: Collection[int] = DEFAULT_FAILURE_STATUSES,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
    ) -> None:
        self._breakers: Breakers[aiohttp.ClientRequest] = Breakers(
            breaker,
            key,
            request_origin,
            failure_statuses,
            max_retry_after,
            "aiohttp",
            rejection=CircuitOpenError,
        )

    @property
    def breaker(self) -> CircuitBreaker | BreakerSource:
        """The breaker, or the group, requests go through."""
        return self._breakers.breaker

    async def __call__(
        self, request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        """Send ``request`` on through ``handler`` if its breaker admits it."""
        breakers = self._breakers
        ticket = breakers.admit(request)
        try:
            response = await handler(request)
        except BaseException as exc:
            ticket.finish(exc)
            raise
        breakers.finish(
            ticket, request, response.status, response.headers.get("Retry-After"), response
        )
        return response
