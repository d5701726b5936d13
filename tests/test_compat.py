"""The 2.x behaviours that the suites of circuitbreaker 2.1.3 and aiocircuitbreaker 2.0.0 rely on.

Those suites run against this package too (``tests/compat/run_circuitbreaker_suite.py`` runs
circuitbreaker's); the tests here state the same contract in this project's own terms, on a fake
clock: sync and async functions and generators, the ``call*()`` methods, ``is_failure()``, the
state names, the monitor, ``circuit(cls=...)``, configuration errors, the 2.x attribute names
and an overridden ``opened``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, ClassVar
from unittest import mock
from unittest.mock import AsyncMock, Mock

import pytest

import aiocircuitbreaker
from aiocircuitbreaker import (
    STATE_CLOSED,
    STATE_HALF_OPEN,
    STATE_OPEN,
    CallRejected,
    CircuitBreaker,
    CircuitBreakerError,
    CircuitBreakerMonitor,
    State,
    _registry,
    circuit,
)
from aiocircuitbreaker.testing import FakeClock

from .conftest import DependencyDown, make

pytestmark = pytest.mark.asyncio

KINDS = ("sync function", "sync generator", "async function", "async generator")
CHECKS = (inspect.isgeneratorfunction, inspect.iscoroutinefunction, inspect.isasyncgenfunction)
# What each kind answers to CHECKS, in that order.
NATURE = {
    "sync function": [False, False, False],
    "sync generator": [True, False, False],
    "async function": [False, True, False],
    "async generator": [False, False, True],
}


class Dependency:
    """A stand-in service: answers with its reply unless told to fail, and records its calls."""

    def __init__(self, reply: str = "pong") -> None:
        self.reply = reply
        self.failing = False
        self.calls: list[tuple[tuple[object, ...], dict[str, object]]] = []

    def __call__(self, *args: object, **kwargs: object) -> str:
        self.calls.append((args, kwargs))
        if self.failing:
            raise DependencyDown(self.reply)
        return self.reply


def of_kind(kind: str, body: Callable[..., str]) -> Callable[..., Any]:
    """Return a function of ``kind`` passing its arguments to ``body`` (generators yield once)."""

    def sync_function(*args: object, **kwargs: object) -> str:
        return body(*args, **kwargs)

    def sync_generator(*args: object, **kwargs: object) -> Iterator[str]:
        yield body(*args, **kwargs)

    async def async_function(*args: object, **kwargs: object) -> str:
        return body(*args, **kwargs)

    async def async_generator(*args: object, **kwargs: object) -> AsyncIterator[str]:
        yield body(*args, **kwargs)

    functions: dict[str, Callable[..., Any]] = {
        "sync function": sync_function,
        "sync generator": sync_generator,
        "async function": async_function,
        "async generator": async_generator,
    }
    return functions[kind]


def answer(kind: str, reply: str) -> object:
    """Return what draining a call of ``kind`` gives when the body returns ``reply``."""
    return [reply] if kind.endswith("generator") else reply


async def drain(result: object) -> object:
    """Return the outcome of a call: awaited if awaitable, listed if an iterator."""
    if inspect.isawaitable(result):
        return await result
    if isinstance(result, AsyncIterator):
        return [item async for item in result]
    if isinstance(result, Iterator):
        return list(result)
    return result


def call_method(breaker: CircuitBreaker, kind: str) -> Callable[..., Any]:
    """Return the 2.x ``call*()`` method of ``breaker`` for functions of ``kind``."""
    methods: dict[str, Callable[..., Any]] = {
        "sync function": breaker.call,
        "sync generator": breaker.call_generator,
        "async function": breaker.call_async,
        "async generator": breaker.call_async_generator,
    }
    return methods[kind]


# -- functions and generators, sync and async ---------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_wrapper_has_the_kind_of_the_original(kind: str) -> None:
    """Decorating keeps what inspect says of a function: plain, generator, coroutine, async gen."""
    original = of_kind(kind, Dependency())
    wrapper = CircuitBreaker(name="compat-kind")(original)
    assert [check(original) for check in CHECKS] == NATURE[kind]
    assert [check(wrapper) for check in CHECKS] == NATURE[kind]


@pytest.mark.parametrize("kind", KINDS)
async def test_each_kind_trips_rejects_and_recovers(kind: str, clock: FakeClock) -> None:
    """Each kind passes results on, opens at the threshold, rejects unrun, and closes on a probe."""
    dependency = Dependency()
    breaker = make(clock, failure_threshold=2, recovery_timeout=10)
    guarded = breaker(of_kind(kind, dependency))
    assert await drain(guarded()) == answer(kind, "pong")

    dependency.failing = True
    for count in (1, 2):
        with pytest.raises(DependencyDown):
            await drain(guarded())
        assert breaker.failure_count == count
    assert breaker.state == STATE_OPEN
    assert 0 < breaker.open_remaining <= 10
    with pytest.raises(CircuitBreakerError):
        await drain(guarded())
    assert len(dependency.calls) == 3

    clock.advance(10)
    assert breaker.state == STATE_HALF_OPEN
    assert breaker.open_remaining <= 0
    dependency.failing = False
    assert await drain(guarded()) == answer(kind, "pong")
    assert breaker.state == STATE_CLOSED
    assert breaker.failure_count == 0


@pytest.mark.parametrize("kind", KINDS)
async def test_failed_probe_opens_again_and_counts(kind: str, clock: FakeClock) -> None:
    """A failed probe opens the breaker for another recovery timeout, with one more failure."""
    dependency = Dependency()
    dependency.failing = True
    breaker = make(clock, failure_threshold=1, recovery_timeout=5)
    guarded = breaker(of_kind(kind, dependency))
    with pytest.raises(DependencyDown):
        await drain(guarded())
    clock.advance(5)
    with pytest.raises(DependencyDown):
        await drain(guarded())
    assert breaker.opened
    assert breaker.failure_count == 2
    assert breaker.open_remaining == 5
    with pytest.raises(CircuitBreakerError):
        await drain(guarded())


@pytest.mark.parametrize("kind", KINDS)
async def test_last_failure_lasts_until_a_success(kind: str, clock: FakeClock) -> None:
    """last_failure holds the exception of the last failure, and a success clears it."""
    dependency = Dependency()
    breaker = make(clock)
    guarded = breaker(of_kind(kind, dependency))
    dependency.failing = True
    with pytest.raises(DependencyDown) as raised:
        await drain(guarded())
    assert breaker.last_failure is raised.value
    dependency.failing = False
    await drain(guarded())
    assert breaker.last_failure is None


@pytest.mark.parametrize("kind", KINDS)
async def test_fallback_of_the_same_kind_gets_the_arguments(kind: str, clock: FakeClock) -> None:
    """A rejected call of each kind is answered by its fallback, given the call's arguments."""
    dependency = Dependency()
    fallback = Dependency("from fallback")
    breaker = make(clock, failure_threshold=1, fallback_function=of_kind(kind, fallback))
    guarded = breaker(of_kind(kind, dependency))
    dependency.failing = True
    with pytest.raises(DependencyDown):
        await drain(guarded())
    assert await drain(guarded("id-7", retry=False)) == answer(kind, "from fallback")
    assert fallback.calls == [(("id-7",), {"retry": False})]
    assert len(dependency.calls) == 1


