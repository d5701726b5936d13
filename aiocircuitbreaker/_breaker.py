"""CircuitBreaker: the public face of a breaker.

Every way in (decorated functions and generators, sync and async, ``call()`` and its kin,
``with`` and ``async with`` blocks, ``admit()``) ends in the engine's one primitive: a
:class:`Ticket` from ``admit``, finished exactly once.
"""

from __future__ import annotations

import functools
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar, NoReturn, ParamSpec, TypeVar, overload

from . import _core, _wrappers
from ._blocks import Permits
from ._config import ExpectedException, FailurePredicate, validate_name
from ._core import CLOSED, COUNTING, DISABLED, FORCED_OPEN, HALF_OPEN, OPEN, State
from ._events import Listener
from ._policies import Backoff, HalfOpen, OpenDuration, RatePolicy
from ._registry import created, global_subscriptions, track, untrack, warn_if_shared
from ._settings import settings
from ._storage import Storage
from .typing import Guarded

__all__ = ["CircuitBreaker"]

P = ParamSpec("P")
R = TypeVar("R")
B = TypeVar("B", bound="CircuitBreaker")

_UTC_MAX = datetime.max.replace(tzinfo=timezone.utc)


class CircuitBreaker(Permits):
    """A circuit breaker guarding calls to one dependency, sync or async.

    Args:
        failure_threshold: Consecutive expected failures that open the breaker
            (default ``FAILURE_THRESHOLD``, 5).
        recovery_timeout: Seconds the breaker stays open before it admits one probe call
            (default ``RECOVERY_TIMEOUT``, 30).
        expected_exception: What counts as a failure: an exception class, an iterable of
            them, or a predicate ``(exc_type, exc_value) -> bool``
            (default ``EXPECTED_EXCEPTION``, ``Exception``).
        name: The breaker's name (default: the first decorated function's ``__qualname__``).
        fallback_function: Called with the call's arguments instead of raising
            :class:`CircuitBreakerError` when a call is rejected (default
            ``FALLBACK_FUNCTION``, none). Sync or async for async callables; sync for sync
            ones.
        clock: A function returning seconds from a monotonic clock
            (default ``time.monotonic``); tests pass a fake one.
        policy: A :class:`RatePolicy` to trip on failure or slow-call rates over a sliding
            window (or on a custom rule) instead of on consecutive failures.
        failure_result: A predicate on a call's return value: when it is true the call counts
            as failed, and the caller still gets the value.
        half_open: A :class:`HalfOpen` saying how many probes run and what closes the breaker.
        open_duration: How long each opening lasts: a :class:`Backoff`, or a function
            ``(consecutive_openings, failure) -> seconds``; default ``recovery_timeout``.
        listeners: Callables to receive the breaker's events (see :meth:`add_listener`).
        storage: Where the state lives (default: in this process; see ``_storage.py``).
        timeout: Seconds an async call may take: one still running then is cancelled by the
            breaker, counts as a failed (and slow) call, and raises ``TimeoutError``
            (asyncio, uvloop, trio). A breaker with a timeout guards coroutine calls only (a
            running sync call cannot be interrupted): decorating a sync function or a
            generator with it, or a ``with`` block, is refused.

    ``None`` for any of the first five means "use the class default", so subclasses can set
    them as class attributes.
    """

    FAILURE_THRESHOLD: ClassVar[int] = 5
    RECOVERY_TIMEOUT: ClassVar[float] = 30
    EXPECTED_EXCEPTION: ClassVar[ExpectedException] = Exception
    FALLBACK_FUNCTION: ClassVar[Callable[..., Any] | None] = None

    __slots__ = ()

    def __init__(
        self,
        failure_threshold: int | None = None,
        recovery_timeout: float | None = None,
        expected_exception: ExpectedException | None = None,
        name: str | None = None,
        fallback_function: Callable[..., Any] | None = None,
        *,
        clock: Callable[[], float] | None = None,
        policy: RatePolicy | None = None,
        failure_result: Callable[[Any], object] | None = None,
        half_open: HalfOpen | None = None,
        open_duration: Backoff | OpenDuration | None = None,
        listeners: Iterable[Listener] = (),
        storage: Storage | None = None,
        timeout: float | None = None,
    ) -> None:
        configured = settings(
            type(self),
            failure_threshold,
            recovery_timeout,
            expected_exception,
            fallback_function,
            clock=clock,
            policy=policy,
            failure_result=failure_result,
            half_open=half_open,
            open_duration=open_duration,
            timeout=timeout,
        )
        self._name = validate_name(name)
        given: object = listeners  # checked as any object: callers may pass anything
        if isinstance(given, (str, bytes)) or not isinstance(given, Iterable):
            msg = f"listeners must be an iterable of callables, got {given!r}"
            raise TypeError(msg)
        _check_storage(storage, configured.policy)
        self._start_engine(configured, storage)
        # Registered before the global listeners are read: one added meanwhile reaches it.
        track(self)
        try:
            for listener in listeners:
                self.add_listener(listener)
        except BaseException:
            untrack(self)  # a breaker that could not be made is not listed
            raise
        if global_subscriptions(calls_only=True):
            self._refresh_listeners()
        created(self)

    # -- decorating ---------------------------------------------------------------------------

    def __call__(self, wrapped: Callable[P, R]) -> Guarded[P, R]:
        """Decorate ``wrapped`` (see :meth:`decorate`)."""
        return self.decorate(wrapped)

    def decorate(self, function: Callable[P, R]) -> Guarded[P, R]:
        """Return ``function`` guarded by this breaker.

        ``function`` may be a plain or ``async def`` function or method, a generator or async
        generator function, a ``functools.partial`` of one, or an object with a ``__call__``
        (plain or ``async def``).

        Raises:
            ValueError: ``function`` is synchronous and the fallback is an ``async def``.
        """
        wrapper = _wrappers.wrap(self, function, self._settings)
        if self._name is None:
            self._name = _qualname(function)
            warn_if_shared(self)
        return wrapper

    # -- calling ------------------------------------------------------------------------------

    @overload
    def call(
        self, func: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs
    ) -> Awaitable[R]: ...
    @overload
    def call(self, func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R: ...
    def call(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``func(*args, **kwargs)`` through the breaker.

        For an ``async def`` function (or anything returning an awaitable) this returns an
        awaitable, and the call counts when it is awaited; for a plain function it calls it
        now and returns its result.

        Raises:
            CircuitBreakerError: The call was rejected and no fallback is set.
        """
        return _wrappers.call(self, func, args, kwargs)

    async def call_async(
        self, func: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Await ``func(*args, **kwargs)`` through the breaker (``circuitbreaker`` 2.x)."""
        consult = _wrappers.opened_overridden(self)
        return await _wrappers.call_async(self, func, args, kwargs, consult=consult)  # type: ignore[no-any-return]

    def call_generator(
        self, func: Callable[P, Iterable[R]], *args: P.args, **kwargs: P.kwargs
    ) -> Iterator[R]:
        """Iterate ``func(*args, **kwargs)`` through the breaker (``circuitbreaker`` 2.x)."""
        if self.timeout is not None:
            _wrappers.untimed(self.timeout, f"the generator of {func!r}")
        consult = _wrappers.opened_overridden(self)
        return _wrappers.guard_generator(self, func, args, kwargs, consult=consult)

    def call_async_generator(
        self, func: Callable[P, AsyncIterator[R]], *args: P.args, **kwargs: P.kwargs
    ) -> AsyncIterator[R]:
        """Iterate ``func(*args, **kwargs)`` asynchronously through the breaker (2.x)."""
        if self.timeout is not None:
            _wrappers.untimed(self.timeout, f"the async generator of {func!r}")
        consult = _wrappers.opened_overridden(self)
        return _wrappers.guard_async_generator(self, func, args, kwargs, consult=consult)

    # -- the primitive ------------------------------------------------------------------------

    def is_failure(self, exc_type: type[BaseException], exc_value: BaseException | None) -> bool:
        """Return whether an exception counts as a failure (``circuitbreaker`` 2.x)."""
        settings_ = self._settings
        if not issubclass(exc_type, Exception):
            return False
        if settings_.predicate is not None:
            return bool(settings_.predicate(exc_type, exc_value))  # type: ignore[arg-type]
        return issubclass(exc_type, settings_.expected)

    # -- control ------------------------------------------------------------------------------

    def reset(self) -> None:
        """Close the breaker and forget its failures; calls still running no longer count.

        The same as :meth:`close`, under the name ``circuitbreaker`` 2.x uses.
        """
        self._change(_closed, "reset()")

    def close(self) -> None:
        """Close the breaker now, from any state or mode, and forget its failures.

        Calls still running no longer count. This is also how a breaker leaves the modes set by
        :meth:`force_open`, :meth:`disable` and :meth:`metrics_only`.
        """
        self._change(_closed, "close()")

    def open(self) -> None:
        """Open the breaker now, as if it had tripped: it half-opens after its open duration."""
        self._change(self._open_by_hand, "open()")

    def force_open(self) -> None:
        """Reject every call until :meth:`close` or :meth:`reset`, whatever the clock says."""
        self._change(self._enter(FORCED_OPEN), "force_open()")

    def disable(self) -> None:
        """Let every call through, recording nothing, until :meth:`close` or :meth:`reset`."""
        self._change(self._enter(DISABLED), "disable()")

    def metrics_only(self) -> None:
        """Let every call through and record it, never tripping, until :meth:`close`."""
        self._change(self._enter(State.METRICS_ONLY), "metrics_only()")

    # -- properties ---------------------------------------------------------------------------

    @property
    def name(self) -> str | None:
        """The breaker's name (``None`` until it is named or decorates a function)."""
        return self._name

    @property
    def state(self) -> State:
        """The current state; an open breaker whose recovery timeout has passed is half-open."""
        live = self._live
        value = self._view.value
        own = live is None or live.own  # (else another writer may have changed it)
        if own and (value.state is CLOSED or value.state is DISABLED):
            return value.state
        return self._as_of(self._settings.clock()).state

    @property
    def closed(self) -> bool:
        """Whether the breaker is closed."""
        return self.state is CLOSED

    @property
    def opened(self) -> bool:
        """Whether the breaker rejects calls: open inside its recovery timeout, or forced open."""
        state = self.state
        return state is OPEN or state is FORCED_OPEN

    @property
    def half_open(self) -> bool:
        """Whether the breaker is half-open (due to admit, or running, a probe call)."""
        return self.state is HALF_OPEN

    @property
    def failure_count(self) -> int:
        """Consecutive expected failures (not reset by opening; reset by closing)."""
        return self._as_of(self._settings.clock()).failures

    @property
    def last_failure(self) -> BaseException | None:
        """The exception of the last counted failure, or ``None``."""
        return self._last_failure

    @property
    def fallback_function(self) -> Callable[..., Any] | None:
        """The function called instead of raising when a call is rejected."""
        return self._settings.fallback

    @property
    def failure_threshold(self) -> int:
        """Consecutive expected failures that open the breaker."""
        return self._settings.failure_threshold

    @property
    def recovery_timeout(self) -> float:
        """Seconds the breaker stays open before admitting a probe."""
        return self._settings.recovery_timeout

    @property
    def timeout(self) -> float | None:
        """Seconds an async call may take before the breaker cancels it (``None``: no limit)."""
        return self._settings.timeout

    @property
    def expected_exception(self) -> tuple[type[Exception], ...] | FailurePredicate:
        """What counts as a failure: a tuple of exception classes, or a predicate."""
        return self._settings.expected_exception

    @property
    def open_remaining(self) -> float:
        """Seconds until the breaker admits a probe: zero when closed, negative once due.

        Zero also while disabled or metrics-only (nothing is rejected); infinite while forced
        open.
        """
        now = self._settings.clock()
        as_of = self._as_of(now)
        if as_of.state in COUNTING or as_of.state is DISABLED:
            return 0.0
        return as_of.deadline - now

    @property
    def open_until(self) -> datetime:
        """The UTC time at which the breaker admits (or admitted) a probe; now when closed.

        ``datetime.max`` (UTC) while forced open, or when that time is beyond what a datetime
        can hold.
        """
        return utc_after(self.open_remaining)

    # -- circuitbreaker 2.x names for the configuration ---------------------------------------

    @property
    def _failure_threshold(self) -> int:
        return self._settings.failure_threshold

    @property
    def _recovery_timeout(self) -> float:
        return self._settings.recovery_timeout

    @property
    def _fallback_function(self) -> Callable[..., Any] | None:
        return self._settings.fallback

    @property
    def _failure_count(self) -> int:
        return self.failure_count

    @property
    def _state(self) -> State:
        return self.state

    @_state.setter
    def _state(self, state: State | str) -> None:
        """``breaker._state = State.OPEN``, as 2.x tests write it: a change by hand."""
        target = _core.parse_state(state, "_state")
        if target is OPEN:
            self._change(self._open_by_hand, "_state = OPEN")
        elif target is HALF_OPEN:
            self._change(_half_opened, "_state = HALF_OPEN")
        elif target is CLOSED:
            self._change(_closed, "_state = CLOSED")
        else:
            self._change(self._enter(target), f"_state = {target.name}")

    # -- identity -----------------------------------------------------------------------------

    def __str__(self) -> str:
        return self._name or "unnamed_CircuitBreaker"

    def __repr__(self) -> str:
        limit = "" if self._settings.policy is not None else f"/{self._settings.failure_threshold}"
        return (
            f"<{type(self).__name__} {self._name!r} state={self.state.value} "
            f"failures={self.failure_count}{limit}>"
        )

    def __copy__(self) -> NoReturn:
        _refuse_copy(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> NoReturn:
        _refuse_copy(self)

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        _refuse_copy(self)


ORIGINAL_OPENED = vars(CircuitBreaker)["opened"]  # to tell when a subclass or patch replaced it


def _refuse_copy(breaker: CircuitBreaker) -> NoReturn:
    msg = (
        f"circuit breaker {breaker.name!r} cannot be copied or pickled: a breaker is the one "
        "record of its dependency's health; share it, or make a new one with the same options"
    )
    raise TypeError(msg)


def _half_opened(view: Any, now: float) -> _core.Value:
    return _core.half_opened(view.value, 0.0)


def _closed(view: Any, now: float) -> _core.Value:
    return _core.closed(view.value)


def utc_after(seconds: float) -> datetime:
    """Return the UTC time ``seconds`` from now (``datetime.max`` if out of range)."""
    if math.isinf(seconds) or seconds > 1e14:
        return _UTC_MAX
    try:
        return datetime.now(timezone.utc) + timedelta(seconds=seconds)
    except OverflowError:
        return _UTC_MAX


def _qualname(function: Callable[..., Any]) -> str:
    """Return the default breaker name for ``function``."""
    target: Any = function
    while isinstance(target, functools.partial):
        target = target.func
    name = getattr(target, "__qualname__", None)
    if isinstance(name, str):
        return name
    return type(target).__qualname__


def _check_storage(storage: object, policy: RatePolicy | None) -> None:
    """Refuse a storage that is not one, or that counts in another window than the policy's.

    A storage that says which window it counts in (``InMemoryStorage.window``) must count in
    the policy's, or the policy would judge counts of another shape (or none at all).
    """
    if storage is None:
        return
    if not isinstance(storage, Storage):
        msg = f"storage must follow the Storage protocol or be None, got {storage!r}"
        raise TypeError(msg)
    needed = None if policy is None else policy.window
    counts_in = getattr(storage, "window", needed)
    if counts_in != needed:
        msg = (
            f"storage counts calls in {counts_in!r}, but the breaker's policy needs {needed!r}:"
            " make the storage with window=policy.window (or window=None without a policy)"
        )
        raise ValueError(msg)
