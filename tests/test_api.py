"""The drop-in contract with aiocircuitbreaker 2.0.0 (and circuitbreaker 2.x's async half)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import aiocircuitbreaker
from aiocircuitbreaker import CircuitBreaker, CircuitBreakerError, State, circuit
from aiocircuitbreaker.testing import FakeClock

from .conftest import DependencyDown

pytestmark = pytest.mark.asyncio


async def test_public_names() -> None:
    """The package exports the drop-in names (and a version from the installed metadata)."""
    names = set(aiocircuitbreaker.__all__)
    assert len(names) == len(aiocircuitbreaker.__all__)
    assert all(hasattr(aiocircuitbreaker, name) for name in names)
    drop_in = {"circuit", "CircuitBreaker", "CircuitBreakerError", "CircuitBreakerMonitor", "State"}
    assert drop_in | {"STATE_CLOSED", "STATE_OPEN", "STATE_HALF_OPEN"} <= names
    assert aiocircuitbreaker.__version__ == "3.0.0.dev0"


async def test_bare_decorator_uses_the_defaults() -> None:
    """@circuit with no call gives the class defaults and the function's qualified name."""

    @circuit
    async def fetch() -> str:
        return "ok"

    breaker = fetch.circuit_breaker  # type: ignore[attr-defined]
    assert await fetch() == "ok"
    assert breaker.failure_threshold == 5
    assert breaker.recovery_timeout == 30
    assert breaker.expected_exception == (Exception,)
    assert breaker.fallback_function is None
    assert breaker.name == "test_bare_decorator_uses_the_defaults.<locals>.fetch"


async def test_empty_call_is_the_same_as_bare() -> None:
    """@circuit() is @circuit."""

    @circuit()
    async def fetch() -> str:
        return "ok"

    assert await fetch() == "ok"
    assert fetch.circuit_breaker.failure_threshold == 5  # type: ignore[attr-defined]


async def test_positional_arguments_keep_their_order() -> None:
    """circuit(threshold, timeout, expected, name, fallback) as 2.0.0 accepted it."""

    def fallback() -> str:
        return "fb"

    @circuit(10, 20, KeyError, "named", fallback)
    async def fetch() -> str:
        return "ok"

    breaker: CircuitBreaker = fetch.circuit_breaker  # type: ignore[attr-defined]
    assert breaker.failure_threshold == 10
    assert breaker.recovery_timeout == 20
    assert breaker.expected_exception == (KeyError,)
    assert breaker.name == "named"
    assert breaker.fallback_function is fallback


async def test_keyword_form() -> None:
    """Every option by keyword."""
    breaker = circuit(
        failure_threshold=2,
        recovery_timeout=1.5,
        expected_exception=(DependencyDown, TimeoutError),
        name="kw",
    )
    assert isinstance(breaker, CircuitBreaker)
    assert breaker.expected_exception == (DependencyDown, TimeoutError)
    assert breaker.recovery_timeout == 1.5


class MyBreaker(CircuitBreaker):
    FAILURE_THRESHOLD = 2
    RECOVERY_TIMEOUT = 60
    EXPECTED_EXCEPTION = DependencyDown


async def test_cls_builds_the_subclass_with_its_defaults() -> None:
    """@circuit(cls=...) and @MyBreaker() both use the subclass's class-level defaults."""

    @circuit(cls=MyBreaker)
    async def one() -> None:
        raise DependencyDown

    @MyBreaker()
    async def two() -> None:
        raise KeyError

    for fn in (one, two):
        breaker = fn.circuit_breaker  # type: ignore[attr-defined]
        assert type(breaker) is MyBreaker
        assert breaker.failure_threshold == 2
        assert breaker.recovery_timeout == 60
        assert breaker.expected_exception == (DependencyDown,)
    with pytest.raises(KeyError):
        await two()
    assert two.circuit_breaker.failure_count == 0  # type: ignore[attr-defined]


