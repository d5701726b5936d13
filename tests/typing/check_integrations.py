"""Static checks of the integrations' public signatures, run by mypy and pyright (never run).

As ``check_signatures.py``: each ``assert_type`` pins an inferred type, and each line ending in
``# type: ignore[code]`` is a misuse that must be a type error.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import aiohttp
import grpc
import httpx
import requests
import stamina
import tenacity
from starlette.applications import Starlette

from aiocircuitbreaker import CircuitBreaker, CircuitBreakerGroup
from aiocircuitbreaker.aiohttp import CircuitBreakerMiddleware
from aiocircuitbreaker.asgi import add_circuit_breaker_handler, retry_after
from aiocircuitbreaker.grpc import circuit_breaker_interceptors
from aiocircuitbreaker.httpx import (
    AsyncCircuitBreakerTransport,
    CircuitBreakerTransport,
    CircuitOpenError,
    RetryAfter,
    request_origin,
)
from aiocircuitbreaker.requests import CircuitBreakerAdapter
from aiocircuitbreaker.retry import is_rejection, retry_unless_rejected, stamina_on, wait_for_probe

if sys.version_info >= (3, 11):
    from typing import assert_type
else:  # mypy checks this file as Python 3.10 (pyproject), with its bundled stubs
    from typing_extensions import assert_type


def clients() -> None:
    """A breaker or a group goes wherever a client takes a transport, middleware or adapter."""
    group = CircuitBreakerGroup[str]("hosts", open_duration=RetryAfter(30))
    httpx.Client(transport=CircuitBreakerTransport(breaker=group))
    httpx.AsyncClient(transport=AsyncCircuitBreakerTransport(breaker=CircuitBreaker()))
    httpx.Client(transport=CircuitBreakerTransport(key=lambda request: request.url.host))
    aiohttp.ClientSession(middlewares=(CircuitBreakerMiddleware(breaker=group),))
    requests.Session().mount("https://", CircuitBreakerAdapter(breaker=group))
    grpc.aio.insecure_channel("h:1", interceptors=circuit_breaker_interceptors(breaker=group))
    assert_type(request_origin(httpx.Request("GET", "https://h")), str)
    CircuitBreakerTransport(breaker="hosts")  # type: ignore[arg-type]
    CircuitBreakerTransport(httpx.AsyncHTTPTransport())  # type: ignore[arg-type]


def frameworks_and_retries(error: CircuitOpenError) -> None:
    """The ASGI handler and the retry helpers take what their libraries expect."""
    add_circuit_breaker_handler(Starlette())
    assert_type(retry_after(error), str | None)
    assert_type(is_rejection(error), bool)
    tenacity.Retrying(retry=retry_unless_rejected(), wait=wait_for_probe(CircuitBreaker()))
    hook = stamina_on(httpx.TransportError, CircuitBreaker())
    assert_type(hook, Callable[[Exception], bool | float])
    stamina.retry(on=hook)
    wait_for_probe(CircuitBreaker(), maximum="60")  # type: ignore[arg-type]
