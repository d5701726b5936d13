"""CircuitBreaker: the shell around the pure core.

It owns the configuration, the clock and a lock, and swaps the breaker's :class:`Snapshot` whole.
Every way in (decorated functions, ``call()``, ``async with``, ``with``, async generators) goes
through :meth:`CircuitBreaker._admit` and then records exactly one outcome: a success, an
exception judged by :meth:`CircuitBreaker._record_exception`, or nothing at all for a call that
was rejected.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextvars import ContextVar
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import Any, ClassVar, ParamSpec, TypeVar, overload

from . import _state
from ._config import (
    ExpectedException,
    FailurePredicate,
    class_default,
    validate_callable,
    validate_expected_exception,
    validate_failure_threshold,
    validate_name,
    validate_recovery_timeout,
)
from ._errors import CircuitBreakerError
from ._registry import track
from ._state import CLOSED, HALF_OPEN, INITIAL, OPEN, Snapshot, State

__all__ = ["CircuitBreaker"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
B = TypeVar("B", bound="CircuitBreaker")

logger = logging.getLogger("aiocircuitbreaker")

# One lock for every breaker: critical sections are a few attribute reads and one assignment, so
# contention is negligible, and a breaker costs no lock object. The hot paths (closed admission,
# a success with no failures pending, an open rejection) read the snapshot without it.
_lock = threading.Lock()
# acquire()/release() in try/finally: `with _lock:` costs several times more per use here.
_acquire = _lock.acquire
_release = _lock.release

# Permits taken by ``with breaker:`` / ``async with breaker:``, per task (and per thread): a
# context manager may be entered concurrently by many tasks, so the permit cannot live on self.
_permits: ContextVar[tuple[tuple[CircuitBreaker, int], ...]] = ContextVar(
    "aiocircuitbreaker_permits", default=()
)

_REJECTED = -1
_MAX_PROBES = 1


class CircuitBreaker:
    """A circuit breaker guarding async calls to one dependency.

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
            :class:`CircuitBreakerError` when a call is rejected; may be sync or async
            (default ``FALLBACK_FUNCTION``, none).
        clock: A function returning seconds from a monotonic clock
            (default ``time.monotonic``); tests pass a fake one.

    ``None`` for any argument means "use the class default", so subclasses can set them as
    class attributes.
    """

    FAILURE_THRESHOLD: ClassVar[int] = 5
    RECOVERY_TIMEOUT: ClassVar[float] = 30
    EXPECTED_EXCEPTION: ClassVar[ExpectedException] = Exception
    FALLBACK_FUNCTION: ClassVar[Callable[..., Any] | None] = None

    __slots__ = (
        "__weakref__",
        "_clock",
        "_expected",
        "_failure_threshold",
        "_fallback_function",
        "_last_failure",
        "_name",
        "_predicate",
        "_recovery_timeout",
        "_snapshot",
    )

    _snapshot: Snapshot
    _last_failure: BaseException | None
    _name: str | None

    def __init__(
        self,
        failure_threshold: int | None = None,
        recovery_timeout: float | None = None,
        expected_exception: ExpectedException | None = None,
        name: str | None = None,
        fallback_function: Callable[..., Any] | None = None,
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        cls = type(self)
        self._failure_threshold = validate_failure_threshold(
            class_default(cls, "FAILURE_THRESHOLD")
            if failure_threshold is None
            else failure_threshold
        )
        self._recovery_timeout = validate_recovery_timeout(
            class_default(cls, "RECOVERY_TIMEOUT") if recovery_timeout is None else recovery_timeout
        )
        self._expected, self._predicate = validate_expected_exception(
            class_default(cls, "EXPECTED_EXCEPTION")
            if expected_exception is None
            else expected_exception
        )
        self._fallback_function: Callable[..., Any] | None = validate_callable(
            "fallback_function",
            class_default(cls, "FALLBACK_FUNCTION")
            if fallback_function is None
            else fallback_function,
        )
        self._name = validate_name(name)
        self._clock: Callable[[], float] = (
            time.monotonic if clock is None else validate_callable("clock", clock)
        )
        self._snapshot = INITIAL
        self._last_failure = None
        track(self)

    # -- decorating --------------------------------------------------------------------------

    @overload
    def __call__(
        self, wrapped: Callable[P, Coroutine[Any, Any, R]]
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...
    @overload
    def __call__(self, wrapped: Callable[P, AsyncIterator[T]]) -> Callable[P, AsyncIterator[T]]: ...
    @overload
    def __call__(
        self, wrapped: Callable[P, Awaitable[R]]
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...
    def __call__(self, wrapped: Callable[..., Any]) -> Callable[..., Any]:
        """Decorate ``wrapped`` (see :meth:`decorate`)."""
        return self.decorate(wrapped)

    @overload
    def decorate(
        self, function: Callable[P, Coroutine[Any, Any, R]]
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...
    @overload
    def decorate(
        self, function: Callable[P, AsyncIterator[T]]
    ) -> Callable[P, AsyncIterator[T]]: ...
    @overload
    def decorate(
        self, function: Callable[P, Awaitable[R]]
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...
    def decorate(self, function: Callable[..., Any]) -> Callable[..., Any]:
        """Return ``function`` guarded by this breaker.

        ``function`` may be an ``async def`` function or method, an async generator function,
        a ``functools.partial`` of one, or an object with an ``async def __call__``.

        Raises:
            ValueError: ``function`` is synchronous.
        """
        from ._wrappers import wrap  # noqa: PLC0415 - _wrappers imports this module

        wrapper = wrap(self, function)
        if self._name is None:
            self._name = _qualname(function)
        return wrapper

    async def call(self, func: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``func(*args, **kwargs)`` through the breaker.

        Raises:
            CircuitBreakerError: The call was rejected and no fallback is set.
        """
        generation = self._admit()
        if generation == _REJECTED:
            return await self._reject(args, kwargs)  # type: ignore[no-any-return]
        try:
            result = await func(*args, **kwargs)
        except BaseException as exc:
            self._record_exception(generation, exc)
            raise
        self._record_success(generation)
        return result

    # -- context managers ----------------------------------------------------------------------

    def __enter__(self: B) -> B:
        generation = self._admit()
        if generation == _REJECTED:
            raise CircuitBreakerError(self)
        _permits.set((*_permits.get(), (self, generation)))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        permits = _permits.get()
        for index in range(len(permits) - 1, -1, -1):
            if permits[index][0] is self:
                generation = permits[index][1]
                _permits.set(permits[:index] + permits[index + 1 :])
                break
        else:
            msg = "CircuitBreaker.__exit__ without a matching __enter__ in this task"
            raise RuntimeError(msg)
        if exc_value is None:
            self._record_success(generation)
        else:
            self._record_exception(generation, exc_value)

    async def __aenter__(self: B) -> B:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc_value, traceback)

    # -- control -------------------------------------------------------------------------------

    def reset(self) -> None:
        """Close the breaker and forget its failures; calls still running no longer count."""
        _acquire()
        try:
            self._snapshot = _state.close(self._snapshot)
            self._last_failure = None
        finally:
            _release()

    # -- properties ----------------------------------------------------------------------------

    @property
    def name(self) -> str | None:
        """The breaker's name (``None`` until it is named or decorates a function)."""
        return self._name

    @property
    def state(self) -> State:
        """The current state; an open breaker whose recovery timeout has passed is half-open."""
        snapshot = self._snapshot
        if snapshot.state is OPEN:
            return _state.current_state(snapshot, self._clock())
        return snapshot.state

    @property
    def closed(self) -> bool:
        """Whether the breaker is closed."""
        return self.state is CLOSED

    @property
    def opened(self) -> bool:
        """Whether the breaker is open and still inside its recovery timeout."""
        return self.state is OPEN

    @property
    def half_open(self) -> bool:
        """Whether the breaker is half-open (due to admit, or running, a probe call)."""
        return self.state is HALF_OPEN

    @property
    def failure_count(self) -> int:
        """Consecutive expected failures (not reset by opening; reset by closing)."""
        return _state.failure_count(self._snapshot)

    @property
    def last_failure(self) -> BaseException | None:
        """The exception of the last counted failure, or ``None``."""
        return self._last_failure

    @property
    def fallback_function(self) -> Callable[..., Any] | None:
        """The function called instead of raising when a call is rejected."""
        return self._fallback_function

    @property
    def failure_threshold(self) -> int:
        """Consecutive expected failures that open the breaker."""
        return self._failure_threshold

    @property
    def recovery_timeout(self) -> float:
        """Seconds the breaker stays open before admitting a probe."""
        return self._recovery_timeout

    @property
    def expected_exception(self) -> tuple[type[Exception], ...] | FailurePredicate:
        """What counts as a failure: a tuple of exception classes, or a predicate."""
        if self._predicate is not None:
            return self._predicate
        expected = self._expected
        return expected if isinstance(expected, tuple) else (expected,)

    @property
    def open_remaining(self) -> float:
        """Seconds until the breaker admits a probe: zero when closed, negative once due."""
        snapshot = self._snapshot
        if snapshot.state is CLOSED:
            return 0.0
        return snapshot.open_until - self._clock()

    @property
    def open_until(self) -> datetime:
        """The UTC time at which the breaker admits (or admitted) a probe; now when closed."""
        return datetime.now(timezone.utc) + timedelta(seconds=self.open_remaining)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self._name!r} state={self.state.value} "
            f"failures={self.failure_count}/{self._failure_threshold}>"
        )

    # -- the admission path ----------------------------------------------------------------

    def _admit(self) -> int:
        """Return the generation a new call is admitted under, or ``_REJECTED``."""
        snapshot = self._snapshot
        if snapshot.state is CLOSED:
            return snapshot.generation
        now = self._clock()
        if snapshot.state is OPEN and now < snapshot.open_until:
            return _REJECTED  # the common open case needs no lock
        _acquire()
        try:
            admitted = _state.admit(self._snapshot, now, _MAX_PROBES)
            if admitted is None:
                return _REJECTED
            self._snapshot = admitted
            return admitted.generation
        finally:
            _release()

    def _reject(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Awaitable[Any]:
        """Return an awaitable of the fallback's result, or raise CircuitBreakerError."""
        fallback = self._fallback_function
        if fallback is None:
            raise CircuitBreakerError(self)
        return _resolve(fallback(*args, **kwargs))

    def _record_success(self, generation: int) -> None:
        snapshot = self._snapshot
        if snapshot.failures is None and snapshot.state is CLOSED:
            return  # nothing to reset: the hot path takes no lock
        _acquire()
        try:
            snapshot = self._snapshot
            # No call is ever admitted under an open generation, so a matching generation is
            # either the half-open probe's or a closed one's.
            if snapshot.generation == generation:
                if snapshot.state is HALF_OPEN:
                    self._snapshot = _state.close(snapshot)
                else:
                    self._snapshot = _state.forget_failures(snapshot)
                self._last_failure = None  # the failure streak is over, as in 2.x
        finally:
            _release()

    def _record_exception(self, generation: int, exc: BaseException) -> None:
        """Record a call that raised: a failure if ``exc`` is expected, else neutral."""
        # _expected holds Exception subclasses only (checked at construction), so isinstance()
        # alone keeps cancellation and other BaseExceptions neutral.
        if isinstance(exc, self._expected) or (self._predicate is not None and self._judge(exc)):
            snapshot = self._snapshot
            failures = snapshot.failures  # a counter exists only while closed
            if failures is not None and snapshot.generation == generation:
                # Lock-free: next() on the generation's counter is one atomic step, and a
                # counter that a transition replaced meanwhile is never read again.
                self._last_failure = exc
                if next(failures) + 1 < self._failure_threshold:
                    return
                self._record_failure_locked(generation, None)
            else:
                self._record_failure_locked(generation, exc)
        elif self._snapshot.state is HALF_OPEN:
            _acquire()
            try:
                snapshot = self._snapshot
                # Generations only grow, so if the call's generation is still the current one,
                # it is the half-open generation read just above: the call is its probe.
                if snapshot.generation == generation:
                    self._snapshot = _state.release_probe(snapshot)
            finally:
                _release()

    def _record_failure_locked(self, generation: int, exc: BaseException | None) -> None:
        """Count ``exc`` (``None``: counted already) and trip if the threshold is reached."""
        _acquire()
        try:
            snapshot = self._snapshot
            if snapshot.generation != generation or snapshot.state is OPEN:
                return
            if exc is not None:
                self._last_failure = exc
            if snapshot.state is HALF_OPEN:
                # A failed probe re-opens at once; the count grows by one, as it always has.
                failures = snapshot.tripped_failures + 1
            else:
                if exc is not None:
                    snapshot = self._snapshot = _state.count_failures(snapshot)
                    next(snapshot.failures)  # type: ignore[arg-type]
                failures = _state.failure_count(snapshot)
                if failures < self._failure_threshold:
                    return
            self._snapshot = _state.trip(snapshot, failures, self._clock(), self._recovery_timeout)
        finally:
            _release()

    def _judge(self, exc: BaseException) -> bool:
        """Ask the ``expected_exception`` predicate whether ``exc`` is a failure."""
        if not isinstance(exc, Exception):
            return False  # cancellation, KeyboardInterrupt, GeneratorExit...: always neutral
        try:
            return bool(self._predicate(type(exc), exc))  # type: ignore[misc]
        except Exception:
            # A broken predicate must not replace the call's own exception or corrupt state:
            # the outcome is neutral, and the fault is logged.
            logger.exception(
                "expected_exception predicate of circuit breaker %r raised; "
                "treating the call's %s as neutral",
                self._name,
                type(exc).__name__,
            )
            return False


async def _resolve(value: Any) -> Any:
    """Await ``value`` if it is awaitable (a fallback may be sync or async)."""
    if inspect.isawaitable(value):
        return await value
    return value


def _qualname(function: Callable[..., Any]) -> str:
    """Return the default breaker name for ``function``."""
    target = getattr(function, "func", function)  # functools.partial
    name = getattr(target, "__qualname__", None)
    if isinstance(name, str):
        return name
    return type(target).__qualname__
