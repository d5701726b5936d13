"""The httpx transports against a real uvicorn server: failures, rejections, Retry-After."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import pytest_asyncio

from aiocircuitbreaker import (
    Backoff,
    CircuitBreaker,
    CircuitBreakerError,
    CircuitBreakerGroup,
    State,
)
from aiocircuitbreaker.httpx import (
    AsyncCircuitBreakerTransport,
    CircuitBreakerTransport,
    CircuitOpenError,
    RetryAfter,
    StatusFailure,
    request_origin,
)
from aiocircuitbreaker.testing import FakeClock

from .conftest import Upstream

Get = Callable[..., Awaitable[httpx.Response]]


def breaker(clock: FakeClock, **options: Any) -> CircuitBreaker:
    """Return a breaker on ``clock`` opening after 2 failures for RetryAfter(30)."""
    options.setdefault("failure_threshold", 2)
    options.setdefault("open_duration", RetryAfter(30))
    return CircuitBreaker(clock=clock, **options)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest_asyncio.fixture(params=["sync", "async"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Get]]:
    """Return a factory of ``get(url)`` functions through the sync or the async transport."""
    closers: list[Callable[[], Any]] = []

    def factory(timeout: float = 5.0, **options: Any) -> Get:
        if request.param == "sync":
            sync = httpx.Client(transport=CircuitBreakerTransport(**options), timeout=timeout)
            closers.append(sync.close)

            async def get_sync(url: str) -> httpx.Response:
                return sync.get(url)

            return get_sync
        asynchronous = httpx.AsyncClient(
            transport=AsyncCircuitBreakerTransport(**options), timeout=timeout
        )
        closers.append(asynchronous.aclose)
        return asynchronous.get

    yield factory
    for close in closers:
        result = close()
        if result is not None:
            await result


@pytest.mark.asyncio
async def test_a_success_passes_through(upstream: Upstream, client: Any, clock: FakeClock) -> None:
    """A 200 reaches the caller and counts as a success."""
    cb = breaker(clock)
    get = client(breaker=cb)
    response = await get(upstream.url + "/a")
    assert (response.status_code, response.text) == (200, "ok")
    assert cb.statistics().total.successes == 1


@pytest.mark.asyncio
async def test_failure_statuses_are_returned_and_open_the_breaker(
    upstream: Upstream, client: Any, clock: FakeClock
) -> None:
    """503s reach the caller as responses, count as failures, and then requests are rejected."""
    cb = breaker(clock)
    get = client(breaker=cb)
    upstream.fail(503)
    assert [(await get(upstream.url)).status_code for _ in range(2)] == [503, 503]
    assert cb.state is State.OPEN
    assert isinstance(cb.last_failure, StatusFailure)
    assert cb.last_failure.status == 503
    with pytest.raises(CircuitOpenError) as caught:
        await get(upstream.url)
    assert upstream.hits == 2  # the rejection did not reach the server
    error = caught.value
    assert isinstance(error, httpx.TransportError)
    assert isinstance(error, CircuitBreakerError)
    assert not isinstance(error, (httpx.ConnectError, httpx.TimeoutException, httpx.NetworkError))
    assert error.request.url == httpx.URL(upstream.url)
    assert error.open_remaining == 30
    assert "OPEN" in str(error)


@pytest.mark.parametrize(
    ("status", "header", "opened_for"),
    [
        (503, "7", 7),
        (429, "12", 12),
        (503, "99999", 60),  # capped by max_retry_after
        (503, "Wed, 21 Oct 2015 07:28:00 GMT", 30),  # a date in the past: nothing to honour
        (503, "Fri, 31 Dec 9999 23:59:59 GMT", 60),  # a date far ahead: capped
        (503, "0", 30),  # no wait asked: the breaker's own duration
        (503, "soon", 30),  # unreadable: the breaker's own duration
        (502, "7", 30),  # only 429 and 503 carry a Retry-After that counts
    ],
)
@pytest.mark.asyncio
async def test_retry_after_sets_the_open_duration(
    upstream: Upstream, client: Any, clock: FakeClock, status: int, header: str, opened_for: float
) -> None:
    """The Retry-After of a 429 or 503 sets how long the breaker stays open, capped."""
    cb = breaker(clock)
    get = client(breaker=cb, max_retry_after=60)
    upstream.fail(status, retry_after=header)
    for _ in range(2):
        await get(upstream.url)
    assert cb.open_remaining == opened_for


@pytest.mark.asyncio
async def test_a_stall_past_the_client_timeout_is_a_failure(
    upstream: Upstream, client: Any, clock: FakeClock
) -> None:
    """A server that never answers trips the breaker through the client's own timeout."""
    cb = breaker(clock)
    get = client(timeout=0.05, breaker=cb)
    upstream.mode = "stall"
    for _ in range(2):
        with pytest.raises(httpx.TimeoutException):
            await get(upstream.url)
    assert cb.state is State.OPEN
    assert isinstance(cb.last_failure, httpx.TimeoutException)


