"""The grpc.aio interceptors against a real grpc.aio server: status codes, stalls, streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
import pytest_asyncio

from aiocircuitbreaker import CircuitBreaker, CircuitBreakerError, CircuitBreakerGroup, State
from aiocircuitbreaker.grpc import (
    CircuitOpenError,
    RpcFailure,
    circuit_breaker_interceptors,
    method_of,
)
from aiocircuitbreaker.retry import is_rejection
from aiocircuitbreaker.testing import FakeClock

from .conftest import HOST

pytestmark = pytest.mark.asyncio
UNARY, STREAM = "/test.Echo/Unary", "/test.Echo/Stream"


async def eventually(check: Callable[[], bool]) -> None:
    """Wait (up to a second) until ``check()`` is true."""
    for _ in range(200):
        if check():
            return
        await asyncio.sleep(0.005)


@dataclass
class Service:
    """A grpc service answering b"ok", failing with ``code``, or stalling; it counts its hits."""

    target: str = ""
    mode: str = "ok"
    code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
    hits: int = 0

    async def _before(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        self.hits += 1
        while self.mode == "stall":
            await asyncio.sleep(0.005)
        if self.mode == "fail":
            await context.abort(self.code, "down")

    async def unary(self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        await self._before(context)
        return b"ok:" + request

    async def stream(
        self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        await self._before(context)
        for part in (b"a", b"b", b"c"):
            yield part


@pytest_asyncio.fixture
async def service() -> AsyncIterator[Service]:
    """Start a grpc.aio server on a free port of 127.0.0.1 (in the test's loop)."""
    service = Service()
    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        "test.Echo",
        {
            "Unary": grpc.unary_unary_rpc_method_handler(service.unary),
            "Stream": grpc.unary_stream_rpc_method_handler(service.stream),
        },
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(f"{HOST}:0")
    await server.start()
    service.target = f"{HOST}:{port}"
    try:
        yield service
    finally:
        service.mode = "ok"
        await server.stop(None)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cb(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=2, recovery_timeout=30, clock=clock)


@pytest_asyncio.fixture
async def channels() -> AsyncIterator[Any]:
    """Return a factory of channels with the interceptors; close them afterwards."""
    made: list[grpc.aio.Channel] = []

    def channel(address: str, **options: Any) -> grpc.aio.Channel:
        made.append(
            grpc.aio.insecure_channel(address, interceptors=circuit_breaker_interceptors(**options))
        )
        return made[-1]

    yield channel
    for each in made:
        await each.close()


async def unary(channel: grpc.aio.Channel, timeout: float = 5) -> bytes:
    result: bytes = await channel.unary_unary(UNARY)(b"x", timeout=timeout)
    return result


async def stream(channel: grpc.aio.Channel) -> list[bytes]:
    return [part async for part in channel.unary_stream(STREAM)(b"x", timeout=5)]


async def test_a_success_passes_through(
    service: Service, channels: Any, cb: CircuitBreaker
) -> None:
    """An OK RPC returns its response and counts as a success."""
    assert await unary(channels(service.target, breaker=cb)) == b"ok:x"
    assert cb.statistics().total.successes == 1


async def test_failure_codes_open_the_breaker(
    service: Service, channels: Any, cb: CircuitBreaker
) -> None:
    """UNAVAILABLE reaches the caller as AioRpcError, counts, and then RPCs are rejected."""
    channel = channels(service.target, breaker=cb)
    service.mode = "fail"
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await unary(channel)
        assert failed.value.code() is grpc.StatusCode.UNAVAILABLE
    assert cb.state is State.OPEN
    failure = cb.last_failure
    assert isinstance(failure, RpcFailure)
    assert (failure.code, failure.details, failure.key) == (
        grpc.StatusCode.UNAVAILABLE,
        "down",
        UNARY,
    )
    assert str(failure) == f"{UNARY} ended with UNAVAILABLE: down"
    with pytest.raises(CircuitOpenError) as caught:
        await unary(channel)
    assert service.hits == 2
    error = caught.value
    assert isinstance(error, grpc.RpcError)
    assert isinstance(error, CircuitBreakerError)
    assert not isinstance(error, grpc.aio.AioRpcError)
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert error.details() == str(error)
    assert is_rejection(error)


async def test_other_codes_are_successes(
    service: Service, channels: Any, cb: CircuitBreaker
) -> None:
    """An application error such as NOT_FOUND means the dependency answered: a success."""
    channel = channels(service.target, breaker=cb)
    service.mode, service.code = "fail", grpc.StatusCode.NOT_FOUND
    for _ in range(3):
        with pytest.raises(grpc.aio.AioRpcError):
            await unary(channel)
    assert cb.state is State.CLOSED
    assert cb.statistics().total.successes == 3


async def test_a_stall_past_the_deadline_is_a_failure(
    service: Service, channels: Any, cb: CircuitBreaker
) -> None:
    """A server that never answers ends in DEADLINE_EXCEEDED through the call's timeout."""
    channel = channels(service.target, breaker=cb)
    service.mode = "stall"
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await unary(channel, timeout=0.05)
        assert failed.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert cb.state is State.OPEN


async def test_a_refused_connection_is_a_failure(
    refused_url: str, channels: Any, cb: CircuitBreaker
) -> None:
    """A closed port ends the RPC with UNAVAILABLE, and the breaker counts it."""
    channel = channels(refused_url.removeprefix("http://"), breaker=cb)
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError):
            await unary(channel)
    assert cb.state is State.OPEN


