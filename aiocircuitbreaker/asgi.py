"""A Starlette / FastAPI exception handler: a rejection answers 503 with ``Retry-After``.

Install with ``pip install "aiocircuitbreaker[asgi]"``::

    app = Starlette(exception_handlers={CircuitBreakerError: circuit_breaker_handler})
    # or, for FastAPI or an existing app:
    add_circuit_breaker_handler(app)

A :class:`~aiocircuitbreaker.CircuitBreakerError` that escapes an endpoint (the httpx and
aiohttp rejections are subclasses; the requests one is handled when named, see
:func:`add_circuit_breaker_handler`) becomes ``503 Service Unavailable`` with a JSON
body ``{"detail": "Service Unavailable"}`` and ``Retry-After``: the seconds the breaker had
left to stay open when it rejected the call, rounded up to whole seconds. The header is left
out when that time is unknown: a forced-open breaker (open until someone closes it) or a
half-open one whose probe slots are taken (due now, but busy).
"""

from __future__ import annotations

import math

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ._errors import CircuitBreakerError
from ._http import rejection_of

__all__ = ["add_circuit_breaker_handler", "circuit_breaker_handler", "retry_after"]


def retry_after(error: CircuitBreakerError) -> str | None:
    """Return the ``Retry-After`` value for ``error``: whole seconds, rounded up, or ``None``."""
    remaining = error.open_remaining
    if not math.isfinite(remaining) or remaining <= 0:
        return None
    return str(math.ceil(remaining))


async def circuit_breaker_handler(request: Request, exc: Exception) -> Response:
    """Answer a rejected call with 503 and ``Retry-After`` (see the module docs)."""
    headers = {}
    rejection = rejection_of(exc)
    if rejection is not None:
        seconds = retry_after(rejection)
        if seconds is not None:
            headers["Retry-After"] = seconds
    return JSONResponse({"detail": "Service Unavailable"}, status_code=503, headers=headers)


def add_circuit_breaker_handler(app: Starlette, *also: type[Exception]) -> None:
    """Install :func:`circuit_breaker_handler` on a Starlette or FastAPI ``app``.

    It handles :class:`~aiocircuitbreaker.CircuitBreakerError` (and so the httpx and aiohttp
    rejections), and the classes ``also`` given: pass
    ``aiocircuitbreaker.requests.CircuitOpenError`` for the requests integration's.
    """
    classes: tuple[type[Exception], ...] = (CircuitBreakerError, *also)
    for cls in classes:
        app.add_exception_handler(cls, circuit_breaker_handler)