@pytest.mark.asyncio
async def test_a_refused_connection_is_a_failure(
    refused_url: str, client: Any, clock: FakeClock
) -> None:
    """A closed port raises ConnectError to the caller, and the breaker counts it."""
    cb = breaker(clock)
    get = client(breaker=cb)
    for _ in range(2):
        with pytest.raises(httpx.ConnectError):
            await get(refused_url)
    assert cb.state is State.OPEN
    with pytest.raises(CircuitOpenError):
        await get(refused_url)


@pytest.mark.asyncio
async def test_the_breaker_recovers_with_the_upstream(
    upstream: Upstream, client: Any, clock: FakeClock
) -> None:
    """Once the upstream answers again, the probe after the open period closes the breaker."""
    cb = breaker(clock)
    get = client(breaker=cb)
    upstream.fail(503, retry_after="5")
    for _ in range(2):
        await get(upstream.url)
    upstream.reset()
    clock.advance(5)
    assert cb.state is State.HALF_OPEN
    assert (await get(upstream.url)).status_code == 200
    assert cb.state is State.CLOSED
    assert upstream.hits == 1


@pytest.mark.asyncio
async def test_a_group_keeps_one_breaker_per_origin(
    upstream: Upstream, refused_url: str, client: Any, clock: FakeClock
) -> None:
    """With a group, a dead origin opens its own breaker and leaves the others closed."""
    group = CircuitBreakerGroup("g", failure_threshold=2, clock=clock)
    get = client(breaker=group)
    for _ in range(2):
        with pytest.raises(httpx.ConnectError):
            await get(refused_url + "/x")
    with pytest.raises(CircuitOpenError):
        await get(refused_url + "/y")
    assert (await get(upstream.url)).status_code == 200
    assert group.get(refused_url).state is State.OPEN
    assert group.get(upstream.url).state is State.CLOSED


@pytest.mark.asyncio
async def test_the_key_function_chooses_the_breaker(
    upstream: Upstream, client: Any, clock: FakeClock
) -> None:
    """A key function of the request picks each request's breaker (here: by path)."""
    group = CircuitBreakerGroup("g", failure_threshold=1, clock=clock)
    get = client(breaker=group, key=lambda request: request.url.path)
    upstream.fail(503)
    await get(upstream.url + "/a")
    upstream.reset()
    assert (await get(upstream.url + "/b")).status_code == 200
    assert group.get("/a").state is State.OPEN
    assert isinstance(group.get("/a").last_failure, StatusFailure)
    assert group.get("/a").last_failure.origin == "/a"
    assert group.get("/b").state is State.CLOSED


@pytest.mark.asyncio
async def test_failure_statuses_are_configurable(
    upstream: Upstream, client: Any, clock: FakeClock
) -> None:
    """Only the statuses given count: here 500 does and 503 does not."""
    cb = breaker(clock, failure_threshold=1)
    get = client(breaker=cb, failure_statuses={500})
    upstream.fail(503)
    await get(upstream.url)
    assert cb.state is State.CLOSED
    upstream.fail(500)
    await get(upstream.url)
    assert cb.state is State.OPEN


@pytest.mark.asyncio
async def test_failure_result_judges_the_response(
    upstream: Upstream, client: Any, clock: FakeClock
) -> None:
    """The breaker's failure_result predicate receives the httpx.Response of other statuses."""
    cb = breaker(clock, failure_threshold=1, failure_result=lambda r: r.status_code == 404)
    get = client(breaker=cb)
    upstream.fail(404)
    assert (await get(upstream.url)).status_code == 404
    assert cb.state is State.OPEN


@pytest.mark.asyncio
async def test_a_cancelled_request_is_neutral(upstream: Upstream, clock: FakeClock) -> None:
    """Cancelling an async request (a timeout around it) counts neither way."""
    cb = breaker(clock, failure_threshold=1)
    upstream.mode = "stall"
    async with httpx.AsyncClient(transport=AsyncCircuitBreakerTransport(breaker=cb)) as http:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(http.get(upstream.url), 0.05)
    assert cb.state is State.CLOSED
    assert cb.statistics().total.neutral == 1


class Recording(httpx.HTTPTransport):
    """An HTTP transport that remembers being closed."""

    closed = False

    def close(self) -> None:
        self.closed = True
        super().close()


def test_closing_closes_the_wrapped_transport(upstream: Upstream, clock: FakeClock) -> None:
    """Closing the client closes the transport it wraps."""
    inner = Recording()
    with httpx.Client(transport=CircuitBreakerTransport(inner, breaker=breaker(clock))) as http:
        assert http.get(upstream.url).status_code == 200
    assert inner.closed


