"""tenacity and stamina around the httpx transport: no retried rejections, waits for the probe."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import stamina
import tenacity

from aiocircuitbreaker import CircuitBreaker, CircuitBreakerGroup, State
from aiocircuitbreaker.httpx import (
    AsyncCircuitBreakerTransport,
    CircuitBreakerTransport,
    CircuitOpenError,
    request_origin,
)
from aiocircuitbreaker.requests import CircuitBreakerAdapter
from aiocircuitbreaker.requests import CircuitOpenError as RequestsCircuitOpenError
from aiocircuitbreaker.retry import (
    is_rejection,
    probe_wait,
    retry_unless_rejected,
    stamina_on,
    wait_for_probe,
)
from aiocircuitbreaker.testing import FakeClock

from .conftest import Upstream

TIMEOUT = 0.05


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cb(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=2, recovery_timeout=30, clock=clock)


@pytest.fixture
def client(cb: CircuitBreaker) -> Iterator[httpx.Client]:
    with httpx.Client(transport=CircuitBreakerTransport(breaker=cb), timeout=TIMEOUT) as c:
        yield c


def test_a_rejection_is_not_retried(client: httpx.Client, refused_url: str) -> None:
    """Two refused attempts open the breaker; the third is rejected and ends the retries."""
    attempts: list[int] = []
    retrying = tenacity.Retrying(
        retry=retry_unless_rejected(),
        stop=tenacity.stop_after_attempt(10),
        sleep=lambda seconds: None,
        before=lambda state: attempts.append(state.attempt_number),
        reraise=True,
    )
    with pytest.raises(CircuitOpenError):
        retrying(client.get, refused_url)
    assert attempts == [1, 2, 3]


def test_other_errors_follow_the_given_strategy(client: httpx.Client, refused_url: str) -> None:
    """What is not a rejection is left to the wrapped strategy (here: never retry)."""
    retrying = tenacity.Retrying(
        retry=retry_unless_rejected(tenacity.retry_if_exception_type(httpx.TimeoutException)),
        stop=tenacity.stop_after_attempt(10),
        reraise=True,
    )
    with pytest.raises(httpx.ConnectError):
        retrying(client.get, refused_url)
    assert retrying.statistics["attempt_number"] == 1


def test_the_wait_lasts_until_the_probe_is_due(
    client: httpx.Client, cb: CircuitBreaker, clock: FakeClock, upstream: Upstream
) -> None:
    """After the attempt that opens the breaker the wait is its open time: the next is the probe."""
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)
        if cb.state is State.HALF_OPEN:
            upstream.reset()  # the upstream recovers while the breaker is open

    upstream.mode = "stall"
    retrying = tenacity.Retrying(
        retry=retry_unless_rejected(),
        wait=wait_for_probe(cb, tenacity.wait_fixed(0.5)),
        stop=tenacity.stop_after_attempt(5),
        sleep=sleep,
    )
    response = retrying(client.get, upstream.url)
    assert response.status_code == 200
    assert waits == [0.5, 30]
    assert cb.state is State.CLOSED


def test_the_wait_is_capped(cb: CircuitBreaker) -> None:
    """A breaker open longer than maximum is waited for maximum seconds only."""
    cb.open()
    wait = wait_for_probe(cb, maximum=10)
    state = retry_state_after(OSError())
    assert wait(state) == 10
    cb.close()
    assert wait(state) == 0


def test_the_wait_finds_the_breaker_of_the_request(clock: FakeClock, refused_url: str) -> None:
    """With a group, a function of the exception finds the request's breaker."""
    group = CircuitBreakerGroup("g", failure_threshold=1, recovery_timeout=7, clock=clock)

    def lookup(exception: BaseException) -> CircuitBreaker | None:
        if isinstance(exception, httpx.RequestError):
            return group.get(request_origin(exception.request))
        return None

    waits: list[float] = []
    transport = CircuitBreakerTransport(breaker=group)
    with httpx.Client(transport=transport, timeout=TIMEOUT) as client:
        retrying = tenacity.Retrying(
            retry=retry_unless_rejected(),
            wait=wait_for_probe(lookup),
            stop=tenacity.stop_after_attempt(2),
            sleep=waits.append,
            reraise=True,
        )
        with pytest.raises(CircuitOpenError):  # (the fake clock did not move: still open)
            retrying(client.get, refused_url)
    assert waits == [7]
    assert probe_wait(lookup, ValueError(), 60) == 0.0