# -- call(), call_async(), call_generator(), call_async_generator() -----------------------------


async def test_call_runs_a_sync_function_at_once(clock: FakeClock) -> None:
    """call() runs a plain function now, returns its result and counts its failure at once."""
    breaker = make(clock)
    dependency = Dependency()
    assert breaker.call(dependency, 1, two=2) == "pong"
    assert dependency.calls == [((1,), {"two": 2})]
    dependency.failing = True
    with pytest.raises(DependencyDown):
        breaker.call(dependency)
    assert breaker.failure_count == 1


async def test_call_returns_an_awaitable_for_an_async_function(clock: FakeClock) -> None:
    """call() on an async function gives an awaitable, and the outcome counts once it is awaited."""
    breaker = make(clock)
    dependency = Dependency()
    fetch = of_kind("async function", dependency)
    pending = breaker.call(fetch, "x")
    assert inspect.isawaitable(pending)
    assert await pending == "pong"
    dependency.failing = True
    pending = breaker.call(fetch)
    assert breaker.failure_count == 0
    with pytest.raises(DependencyDown):
        await pending
    assert breaker.failure_count == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_call_methods_guard_their_kind(kind: str, clock: FakeClock) -> None:
    """call, call_generator, call_async and call_async_generator count failures and get rejected."""
    dependency = Dependency()
    breaker = make(clock, failure_threshold=1)
    run = call_method(breaker, kind)
    function = of_kind(kind, dependency)
    assert await drain(run(function, "a", b="c")) == answer(kind, "pong")
    assert dependency.calls == [(("a",), {"b": "c"})]
    dependency.failing = True
    with pytest.raises(DependencyDown):
        await drain(run(function))
    assert breaker.opened
    with pytest.raises(CircuitBreakerError):
        await drain(run(function))
    assert len(dependency.calls) == 2