@pytest.mark.asyncio
async def test_aclosing_closes_the_wrapped_transport(upstream: Upstream, clock: FakeClock) -> None:
    """Closing the async client closes the transport it wraps."""
    inner = httpx.AsyncHTTPTransport()
    transport = AsyncCircuitBreakerTransport(inner, breaker=breaker(clock))
    async with httpx.AsyncClient(transport=transport) as http:
        assert (await http.get(upstream.url)).status_code == 200
    assert inner._pool.connections == []  # closed: the pool holds no connection


def test_request_origin_fills_in_default_ports() -> None:
    """The default key is scheme://host:port, lower-cased, with the scheme's default port."""
    assert (
        request_origin(httpx.Request("GET", "https://Example.COM/x")) == "https://example.com:443"
    )
    assert request_origin(httpx.Request("GET", "http://[::1]:8080/")) == "http://[::1]:8080"


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"breaker": "upstream"}, TypeError, "breaker must be a CircuitBreaker"),
        ({"key": "host"}, TypeError, "key must be a function of the request"),
        ({"failure_statuses": 503}, TypeError, "failure_statuses must be a collection"),
        ({"failure_statuses": "503"}, TypeError, "failure_statuses must be a collection"),
        ({"failure_statuses": [503, 99]}, ValueError, "got 99 in it"),
        ({"failure_statuses": [True]}, ValueError, "got True in it"),
        ({"max_retry_after": -1}, ValueError, "max_retry_after must be seconds"),
        ({"max_retry_after": float("inf")}, ValueError, "max_retry_after must be seconds"),
    ],
)
def test_bad_options_are_refused_at_construction(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    """Each bad option is refused when the transport is made, naming it and its value."""
    options.setdefault("breaker", CircuitBreaker())
    for transport in (CircuitBreakerTransport, AsyncCircuitBreakerTransport):
        with pytest.raises(error, match=message):
            transport(**options)


def test_retry_after_falls_back_to_another_open_duration() -> None:
    """RetryAfter uses its fallback (seconds or a Backoff) for a failure without Retry-After."""
    assert RetryAfter(Backoff(2))(3, StatusFailure(502, "o")) == 8
    assert RetryAfter(4)(1, OSError()) == 4.0
    assert RetryAfter()(1, StatusFailure(503, "o", 1.5)) == 1.5
    assert repr(RetryAfter(4)) == "RetryAfter(4)"
    with pytest.raises(ValueError, match="otherwise must be seconds"):
        RetryAfter(-1)


def test_a_status_failure_says_what_was_answered() -> None:
    """A StatusFailure names the origin, the status and the Retry-After."""
    answer = "http://h:80 answered 503, Retry-After 2 s"
    assert str(StatusFailure(503, "http://h:80", 2.0)) == answer
    assert str(StatusFailure(502, "http://h:80")) == "http://h:80 answered 502"


@pytest.mark.asyncio
async def test_the_default_is_a_group_per_origin_honouring_retry_after(upstream: Upstream) -> None:
    """Without breaker=, each origin gets a breaker of a new group that honours Retry-After."""
    transport = AsyncCircuitBreakerTransport()
    group = transport.breaker
    assert isinstance(group, CircuitBreakerGroup)
    assert group.name == "httpx"
    upstream.fail(503, retry_after="3")
    async with httpx.AsyncClient(transport=transport) as client:
        for _ in range(5):  # the default failure_threshold
            await client.get(upstream.url)
    breaker = group.get(upstream.url)
    assert breaker is not None
    assert breaker.state is State.OPEN
    assert 2 < breaker.open_remaining <= 3
    assert CircuitBreakerTransport().breaker is not group  # a group of its own each


def test_the_breaker_given_is_the_breaker_used(clock: FakeClock) -> None:
    """The transport's breaker is the one given."""
    cb = breaker(clock)
    assert CircuitBreakerTransport(breaker=cb).breaker is cb


@pytest.mark.asyncio
async def test_a_group_keeps_the_breaker_of_a_request_in_flight() -> None:
    """Past max_keys, the breaker of a request still in flight is not evicted."""
    release = asyncio.Event()

    async def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/slow":
            await release.wait()
        return httpx.Response(200)

    group = CircuitBreakerGroup("g", max_keys=1)
    transport = AsyncCircuitBreakerTransport(
        httpx.MockTransport(answer), breaker=group, key=lambda request: request.url.path
    )
    async with httpx.AsyncClient(transport=transport) as client:
        slow = asyncio.create_task(client.get("http://h/slow"))
        while "/slow" not in group:
            await asyncio.sleep(0)
        for path in ("/a", "/b", "/c"):
            await client.get("http://h" + path)
        assert "/slow" in group  # in flight: kept, whatever the other keys
        release.set()
        assert (await slow).status_code == 200
        for path in ("/d", "/e", "/f"):
            await client.get("http://h" + path)
    assert "/slow" not in group  # idle once finished: evicted like the others
    assert len(group) == 1
