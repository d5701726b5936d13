"""One wrapper per kind of guarded callable, chosen once at decoration time.

Each is the engine's admit -> ticket -> finish primitive around one call. The two function
wrappers take a fast path while the breaker's gate is open (``breaker._fast``: closed, no
failure pending, nothing per call to record but the success total); that gate is the one
attribute of the breaker they read, and a call through it is finished by the same engine
functions as every other call. (While the breaker is open, ``admit`` has a fast path of its
own: the barrier, see ``_admission``.)
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, NoReturn

from ._admission import admit, finish, gate_failure, gate_success, refuse
from ._core import Outcome
from ._settings import is_async_function
from ._ticket import Ticket
from ._timeouts import EXPIRED, timed_out, timer

if TYPE_CHECKING:
    from ._breaker import CircuitBreaker
    from ._errors import CircuitBreakerError
    from ._settings import Settings
    from ._ticket import Ticket
    from .typing import Guarded

__all__ = [
    "call",
    "call_async",
    "guard_async_generator",
    "guard_generator",
    "wrap",
]

_NEUTRAL = Outcome.NEUTRAL


# The exception being handled (sys.exception(), new in Python 3.11; sys.exc_info() before).
_handled: Callable[[], BaseException | None] = getattr(sys, "exception", None) or (
    lambda: sys.exc_info()[1]
)


def wrap(
    breaker: CircuitBreaker, function: Callable[..., Any], settings: Settings
) -> Guarded[Any, Any]:
    """Return the wrapper that guards ``function`` with ``breaker``."""
    if settings.timeout is not None and not (
        is_async_function(function) and not _is_kind(function, inspect.isasyncgenfunction)
    ):
        untimed(settings.timeout, repr(function))
    if _is_kind(function, inspect.isasyncgenfunction):
        wrapper = _async_generator_wrapper(breaker, function)
    elif is_async_function(function):
        wrapper = _coroutine_wrapper(breaker, function)
    else:
        if settings.fallback_is_async:
            msg = (
                f"{function!r} is synchronous, and its fallback {settings.fallback!r} is an "
                "async def function, which cannot serve it: give it a synchronous fallback"
            )
            raise ValueError(msg)
        if _is_kind(function, inspect.isgeneratorfunction):
            wrapper = _generator_wrapper(breaker, function)
        else:
            wrapper = _function_wrapper(breaker, function)
    wrapper.circuit_breaker = breaker  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def _is_kind(function: Callable[..., Any], test: Callable[[Any], bool]) -> bool:
    return test(function) or test(getattr(type(function), "__call__", None))  # noqa: B004


def untimed(timeout: float, what: str) -> NoReturn:
    """Refuse to guard ``what`` with a breaker whose ``timeout`` cannot bound it."""
    msg = (
        f"the circuit breaker has timeout={timeout}, which bounds coroutine calls "
        f"only, so it cannot guard {what}: a running synchronous call (or an iteration, or a "
        "with block) cannot be interrupted by the breaker. Give the client its own timeout "
        "(sockets, HTTP clients and database drivers have one) and count the exception it "
        "raises, or count slow calls with RatePolicy(slow_call_duration=...)"
    )
    raise ValueError(msg)


def _coroutine_wrapper(breaker: CircuitBreaker, function: Callable[..., Any]) -> Callable[..., Any]:
    if opened_overridden(breaker) or breaker.timeout is not None:
        return _general_coroutine_wrapper(breaker, function)

    @functools.wraps(function)
    async def guarded(*args: Any, **kwargs: Any) -> Any:
        # Shaped as _function_wrapper's guarded (which says why) but for the gate's except
        # clause: reading the exception instead of binding it gains too little here to be
        # worth what it costs on Python 3.10.
        gate = breaker._fast  # noqa: SLF001 - the gate (see the module docstring)
        if gate is None:
            ticket = admit(breaker)
            if type(ticket) is not Ticket:  # rejected
                if ticket is not None:
                    raise (ticket, ticket := None)[0]  # type: ignore[misc]  # (the error)
                return await _resolve(breaker.fallback_function(*args, **kwargs))  # type: ignore[misc]
        else:
            try:
                result = await function(*args, **kwargs)
            except BaseException as exc:
                gate_failure(breaker, gate, exc)
                raise
            next(gate.successes)
            if gate.dirty:
                gate_success(breaker, gate)
            return result
        if not ticket.counted:
            return await function(*args, **kwargs)
        try:
            result = await function(*args, **kwargs)
        except BaseException as exc:
            finish(ticket, exc)
            raise
        finish(ticket, None, result)
        return result

    return guarded


def _general_coroutine_wrapper(
    breaker: CircuitBreaker, function: Callable[..., Any]
) -> Callable[..., Any]:
    """Guard through call_async(): for an overridden ``opened``, or a timeout to apply."""
    consult = opened_overridden(breaker)

    @functools.wraps(function)
    async def guarded(*args: Any, **kwargs: Any) -> Any:
        return await call_async(breaker, function, args, kwargs, consult=consult)

    return guarded


def _function_wrapper(breaker: CircuitBreaker, function: Callable[..., Any]) -> Callable[..., Any]:
    if opened_overridden(breaker):
        return _consulting_function_wrapper(breaker, function)

    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        # Measured, this is the fastest shape. The code comes in this order: admission and
        # rejection, the gate, a ticket (exceptions through the gate cost more placed after
        # the ticket's code). A rejection is told by its exact type (isinstance() of the
        # error would look up its __class__ to find it is not a Ticket), and raised with the
        # name cleared in the same step (the frame stays in the error's traceback and must
        # not hold it: no reference cycle), cheaper than try/finally. The gate's except
        # clause catches everything without binding it (`except ... as` unbinds the name in
        # a further unwinding step) and reads the exception being handled instead: cheaper
        # from Python 3.11 on (sys.exception()), dearer on 3.10 (sys.exc_info()).
        gate = breaker._fast  # noqa: SLF001 - the gate (see the module docstring)
        if gate is None:
            ticket = admit(breaker)
            if type(ticket) is not Ticket:  # rejected
                if ticket is not None:
                    raise (ticket, ticket := None)[0]  # type: ignore[misc]  # (the error)
                return breaker.fallback_function(*args, **kwargs)  # type: ignore[misc]
        else:
            try:
                result = function(*args, **kwargs)
            except:
                gate_failure(breaker, gate, _handled())  # type: ignore[arg-type]  # (not None)
                raise
            next(gate.successes)
            if gate.dirty:
                gate_success(breaker, gate)
            return result
        if not ticket.counted:
            return function(*args, **kwargs)
        try:
            result = function(*args, **kwargs)
        except BaseException as exc:
            finish(ticket, exc)
            raise
        finish(ticket, None, result)
        return result

    return guarded


def _consulting_function_wrapper(
    breaker: CircuitBreaker, function: Callable[..., Any]
) -> Callable[..., Any]:
    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        return call_sync(breaker, function, args, kwargs, consult=True)

    return guarded


def _generator_wrapper(breaker: CircuitBreaker, function: Callable[..., Any]) -> Callable[..., Any]:
    consult = opened_overridden(breaker)

    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Generator[Any, Any, None]:
        yield from guard_generator(breaker, function, args, kwargs, consult=consult)

    return guarded


def _async_generator_wrapper(
    breaker: CircuitBreaker, function: Callable[..., Any]
) -> Callable[..., Any]:
    consult = opened_overridden(breaker)

    @functools.wraps(function)
    async def guarded(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        # An async generator cannot `yield from`: hand everything on to the guarded stream.
        stream = guard_async_generator(breaker, function, args, kwargs, consult=consult)
        to_send: Any = None
        to_throw: BaseException | None = None
        while True:
            try:
                item = await (
                    stream.asend(to_send) if to_throw is None else stream.athrow(to_throw)
                )
            except StopAsyncIteration:
                return
            to_throw = None
            try:
                to_send = yield item
            except GeneratorExit:
                await stream.aclose()
                raise
            except BaseException as exc:  # noqa: BLE001 - thrown in by the consumer: hand it on
                to_throw = exc

    return guarded


def opened_overridden(breaker: CircuitBreaker) -> bool:
    """Whether ``opened`` was replaced (by a subclass or a patch): then ask it on every call.

    Decorated functions find out when they are decorated; the ``call*()`` methods on each call.
    """
    from ._breaker import ORIGINAL_OPENED  # noqa: PLC0415 - _breaker imports this module

    return type(breaker).opened is not ORIGINAL_OPENED


# -- calls --------------------------------------------------------------------------------------


def call(
    breaker: CircuitBreaker, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """``breaker.call()``: async for an async callable, else now (awaiting what it returns)."""
    consult = opened_overridden(breaker)
    if is_async_function(func):
        return call_async(breaker, func, args, kwargs, consult=consult)
    if breaker.timeout is not None:
        untimed(breaker.timeout, f"the synchronous {func!r}")
    return call_sync(breaker, func, args, kwargs, consult=consult, defer=True)


async def call_async(
    breaker: CircuitBreaker,
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    consult: bool = False,
) -> Any:
    """Await ``func(*args, **kwargs)`` under a ticket (or the fallback, if rejected)."""
    timeout = breaker.timeout
    within = None if timeout is None else timer()  # (before anything counts)
    ticket = _admit(breaker, consult=consult)
    if not isinstance(ticket, Ticket):
        return await _resolve(rejected(breaker, ticket, args, kwargs))
    if not ticket.counted:  # disabled: no breaker at all
        return await func(*args, **kwargs)
    try:
        if within is None:
            result = await func(*args, **kwargs)
        else:
            result = await within(timeout, func(*args, **kwargs))  # type: ignore[arg-type]
    except BaseException as exc:
        finish(ticket, exc)
        raise
    if result is EXPIRED:
        error = timed_out(timeout)
        finish(ticket, error, outcome=Outcome.FAILURE, late=True)
        raise error
    finish(ticket, None, result)
    return result


def rejected(
    breaker: CircuitBreaker,
    error: CircuitBreakerError | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """Raise a rejected call's error; without one, return the fallback's answer."""
    if error is not None:
        try:
            raise error
        finally:  # not kept by this frame's traceback: no reference cycle
            del error
    return breaker.fallback_function(*args, **kwargs)  # type: ignore[misc]


async def _resolve(value: Any) -> Any:
    """Await ``value`` if it is awaitable (an async fallback's answer)."""
    return await value if inspect.isawaitable(value) else value


async def _finish_later(ticket: Ticket, awaitable: Awaitable[Any]) -> Any:
    """Await what a sync callable returned, and finish its ticket then."""
    try:
        result = await awaitable
    except BaseException as exc:
        finish(ticket, exc)
        raise
    finish(ticket, None, result)
    return result


def call_sync(
    breaker: CircuitBreaker,
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    consult: bool = False,
    defer: bool = False,
) -> Any:
    """Call ``func(*args, **kwargs)`` under a ticket (or the fallback, if rejected).

    With ``defer``, an awaitable result is handed back as an awaitable that finishes the
    ticket when it is awaited (``breaker.call(lambda: fetch())``).
    """
    ticket = _admit(breaker, consult=consult)
    if not isinstance(ticket, Ticket):
        return rejected(breaker, ticket, args, kwargs)
    if not ticket.counted:
        return func(*args, **kwargs)
    try:
        result = func(*args, **kwargs)
    except BaseException as exc:
        finish(ticket, exc)
        raise
    if defer and inspect.isawaitable(result):
        return _finish_later(ticket, result)
    finish(ticket, None, result)
    return result


def _admit(breaker: CircuitBreaker, *, consult: bool) -> Ticket | CircuitBreakerError | None:
    """Admit a call; with ``consult``, an overridden ``opened`` that is true rejects it first."""
    if consult and breaker.opened:  # (the 2.x tests patch `opened` so)
        return refuse(breaker)
    return admit(breaker)


# -- generators ---------------------------------------------------------------------------------


def guard_generator(
    breaker: CircuitBreaker,
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    consult: bool = False,
) -> Generator[Any, Any, None]:
    """Run the generator ``func(*args, **kwargs)`` under a ticket; its end is the outcome.

    The producer running to its end is a success, and raising is judged as for a call. The
    consumer closing it early, or throwing in an exception that the producer lets out, is
    neutral: that is not the dependency's doing.
    """
    ticket = _admit(breaker, consult=consult)
    if not isinstance(ticket, Ticket):
        yield from rejected(breaker, ticket, args, kwargs)
        return
    if not ticket.counted:
        yield from func(*args, **kwargs)
        return
    try:
        producer = iter(func(*args, **kwargs))
    except BaseException as exc:
        finish(ticket, exc)
        raise
    yield from _judged_generator(ticket, producer)


def _judged_generator(ticket: Ticket, producer: Any) -> Generator[Any, Any, None]:
    to_send: Any = None
    to_throw: BaseException | None = None
    while True:
        try:
            if to_throw is not None:
                item = producer.throw(to_throw)
            elif to_send is not None:
                item = producer.send(to_send)
            else:
                item = next(producer)
        except StopIteration:
            finish(ticket)
            return
        except BaseException as exc:
            finish(ticket, exc, outcome=_NEUTRAL if exc is to_throw else None)
            raise
        to_send, to_throw = None, None
        try:
            to_send = yield item
        except GeneratorExit as exc:
            finish(ticket, exc, outcome=_NEUTRAL)
            close = getattr(producer, "close", None)
            if close is not None:
                close()
            raise
        except BaseException as exc:  # noqa: BLE001 - thrown in by the consumer: hand it on
            to_throw = exc


async def guard_async_generator(
    breaker: CircuitBreaker,
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    consult: bool = False,
) -> AsyncGenerator[Any, Any]:
    """The async form of :func:`guard_generator` (the same outcomes).

    A fallback's items, and a disabled breaker's producer, are handed on the same way, so that
    closing the stream closes what feeds it before ``aclose()`` returns.
    """
    upstream, end = await _stream(breaker, func, args, kwargs, consult=consult)
    to_send: Any = None
    to_throw: BaseException | None = None
    while True:
        try:
            item = await (
                upstream.asend(to_send) if to_throw is None else upstream.athrow(to_throw)
            )
        except StopAsyncIteration:
            end()
            return
        except BaseException as exc:
            end(exc, outcome=_NEUTRAL if exc is to_throw else None)
            raise
        to_throw = None
        try:
            to_send = yield item
        except GeneratorExit as exc:
            end(exc, outcome=_NEUTRAL)
            await upstream.aclose()
            raise
        except BaseException as exc:  # noqa: BLE001 - thrown in by the consumer: hand it on
            to_throw = exc


async def _stream(
    breaker: CircuitBreaker,
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    consult: bool,
) -> tuple[Any, Callable[..., None]]:
    """Admit a stream: return where its items come from, and what reports its end."""
    ticket = _admit(breaker, consult=consult)
    if not isinstance(ticket, Ticket):
        source = rejected(breaker, ticket, args, kwargs)
        return _async_iterator(await _resolve(source)), _nothing
    upstream = func(*args, **kwargs)
    return upstream, functools.partial(finish, ticket) if ticket.counted else _nothing


def _nothing(*args: Any, **kwargs: Any) -> None:
    """Record nothing (a rejected call's fallback, a disabled breaker's call)."""


async def _async_iterator(source: Any) -> AsyncGenerator[Any, Any]:
    """Yield the items of an async or sync iterable (a fallback's), closing what it came from."""
    if not isinstance(source, AsyncIterable):
        for item in source:
            yield item
        return
    iterator = aiter(source)
    try:
        async for item in iterator:
            yield item
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()