async def test_a_cancelled_rpc_is_neutral(
    service: Service, channels: Any, cb: CircuitBreaker
) -> None:
    """An RPC cancelled by its caller counts neither way."""
    channel = channels(service.target, breaker=cb)
    service.mode = "stall"
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(unary(channel), 0.05)
    await eventually(lambda: cb.statistics().total.neutral == 1)
    assert cb.failure_count == 0
    assert cb.statistics().total.neutral == 1


async def test_the_breaker_recovers_with_the_service(
    service: Service, channels: Any, cb: CircuitBreaker, clock: FakeClock
) -> None:
    """Once the service answers again, the probe after the open period closes the breaker."""
    channel = channels(service.target, breaker=cb)
    service.mode = "fail"
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError):
            await unary(channel)
    service.mode = "ok"
    clock.advance(30)
    assert await unary(channel) == b"ok:x"
    assert cb.state is State.CLOSED


async def test_streams_count_by_their_final_status(
    service: Service, channels: Any, cb: CircuitBreaker
) -> None:
    """A stream's outcome is its final status: OK succeeds, UNAVAILABLE fails, then rejected."""
    channel = channels(service.target, breaker=cb)
    assert await stream(channel) == [b"a", b"b", b"c"]
    await eventually(
        lambda: cb.statistics().total.successes == 1
    )  # (a stream's outcome is read once it is done)
    assert cb.statistics().total.successes == 1
    service.mode = "fail"
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError):
            await stream(channel)
    await eventually(lambda: cb.state is State.OPEN)
    assert cb.state is State.OPEN
    with pytest.raises(CircuitOpenError):
        await stream(channel)


async def test_a_refused_stream_is_a_failure(
    refused_url: str, channels: Any, cb: CircuitBreaker
) -> None:
    """A stream to a closed port fails like a unary call."""
    channel = channels(refused_url.removeprefix("http://"), breaker=cb)
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError):
            await stream(channel)
    await eventually(lambda: cb.state is State.OPEN)
    assert cb.state is State.OPEN


async def test_a_group_keeps_one_breaker_per_method(
    service: Service, channels: Any, clock: FakeClock
) -> None:
    """With a group, each method has its own breaker by default."""
    group = CircuitBreakerGroup("g", failure_threshold=1, clock=clock)
    channel = channels(service.target, breaker=group)
    service.mode = "fail"
    with pytest.raises(grpc.aio.AioRpcError):
        await unary(channel)
    service.mode = "ok"
    assert await stream(channel) == [b"a", b"b", b"c"]
    await eventually(lambda: group.get(UNARY).state is State.OPEN)
    assert group.get(UNARY).state is State.OPEN
    assert group.get(STREAM).state is State.CLOSED


