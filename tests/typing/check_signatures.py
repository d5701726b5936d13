"""Static checks of the public signatures, run by ``mypy --strict`` (never collected by pytest).

Each ``assert_type`` pins the type a checker infers. Each line ending in ``# type: ignore[code]``
is a misuse that must be a type error: under ``--strict``, ``warn_unused_ignores`` reports the
comment if the line type-checks, so these lines prove the errors are caught.

Nothing here is meant to run; the checks live in functions that are never called.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from datetime import datetime
from typing import Any, Literal

from aiocircuitbreaker import (
    CallCounts,
    CallFailed,
    CallSucceeded,
    CircuitBreaker,
    CircuitBreakerError,
    CircuitBreakerGroup,
    CircuitBreakerMonitor,
    Event,
    Outcome,
    State,
    StateChanged,
    Statistics,
    Ticket,
    circuit,
)
from aiocircuitbreaker.testing import FakeClock, force_state, passthrough, use_clock
from aiocircuitbreaker.typing import Guarded

if sys.version_info >= (3, 11):
    from typing import assert_type
else:  # mypy checks this file as Python 3.10 (pyproject), with its bundled stubs
    from typing_extensions import assert_type


class MyBreaker(CircuitBreaker):
    """A subclass, to check that ``cls=`` and instance decorators keep its type."""

    FAILURE_THRESHOLD = 10

    def extra(self) -> int:
        """A method only the subclass has."""
        return 1


def cached(*args: object, **kwargs: object) -> bytes:
    """A fallback (synchronous)."""
    return b""


@circuit
def sync_fetch(url: str, *, retries: int = 3) -> bytes:
    """A synchronous function, bare-decorated."""
    return b""


@CircuitBreaker(3)
def sync_numbers(count: int) -> Iterator[int]:
    """A synchronous generator function."""
    yield from range(count)


# -- decorated functions -----------------------------------------------------------------------


@circuit
async def bare(url: str, *, retries: int = 3) -> bytes:
    """Bare ``@circuit``."""
    return b""


@circuit()
async def called_empty(url: str, *, retries: int = 3) -> bytes:
    """``@circuit()`` with no options."""
    return b""


@circuit(5, 30, OSError, "name")
async def positional(url: str, *, retries: int = 3) -> bytes:
    """``@circuit(...)`` with 2.0.0's positional options."""
    return b""


@circuit(
    failure_threshold=5,
    recovery_timeout=2.5,
    expected_exception=[ConnectionError, TimeoutError],
    name="keywords",
    fallback_function=cached,
    clock=FakeClock(),
)
async def keywords(url: str, *, retries: int = 3) -> bytes:
    """``@circuit(...)`` with keyword options (an iterable of exception classes)."""
    return b""


@circuit(expected_exception=lambda exc_type, exc: issubclass(exc_type, OSError))
async def predicate(url: str, *, retries: int = 3) -> bytes:
    """``@circuit(...)`` with a predicate as ``expected_exception``."""
    return b""


@circuit(cls=MyBreaker, recovery_timeout=120)
async def subclassed(url: str, *, retries: int = 3) -> bytes:
    """``@circuit(cls=...)``."""
    return b""


@CircuitBreaker(failure_threshold=3, name="instance")
async def instance(url: str, *, retries: int = 3) -> bytes:
    """An instance as the decorator."""
    return b""


@MyBreaker()
async def subclass_instance(url: str, *, retries: int = 3) -> bytes:
    """A subclass instance as the decorator."""
    return b""


@circuit
async def numbers(count: int) -> AsyncIterator[int]:
    """An async generator function."""
    for number in range(count):
        yield number


@CircuitBreaker()
async def words(count: int) -> AsyncIterator[str]:
    """An async generator function under an instance decorator."""
    for _ in range(count):
        yield "word"


class Service:
    """Decorated methods keep ``self`` bound and the rest of their signature."""

    @circuit
    async def get(self, key: str) -> int:
        """A bare-decorated method."""
        return 0

    @circuit(3, 10)
    async def stream(self, key: str) -> AsyncIterator[bytes]:
        """A decorated async generator method."""
        yield b""


