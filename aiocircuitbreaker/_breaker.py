"""CircuitBreaker: the shell around the pure core.

It owns the configuration, the clock and a lock, and swaps the breaker's :class:`Snapshot` whole.
Every way in (decorated functions, ``call()``, ``async with``, ``with``, async generators) goes
through :meth:`CircuitBreaker._admit` and then records exactly one outcome: a success, an
exception judged by :meth:`CircuitBreaker._record_exception`, or nothing at all for a call that
was rejected.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from contextvars import ContextVar
from dataclasses import replace
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
from ._events import (
    CallFailed,
    CallNeutral,
    CallRejected,
    CallSucceeded,
    Event,
    Listener,
    StateChanged,
    Subscription,
    deliver,
    same_listener,
    subscription,
)
from ._policies import Backoff, HalfOpen, OpenDuration, RatePolicy, Tally
from ._registry import created, global_subscriptions, track
from ._state import (
    CLOSED,
    DISABLED,
    FAILURE,
    FORCED_OPEN,
    HALF_OPEN,
    INITIAL,
    METRICS_ONLY,
    NEUTRAL,
    OPEN,
    SUCCESS,
    Rules,
    Snapshot,
    State,
)
from ._statistics import Counters, Statistics, add_transition

__all__ = ["CircuitBreaker"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
B = TypeVar("B", bound="CircuitBreaker")

logger = logging.getLogger("aiocircuitbreaker")
# A library's logger gets a NullHandler, so that an application that configured no logging is
# not sent our WARNINGs through logging's last-resort handler on stderr.
logger.addHandler(logging.NullHandler())

# One lock for every breaker: critical sections are a few attribute reads and one assignment, so
# contention is negligible, and a breaker costs no lock object. The hot paths (closed admission,
# a success with no failures pending, an open rejection) read the snapshot without it.
# Re-entrant: user callables that run while it is held (open_duration, a trip rule, the clock,
# a logging handler) may read breakers, or the monitor, from the same thread without deadlock.
_lock = threading.RLock()
# acquire()/release() in try/finally: `with _lock:` costs several times more per use here.
_acquire = _lock.acquire
_release = _lock.release

# Permits taken by ``with breaker:`` / ``async with breaker:``, per task (and per thread): a
# context manager may be entered concurrently by many tasks, so the permit cannot live on self.
_permits: ContextVar[tuple[tuple[CircuitBreaker, int, float], ...]] = ContextVar(
    "aiocircuitbreaker_permits", default=()
)

_REJECTED = -1
_UNTIMED = -math.inf  # the start of a call that was not timed
# The permit of a call let through by a disabled breaker: nothing about it is recorded.
_BYPASS = -(2**62)
NO_RESULT: Any = object()  # what a `with` block or an async generator "returns"
# Half-open probes are admitted under permits of their own: negative numbers, so that they can
# never be mistaken for a closed generation (>= 0) or for _REJECTED.
_probe_permits = itertools.count(-2, -1)
_DEFAULT_HALF_OPEN = HalfOpen()


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
        policy: A :class:`RatePolicy` to trip on failure or slow-call rates over a sliding
            window (or on a custom rule) instead of on consecutive failures.
        failure_result: A predicate on a call's return value: when it is true the call counts
            as failed, and the caller still gets the value.
        half_open: A :class:`HalfOpen` saying how many probes run and what closes the breaker.
        open_duration: How long each opening lasts: a :class:`Backoff`, or a function
            ``(consecutive_openings, failure) -> seconds``; default ``recovery_timeout``.

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
        "_counters",
        "_expected",
        "_failure_threshold",
        "_fallback_function",
        "_last_failure",
        "_listeners",
        "_name",
        "_recovery_timeout",
        "_rules",
        "_snapshot",
    )

    _snapshot: Snapshot
    _last_failure: BaseException | None
    _name: str | None
    # Made on first use (see _get_counters): unset until then, to keep unused breakers small.
    _counters: Counters
    # The subscriptions (own and global) that want per-call events; empty means no call ever
    # builds an event, and the wrappers stay on their fast paths.
    _listeners: tuple[Subscription, ...]

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
        self._expected, predicate = validate_expected_exception(
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
        # None: the 2.x defaults, built on first need (most breakers never trip, and a Rules
        # object per breaker would cost memory for nothing).
        self._rules: Rules | None = None
        if any(
            x is not None for x in (policy, failure_result, half_open, open_duration, predicate)
        ):
            self._rules = _build_rules(
                self, policy, failure_result, half_open, open_duration, predicate
            )
        self._listeners = ()
        given: object = listeners  # checked as any object: callers may pass anything
        if isinstance(given, (str, bytes)) or not isinstance(given, Iterable):
            msg = f"listeners must be an iterable of callables, got {given!r}"
            raise TypeError(msg)
        # Registered before the global listeners are read: one added meanwhile reaches it.
        track(self)
        for listener in listeners:
            self.add_listener(listener)
        if global_subscriptions(calls_only=True):
            self._refresh_listeners()
        created(self)

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
        return await self._call(func, args, kwargs)  # type: ignore[no-any-return]

    async def _call(
        self, func: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """The general path of a guarded call: every state, mode, rule and listener."""
        permit = self._admit()
        if permit == _REJECTED:
            return await self._reject(args, kwargs)
        if permit == _BYPASS:
            return await func(*args, **kwargs)
        started = self._start()
        try:
            result = await func(*args, **kwargs)
        except BaseException as exc:
            self._complete(permit, started, NO_RESULT, exc)
            raise
        self._complete(permit, started, result)
        return result

    # -- context managers ----------------------------------------------------------------------

    def __enter__(self: B) -> B:
        permit = self._admit()
        if permit == _REJECTED:
            self._count_rejection()
            raise CircuitBreakerError(self)
        _permits.set((*_permits.get(), (self, permit, self._start())))
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
                _, permit, started = permits[index]
                _permits.set(permits[:index] + permits[index + 1 :])
                break
        else:
            msg = "CircuitBreaker.__exit__ without a matching __enter__ in this task"
            raise RuntimeError(msg)
        self._complete(permit, started, NO_RESULT, exc_value)

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
        """Close the breaker and forget its failures; calls still running no longer count.

        The same as :meth:`close`, under the name ``circuitbreaker`` 2.x uses.
        """
        self._change(_close, "reset()")

    def close(self) -> None:
        """Close the breaker now, from any state or mode, and forget its failures.

        Calls still running no longer count. This is also how a breaker leaves the modes set by
        :meth:`force_open`, :meth:`disable` and :meth:`metrics_only`.
        """
        self._change(_close, "close()")

    def open(self) -> None:
        """Open the breaker now, as if it had tripped: it half-opens after its open duration."""
        self._change(self._open_by_hand, "open()")

    def force_open(self) -> None:
        """Reject every call until :meth:`close` or :meth:`reset`, whatever the clock says."""
        self._change(functools.partial(_enter_mode, FORCED_OPEN), "force_open()")

    def disable(self) -> None:
        """Let every call through, recording nothing, until :meth:`close` or :meth:`reset`."""
        self._change(functools.partial(_enter_mode, DISABLED), "disable()")

    def metrics_only(self) -> None:
        """Let every call through and record it, never tripping, until :meth:`close`."""
        self._change(functools.partial(_enter_mode, METRICS_ONLY), "metrics_only()")

    def _open_by_hand(self, snapshot: Snapshot, now: float) -> Snapshot:
        return _state.open_now(
            snapshot, now, self._get_rules(), _state.failure_count(snapshot), None
        )

    def _change(
        self,
        transition: Callable[[Snapshot, float], Snapshot],
        reason: str,
        *,
        forget_last_failure: bool = True,
        quiet: bool = False,
    ) -> None:
        """Apply a transition by hand, under the lock; then log it and tell the listeners.

        A change by hand has no failure behind it: its StateChanged carries no exception.
        ``quiet`` changes the state without a word (``testing.passthrough()``).
        """
        now = self._clock()
        rules = self._get_rules()
        _acquire()
        try:
            # Lazy transitions due by now happened first: opening a breaker that reads
            # half-open is an opening, from half-open.
            before, steps = self._catch_up_locked(now, rules)
            after = transition(before, now)
            self._store(after)
            if after.state is CLOSED and forget_last_failure:
                self._last_failure = None
            self._changed_locked(before, after, now)
        finally:
            _release()
        if quiet:
            return
        self._announce_steps(steps, now)
        if after.state is not before.state:
            self._announce(before, after, reason, now, manual=True)
        elif after.state is OPEN:
            # open() of an open breaker: the state stays, the open period starts again.
            logger.warning(
                "circuit breaker %r opened again: %s; rejecting calls for %.3f s",
                self._name,
                reason,
                after.open_until - now,
            )

    # -- listeners and statistics ------------------------------------------------------------

    def add_listener(self, listener: Listener, *event_types: type[Event]) -> None:
        """Call ``listener(event)`` for this breaker's events (of ``event_types``, or all).

        ``listener`` may be sync or async (an async one is scheduled as a task, never awaited
        by the call); what it raises is logged and ignored. Adding the same listener again
        replaces its event types.

        Raises:
            TypeError: ``listener`` is not callable, or an event type is not an Event class.
        """
        added = subscription(listener, event_types)
        _acquire()
        try:
            counters = self._counters_locked()
            counters.subscriptions = (
                *(s for s in counters.subscriptions if not same_listener(s.listener, listener)),
                added,
            )
        finally:
            _release()
        self._refresh_listeners()

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener``.

        Raises:
            ValueError: ``listener`` was not added to this breaker.
        """
        _acquire()
        try:
            counters = self._counters_locked()
            kept = tuple(
                s for s in counters.subscriptions if not same_listener(s.listener, listener)
            )
            found = len(kept) != len(counters.subscriptions)
            counters.subscriptions = kept
        finally:
            _release()
        if not found:
            msg = f"{listener!r} is not a listener of circuit breaker {self._name!r}"
            raise ValueError(msg)
        self._refresh_listeners()

    def _subscriptions(self) -> tuple[Subscription, ...]:
        """Return this breaker's own subscriptions followed by the global ones."""
        try:
            own = self._counters.subscriptions
        except AttributeError:
            own = ()
        return (*own, *global_subscriptions(calls_only=False))

    def _refresh_listeners(self) -> None:
        """Recompute the call-event gate after a listener was added or removed."""
        _acquire()
        try:
            self._listeners = tuple(s for s in self._subscriptions() if s.wants_calls)
            observed = bool(self._listeners)
            snapshot = self._snapshot
            if snapshot.observed is not observed:
                self._store(replace(snapshot, observed=observed))
        finally:
            _release()

    def statistics(self) -> Statistics:
        """Return what the breaker looks like now, and what it has counted, as one value.

        A read, safe from any thread (a metrics exporter's, say): it changes nothing. Lazy
        transitions that are due (an open period over, a probe out of time) are reported as
        having happened when they became due, and made by the next call as usual.
        """
        now = self._clock()
        rules = self._get_rules()
        _acquire()
        try:
            counters = self._counters_locked()
            stored = self._snapshot
            settled = _state.settle(stored, now, rules)
            due = _state.end_open_period(settled, now)
            total = counters.counts(streak=_state.streak(stored))
            base, changed_at = counters.base, counters.changed_at
            openings, transitions = counters.openings, counters.transitions
            tally = stored.tally
            if tally is None:
                failure_rate, slow_call_rate = counters.last_rates
            else:
                failure_rate, slow_call_rate = self._window_rates(tally, now)
            last_failure = self._last_failure
        finally:
            _release()
        for before, after in ((stored, settled), (settled, due)):
            if after.generation != before.generation:
                transitions = add_transition(transitions, before.state, after.state)
                openings += after.state is OPEN
                changed_at = self._changed_at(before, after, now)
                base = total  # nothing has finished in a period that no call has seen yet
        state = due.state
        if state is CLOSED or state is DISABLED or state is METRICS_ONLY:
            remaining = 0.0
        else:
            remaining = due.open_until - now
        return Statistics(
            name=self._name,
            state=state,
            generation=due.generation,
            since_change=total - base,
            total=total,
            failure_count=_state.failure_count(due),
            failure_rate=failure_rate,
            slow_call_rate=slow_call_rate,
            time_in_state=max(0.0, now - changed_at),
            openings=openings,
            open_remaining=remaining,
            last_failure=last_failure,
            transitions=transitions,
        )

    def _catch_up_locked(
        self, now: float, rules: Rules
    ) -> tuple[Snapshot, list[tuple[Snapshot, Snapshot, str]]]:
        """Return the stored snapshot with the lazy transitions due by ``now``, and those steps.

        The lock is held; the caller stores a snapshot derived from the one returned. A probe
        that ran out of time re-opened the breaker (``settled``), and that open period may be
        over already (``after``): two changes, each counted here (and announced later by
        :meth:`_announce_steps`) on its own.
        """
        before = self._snapshot
        settled = _state.settle(before, now, rules)
        after = _state.end_open_period(settled, now)
        steps = []
        if settled.generation != before.generation:
            self._changed_locked(before, settled, now)
            steps.append((before, settled, "a probe ran out of time (HalfOpen.max_duration)"))
        if after.generation != settled.generation:
            self._changed_locked(settled, after, now)
            steps.append((settled, after, "the open period is over; admitting probes"))
        return after, steps

    def _announce_steps(self, steps: list[tuple[Snapshot, Snapshot, str]], now: float) -> None:
        for before, after, reason in steps:
            self._announce(before, after, reason, now)

    def _get_counters(self) -> Counters:
        """Return the breaker's counters, making them on first use."""
        try:
            return self._counters
        except AttributeError:
            _acquire()
            try:
                return self._counters_locked()
            finally:
                _release()

    def _counters_locked(self) -> Counters:
        """Return the breaker's counters, making them on first use (the lock is held)."""
        try:
            return self._counters
        except AttributeError:
            counters = self._counters = Counters(self._clock())
            snapshot = self._snapshot
            counters.dirty = snapshot.failures is not None or snapshot.state is not CLOSED
            return counters

    def _store(self, snapshot: Snapshot) -> None:
        """Make ``snapshot`` the breaker's state (the lock is held).

        ``Counters.dirty`` caches whether a success must be recorded under the lock (failures
        are pending, or the breaker is not closed): the wrappers' success path reads that one
        flag next to the counter it bumps, instead of the snapshot's two fields.
        """
        before = self._snapshot
        self._snapshot = snapshot
        if snapshot.generation != before.generation:
            rules = self._rules
            if rules is not None and isinstance(rules.open_duration, _AgreedDuration):
                rules.open_duration.answers.clear()  # that opening is decided now
        counters = self._counters_locked()
        counters.dirty = snapshot.failures is not None or snapshot.state is not CLOSED
        if before.failures is not None and snapshot.failures is not before.failures:
            # A failure streak's counter is retired: its failures join the statistics' total
            # (the lock-free failure path counts a failure only in its streak).
            counters.retire(before.failures, _state.failure_count(before))

    def _count_rejection(self) -> None:
        """Count a rejected call, and tell the listeners.

        A rejection happens in a state that was stored by :meth:`_store`, which made the
        counters. An open breaker is stored as half-open before it rejects a call past its
        deadline, so the stored state is the one that rejected.
        """
        self._counters.rejected += 1
        if self._listeners:
            deliver(self._listeners, CallRejected(self, self._clock(), self._snapshot.state))

    # -- properties ----------------------------------------------------------------------------

    @property
    def name(self) -> str | None:
        """The breaker's name (``None`` until it is named or decorates a function)."""
        return self._name

    @property
    def state(self) -> State:
        """The current state; an open breaker whose recovery timeout has passed is half-open."""
        snapshot = self._snapshot
        if snapshot.state is CLOSED:
            return CLOSED
        return _state.current_state(snapshot, self._clock(), self._get_rules())

    def _settled(self) -> Snapshot:
        """Return the snapshot as of now, lazy transitions applied (for reading only)."""
        snapshot = self._snapshot
        if snapshot.state is not HALF_OPEN:
            return snapshot
        return _state.settle(snapshot, self._clock(), self._get_rules())

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
        return _state.failure_count(self._settled())

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
        rules = self._rules
        if rules is not None and rules.predicate is not None:
            return rules.predicate
        expected = self._expected
        return expected if isinstance(expected, tuple) else (expected,)

    @property
    def open_remaining(self) -> float:
        """Seconds until the breaker admits a probe: zero when closed, negative once due.

        Zero also while disabled or metrics-only (nothing is rejected); infinite while forced
        open.
        """
        snapshot = self._settled()
        state = snapshot.state
        if state is CLOSED or state is DISABLED or state is METRICS_ONLY:
            return 0.0
        return snapshot.open_until - self._clock()

    @property
    def open_until(self) -> datetime:
        """The UTC time at which the breaker admits (or admitted) a probe; now when closed.

        ``datetime.max`` (UTC) while forced open: it admits no probe until released.
        """
        remaining = self.open_remaining
        if math.isinf(remaining):
            return datetime.max.replace(tzinfo=timezone.utc)
        return datetime.now(timezone.utc) + timedelta(seconds=remaining)

    def __repr__(self) -> str:
        rules = self._rules
        limit = (
            "" if rules is not None and rules.policy is not None else f"/{self._failure_threshold}"
        )
        return (
            f"<{type(self).__name__} {self._name!r} state={self.state.value} "
            f"failures={self.failure_count}{limit}>"
        )

    # -- the admission path ----------------------------------------------------------------

    def _get_rules(self) -> Rules:
        """Return the breaker's rules, building the 2.x defaults on first need."""
        rules = self._rules
        if rules is None:
            # Two threads may both build it; they build the same value.
            rules = self._rules = _build_rules(self, None, None, None, None, None)
        return rules

    def _admit(self) -> int:  # noqa: PLR0911 - one return per state reads best here
        """Return the permit a new call is admitted under, ``_REJECTED`` or ``_BYPASS``.

        A closed call's permit is the generation; a half-open probe's is a negative number of
        its own. A disabled breaker lets calls through under ``_BYPASS``.
        """
        snapshot = self._snapshot
        state = snapshot.state
        if state is CLOSED or state is METRICS_ONLY:
            return snapshot.generation
        if state is DISABLED:
            return _BYPASS
        if state is FORCED_OPEN:
            return _REJECTED
        now = self._clock()
        if state is OPEN and now < snapshot.open_until:
            return _REJECTED  # the common open case needs no lock
        permit = next(_probe_permits)
        rules = self._get_rules()
        _acquire()
        try:
            due, steps = self._catch_up_locked(now, rules)
            snapshot, admitted = _state.admit(due, now, rules, permit)
            self._store(snapshot)
            self._changed_locked(due, snapshot, now)
        finally:
            _release()
        self._announce_steps(steps, now)
        if not admitted:
            return _REJECTED
        state = snapshot.state
        if state is DISABLED:
            return _BYPASS
        return permit if state is HALF_OPEN else snapshot.generation

    def _reject(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Awaitable[Any]:
        """Count a rejection; return an awaitable of the fallback's result, or raise."""
        self._count_rejection()
        fallback = self._fallback_function
        if fallback is None:
            raise CircuitBreakerError(self)
        return _resolve(fallback(*args, **kwargs))

    @property
    def _plain(self) -> bool:
        """Whether outcomes need no more than 2.x counting (no policy, no result predicate)."""
        rules = self._rules
        return rules is None or (rules.policy is None and rules.failure_result is None)

    def _start(self) -> float:
        """Return the clock reading a call starts at, if the rules or the listeners need it.

        ``_UNTIMED`` otherwise: a listener added while the call runs gets no event for it.
        """
        rules = self._rules
        if self._listeners or (rules is not None and rules.clocked):
            return self._clock()
        return _UNTIMED

    def _complete(
        self,
        permit: int,
        started: float,
        result: Any = NO_RESULT,
        exc: BaseException | None = None,
    ) -> None:
        """Record a finished call, by the cheapest path its breaker's rules allow."""
        if permit == _BYPASS:
            return
        if not self._plain:
            outcome = self._finish(permit, started, result, exc)
        elif exc is None:
            self._count_success()
            self._record_success(permit)
            outcome = SUCCESS
        else:
            outcome = self._record_exception(permit, exc)
        if self._listeners and started != _UNTIMED:
            self._report_call(outcome, started, exc)

    def _report_call(self, outcome: str, started: float, exc: BaseException | None) -> None:
        """Tell the listeners how a call ended (only called when there are listeners)."""
        now = self._clock()
        duration = now - started
        event: Event
        if outcome == SUCCESS:
            event = CallSucceeded(self, now, duration)
        elif outcome == FAILURE:
            event = CallFailed(self, now, duration, exc)
        else:
            if isinstance(exc, Neutral):
                exc = exc.original
            event = CallNeutral(self, now, duration, exc)  # type: ignore[arg-type]
        deliver(self._listeners, event)

    def _count_success(self) -> None:
        try:
            self._counters.successes += 1
        except AttributeError:
            self._get_counters().successes += 1

    def _count_neutral(self) -> None:
        try:
            self._counters.neutral += 1
        except AttributeError:
            self._get_counters().neutral += 1

    def _record_success(self, permit: int) -> None:
        """Record a success (2.x counting only: see _finish for the opt-in rules)."""
        snapshot = self._snapshot
        if snapshot.failures is None and snapshot.state is CLOSED:
            return  # nothing to reset: the hot path takes no lock
        self._record(permit, SUCCESS, None)

    def _record_exception(self, permit: int, exc: BaseException) -> str:
        """Count and record a call that raised: a failure if ``exc`` is expected, else neutral.

        Returns:
            The outcome, FAILURE or NEUTRAL.
        """
        if self._is_failure(exc):
            snapshot = self._snapshot
            failures = snapshot.failures  # a counter exists only while closed, without a policy
            if failures is not None and snapshot.generation == permit:
                # Lock-free: next() on the generation's counter is one atomic step, and a
                # counter that a transition replaced meanwhile is never read again.
                self._last_failure = exc
                if next(failures) + 1 < self._failure_threshold:
                    return FAILURE
                self._record(permit, FAILURE, exc, counted=True)
            else:
                self._record(permit, FAILURE, exc)
            return FAILURE
        self._count_neutral()
        if permit < 0 and self._snapshot.state is HALF_OPEN:
            self._record(permit, NEUTRAL, None)
        return NEUTRAL

    def _record(  # noqa: PLR0912 - one branch per kind of outcome, all under one lock
        self,
        permit: int,
        outcome: str,
        failure: BaseException | None,
        *,
        counted: bool = False,
        slow: bool = False,
        started: float = 0.0,
        now: float | None = None,
    ) -> None:
        """Record one outcome under the lock (every path but the lock-free ones ends here).

        A failure is counted in the statistics here unless it was counted lock-free in the
        breaker's failure streak; either way before the state changes, so that the call that
        changes it counts in the period it ends.

        Args:
            permit: The call's permit (a generation, or a probe's negative number).
            outcome: SUCCESS, FAILURE or NEUTRAL.
            failure: The exception of a failure (``None`` when failed by its result).
            counted: The failure was already counted lock-free; only decide whether to trip.
            slow: The call was slower than the policy's ``slow_call_duration``.
            started: Clock reading when the call started (for time windows).
            now: Clock reading when it finished (read here if not given).
        """
        rules = self._get_rules()
        streaked = counted
        current = True  # whether the outcome belongs to the current period
        _acquire()
        try:
            before = snapshot = self._snapshot
            if now is None:
                now = self._clock()
            reason = ""
            state = snapshot.state
            if permit < 0:
                snapshot, reason, current = _probe_outcome(
                    snapshot, permit, outcome, slow, now, rules, failure
                )
            elif snapshot.generation != permit or (
                state is not CLOSED and state is not METRICS_ONLY
            ):
                # An outcome of an older generation changes nothing but the totals.
                if outcome == FAILURE and not counted:
                    self._counters_locked().failures += 1
                return
            elif rules.policy is not None:
                snapshot = _state.record_closed(
                    snapshot, rules.policy, outcome, slow, started, now, rules, failure
                )
                reason = "the rate policy tripped"
            elif outcome == SUCCESS:
                if snapshot.failures is not None:
                    snapshot = _state.forget_failures(snapshot)
            else:  # FAILURE: a neutral closed outcome never gets here (it changes nothing)
                counter = None
                if not counted:
                    snapshot = _state.count_failures(snapshot)
                    counter = snapshot.failures
                    next(counter)  # type: ignore[arg-type]
                failures = _state.failure_count(snapshot)
                if failures >= self._failure_threshold and state is CLOSED:
                    snapshot = _state.open_now(snapshot, now, rules, failures, failure)
                # The failure is in the statistics if its streak counter is stored, or was (it
                # is folded in when _store retires it); not if the counter was made for this
                # call and retired by the trip at once (a failure_threshold of 1).
                streaked = counted or (
                    counter is not None
                    and (counter is before.failures or counter is snapshot.failures)
                )
                reason = f"{failures} consecutive failure{'' if failures == 1 else 's'}"
            if outcome == FAILURE and not streaked:
                self._counters_locked().failures += 1
            if current:
                self._keep_last_failure(outcome, failure, snapshot)
            self._store(snapshot)
            self._changed_locked(before, snapshot, now)
        finally:
            _release()
        if snapshot.generation != before.generation:
            self._announce(before, snapshot, reason, now)

    def _keep_last_failure(
        self, outcome: str, failure: BaseException | None, snapshot: Snapshot
    ) -> None:
        if outcome == FAILURE and failure is not None:
            self._last_failure = failure
        elif outcome == SUCCESS and (snapshot.state is CLOSED or snapshot.state is METRICS_ONLY):
            self._last_failure = None  # the failure streak is over, as in 2.x

    def _changed_locked(self, before: Snapshot, after: Snapshot, now: float) -> None:
        """Start the statistics' new period if ``after`` is a new generation (lock held)."""
        if after.generation == before.generation:
            return
        counters = self._counters_locked()
        at = self._changed_at(before, after, now)
        counters.changed(before.state, after.state, at, _state.streak(after))
        if before.tally is not None:
            # The window goes with the generation; its rates stay visible (those that tripped
            # the breaker, typically) until a new window holds calls.
            counters.last_rates = self._window_rates(before.tally, now)

    def _changed_at(self, before: Snapshot, after: Snapshot, now: float) -> float:
        """Return when the change from ``before`` to ``after``, found at ``now``, happened.

        Lazy transitions are dated when they became due, not when a call noticed them: an open
        period ends at its deadline, a probe that ran out of time failed at its expiry.
        """
        at = now
        if before.state is OPEN and after.state is HALF_OPEN:
            at = before.open_until
        elif before.state is HALF_OPEN and after.state is OPEN and before.probes:
            limit = self._get_rules().half_open.max_duration
            if limit is not None:
                at = min(probe[1] for probe in before.probes) + limit
        return min(at, now)

    def _window_rates(self, tally: Tally, now: float) -> tuple[float | None, float | None]:
        """Return the failure and slow-call rates of a policy's window (lock held)."""
        policy = self._get_rules().policy  # a window exists only under a policy
        tally.drain((policy.window.capacity if policy is not None else None) or 0)
        counts = tally.counts(now)
        if not counts.calls:
            return (None, None)
        return (counts.failures / counts.calls, counts.slow_calls / counts.calls)

    def _announce(
        self, before: Snapshot, after: Snapshot, reason: str, now: float, *, manual: bool = False
    ) -> None:
        """Log a state change and tell the listeners (outside the lock)."""
        state = after.state
        if state is OPEN:
            logger.warning(
                "circuit breaker %r opened: %s; rejecting calls for %.3f s (last failure: %r)",
                self._name,
                reason,
                after.open_until - now,
                self._last_failure,
            )
        elif state is CLOSED:
            logger.info("circuit breaker %r closed: %s", self._name, reason)
        elif state is HALF_OPEN:
            logger.info("circuit breaker %r half-open: %s", self._name, reason)
        elif state is FORCED_OPEN:
            logger.warning(
                "circuit breaker %r forced open: %s; rejecting calls until closed",
                self._name,
                reason,
            )
        elif state is DISABLED:
            logger.warning(
                "circuit breaker %r disabled: %s; calls pass through unguarded",
                self._name,
                reason,
            )
        else:
            logger.info(
                "circuit breaker %r metrics-only: %s; recording calls, never tripping",
                self._name,
                reason,
            )
        subscriptions = self._subscriptions()
        if subscriptions:
            exception = self._last_failure if state is OPEN and not manual else None
            deliver(subscriptions, StateChanged(self, now, before.state, state, reason, exception))

    def _finish(
        self,
        permit: int,
        started: float,
        result: Any = NO_RESULT,
        exc: BaseException | None = None,
        *,
        failed_result: bool | None = None,
    ) -> str:
        """Count and record a call under the opt-in rules: result predicate, slow calls, rates.

        ``failed_result`` is the ``failure_result`` verdict when the caller asked already (the
        predicate is asked once per call); ``None`` asks it here.

        Returns:
            The outcome: SUCCESS, FAILURE or NEUTRAL.
        """
        rules = self._get_rules()
        now = self._clock() if rules.clocked else 0.0
        slow = rules.slow_call_duration is not None and now - started > rules.slow_call_duration
        if exc is not None:
            outcome = FAILURE if self._is_failure(exc) else NEUTRAL
        elif failed_result or (
            failed_result is None
            and rules.failure_result is not None
            and result is not NO_RESULT  # `with` blocks and generators return nothing to judge
            and self._failed_result(rules.failure_result, result)
        ):
            outcome = FAILURE
        else:
            outcome = SUCCESS
        counters = self._get_counters()
        if outcome == SUCCESS:
            counters.successes += 1
        elif outcome == NEUTRAL:
            counters.neutral += 1
        if slow and outcome != NEUTRAL:
            counters.slow += 1
        if outcome == NEUTRAL and permit >= 0:
            return outcome
        self._record(
            permit, outcome, exc, slow=slow, started=started, now=now if rules.clocked else None
        )
        return outcome

    def _failed_result(self, predicate: Callable[[Any], object], result: Any) -> bool:
        """Ask ``failure_result``; if it raises, log that and count the call as a success."""
        try:
            return bool(predicate(result))
        except Exception:
            logger.exception(
                "failure_result predicate of circuit breaker %r raised; counting the call as a "
                "success",
                self._name,
            )
            return False

    def _is_failure(self, exc: BaseException) -> bool:
        """Return whether ``exc`` is an expected failure (else the outcome is neutral)."""
        # _expected holds Exception subclasses only (checked at construction), so isinstance()
        # alone keeps cancellation and other BaseExceptions neutral.
        if isinstance(exc, self._expected):
            return True
        rules = self._rules
        predicate = None if rules is None else rules.predicate
        if predicate is None or not isinstance(exc, Exception):
            return False  # cancellation, KeyboardInterrupt, GeneratorExit...: always neutral
        try:
            return bool(predicate(type(exc), exc))
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


def _close(snapshot: Snapshot, now: float) -> Snapshot:
    return _state.close(snapshot)


def _enter_mode(mode: State, snapshot: Snapshot, now: float) -> Snapshot:
    return _state.enter_mode(snapshot, mode)


class Neutral(BaseException):
    """Wraps an exception whose outcome must not count (a BaseException is always neutral).

    An async generator's consumer closing it, or throwing in an exception the producer hands
    back, is not the dependency's fault.
    """

    def __init__(self, original: BaseException) -> None:
        super().__init__(original)
        self.original = original


def _probe_outcome(
    before: Snapshot,
    permit: int,
    outcome: str,
    slow: bool,  # noqa: FBT001
    now: float,
    rules: Rules,
    failure: BaseException | None,
) -> tuple[Snapshot, str, bool]:
    """Return the snapshot after a probe's outcome, the reason, and whether it counted.

    It did not count if it is not a probe of this half-open period, or one whose time had run
    out; the reason is for a state change.
    """
    settled = _state.settle(before, now, rules)
    after = _state.probe_finished(settled, permit, outcome, slow, now, rules, failure)
    counted = after is not settled
    if settled is not before:
        return after, "a probe ran out of time (HalfOpen.max_duration)", counted
    return after, f"half-open probe {outcome}", counted


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


class _FixedDuration:
    """Every opening lasts ``recovery_timeout``."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self, openings: int, failure: BaseException | None) -> float:
        return self.seconds


class _AgreedDuration:
    """Ask an open duration once per opening, however often that opening is looked at.

    An opening that is due but not stored yet (a half-open probe past ``max_duration``) is
    computed by every read of ``state`` or ``open_remaining`` and again when a call stores it:
    with jitter, or a function with side effects, those must agree. The answers are kept until
    the breaker stores its next generation (:meth:`CircuitBreaker._store` clears them).
    """

    __slots__ = ("answers", "function")

    def __init__(self, function: Callable[[int, BaseException | None], float]) -> None:
        self.function = function
        # (openings, id(failure)) -> (failure, seconds): keyed by identity (an exception class
        # may define __eq__ and be unhashable), and holding the failure so that its id is not
        # reused while the answer is kept.
        self.answers: dict[tuple[int, int], tuple[BaseException | None, float]] = {}

    def __call__(self, openings: int, failure: BaseException | None) -> float:
        key = (openings, id(failure))
        answer = self.answers.get(key)
        if answer is None:
            answer = self.answers[key] = (failure, self.function(openings, failure))
        return answer[1]


class _CheckedDuration:
    """Call a user's open_duration; a fault or a bad value falls back to recovery_timeout."""

    __slots__ = ("fallback", "function", "name")

    def __init__(self, function: OpenDuration, fallback: float, name: str | None) -> None:
        self.function, self.fallback, self.name = function, fallback, name

    def __call__(self, openings: int, failure: BaseException | None) -> float:
        try:
            seconds = float(self.function(openings, failure))
        except Exception:
            logger.exception(
                "open_duration of circuit breaker %r raised; opening for recovery_timeout",
                self.name,
            )
            return self.fallback
        if not (math.isfinite(seconds) and seconds > 0):
            logger.error(
                "open_duration of circuit breaker %r returned %r; opening for recovery_timeout",
                self.name,
                seconds,
            )
            return self.fallback
        return seconds


def _build_rules(
    breaker: CircuitBreaker,
    policy: object,
    failure_result: Callable[[Any], object] | None,
    half_open: object,
    open_duration: Backoff | OpenDuration | None,
    predicate: FailurePredicate | None,
) -> Rules:
    """Validate the opt-in options of ``breaker`` and return its rules."""
    if policy is not None and not isinstance(policy, RatePolicy):
        msg = f"policy must be a RatePolicy or None, got {policy!r} ({type(policy).__name__})"
        raise TypeError(msg)
    if half_open is not None and not isinstance(half_open, HalfOpen):
        msg = (
            f"half_open must be a HalfOpen or None, got {half_open!r} ({type(half_open).__name__})"
        )
        raise TypeError(msg)
    half_open = half_open or _DEFAULT_HALF_OPEN
    if half_open.judge_by_rate and policy is None:
        msg = "HalfOpen(judge_by_rate=True) needs a policy=RatePolicy(...) to judge by"
        raise ValueError(msg)
    validate_callable("failure_result", failure_result)
    validate_callable("open_duration", open_duration)
    duration: Callable[[int, BaseException | None], float]
    if open_duration is None:
        duration = _FixedDuration(breaker._recovery_timeout)
    elif isinstance(open_duration, Backoff):
        duration = _AgreedDuration(open_duration)
    else:
        duration = _AgreedDuration(
            _CheckedDuration(open_duration, breaker._recovery_timeout, breaker._name)
        )
    slow = None if policy is None else policy.slow_call_duration
    return Rules(
        breaker._failure_threshold,
        policy,
        half_open,
        duration,
        failure_result,
        slow,
        clocked=slow is not None or (policy is not None and policy.window.capacity is None),
        lock_free_successes=slow is None
        and policy is not None
        and policy.window.capacity is not None,
        predicate=predicate,
    )