async def test_bare_circuit_with_cls() -> None:
    """circuit(fn, cls=...) decorates with the subclass."""

    async def fetch() -> str:
        return "ok"

    wrapped = circuit(fetch, cls=MyBreaker)
    assert type(wrapped.circuit_breaker) is MyBreaker  # type: ignore[attr-defined]


def _module_fallback(*_: object) -> str:
    return "module fallback"


def _is_timeout(exc_type: type[BaseException], exc: BaseException) -> bool:
    return issubclass(exc_type, TimeoutError)


class FunctionDefaults(CircuitBreaker):
    FAILURE_THRESHOLD = 1
    FALLBACK_FUNCTION = _module_fallback
    EXPECTED_EXCEPTION = _is_timeout


async def test_subclass_functions_are_not_bound_as_methods(clock: FakeClock) -> None:
    """A plain function as FALLBACK_FUNCTION / EXPECTED_EXCEPTION is used as written."""
    breaker = FunctionDefaults(clock=clock)
    assert breaker.fallback_function is _module_fallback
    assert breaker.expected_exception is _is_timeout

    @breaker
    async def fetch(x: int) -> str:
        raise TimeoutError

    with pytest.raises(TimeoutError):
        await fetch(1)
    assert await fetch(2) == "module fallback"


class StaticDefaults(CircuitBreaker):
    FALLBACK_FUNCTION = staticmethod(_module_fallback)


async def test_staticmethod_default_is_unwrapped() -> None:
    """A staticmethod default works the same as a plain function."""
    assert StaticDefaults().fallback_function is _module_fallback


async def test_arguments_override_class_defaults() -> None:
    """Explicit arguments win over the subclass defaults; None means the default."""
    breaker = MyBreaker(failure_threshold=7, recovery_timeout=None)
    assert breaker.failure_threshold == 7
    assert breaker.recovery_timeout == 60


async def test_wrapper_metadata() -> None:
    """The wrapper keeps the function's metadata, signature and coroutine-function nature."""

    @circuit
    async def fetch(url: str, *, timeout: float = 1.0) -> str:
        """Fetch a URL."""
        return url

    assert fetch.__name__ == "fetch"
    assert fetch.__doc__ == "Fetch a URL."
    assert inspect.iscoroutinefunction(fetch)
    assert list(inspect.signature(fetch).parameters) == ["url", "timeout"]
    assert fetch.__wrapped__.__name__ == "fetch"  # type: ignore[attr-defined]


async def test_one_breaker_guards_several_functions(clock: FakeClock) -> None:
    """Functions decorated by the same breaker share its state; the first names it."""
    breaker = CircuitBreaker(failure_threshold=2, clock=clock)

    @breaker
    async def first() -> None:
        raise DependencyDown

    @breaker
    async def second() -> str:
        return "second"

    assert breaker.name is not None
    assert breaker.name.endswith("first")
    with pytest.raises(DependencyDown):
        await first()
    with pytest.raises(DependencyDown):
        await first()
    with pytest.raises(CircuitBreakerError):
        await second()


async def test_state_compares_with_strings() -> None:
    """State members equal their string values and print as them."""
    assert State.OPEN == "open"
    assert State.CLOSED == "closed"
    assert State.HALF_OPEN == "half_open"
    assert str(State.HALF_OPEN) == "half_open"
    assert f"{State.OPEN}" == "open"
    assert {"open": 1}[State.OPEN] == 1
    assert [m.name for m in State] == [
        "CLOSED",
        "OPEN",
        "HALF_OPEN",
        "FORCED_OPEN",
        "DISABLED",
        "METRICS_ONLY",
    ]


async def test_properties_before_any_call(clock: FakeClock) -> None:
    """A fresh breaker is closed with nothing counted, and reports no remaining timeout."""
    breaker = CircuitBreaker(clock=clock)
    assert breaker.state == "closed"
    assert breaker.closed
    assert not breaker.opened
    assert not breaker.half_open
    assert breaker.failure_count == 0
    assert breaker.last_failure is None
    assert breaker.name is None
    assert breaker.open_remaining == 0.0
    assert breaker.open_until.tzinfo is not None