# -- what counts as a failure -------------------------------------------------------------------


class Refused(Exception):
    """A failure carrying a status code."""

    def __init__(self, code: int = 0) -> None:
        super().__init__(code)
        self.code = code


class HardRefused(Refused):
    """A subclass of Refused."""


class Throttled(Exception):
    """Another failure, unrelated to Refused."""


def is_unavailable(exc_type: type[BaseException], exc_value: BaseException | None) -> bool:
    """A predicate in the 2.x form: a Refused with code 503."""
    return issubclass(exc_type, Refused) and getattr(exc_value, "code", None) == 503


async def test_is_failure_with_the_default() -> None:
    """By default every Exception is a failure."""
    breaker = circuit()
    assert breaker.is_failure(Exception, Exception())
    assert breaker.is_failure(Refused, Refused())
    assert breaker.is_failure(KeyError, None)
    assert not breaker.is_failure(asyncio.CancelledError, asyncio.CancelledError())
    assert not breaker.is_failure(KeyboardInterrupt, None)


async def test_is_failure_with_a_class() -> None:
    """With one class, it and its subclasses are failures, and nothing else is."""
    breaker = circuit(expected_exception=Refused)
    assert breaker.is_failure(Refused, Refused())
    assert breaker.is_failure(HardRefused, None)
    assert not breaker.is_failure(Exception, Exception())
    assert not breaker.is_failure(Throttled, Throttled())


async def test_is_failure_with_a_tuple() -> None:
    """With a tuple of classes, any of them (or a subclass) is a failure."""
    breaker = circuit(expected_exception=(Refused, Throttled))
    assert breaker.is_failure(HardRefused, HardRefused())
    assert breaker.is_failure(Throttled, None)
    assert not breaker.is_failure(KeyError, KeyError())


async def test_is_failure_with_a_predicate(clock: FakeClock) -> None:
    """A predicate gets the exception's type and value, and only what it accepts is counted."""
    breaker = make(clock, expected_exception=is_unavailable)
    assert breaker.is_failure(Refused, Refused(503))
    assert not breaker.is_failure(Refused, Refused(404))
    assert not breaker.is_failure(Throttled, Throttled())

    @breaker
    def fetch(code: int) -> None:
        raise Refused(code)

    with pytest.raises(Refused):
        fetch(404)
    assert breaker.failure_count == 0
    with pytest.raises(Refused):
        fetch(503)
    assert breaker.failure_count == 1


class RefusedBreaker(CircuitBreaker):
    EXPECTED_EXCEPTION = Refused


class RefusedOrThrottledBreaker(CircuitBreaker):
    EXPECTED_EXCEPTION = (Refused, Throttled)


class UnavailableBreaker(CircuitBreaker):
    EXPECTED_EXCEPTION = is_unavailable


@pytest.mark.parametrize("cls", [RefusedBreaker, RefusedOrThrottledBreaker, UnavailableBreaker])
async def test_subclass_expected_exception(cls: type[CircuitBreaker]) -> None:
    """EXPECTED_EXCEPTION on a subclass (class, tuple or plain function) decides is_failure."""
    for breaker in (circuit(cls=cls), cls()):
        assert type(breaker) is cls
        assert breaker.is_failure(HardRefused, HardRefused(503))
        assert not breaker.is_failure(Exception, Exception())
        assert breaker.is_failure(Throttled, Throttled()) is (cls is RefusedOrThrottledBreaker)
        assert breaker.is_failure(Refused, Refused(404)) is (cls is not UnavailableBreaker)


# -- names, state names, the monitor ------------------------------------------------------------


async def test_state_names_of_2x(clock: FakeClock) -> None:
    """STATE_CLOSED, STATE_OPEN and STATE_HALF_OPEN are State members equal to 2.x's strings."""
    assert (STATE_CLOSED, STATE_OPEN, STATE_HALF_OPEN) == ("closed", "open", "half_open")
    assert STATE_CLOSED is State.CLOSED
    assert STATE_OPEN is State.OPEN
    assert STATE_HALF_OPEN is State.HALF_OPEN
    breaker = make(clock, failure_threshold=1, recovery_timeout=3)
    states = [breaker.state]
    with pytest.raises(DependencyDown), breaker:
        raise DependencyDown
    states.append(breaker.state)
    clock.advance(3)
    states.append(breaker.state)
    assert states == [STATE_CLOSED, STATE_OPEN, STATE_HALF_OPEN]
    assert states == ["closed", "open", "half_open"]