async def test_a_group_by_target_shares_one_breaker(
    service: Service, channels: Any, clock: FakeClock
) -> None:
    """With target=, every method of the channel shares the target's breaker."""
    group = CircuitBreakerGroup("g", failure_threshold=1, clock=clock)
    channel = channels(service.target, breaker=group, target=service.target)
    service.mode = "fail"
    with pytest.raises(grpc.aio.AioRpcError):
        await unary(channel)
    with pytest.raises(CircuitOpenError):
        await stream(channel)
    assert list(group) == [service.target]


async def test_failure_codes_are_configurable(
    service: Service, channels: Any, cb: CircuitBreaker
) -> None:
    """Only the codes given count: here INTERNAL does, UNAVAILABLE does not."""
    channel = channels(service.target, breaker=cb, failure_codes={grpc.StatusCode.INTERNAL})
    service.mode = "fail"
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError):
            await unary(channel)
    assert cb.state is State.CLOSED
    service.code = grpc.StatusCode.INTERNAL
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError):
            await unary(channel)
    assert cb.state is State.OPEN


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"failure_codes": "UNAVAILABLE"}, "failure_codes must be a collection"),
        ({"failure_codes": [14]}, "got 14 in it"),
        ({"breaker": 3}, "breaker must be a CircuitBreaker"),
    ],
)
async def test_bad_options_are_refused(options: dict[str, Any], message: str) -> None:
    """Each bad option is refused when the interceptors are made, naming it."""
    options.setdefault("breaker", CircuitBreaker())
    with pytest.raises(TypeError, match=message):
        circuit_breaker_interceptors(**options)


async def test_method_of_reads_bytes_and_str() -> None:
    """The default key is the method as a str, whichever type grpc gives it in."""
    details = grpc.aio.ClientCallDetails(b"/a.B/C", None, None, None, None)
    assert method_of(details) == "/a.B/C"
    assert method_of(details._replace(method="/a.B/C")) == "/a.B/C"


async def test_an_error_before_the_rpc_is_reported(service: Service, cb: CircuitBreaker) -> None:
    """An error raised on the way to the RPC (a closed channel) is judged by the breaker."""
    for method in (unary, stream):
        channel = grpc.aio.insecure_channel(
            service.target, interceptors=circuit_breaker_interceptors(breaker=cb)
        )
        await channel.close()
        with pytest.raises(grpc.aio.UsageError):
            await method(channel)
    assert cb.statistics().total.failures == 2
    assert service.hits == 0


async def test_a_cancelled_stream_is_neutral(
    service: Service, channels: Any, cb: CircuitBreaker
) -> None:
    """A stream its caller cancels ends CANCELLED, which counts neither way."""
    channel = channels(service.target, breaker=cb)
    service.mode = "stall"
    call = channel.unary_stream(STREAM)(b"x", timeout=5)
    await eventually(lambda: service.hits == 1)  # the RPC has reached the server
    call.cancel()
    await eventually(lambda: cb.statistics().total.neutral == 1)
    assert cb.statistics().total.neutral == 1
    assert cb.failure_count == 0


async def test_the_default_is_a_group_per_method(service: Service) -> None:
    """Without breaker=, each method gets a breaker of a new group named "grpc"."""
    interceptors = circuit_breaker_interceptors()
    async with grpc.aio.insecure_channel(service.target, interceptors=interceptors) as channel:
        assert await unary(channel) == b"ok:x"
    group = interceptors[0].breaker
    assert group is interceptors[1].breaker
    assert isinstance(group, CircuitBreakerGroup)
    assert (group.name, list(group)) == ("grpc", [UNARY])


async def test_a_bad_target_is_refused() -> None:
    """target= must be the channel's target string."""
    with pytest.raises(TypeError, match="target must be the channel's target"):
        circuit_breaker_interceptors(target=50051)  # type: ignore[arg-type]
