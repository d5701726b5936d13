"""CircuitBreakerGroup: one configuration, one breaker per key, made on first use, bounded.

Past ``max_keys`` a group evicts idle breakers only, least recently used first (as the CLOCK
algorithm approximates it): closed (not open, half-open or in a mode), nothing counted against
them (no failure in their streak or window), and no call of the group's in flight. A breaker
that is not idle is never evicted, so cycling keys cannot wipe a failure history; the group
then holds more than ``max_keys`` breakers until some become idle again. A new key looks at a
bounded number of breakers (``_LOOKS``) to find idle ones, so its cost stays O(1) whatever
the group holds.

A call through the group takes no lock for a key it holds: a lookup, a mark, and the count of
calls started and finished (two lock-free counters) that eviction reads. The group's lock is
held only to add or drop keys, never while user code runs.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any, Generic, ParamSpec, TypeVar

from ._breaker import CircuitBreaker
from ._config import validate_callable
from ._core import CLOSED
from ._engine import join_group
from ._settings import settings
from ._statistics import Statistics
from ._ticket import Ticket

__all__ = ["CircuitBreakerGroup"]

_LOOKS = 16  # breakers a new key reads at most to find idle ones to evict

K = TypeVar("K", bound=Hashable)
P = ParamSpec("P")
R = TypeVar("R")


class _Entry:
    """A key's breaker, its calls started and finished, and its guarded functions."""

    __slots__ = ("breaker", "finished", "guarded", "started", "used")

    def __init__(self, breaker: CircuitBreaker) -> None:
        self.breaker = breaker
        self.used = False  # used since the last sweep of the evictions (see _evict)
        self.started = itertools.count()  # advanced under the group's lock
        self.finished = itertools.count()  # advanced lock-free (one atomic step)
        self.guarded: dict[int, Callable[..., Any]] = {}

    def in_flight(self) -> int:
        """Return the calls started and not finished (read under the group's lock).

        ``finished`` is read first: a call ending in between makes the answer too large, never
        too small. Each read advances both counters by one, which cancels out.
        """
        finished = next(self.finished)
        return next(self.started) - finished

    def function(self, index: int, function: Callable[..., Any]) -> Callable[..., Any]:
        """Return ``function`` guarded by this key's breaker (the wrappers look first)."""
        return self.guarded.setdefault(index, self.breaker.decorate(function))


def _idle(entry: _Entry) -> bool:
    """Return whether evicting ``entry`` would lose nothing (checked again for calls)."""
    statistics = entry.breaker.statistics()
    return (
        statistics.state is CLOSED
        and statistics.failure_count == 0
        and not statistics.failure_rate
        and not statistics.slow_call_rate
    )