@pytest.mark.asyncio
async def test_async_retrying_waits_for_the_probe(
    cb: CircuitBreaker, clock: FakeClock, upstream: Upstream
) -> None:
    """tenacity's AsyncRetrying takes the same strategies."""
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)
        upstream.reset()

    upstream.fail(503)
    transport = AsyncCircuitBreakerTransport(breaker=cb)
    async with httpx.AsyncClient(transport=transport) as client:

        async def call() -> httpx.Response:
            response = await client.get(upstream.url)
            response.raise_for_status()
            return response

        retrying = tenacity.AsyncRetrying(
            retry=retry_unless_rejected(),
            wait=wait_for_probe(cb),
            stop=tenacity.stop_after_attempt(5),
            sleep=sleep,
        )
        assert (await retrying(call)).status_code == 200
    assert waits == [0.0]  # one 503 did not open the breaker; the second attempt succeeded


def retry_state_after(exception: BaseException) -> tenacity.RetryCallState:
    """Return a tenacity retry state whose last attempt raised ``exception``."""
    state = tenacity.RetryCallState(tenacity.Retrying(), fn=None, args=(), kwargs={})
    state.set_exception((type(exception), exception, None))
    return state


def test_a_successful_outcome_asks_the_other_wait(cb: CircuitBreaker) -> None:
    """After a result (retry on result), the wait is the other strategy's."""
    cb.open()
    state = tenacity.RetryCallState(tenacity.Retrying(), fn=None, args=(), kwargs={})
    state.set_result(None)
    assert wait_for_probe(cb, tenacity.wait_fixed(2))(state) == 2
    assert retry_unless_rejected(tenacity.retry_if_result(lambda r: r is None))(state)


def test_the_stamina_hook_retries_errors_but_not_rejections(
    cb: CircuitBreaker, refused_url: str
) -> None:
    """stamina with the hook: the attempt after the breaker opened is rejected and not retried."""
    hook = stamina_on(httpx.TransportError)
    attempts: list[int] = []

    def call_with_retries(client: httpx.Client) -> None:
        for attempt in stamina.retry_context(on=hook, attempts=10):
            with attempt:
                attempts.append(attempt.num)
                client.get(refused_url)

    with (
        stamina.set_testing(True, attempts=10),
        httpx.Client(transport=CircuitBreakerTransport(breaker=cb)) as client,
        pytest.raises(CircuitOpenError),
    ):
        call_with_retries(client)
    assert attempts == [1, 2, 3]


def test_the_stamina_hook_waits_for_the_probe(upstream: Upstream) -> None:
    """With breaker=, stamina waits the breaker's open time (here 0.1 s, on the real clock)."""
    cb = CircuitBreaker(failure_threshold=1, recovery_timeout=0.1)
    details: list[Any] = []
    stamina.instrumentation.set_on_retry_hooks([details.append])
    upstream.mode = "stall"
    try:
        transport = CircuitBreakerTransport(breaker=cb)
        with httpx.Client(transport=transport, timeout=TIMEOUT) as client:
            for attempt in stamina.retry_context(on=stamina_on(httpx.TimeoutException, cb)):
                with attempt:
                    if attempt.num == 2:
                        upstream.reset()
                    response = client.get(upstream.url)
    finally:
        stamina.instrumentation.set_on_retry_hooks(None)
    assert response.status_code == 200
    assert len(details) == 1
    assert 0 < details[0].wait_for <= 0.1
    assert cb.state is State.CLOSED


def test_the_stamina_hook_without_an_open_breaker_leaves_the_backoff(
    cb: CircuitBreaker,
) -> None:
    """A closed breaker (or another class) leaves stamina's own backoff: True or False."""
    hook = stamina_on((OSError,), cb)
    assert hook(OSError()) is True
    assert hook(ValueError()) is False
    cb.open()
    assert hook(OSError()) == 30
    assert is_rejection(CircuitOpenError.__new__(CircuitOpenError))
    cb.open()
    with requests.Session() as session:
        session.mount("http://", CircuitBreakerAdapter(breaker=cb))
        with pytest.raises(RequestsCircuitOpenError) as caught:
            session.get("http://127.0.0.1:1/")
    assert is_rejection(caught.value)
    assert hook(caught.value) is False
    assert not is_rejection(requests.ConnectionError())


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: stamina_on(ValueError, "cb"), "breaker must be a CircuitBreaker"),
        (lambda: stamina_on("ValueError"), "on must be an exception class"),
        (lambda: stamina_on(()), "on must be an exception class"),
        (lambda: wait_for_probe(42), "breaker must be a CircuitBreaker"),
    ],
)
def test_bad_arguments_are_refused(call: Any, message: str) -> None:
    """Each helper names what it was given and what it takes."""
    with pytest.raises(TypeError, match=message):
        call()


def test_a_bad_maximum_is_refused(cb: CircuitBreaker) -> None:
    """maximum must be finite seconds."""
    with pytest.raises(ValueError, match="maximum must be seconds"):
        wait_for_probe(cb, maximum=-1)
    with pytest.raises(ValueError, match="maximum must be seconds"):
        stamina_on(OSError, maximum=float("nan"))