async def fetch(url: str, *, retries: int = 3) -> bytes:
    """Undecorated, for ``call()`` and for decorating by hand."""
    return b""


FetchSignature = Callable[[str], Coroutine[Any, Any, bytes]]


# -- checks ------------------------------------------------------------------------------------


async def decorated_functions_keep_their_signature() -> None:
    """Every decorator form keeps parameters and return type (ParamSpec)."""
    for function in (
        bare,
        called_empty,
        positional,
        keywords,
        predicate,
        subclassed,
        instance,
        subclass_instance,
    ):
        assert_type(await function("https://example.org"), bytes)
        assert_type(await function("https://example.org", retries=1), bytes)
        as_callable: FetchSignature = function
        del as_callable

    coroutine: Coroutine[Any, Any, bytes] = positional("x", retries=2)
    coroutine.close()


async def decorated_misuses_are_errors() -> None:
    """Wrong arguments to decorated functions are caught."""
    await bare(1)  # type: ignore[arg-type]
    await bare()  # type: ignore[call-arg]
    await bare("x", 3)  # type: ignore[call-arg]
    await bare("x", retries="3")  # type: ignore[arg-type]
    await bare("x", timeout=3)  # type: ignore[call-arg]
    await positional(b"x")  # type: ignore[arg-type]
    await subclassed("x", retry=1)  # type: ignore[call-arg]
    await instance(None)  # type: ignore[arg-type]
    wrong: Callable[[int], Coroutine[Any, Any, bytes]] = bare  # type: ignore[assignment]
    del wrong
    result: str = await keywords("x")  # type: ignore[assignment]
    del result


async def async_generators_keep_their_item_type() -> None:
    """A decorated async generator function still returns an ``AsyncIterator`` of its items."""
    assert_type(numbers(3), AsyncIterator[int])
    assert_type(words(3), AsyncIterator[str])
    async for number in numbers(3):
        assert_type(number, int)
    async for word in words(2):
        assert_type(word, str)
    numbers("3")  # type: ignore[arg-type]
    await numbers(3)  # type: ignore[misc]


async def methods_keep_their_signature() -> None:
    """Decorated methods bind ``self``."""
    service = Service()
    assert_type(await service.get("k"), int)
    assert_type(service.stream("k"), AsyncIterator[bytes])
    await service.get(1)  # type: ignore[arg-type]
    await service.get()  # type: ignore[call-arg]


async def circuit_returns_the_breaker_class() -> None:
    """``circuit(...)`` returns the breaker it builds, typed as ``cls`` when given."""
    assert_type(circuit(), CircuitBreaker)
    assert_type(circuit(5, 30, OSError, "name"), CircuitBreaker)
    assert_type(circuit(cls=MyBreaker), MyBreaker)
    assert_type(circuit(3, cls=MyBreaker, clock=FakeClock()).extra(), int)
    assert_type(MyBreaker(), MyBreaker)
    circuit("5")  # type: ignore[call-overload]
    circuit(5, "30")  # type: ignore[call-overload]
    circuit(expected_exception="OSError")  # type: ignore[arg-type]
    circuit(cls=int)  # type: ignore[type-var]
    circuit(5, clock=1.0)  # type: ignore[call-overload]
    CircuitBreaker()(42)  # type: ignore[arg-type]
    CircuitBreaker("5")  # type: ignore[arg-type]
    CircuitBreaker(5, 30, OSError, "name", cached, FakeClock())  # type: ignore[call-arg]


async def call_keeps_the_signature() -> None:
    """``breaker.call(func, *args, **kwargs)`` checks the arguments: an awaitable of R for an
    async ``func``, R itself for a sync one."""
    breaker = CircuitBreaker(clock=FakeClock())
    assert_type(breaker.call(fetch, "x"), Awaitable[bytes])
    assert_type(await breaker.call(fetch, "x", retries=2), bytes)
    assert_type(breaker.call(cached, "x"), bytes)
    assert_type(breaker.call(len, "abc"), int)
    breaker.call(fetch, 1)  # type: ignore[call-overload]
    breaker.call(fetch)  # type: ignore[call-overload]
    breaker.call(fetch, "x", retries="2")  # type: ignore[arg-type]
    breaker.call(fetch, "x", timeout=2)  # type: ignore[call-arg]
    await breaker.call(cached, "x")  # type: ignore[misc]
    assert_type(await breaker.call_async(fetch, "x"), bytes)
    assert_type(breaker.call_generator(sync_numbers, 3), Iterator[int])
    assert_type(breaker.call_async_generator(numbers, 3), AsyncIterator[int])
    assert_type(breaker.is_failure(OSError, OSError()), bool)

    guarded = breaker(fetch)
    assert_type(await guarded("x", retries=1), bytes)
    await guarded(1)  # type: ignore[arg-type]