async def test_str_is_the_name() -> None:
    """str() of a breaker is its name, or 'unnamed_CircuitBreaker' while it has none."""
    assert str(CircuitBreaker(name="billing")) == "billing"
    unnamed = CircuitBreaker()
    assert str(unnamed) == "unnamed_CircuitBreaker"

    def lookup() -> None:
        pass  # pragma: no cover

    unnamed(lookup)
    assert str(unnamed) == lookup.__qualname__


async def test_assigning_an_empty_dict_empties_the_monitor(monkeypatch: pytest.MonkeyPatch) -> None:
    """CircuitBreakerMonitor.circuit_breakers = {} forgets every breaker; new ones register."""
    monkeypatch.setattr(_registry, "_refs", [])  # only this test's breakers
    first = CircuitBreaker(name="compat-first")

    @circuit(name="compat-second")
    def second() -> None:
        pass  # pragma: no cover

    assert CircuitBreakerMonitor.circuit_breakers == {
        "compat-first": first,
        "compat-second": second.circuit_breaker,
    }
    CircuitBreakerMonitor.circuit_breakers = {}
    assert CircuitBreakerMonitor.circuit_breakers == {}
    assert list(CircuitBreakerMonitor.get_circuits()) == []
    assert CircuitBreakerMonitor.get("compat-first") is None
    assert CircuitBreakerMonitor.all_closed()
    assert first.name == "compat-first"
    later = CircuitBreaker(name="compat-later")
    assert list(CircuitBreakerMonitor.get_circuits()) == [later]
    assert CircuitBreakerMonitor.get("compat-later") is later


# -- circuit(cls=...) and the constructor -------------------------------------------------------


class TwoXBreaker(CircuitBreaker):
    """A subclass written for 2.x: its __init__ takes exactly the five 2.x options."""

    def __init__(
        self,
        failure_threshold: int | None = None,
        recovery_timeout: float | None = None,
        expected_exception: Any = None,
        name: str | None = None,
        fallback_function: Callable[..., Any] | None = None,
    ) -> None:
        super().__init__(
            failure_threshold, recovery_timeout, expected_exception, name, fallback_function
        )
        self.received: tuple[object, ...] = (
            failure_threshold,
            recovery_timeout,
            expected_exception,
            name,
            fallback_function,
        )


def _spare() -> str:
    return "spare"


async def test_cls_with_the_five_options_of_2x() -> None:
    """circuit(cls=...) works with a subclass whose __init__ takes only the five 2.x options."""
    plain = circuit(cls=TwoXBreaker)
    assert type(plain) is TwoXBreaker
    assert plain.received == (None, None, None, None, None)
    assert (plain.failure_threshold, plain.recovery_timeout) == (5, 30)

    given = circuit(3, 7, KeyError, "compat-two-x", _spare, TwoXBreaker)
    assert isinstance(given, TwoXBreaker)
    assert given.received == (3, 7, KeyError, "compat-two-x", _spare)
    assert given.expected_exception == (KeyError,)

    def ping() -> str:
        return "pong"

    # (circuit's overloads have no bare form with cls=: the call is right, the typing is missing)
    bare = circuit(ping, cls=TwoXBreaker)  # type: ignore[call-overload]
    assert bare() == "pong"
    breaker = bare.circuit_breaker
    assert isinstance(breaker, TwoXBreaker)
    assert breaker.received == (None, None, None, None, None)
    assert breaker.name == ping.__qualname__


async def test_circuit_calls_init_with_exactly_the_five_keywords() -> None:
    """circuit(10, 20, KeyError, 'n', fb) calls __init__ with those five keywords and no others."""
    with mock.patch.object(CircuitBreaker, "__init__", autospec=True, return_value=None) as init:
        made = circuit(10, 20, KeyError, "n", _spare)
    assert init.call_count == 1
    assert init.call_args.args == (made,)
    assert init.call_args.kwargs == {
        "failure_threshold": 10,
        "recovery_timeout": 20,
        "expected_exception": KeyError,
        "name": "n",
        "fallback_function": _spare,
    }


