"""The requests adapter against a real uvicorn server: failures, rejections, Retry-After."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from aiocircuitbreaker import CircuitBreaker, CircuitBreakerError, CircuitBreakerGroup, State
from aiocircuitbreaker.requests import (
    CircuitBreakerAdapter,
    CircuitOpenError,
    RetryAfter,
    StatusFailure,
    request_origin,
)
from aiocircuitbreaker.testing import FakeClock

from .conftest import Upstream


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cb(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=2, open_duration=RetryAfter(30), clock=clock)


def session_with(**options: Any) -> requests.Session:
    """Return a session whose http:// requests go through a CircuitBreakerAdapter."""
    session = requests.Session()
    session.mount("http://", CircuitBreakerAdapter(**options))
    return session


@pytest.fixture
def session(cb: CircuitBreaker) -> Iterator[requests.Session]:
    with session_with(breaker=cb) as s:
        yield s


def test_a_success_passes_through(
    session: requests.Session, cb: CircuitBreaker, upstream: Upstream
) -> None:
    """A 200 reaches the caller and counts as a success."""
    response = session.get(upstream.url)
    assert (response.status_code, response.text) == (200, "ok")
    assert cb.statistics().total.successes == 1


def test_failure_statuses_are_returned_and_open_the_breaker(
    session: requests.Session, cb: CircuitBreaker, upstream: Upstream
) -> None:
    """503s reach the caller, count as failures, and then requests are rejected unsent."""
    upstream.fail(503, retry_after="9")
    assert [session.get(upstream.url).status_code for _ in range(2)] == [503, 503]
    assert cb.state is State.OPEN
    assert cb.open_remaining == 9
    with pytest.raises(CircuitOpenError) as caught:
        session.get(upstream.url)
    assert upstream.hits == 2
    error = caught.value
    assert isinstance(error, requests.RequestException)
    assert isinstance(error.rejection, CircuitBreakerError)
    assert str(error) == str(error.rejection)
    assert (error.name, error.failure_count) == (cb.name, 2)
    assert isinstance(error.last_failure, StatusFailure)
    assert error.circuit_breaker is cb
    assert error.raised_at == error.rejection.raised_at
    assert not isinstance(error, (requests.ConnectionError, requests.Timeout))
    assert error.request is not None
    assert error.request.url == upstream.url + "/"
    assert error.response is None
    assert error.open_remaining == 9


def test_a_stall_past_the_timeout_is_a_failure(
    session: requests.Session, cb: CircuitBreaker, upstream: Upstream
) -> None:
    """A server that never answers trips the breaker through requests' own timeout."""
    upstream.mode = "stall"
    for _ in range(2):
        with pytest.raises(requests.Timeout):
            session.get(upstream.url, timeout=0.05)
    assert cb.state is State.OPEN


def test_a_refused_connection_is_a_failure(
    session: requests.Session, cb: CircuitBreaker, refused_url: str
) -> None:
    """A closed port raises ConnectionError, and the breaker counts it."""
    for _ in range(2):
        with pytest.raises(requests.ConnectionError):
            session.get(refused_url)
    assert cb.state is State.OPEN
    with pytest.raises(CircuitOpenError):
        session.get(refused_url)


def test_the_breaker_recovers_with_the_upstream(
    session: requests.Session, cb: CircuitBreaker, clock: FakeClock, upstream: Upstream
) -> None:
    """Once the upstream answers again, the probe after the open period closes the breaker."""
    upstream.fail(429, retry_after="3")
    for _ in range(2):
        session.get(upstream.url)
    upstream.reset()
    clock.advance(3)
    assert session.get(upstream.url).status_code == 200
    assert cb.state is State.CLOSED


def test_a_group_keeps_one_breaker_per_origin(
    clock: FakeClock, upstream: Upstream, refused_url: str
) -> None:
    """With a group, a dead origin opens its own breaker and leaves the others closed."""
    group = CircuitBreakerGroup("g", failure_threshold=1, clock=clock)
    with session_with(breaker=group, failure_statuses={500}) as session:
        with pytest.raises(requests.ConnectionError):
            session.get(refused_url)
        upstream.fail(500)
        assert session.get(upstream.url).status_code == 500
    assert group.get(refused_url).state is State.OPEN
    failure = group.get(upstream.url).last_failure
    assert isinstance(failure, StatusFailure)
    assert (failure.status, failure.retry_after) == (500, None)


def test_closing_the_session_closes_the_wrapped_adapter(cb: CircuitBreaker) -> None:
    """Closing the session closes the adapter the breaker wraps."""
    closed: list[bool] = []

    class Recording(requests.adapters.HTTPAdapter):
        def close(self) -> None:
            closed.append(True)
            super().close()

    with requests.Session() as session:
        session.mount("http://", CircuitBreakerAdapter(Recording(), breaker=cb))
    assert closed == [True]


def test_request_origin_fills_in_default_ports() -> None:
    """The default key is scheme://host:port with the scheme's default port."""
    request = requests.Request("GET", "https://Example.com/x").prepare()
    assert request_origin(request) == "https://example.com:443"


def test_bad_options_are_refused_at_construction() -> None:
    """A bad breaker is refused when the adapter is made."""
    with pytest.raises(TypeError, match="breaker must be a CircuitBreaker"):
        CircuitBreakerAdapter(breaker="upstream")  # type: ignore[arg-type]


def test_the_default_is_a_group_per_origin(upstream: Upstream) -> None:
    """Without breaker=, each origin gets a breaker of a new group named "requests"."""
    adapter = CircuitBreakerAdapter()
    with requests.Session() as session:
        session.mount("http://", adapter)
        assert session.get(upstream.url).status_code == 200
    group = adapter.breaker
    assert isinstance(group, CircuitBreakerGroup)
    assert (group.name, list(group)) == ("requests", [upstream.url])