async def test_open_until_is_aware_utc(clock: FakeClock) -> None:
    """open_until is a timezone-aware UTC datetime recovery_timeout ahead of the trip."""
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=120, clock=clock)
    with pytest.raises(DependencyDown), breaker:
        raise DependencyDown
    expected = datetime.now(timezone.utc) + timedelta(seconds=120)
    assert breaker.open_until.utcoffset() == timedelta(0)
    assert abs((breaker.open_until - expected).total_seconds()) < 1


async def test_repr_shows_name_state_and_count(clock: FakeClock) -> None:
    """repr() is informative."""
    breaker = CircuitBreaker(failure_threshold=3, name="db", clock=clock)
    assert repr(breaker) == "<CircuitBreaker 'db' state=closed failures=0/3>"


async def test_sync_functions_are_guarded_synchronously() -> None:
    """A plain function gets a plain wrapper: it returns, raises and is rejected in place."""
    breaker = CircuitBreaker(failure_threshold=1, expected_exception=DependencyDown)

    @breaker
    def fetch(value: object) -> object:
        if isinstance(value, BaseException):
            raise value
        return value

    assert not inspect.iscoroutinefunction(fetch)
    assert fetch(1) == 1
    with pytest.raises(DependencyDown):
        fetch(DependencyDown())
    with pytest.raises(CircuitBreakerError):
        fetch(2)
    assert fetch.circuit_breaker is breaker


async def test_an_async_fallback_cannot_serve_a_sync_function() -> None:
    """Decorating a sync function with an async def fallback is refused, naming both."""

    async def cached() -> None:
        return None  # pragma: no cover - refused

    def sync_fetch() -> None:
        return None  # pragma: no cover - refused

    with pytest.raises(ValueError, match=r"sync_fetch.*async def function"):
        circuit(fallback_function=cached)(sync_fetch)


async def test_a_sync_fallback_answers_a_rejected_sync_call() -> None:
    """A rejected sync call returns its sync fallback's answer, given the call's arguments."""
    breaker = CircuitBreaker(fallback_function=lambda value: f"cached {value}")
    breaker.force_open()

    @breaker
    def fetch(value: str) -> str:
        return value  # pragma: no cover - rejected

    assert fetch("x") == "cached x"


async def test_wrapper_binds_as_a_method() -> None:
    """A decorated method receives self, and so does its fallback."""
    seen: list[Any] = []

    def fallback(self: Any, value: int) -> int:
        seen.append(self)
        return -value

    class Client:
        @circuit(failure_threshold=1, fallback_function=fallback)
        async def get(self, value: int) -> int:
            raise DependencyDown

    client = Client()
    with pytest.raises(DependencyDown):
        await client.get(1)
    assert await client.get(5) == -5
    assert seen == [client]


async def test_callable_object_and_partial_names() -> None:
    """Default names for objects and partials come from their class / underlying function."""

    class Caller:
        async def __call__(self) -> str:
            return "called"

    async def target(a: int) -> int:
        return a

    obj = circuit(Caller())
    part = circuit(functools.partial(target, 3))
    assert await obj() == "called"
    assert await part() == 3
    assert obj.circuit_breaker.name.endswith("Caller")  # type: ignore[attr-defined]
    assert part.circuit_breaker.name.endswith("target")  # type: ignore[attr-defined]
    assert inspect.iscoroutinefunction(obj)


async def test_decorate_method_is_public() -> None:
    """breaker.decorate(fn) is the same as breaker(fn), as in 2.0.0."""
    breaker = CircuitBreaker(name="explicit")

    async def fetch() -> int:
        return 1

    wrapped: Callable[[], Any] = breaker.decorate(fetch)
    assert await wrapped() == 1
    assert breaker.name == "explicit"