async def test_user_attributes_stay_on_the_breaker(clock: FakeClock) -> None:
    """Attributes that user code sets on a breaker are kept and do not change how it behaves."""
    breaker = make(clock, failure_threshold=1)
    breaker.owner = "payments"  # type: ignore[attr-defined]
    breaker.failures_seen = []  # type: ignore[attr-defined]
    assert breaker.owner == "payments"  # type: ignore[attr-defined]
    with pytest.raises(DependencyDown), breaker:
        raise DependencyDown
    assert breaker.opened
    assert breaker.failures_seen == []  # type: ignore[attr-defined]
    del breaker.owner  # type: ignore[attr-defined]
    assert not hasattr(breaker, "owner")
    assert TwoXBreaker(name="compat-attrs").received[3] == "compat-attrs"


class Widget:
    """A class that is not an exception class."""


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("KeyError", "cannot be a string"),
        (b"KeyError", "cannot be a string"),
        (Widget, "does not look like a predicate"),
        (42, "does not look like a predicate"),
    ],
    ids=["str", "bytes", "non-exception class", "non-callable"],
)
async def test_bad_expected_exception_is_both_type_and_value_error(
    value: object, message: str
) -> None:
    """A bad expected_exception raises an error that is both a TypeError and a ValueError."""
    for make_breaker in (
        lambda: CircuitBreaker(expected_exception=value),  # type: ignore[arg-type]
        lambda: circuit(10, 20, value),  # type: ignore[call-overload]
    ):
        with pytest.raises(ValueError, match=message) as raised:
            make_breaker()
        assert isinstance(raised.value, TypeError)
        assert isinstance(raised.value, aiocircuitbreaker.ExpectedExceptionError)


async def test_private_names_of_2x_read_the_configuration() -> None:
    """The 2.x names _failure_threshold, _recovery_timeout, _fallback_function and _name work."""
    breaker = circuit(4, 12, KeyError, "compat-aliases", _spare)
    assert breaker._failure_threshold == 4
    assert breaker._recovery_timeout == 12
    assert breaker._fallback_function is _spare
    assert breaker._name == "compat-aliases"

    class Nervous(CircuitBreaker):
        FAILURE_THRESHOLD = 1
        RECOVERY_TIMEOUT = 3

    nervous = circuit(cls=Nervous)
    assert (nervous._failure_threshold, nervous._recovery_timeout) == (1, 3)
    assert nervous._fallback_function is None
    assert nervous._name is None

    def ping() -> None:
        pass  # pragma: no cover

    nervous(ping)
    assert nervous._name == ping.__qualname__


# -- an overridden `opened` ---------------------------------------------------------------------


class Switchable(CircuitBreaker):
    """A subclass whose ``opened`` says what the test sets, and counts how often it is asked."""

    switched_open: ClassVar[bool] = False
    asked: ClassVar[int] = 0

    @property
    def opened(self) -> bool:
        type(self).asked += 1
        return type(self).switched_open