def sync_callables_keep_their_signature() -> None:
    """Decorated sync functions and generators return what the original returns."""
    assert_type(sync_fetch("x"), bytes)
    assert_type(sync_fetch("x", retries=1), bytes)
    assert_type(sync_numbers(2), Iterator[int])
    sync_fetch(1)  # type: ignore[arg-type]
    sync_numbers("2")  # type: ignore[arg-type]


def the_breaker_of_a_decorated_callable() -> None:
    """``fn.circuit_breaker`` is typed, for functions and for methods through instances."""
    assert_type(bare.circuit_breaker, CircuitBreaker)
    assert_type(sync_fetch.circuit_breaker, CircuitBreaker)
    assert_type(Service().get.circuit_breaker, CircuitBreaker)
    assert_type(Service.get.circuit_breaker, CircuitBreaker)
    guarded: Guarded[[str], Coroutine[Any, Any, bytes]] = CircuitBreaker()(fetch)
    del guarded
    bare.circuit_breaker = CircuitBreaker()  # type: ignore[misc]


def tickets_by_hand(breaker: CircuitBreaker) -> None:
    """``admit()`` gives a ticket; ``finish()`` takes it and returns the outcome."""
    ticket = breaker.admit()
    assert_type(ticket, Ticket)
    assert_type(breaker.finish(ticket, ConnectionError()), Outcome)
    assert_type(ticket.finish(result=b""), Outcome)
    assert_type(breaker.finish(ticket, outcome=Outcome.FAILURE), Outcome)
    breaker.finish(ticket, outcome="failure")  # type: ignore[arg-type]
    breaker.finish("ticket")  # type: ignore[arg-type]


async def context_managers() -> None:
    """``with`` and ``async with`` give the breaker itself."""
    breaker = CircuitBreaker()
    with breaker as entered:
        assert_type(entered, CircuitBreaker)
    async with breaker as async_entered:
        assert_type(async_entered, CircuitBreaker)


def state_and_properties() -> None:
    """``State`` members and the breaker's read-only properties."""
    assert_type(State.CLOSED, Literal[State.CLOSED])
    assert_type(State.OPEN, Literal[State.OPEN])
    assert_type(State.HALF_OPEN, Literal[State.HALF_OPEN])
    closed: State = State.CLOSED
    as_string: str = State.OPEN  # State is a str enum
    del closed, as_string
    assert_type(State.HALF_OPEN.value, Literal["half_open"])

    breaker = CircuitBreaker()
    assert_type(breaker.state, State)
    value: str = breaker.state.value
    del value
    assert_type(breaker.closed, bool)
    assert_type(breaker.opened, bool)
    assert_type(breaker.half_open, bool)
    assert_type(breaker.failure_count, int)
    assert_type(breaker.failure_threshold, int)
    assert_type(breaker.recovery_timeout, float)
    assert_type(breaker.open_remaining, float)
    assert_type(breaker.open_until, datetime)
    assert_type(breaker.last_failure, BaseException | None)
    assert_type(breaker.name, str | None)
    assert_type(breaker.fallback_function, Callable[..., Any] | None)
    assert_type(breaker.reset(), None)
    breaker.failure_count = 0  # type: ignore[misc]
    breaker.state = State.OPEN  # type: ignore[misc]