class CircuitBreakerGroup(Generic[K]):
    """One breaker per key (a host, a tenant, a method), all configured alike.

    Args:
        name: The group's name; each breaker is named ``"{name}/{key}"`` (default: the first
            decorated function's ``__qualname__``).
        key: For decorating: a function of the call's arguments returning its key.
        max_keys: How many breakers the group keeps before it evicts idle ones (see the
            module docstring); at least 1.
        cls: The breaker class to build (a subclass of :class:`CircuitBreaker`).
        storage: A function ``key -> Storage`` giving each key's storage (default: each
            breaker keeps its state in memory). One storage cannot serve several keys.
        **options: The options of :class:`CircuitBreaker` (``failure_threshold``, ``policy``,
            ``listeners``, ...), given to every breaker of the group. Only those given are
            passed, as with ``circuit(cls=...)``.

    Raises:
        TypeError, ValueError: An option is invalid (checked here, not at the first key).
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        key: Callable[..., K] | None = None,
        max_keys: int = 1000,
        cls: type[CircuitBreaker] = CircuitBreaker,
        storage: Callable[[K], Any] | None = None,
        **options: Any,
    ) -> None:
        _check_group(name, max_keys, cls)
        if storage is not None and hasattr(storage, "read") and hasattr(storage, "replace"):
            msg = (
                "a group needs one storage per key: pass storage= a function key -> Storage, "
                f"not the storage {storage!r}"
            )
            raise TypeError(msg)
        _check_options(cls, options)
        self._name = name
        self._key = validate_callable("key", key)
        self._max_keys = max_keys
        self._cls = cls
        self._storage = validate_callable("storage", storage)
        self._options = options
        self._lock = threading.Lock()
        self._entries: OrderedDict[K, _Entry] = OrderedDict()
        self._decorations = itertools.count()

    # -- the keys --------------------------------------------------------------------------

    @property
    def name(self) -> str | None:
        """The group's name."""
        return self._name

    @property
    def max_keys(self) -> int:
        """How many breakers the group keeps before it evicts idle ones."""
        return self._max_keys

    def breaker(self, key: K) -> CircuitBreaker:
        """Return the breaker of ``key``, made now if the group has none.

        A breaker used directly (rather than through :meth:`call`, :meth:`admit` or a
        decorated function)
        may be evicted while its calls are in flight: they then count on it, not on the
        key's next breaker.
        """
        return self._enter(key, start=False).breaker

    def get(self, key: K) -> CircuitBreaker | None:
        """Return the breaker of ``key`` if the group holds one (it is not made)."""
        with self._lock:
            entry = self._entries.get(key)
        return None if entry is None else entry.breaker

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[K]:
        with self._lock:
            return iter(list(self._entries))

    def breakers(self) -> dict[K, CircuitBreaker]:
        """Return the breakers held now, by key, least recently used first."""
        with self._lock:
            return {key: entry.breaker for key, entry in self._entries.items()}

    def statistics(self) -> dict[K, Statistics]:
        """Return ``statistics()`` of every breaker held now, by key."""
        return {key: breaker.statistics() for key, breaker in self.breakers().items()}

    def _enter(self, key: K, *, start: bool) -> _Entry:
        """Return ``key``'s entry, marked as used; count a call started if ``start``.

        Lock-free for a key the group holds: the start is counted, then the entry is looked
        up again, and an entry evicted in between is given up (see :meth:`_evict`).
        """
        entries = self._entries
        entry = entries.get(key)
        if entry is not None:
            entry.used = True
            if not start:
                return entry
            next(entry.started)
            if entries.get(key) is entry:
                return entry
            next(entry.finished)  # evicted meanwhile: this call was not in it
        return self._add(key, start=start)

    def _add(self, key: K, *, start: bool) -> _Entry:
        """Return ``key``'s entry, made now if the group has none (see :meth:`_enter`).

        The breaker is made, and idle ones evicted, with the group's lock released: the
        breaker class, the storage function, listeners and clocks are the user's code.
        """
        made = _Entry(self._make(key))
        with self._lock:
            entries = self._entries
            entry = entries.setdefault(key, made)  # (another thread may have made one first)
            entry.used = entry is not made
            if start:
                next(entry.started)
            excess = len(entries) - self._max_keys
        if excess > 0:
            self._evict(excess, entry)
        return entry

    def _make(self, key: K) -> CircuitBreaker:
        """Make the breaker of ``key``."""
        options = dict(self._options)
        if self._storage is not None:
            options["storage"] = self._storage(key)
        name = None if self._name is None else f"{self._name}/{key}"
        breaker = self._cls(name=name, **options)
        join_group(breaker, self._name, str(key))
        return breaker

    def _evict(self, excess: int, new: _Entry) -> None:
        """Drop up to ``excess`` idle entries, least recently used first, but not ``new``.

        The order is the CLOCK approximation of least recently used: the entries are swept
        from the oldest; one used since the last sweep, or not idle, goes to the back (a
        second chance), an idle one is dropped. An entry is taken out first and its calls in
        flight counted after (a call that counts its start after that finds it gone), then put
        back at the back if a call is in flight.
        """
        entries = self._entries
        looks = _LOOKS
        for _ in range(2 * len(entries)):  # (at most two sweeps: one to clear the marks)
            with self._lock:
                if excess <= 0 or len(entries) <= self._max_keys:
                    return
                key, entry = next(iter(entries.items()))
                entries.move_to_end(key)
                if entry.used or entry is new:
                    entry.used = False
                    continue
            looks -= 1
            if looks < 0:
                return  # the next new key looks further
            if not _idle(entry):  # (a read of the breaker: its clock, its storage)
                continue
            with self._lock:
                if entries.get(key) is entry:
                    del entries[key]
                    if entry.in_flight():
                        entries[key] = entry  # a call came in meanwhile: keep it
                    else:
                        excess -= 1

    # -- calling ---------------------------------------------------------------------------

    def call(self, key: K, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``func(*args, **kwargs)`` through the breaker of ``key``.

        As :meth:`CircuitBreaker.call`: a plain function's result now, or an awaitable for an
        ``async def`` function (the call counts when it is awaited).
        """
        entry = self._enter(key, start=True)
        if inspect.iscoroutinefunction(func):
            return _finishing(entry, entry.breaker.call(func, *args, **kwargs))
        try:
            return entry.breaker.call(func, *args, **kwargs)
        finally:
            next(entry.finished)

    def admit(self, key: K) -> Ticket:
        """Admit a call through the breaker of ``key`` (see :meth:`CircuitBreaker.admit`).

        The group counts the call in flight (its breaker is not evicted) until the ticket is
        finished: the way in for integrations that report outcomes themselves.

        Raises:
            CircuitBreakerError: The breaker rejected the call.
        """
        entry = self._enter(key, start=True)
        try:
            ticket = entry.breaker.admit()
        except BaseException:
            next(entry.finished)
            raise
        finished = entry.finished
        ticket.on_finish = lambda: next(finished)
        return ticket

    def __call__(self, function: Callable[P, R]) -> Callable[P, R]:
        """Decorate ``function`` (see :meth:`decorate`)."""
        return self.decorate(function)

    def decorate(self, function: Callable[P, R]) -> Callable[P, R]:
        """Return ``function`` guarded by the breaker of each call's key.

        ``function`` may be a plain, ``async def`` or generator function (or method); the
        group's ``key`` function gets the call's arguments. An async generator function is
        refused: guard it with ``group.breaker(key).call_async_generator(...)``.

        Raises:
            TypeError: The group has no ``key`` function, or ``function`` is an async
                generator function.
        """
        key = self._key
        if key is None:
            msg = "decorating with a group needs its key= function (of the call's arguments)"
            raise TypeError(msg)
        if inspect.isasyncgenfunction(function):
            msg = (
                f"a group cannot decorate the async generator function {function!r}: use "
                "group.breaker(key).call_async_generator(...)"
            )
            raise TypeError(msg)
        if self._name is None:
            self._name = getattr(function, "__qualname__", None) or type(function).__qualname__
        guarded: Callable[P, R] = _guard(self, function, key, next(self._decorations))
        guarded.circuit_breaker_group = self  # type: ignore[attr-defined]
        return guarded

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._name!r}: {len(self)} of {self._max_keys} keys>"


def _check_group(name: object, max_keys: object, cls: object) -> None:
    """Check the group's own options (raise if invalid)."""
    if name is not None and not isinstance(name, str):
        msg = f"name must be a string or None, got {name!r} ({type(name).__name__})"
        raise TypeError(msg)
    if isinstance(max_keys, bool) or not isinstance(max_keys, int):
        msg = f"max_keys must be an int, got {max_keys!r} ({type(max_keys).__name__})"
        raise TypeError(msg)
    if max_keys < 1:
        msg = f"max_keys must be at least 1, got {max_keys!r}"
        raise ValueError(msg)
    if not (isinstance(cls, type) and issubclass(cls, CircuitBreaker)):
        msg = f"cls must be CircuitBreaker or a subclass of it, got {cls!r}"
        raise TypeError(msg)


def _check_options(cls: type[CircuitBreaker], options: dict[str, Any]) -> None:
    """Check the breakers' options now, as the first breaker would (raise if invalid)."""
    given = dict(options)
    listeners: Iterable[Any] = given.pop("listeners", ())
    if isinstance(listeners, (str, bytes)) or not isinstance(listeners, Iterable):
        msg = f"listeners must be an iterable of callables, got {listeners!r}"
        raise TypeError(msg)
    options["listeners"] = tuple(listeners)  # (an iterator would serve the first key only)
    if not options["listeners"]:
        del options["listeners"]
    positional = (
        given.pop("failure_threshold", None),
        given.pop("recovery_timeout", None),
        given.pop("expected_exception", None),
        given.pop("fallback_function", None),
    )
    try:
        settings(cls, *positional, **given)
    except TypeError as exc:
        if "unexpected keyword" not in str(exc):
            raise
        msg = f"unexpected option(s) for a group: {sorted(given)}"
        raise TypeError(msg) from None


async def _finishing(entry: _Entry, awaitable: Any) -> Any:
    try:
        return await awaitable
    finally:
        next(entry.finished)


def _guard(
    group: CircuitBreakerGroup[Any],
    function: Callable[..., Any],
    key: Callable[..., Any],
    index: int,
) -> Any:
    """Return the group's wrapper of ``function`` (the same kind of callable)."""
    enter = group._enter  # noqa: SLF001 - the group's own module
    get = group._entries.get  # noqa: SLF001

    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def guarded_coroutine(*args: Any, **kwargs: Any) -> Any:
            # As guarded below.
            k = key(*args, **kwargs)
            entry = get(k)
            if entry is None:
                entry = enter(k, start=True)
            else:
                entry.used = True
                next(entry.started)
                if get(k) is not entry:
                    next(entry.finished)
                    entry = enter(k, start=True)
            try:
                wrapped = entry.guarded.get(index) or entry.function(index, function)
                return await wrapped(*args, **kwargs)
            finally:
                next(entry.finished)

        return guarded_coroutine

    if inspect.isgeneratorfunction(function):

        @functools.wraps(function)
        def guarded_generator(*args: Any, **kwargs: Any) -> Any:
            entry = enter(key(*args, **kwargs), start=True)
            try:
                return (yield from entry.function(index, function)(*args, **kwargs))
            finally:
                next(entry.finished)

        return guarded_generator

    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        # _enter's path for a key the group holds, inlined (see _enter).
        k = key(*args, **kwargs)
        entry = get(k)
        if entry is None:
            entry = enter(k, start=True)
        else:
            entry.used = True
            next(entry.started)
            if get(k) is not entry:
                next(entry.finished)
                entry = enter(k, start=True)
        try:
            return (entry.guarded.get(index) or entry.function(index, function))(*args, **kwargs)
        finally:
            next(entry.finished)

    return guarded