@pytest.mark.parametrize("kind", KINDS)
async def test_subclass_opened_is_asked_on_every_call(
    kind: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A subclass's opened is asked on each call; while it says True the fallback answers."""
    monkeypatch.setattr(Switchable, "asked", 0)
    monkeypatch.setattr(Switchable, "switched_open", False)
    dependency = Dependency()
    fallback = Dependency("from fallback")
    breaker = Switchable(clock=clock, fallback_function=of_kind(kind, fallback))
    guarded = breaker(of_kind(kind, dependency))
    for switched_open in (False, True, True, False):
        Switchable.switched_open = switched_open
        asked = Switchable.asked
        reply = await drain(guarded(switched_open))
        assert Switchable.asked > asked
        assert reply == answer(kind, "from fallback" if switched_open else "pong")
    assert [args for args, _ in dependency.calls] == [(False,), (False,)]
    assert [args for args, _ in fallback.calls] == [(True,), (True,)]


@pytest.mark.parametrize("kind", KINDS)
async def test_subclass_opened_without_a_fallback_rejects(
    kind: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a subclass's opened says True and there is no fallback, calls raise unrun."""
    monkeypatch.setattr(Switchable, "switched_open", True)
    dependency = Dependency()
    guarded = Switchable(clock=clock)(of_kind(kind, dependency))
    with pytest.raises(CircuitBreakerError):
        await drain(guarded())
    assert dependency.calls == []


async def test_calls_a_subclass_opened_refuses_are_reported(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call refused by a subclass's opened is a rejected call: counted and announced."""
    monkeypatch.setattr(Switchable, "switched_open", True)
    events: list[object] = []
    breaker = Switchable(clock=clock, listeners=[events.append])
    with pytest.raises(CircuitBreakerError):
        breaker.call(Dependency())
    assert [type(event) for event in events] == [CallRejected]
    assert isinstance(events[0], CallRejected)
    assert events[0].state is State.CLOSED  # the state the breaker itself holds
    assert breaker.statistics().total.rejected == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_opened_patched_on_the_class_is_asked(
    kind: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Setting CircuitBreaker.opened to a plain function, as 2.x tests do, makes calls fall back."""
    monkeypatch.setattr(CircuitBreaker, "opened", lambda self: True)
    dependency = Dependency()
    fallback = Dependency("from fallback")
    breaker = make(clock, fallback_function=of_kind(kind, fallback))
    guarded = breaker(of_kind(kind, dependency))
    assert await drain(guarded("q", page=2)) == answer(kind, "from fallback")
    assert fallback.calls == [(("q",), {"page": 2})]
    assert dependency.calls == []


# -- mocks, as 2.0.0's suite uses them ----------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "state"),
    [
        (State.OPEN, State.OPEN),
        ("half_open", State.HALF_OPEN),
        (State.CLOSED, State.CLOSED),
        (State.FORCED_OPEN, State.FORCED_OPEN),
        ("disabled", State.DISABLED),
    ],
)
async def test_writing_the_2x_state_attribute_changes_the_state(
    written: State | str, state: State, clock: FakeClock
) -> None:
    """``cb._state = State.OPEN`` (as aiocircuitbreaker 2.0's own tests open a breaker) is a
    change by hand, announced like one; _state and _failure_count read as in 2.x."""
    changes: list[str] = []
    breaker = make(clock, listeners=[lambda event: changes.append(event.reason)])
    breaker._state = written
    assert breaker.state is state
    assert breaker._state is state
    assert breaker._failure_count == breaker.failure_count == 0
    assert changes == ([] if state is State.CLOSED else [f"_state = {state.name}"])


async def test_a_breaker_opened_through_its_2x_state_attribute_falls_back(clock: FakeClock) -> None:
    """As in aiocircuitbreaker 2.0's tests: opened so, a decorated call goes to the fallback."""
    fallback = Mock(return_value="from fallback")
    breaker = make(clock, fallback_function=fallback)
    breaker._state = State.OPEN
    guarded = breaker.decorate(AsyncMock(return_value="real"))
    assert await guarded("test2", test="test") == "from fallback"
    fallback.assert_called_once_with("test2", test="test")
    with pytest.raises(ValueError, match="_state must be a State or one of closed, open"):
        breaker._state = "ajar"
    assert breaker.opened


@pytest.mark.parametrize("way", ["decorated", "call"])
async def test_a_last_failure_written_by_hand_is_cleared_by_a_success(
    way: str, clock: FakeClock
) -> None:
    """``cb._last_failure = IOError()`` (2.x tests write it) reads back, and the next success
    clears it, through the fast path as through call()."""
    breaker = make(clock)
    guarded = breaker(AsyncMock(return_value=True))
    await guarded()  # the breaker is in use: its fast path is ready
    breaker._last_failure = OSError()
    assert isinstance(breaker.last_failure, OSError)
    if way == "call":
        await breaker.call(AsyncMock(return_value=True))
    else:
        await guarded()
    assert breaker.last_failure is None


async def test_mocks_can_be_guarded_and_fall_back() -> None:
    """Mock and AsyncMock work as the guarded callable, the fallback and call()'s argument.

    (A mock answers any attribute with a new mock: code that followed attributes until one
    is missing would never return.)
    """
    fallback = Mock(return_value="from fallback")
    breaker = CircuitBreaker(failure_threshold=1, fallback_function=fallback)
    guarded = breaker(AsyncMock(side_effect=OSError("down")))
    with pytest.raises(OSError, match="down"):
        await guarded()
    assert breaker.opened
    assert await guarded("a", k=1) == "from fallback"
    fallback.assert_called_once_with("a", k=1)
    async_fallback = AsyncMock(return_value="async fallback")
    other = CircuitBreaker(failure_threshold=1, fallback_function=async_fallback)
    guarded = other(AsyncMock(side_effect=OSError("down")))
    with pytest.raises(OSError, match="down"):
        await guarded()
    assert await guarded("b") == "async fallback"
    async_fallback.assert_awaited_once_with("b")
    plain = CircuitBreaker()
    assert await plain.call(AsyncMock(return_value=7)) == 7
    assert plain.call(Mock(return_value=8)) == 8