def error_attributes(error: CircuitBreakerError) -> None:
    """``CircuitBreakerError`` attributes, as captured at the rejection."""
    assert_type(error.circuit_breaker, CircuitBreaker | None)
    assert_type(error.name, str | None)
    assert_type(error.failure_count, int)
    assert_type(error.open_remaining, float)
    assert_type(error.open_until, datetime)
    assert_type(error.last_failure, BaseException | None)
    assert_type(str(error), str)
    assert_type(CircuitBreakerError(CircuitBreaker()), CircuitBreakerError)
    CircuitBreakerError()  # type: ignore[call-arg]
    CircuitBreakerError("not a breaker")  # type: ignore[arg-type]
    error.open_until = datetime.now()  # type: ignore[misc]


async def decorate_and_enter() -> None:
    """decorate() keeps the signature like breaker(fn); entering yields the subclass."""
    assert_type(await CircuitBreaker().decorate(fetch)("x"), bytes)
    with MyBreaker() as entered:
        assert_type(entered, MyBreaker)
    async with MyBreaker() as entered_async:
        assert_type(entered_async, MyBreaker)


def observability(breaker: CircuitBreaker) -> None:
    """Listeners, statistics and manual control."""

    def on_event(event: Event) -> None:
        if isinstance(event, StateChanged):
            assert_type(event.new_state, State)
            assert_type(event.exception, BaseException | None)
        elif isinstance(event, CallFailed):
            assert_type(event.duration, float)
        assert_type(event.name, str | None)
        assert_type(event.breaker, CircuitBreaker)

    async def on_event_async(event: Event) -> None:
        del event

    breaker.add_listener(on_event)
    breaker.add_listener(on_event_async, StateChanged, CallSucceeded)
    breaker.remove_listener(on_event)
    breaker.add_listener(on_event, "StateChanged")  # type: ignore[arg-type]
    CircuitBreakerMonitor.add_listener(on_event)
    CircuitBreakerMonitor.remove_listener(on_event)
    assert_type(CircuitBreaker(listeners=[on_event]), CircuitBreaker)
    assert_type(circuit(listeners=[on_event]), CircuitBreaker)
    stats = breaker.statistics()
    assert_type(stats, Statistics)
    assert_type(stats.total, CallCounts)
    assert_type(stats.total.calls, int)
    assert_type(stats.failure_rate, float | None)
    assert_type(stats.state, State)
    stats.total = CallCounts()  # type: ignore[misc]
    assert_type(CircuitBreakerMonitor.statistics("payments.*"), list[Statistics])
    assert_type(CircuitBreakerMonitor.force_open_all(lambda b: b.name == "x"), list[CircuitBreaker])
    for control in (breaker.open, breaker.close, breaker.reset, breaker.force_open):
        assert_type(control(), None)
    assert_type(breaker.disable(), None)
    assert_type(breaker.metrics_only(), None)
    with force_state(State.OPEN, breaker) as forced:
        assert_type(forced, list[CircuitBreaker])
    with force_state("closed"), passthrough(), use_clock(FakeClock(), breaker):
        pass


def groups() -> None:
    """Per-key breakers: the group, its breakers, its decorated functions."""
    group = CircuitBreakerGroup[str]("hosts", max_keys=10, failure_threshold=3)
    assert_type(group.breaker("a"), CircuitBreaker)
    assert_type(group.get("a"), CircuitBreaker | None)
    assert_type(group.statistics(), dict[str, Statistics])
    assert_type(circuit(key=lambda host: host), CircuitBreakerGroup[Any])

    def fetch(host: str, path: str) -> bytes:
        return b""

    guarded = CircuitBreakerGroup[str]("fetch", key=lambda host, path: host)(fetch)
    assert_type(guarded("h", "/"), bytes)
    guarded(1, "/")  # type: ignore[arg-type]
    CircuitBreakerGroup("bad", max_keys="10")  # type: ignore[arg-type]


# -- known gaps --------------------------------------------------------------------------------
# Correct, documented usages that the annotations do not describe precisely (reported). Each line
# pins today's behaviour, so that fixing the annotation makes mypy point here: then replace the
# line with the precise check in the comment.


async def known_gaps() -> None:
    """Where the types are looser than the runtime."""
    # cls passed positionally (after fallback_function) builds a MyBreaker, typed CircuitBreaker.
    assert_type(circuit(5, 30, OSError, "name", None, MyBreaker), CircuitBreaker)
