"""The aiohttp client middleware against a real aiohttp server: failures, rejections, timeouts."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from yarl import URL

from aiocircuitbreaker import CircuitBreaker, CircuitBreakerError, CircuitBreakerGroup, State
from aiocircuitbreaker.aiohttp import (
    CircuitBreakerMiddleware,
    CircuitOpenError,
    RetryAfter,
    StatusFailure,
    request_origin,
)
from aiocircuitbreaker.testing import FakeClock

from .conftest import Upstream

pytestmark = pytest.mark.asyncio


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cb(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=2, open_duration=RetryAfter(30), clock=clock)


def session_with(timeout: aiohttp.ClientTimeout | None = None, **options: Any) -> Any:
    """Return a session with a CircuitBreakerMiddleware made of ``options``."""
    return aiohttp.ClientSession(
        middlewares=(CircuitBreakerMiddleware(**options),),
        timeout=timeout or aiohttp.ClientTimeout(total=5),
    )


async def status_of(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(url) as response:
        await response.read()
        return response.status


async def test_a_success_passes_through(cb: CircuitBreaker, aiohttp_upstream: Upstream) -> None:
    """A 200 reaches the caller and counts as a success."""
    async with session_with(breaker=cb) as session, session.get(aiohttp_upstream.url) as response:
        assert (response.status, await response.text()) == (200, "ok")
    assert cb.statistics().total.successes == 1


async def test_failure_statuses_are_returned_and_open_the_breaker(
    cb: CircuitBreaker, aiohttp_upstream: Upstream
) -> None:
    """503s reach the caller, count as failures (Retry-After kept), then requests are rejected."""
    aiohttp_upstream.fail(503, retry_after="4")
    async with session_with(breaker=cb) as session:
        assert [await status_of(session, aiohttp_upstream.url) for _ in range(2)] == [503, 503]
        assert cb.state is State.OPEN
        assert cb.open_remaining == 4
        with pytest.raises(CircuitOpenError) as caught:
            await status_of(session, aiohttp_upstream.url)
    assert aiohttp_upstream.hits == 2
    error = caught.value
    assert isinstance(error, aiohttp.ClientError)
    assert isinstance(error, CircuitBreakerError)
    assert not isinstance(error, (aiohttp.ClientConnectionError, asyncio.TimeoutError))
    assert error.request_info.url == URL(aiohttp_upstream.url)
    assert error.open_remaining == 4
    assert isinstance(cb.last_failure, StatusFailure)


async def test_a_stall_past_sock_read_is_a_failure(
    cb: CircuitBreaker, aiohttp_upstream: Upstream
) -> None:
    """sock_read raises inside the request: the breaker counts the stall as a failure."""
    aiohttp_upstream.mode = "stall"
    async with session_with(aiohttp.ClientTimeout(sock_read=0.05), breaker=cb) as session:
        for _ in range(2):
            with pytest.raises(aiohttp.ServerTimeoutError):
                await status_of(session, aiohttp_upstream.url)
    assert cb.state is State.OPEN


async def test_a_total_timeout_awaiting_the_headers_is_a_failure(
    cb: CircuitBreaker, aiohttp_upstream: Upstream
) -> None:
    """aiohttp's total timeout, expiring while the headers are awaited, counts as a failure."""
    async with session_with(breaker=cb) as session:
        assert await status_of(session, aiohttp_upstream.url) == 200  # a pooled connection
        aiohttp_upstream.mode = "stall"
        with pytest.raises(asyncio.TimeoutError):
            async with session.get(aiohttp_upstream.url, timeout=aiohttp.ClientTimeout(total=0.2)):
                pass
    assert cb.failure_count == 1
    assert isinstance(cb.last_failure, asyncio.TimeoutError)


async def test_a_cancelled_request_is_neutral(
    cb: CircuitBreaker, aiohttp_upstream: Upstream
) -> None:
    """A request cancelled by the caller (a timeout around it) counts neither way."""
    aiohttp_upstream.mode = "stall"
    async with session_with(breaker=cb) as session:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(status_of(session, aiohttp_upstream.url), 0.05)
    assert cb.statistics().total.neutral == 1
    assert cb.failure_count == 0


async def test_a_refused_connection_is_a_failure(cb: CircuitBreaker, refused_url: str) -> None:
    """A closed port raises ClientConnectorError, and the breaker counts it."""
    async with session_with(breaker=cb) as session:
        for _ in range(2):
            with pytest.raises(aiohttp.ClientConnectorError):
                await status_of(session, refused_url)
        with pytest.raises(CircuitOpenError):
            await status_of(session, refused_url)
    assert cb.state is State.OPEN


async def test_the_breaker_recovers_with_the_upstream(
    cb: CircuitBreaker, clock: FakeClock, aiohttp_upstream: Upstream
) -> None:
    """Once the upstream answers again, the probe after the open period closes the breaker."""
    aiohttp_upstream.fail(503)
    async with session_with(breaker=cb) as session:
        for _ in range(2):
            await status_of(session, aiohttp_upstream.url)
        aiohttp_upstream.reset()
        clock.advance(30)
        assert await status_of(session, aiohttp_upstream.url) == 200
    assert cb.state is State.CLOSED


async def test_a_group_keeps_one_breaker_per_origin(
    clock: FakeClock, aiohttp_upstream: Upstream, refused_url: str
) -> None:
    """With a group, a dead origin opens its own breaker and leaves the others closed."""
    group = CircuitBreakerGroup("g", failure_threshold=1, clock=clock)
    async with session_with(breaker=group) as session:
        with pytest.raises(aiohttp.ClientConnectorError):
            await status_of(session, refused_url)
        assert await status_of(session, aiohttp_upstream.url) == 200
    assert group.get(refused_url).state is State.OPEN
    assert group.get(aiohttp_upstream.url).state is State.CLOSED


async def test_bad_options_are_refused_at_construction() -> None:
    """A bad option is refused when the middleware is made."""
    with pytest.raises(ValueError, match="failure_statuses must hold HTTP status codes"):
        CircuitBreakerMiddleware(breaker=CircuitBreaker(), failure_statuses=[600])


async def test_request_origin_fills_in_default_ports() -> None:
    """The default key is scheme://host:port with the scheme's default port."""
    loop = asyncio.get_running_loop()
    request = aiohttp.ClientRequest("GET", URL("https://Example.com/x"), loop=loop)
    assert request_origin(request) == "https://example.com:443"


async def test_the_default_is_a_group_per_origin(aiohttp_upstream: Upstream) -> None:
    """Without breaker=, each origin gets a breaker of a new group named "aiohttp"."""
    middleware = CircuitBreakerMiddleware()
    async with aiohttp.ClientSession(middlewares=(middleware,)) as session:
        assert await status_of(session, aiohttp_upstream.url) == 200
    group = middleware.breaker
    assert isinstance(group, CircuitBreakerGroup)
    assert (group.name, list(group)) == ("aiohttp", [aiohttp_upstream.url])
