"""The 503 handler, through a real uvicorn server: Retry-After from the rejection."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
import requests
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from aiocircuitbreaker import CircuitBreaker
from aiocircuitbreaker.asgi import add_circuit_breaker_handler, circuit_breaker_handler
from aiocircuitbreaker.httpx import AsyncCircuitBreakerTransport
from aiocircuitbreaker.requests import CircuitBreakerAdapter
from aiocircuitbreaker.requests import CircuitOpenError as RequestsCircuitOpenError
from aiocircuitbreaker.testing import FakeClock

from .conftest import serve

clock = FakeClock()
breaker = CircuitBreaker(name="upstream", recovery_timeout=30, clock=clock)


async def guarded(request: Request) -> Response:
    @breaker
    async def call() -> str:
        return "called"

    return PlainTextResponse(await call())


async def upstream_call(request: Request) -> Response:
    """Call a dead port through the httpx transport: its rejection is a CircuitBreakerError."""
    async with httpx.AsyncClient(transport=AsyncCircuitBreakerTransport(breaker=breaker)) as c:
        return PlainTextResponse((await c.get(request.query_params["url"])).text)


def requests_call(request: Request) -> Response:
    """Call through the requests adapter (in Starlette's thread pool: a sync endpoint)."""
    with requests.Session() as session:
        session.mount("http://", CircuitBreakerAdapter(breaker=breaker))
        return PlainTextResponse(session.get(request.query_params["url"]).text)


async def broken(request: Request) -> Response:
    raise ValueError("not a rejection")


routes = [
    Route("/guarded", guarded),
    Route("/upstream", upstream_call),
    Route("/requests", requests_call),
    Route("/broken", broken),
]


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    """Serve an app with the handler installed by add_circuit_breaker_handler()."""
    app = Starlette(routes=routes)
    add_circuit_breaker_handler(app, RequestsCircuitOpenError)
    with serve(app) as address:
        yield address


@pytest.fixture(autouse=True)
def closed_breaker() -> Iterator[None]:
    breaker.close()
    yield
    breaker.close()


def get(url: str) -> httpx.Response:
    with httpx.Client() as client:
        return client.get(url)


def test_a_closed_breaker_lets_the_endpoint_answer(url: str) -> None:
    """While the breaker is closed the endpoint answers as usual."""
    response = get(url + "/guarded")
    assert (response.status_code, response.text) == (200, "called")


@pytest.mark.parametrize(("elapsed", "header"), [(0, "30"), (0.4, "30"), (29.2, "1"), (29.99, "1")])
def test_a_rejection_answers_503_with_retry_after_rounded_up(
    url: str, elapsed: float, header: str
) -> None:
    """A rejection becomes 503 with the whole seconds left to stay open, rounded up."""
    breaker.open()
    clock.advance(elapsed)
    response = get(url + "/guarded")
    assert response.status_code == 503
    assert response.headers["retry-after"] == header
    assert response.json() == {"detail": "Service Unavailable"}


def test_a_forced_open_breaker_gives_no_retry_after(url: str) -> None:
    """Open until closed by hand: nobody knows when to come back, so there is no header."""
    breaker.force_open()
    response = get(url + "/guarded")
    assert response.status_code == 503
    assert "retry-after" not in response.headers


def test_a_busy_half_open_breaker_gives_no_retry_after(url: str) -> None:
    """Half-open with its probe running: due now but busy, so there is no header."""
    breaker.open()
    clock.advance(30)
    probe = breaker.admit()
    try:
        response = get(url + "/guarded")
    finally:
        breaker.finish(probe)
    assert response.status_code == 503
    assert "retry-after" not in response.headers


def test_an_httpx_rejection_is_answered_too(url: str, refused_url: str) -> None:
    """The httpx transport's rejection is a CircuitBreakerError: it gets the 503 too."""
    breaker.open()
    response = get(f"{url}/upstream?url={refused_url}")
    assert (response.status_code, response.headers["retry-after"]) == (503, "30")


def test_a_requests_rejection_is_answered_when_named(url: str, refused_url: str) -> None:
    """The requests rejection (a RequestException carrying the rejection) gets the 503 too."""
    breaker.open()
    clock.advance(10.5)
    response = get(f"{url}/requests?url={refused_url}")
    assert (response.status_code, response.headers["retry-after"]) == (503, "20")


def test_other_errors_are_left_to_the_app(url: str) -> None:
    """An error that is not a rejection still answers 500."""
    assert get(url + "/broken").status_code == 500


def test_the_handler_given_as_a_mapping_answers_any_exception() -> None:
    """Given another exception, the handler answers 503 without Retry-After."""
    request = Request({"type": "http", "method": "GET", "path": "/", "headers": []})
    response = asyncio.run(circuit_breaker_handler(request, ValueError("x")))
    assert response.status_code == 503
    assert "retry-after" not in response.headers
