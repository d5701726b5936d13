"""CircuitBreakerMonitor: a process-wide view of the live breakers, and global listeners.

The registry holds weak references only, so a breaker made per request (or per test) is freed as
soon as its owner drops it; dead references are pruned as the list grows, at amortised O(1) cost
per registration.
"""

from __future__ import annotations

import fnmatch
import logging
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ._core import CLOSED, FORCED_OPEN, OPEN
from ._events import Event, Listener, Subscription, same_listener, subscription

if TYPE_CHECKING:
    from ._breaker import CircuitBreaker
    from ._statistics import Statistics

Match = str | Callable[["CircuitBreaker"], object] | None
"""Which breakers a group operation acts on: all (``None``), a glob on their names, or a
predicate taking the breaker."""

__all__ = ["CircuitBreakerMonitor"]

logger = logging.getLogger("aiocircuitbreaker")

_lock = threading.Lock()
_refs: list[weakref.ref[CircuitBreaker]] = []
_prune_at = 64
# Listeners of every breaker's events, and the subset that wants per-call events.
_global: tuple[Subscription, ...] = ()
_global_calls: tuple[Subscription, ...] = ()


def global_subscriptions(*, calls_only: bool) -> tuple[Subscription, ...]:
    """Return the global subscriptions (only those wanting call events if ``calls_only``)."""
    return _global_calls if calls_only else _global


def _change_global(listener: Listener, added: Subscription | None) -> bool:
    """Remove ``listener`` from the global listeners, then add ``added`` (if given).

    Returns:
        Whether ``listener`` was registered before.
    """
    global _global, _global_calls  # noqa: PLW0603 - the registry's module state
    with _lock:
        kept = tuple(s for s in _global if not same_listener(s.listener, listener))
        found = len(kept) != len(_global)
        _global = kept if added is None else (*kept, added)
        _global_calls = tuple(s for s in _global if s.wants_calls)
    from ._engine import refresh_listeners  # noqa: PLC0415 - _engine imports this module

    for breaker in live():
        refresh_listeners(breaker)
    return found


def check_match(match: object) -> Match:
    """Return ``match`` if it can select breakers (None, a glob, a predicate), else raise.

    Raises:
        TypeError: ``match`` is none of those.
    """
    if match is None or isinstance(match, str) or callable(match):
        return match
    msg = f"match must be None, a glob on breaker names or a predicate, got {match!r}"
    raise TypeError(msg)


def _matching(match: Match) -> list[CircuitBreaker]:
    match = check_match(match)
    if match is None:
        return live()
    if isinstance(match, str):
        return [b for b in live() if b.name is not None and fnmatch.fnmatchcase(b.name, match)]
    return [b for b in live() if match(b)]


# Called with every new breaker (testing.force_state() with no breakers given forces new ones).
_creation_hooks: tuple[Callable[[CircuitBreaker], None], ...] = ()


def track(breaker: CircuitBreaker) -> None:
    """Add a new breaker to the registry (called once, by the breaker's constructor)."""
    global _prune_at  # noqa: PLW0603 - module-level registry state, guarded by _lock
    with _lock:
        _refs.append(weakref.ref(breaker))
        if len(_refs) >= _prune_at:
            _refs[:] = [ref for ref in _refs if ref() is not None]
            _prune_at = max(64, 2 * len(_refs))


def untrack(breaker: CircuitBreaker) -> None:
    """Forget a breaker (its construction failed, or the registry is being emptied)."""
    with _lock:
        _refs[:] = [ref for ref in _refs if ref() is not breaker and ref() is not None]


# Default names already warned about (once per name: a breaker made per request shares its
# default name with the ones before it, and one warning says it).
_warned: set[str] = set()


def warn_if_shared(breaker: CircuitBreaker) -> None:
    r"""Warn (once per name) that a breaker took a default name another live breaker has.

    Default names are ``__qualname__``\ s, as in 2.x: ``Client.get`` in two modules gives two
    breakers of one name, which the monitor's lookups and the exporters cannot tell apart.
    """
    name = breaker.name
    if name is None or name in _warned:
        return
    if any(other is not breaker and other.name == name for other in live()):
        _warned.add(name)
        logger.warning(
            "circuit breaker %r took the default name of another live breaker: the monitor "
            "finds the newest by that name and the exporters add them up; pass name=... to "
            "tell them apart",
            name,
        )


def created(breaker: CircuitBreaker) -> None:
    """Run the creation hooks on a new breaker (called last by the breaker's constructor)."""
    for hook in _creation_hooks:
        hook(breaker)


def add_creation_hook(hook: Callable[[CircuitBreaker], None]) -> None:
    """Call ``hook(breaker)`` with every breaker created from now on."""
    global _creation_hooks  # noqa: PLW0603 - module-level registry state, guarded by _lock
    with _lock:
        _creation_hooks = (*_creation_hooks, hook)


def remove_creation_hook(hook: Callable[[CircuitBreaker], None]) -> None:
    """Stop calling ``hook`` with new breakers."""
    global _creation_hooks  # noqa: PLW0603 - module-level registry state, guarded by _lock
    with _lock:
        _creation_hooks = tuple(h for h in _creation_hooks if h is not hook)


def live() -> list[CircuitBreaker]:
    with _lock:
        refs = list(_refs)
    return [breaker for breaker in (ref() for ref in refs) if breaker is not None]


class _MonitorType(type):
    @property
    def circuit_breakers(cls) -> dict[str, CircuitBreaker]:
        """A new dict of the live named breakers by name; the newest wins a shared name.

        Assigning a dict makes its breakers the registered ones (``= {}`` empties the
        registry, as in ``circuitbreaker`` 2.x); the breakers themselves are not changed.
        """
        return {b.name: b for b in live() if b.name is not None}

    @circuit_breakers.setter
    def circuit_breakers(cls, breakers: dict[str, CircuitBreaker]) -> None:
        given: object = breakers
        if not isinstance(given, dict):
            msg = f"circuit_breakers must be a dict of breakers by name, got {given!r}"
            raise TypeError(msg)
        with _lock:
            _refs[:] = [weakref.ref(breaker) for breaker in breakers.values()]


class CircuitBreakerMonitor(metaclass=_MonitorType):
    """Look up the live circuit breakers of this process.

    Every breaker is registered when it is created and forgotten when it is garbage collected.
    Names need not be unique: when two live breakers share a name, :meth:`get` returns the one
    created last, and :meth:`get_circuits` lists both.
    """

    @classmethod
    def register(cls, circuit_breaker: CircuitBreaker) -> None:
        """Make sure ``circuit_breaker`` is registered (breakers register themselves)."""
        with _lock:
            if any(ref() is circuit_breaker for ref in _refs):
                return
        track(circuit_breaker)

    @classmethod
    def get(cls, name: str) -> CircuitBreaker | None:
        """Return the newest live breaker called ``name``, or ``None``."""
        for breaker in reversed(live()):
            if breaker.name == name:
                return breaker
        return None

    @classmethod
    def get_circuits(cls) -> list[CircuitBreaker]:
        """Return every live breaker, oldest first."""
        return live()

    @classmethod
    def get_open(cls) -> Iterator[CircuitBreaker]:
        """Yield the breakers that are open now (rejecting calls: open or forced open)."""
        return (b for b in live() if b.state is OPEN or b.state is FORCED_OPEN)

    @classmethod
    def get_closed(cls) -> Iterator[CircuitBreaker]:
        """Yield the breakers that are closed now."""
        return (b for b in live() if b.state is CLOSED)

    @classmethod
    def all_closed(cls) -> bool:
        """Return whether no live breaker is open."""
        return not any(True for _ in cls.get_open())

    @classmethod
    def statistics(cls, match: Match = None) -> list[Statistics]:
        """Return ``statistics()`` of every live breaker (or those ``match`` picks), oldest first.

        ``match`` is a glob on breaker names (``"payments.*"``) or a predicate on the breaker.
        """
        return [breaker.statistics() for breaker in _matching(match)]

    @classmethod
    def open_all(cls, match: Match = None) -> list[CircuitBreaker]:
        """Open every live breaker (or those ``match`` picks); return them."""
        return _each(match, "open")

    @classmethod
    def close_all(cls, match: Match = None) -> list[CircuitBreaker]:
        """Close every live breaker (or those ``match`` picks), leaving any mode; return them."""
        return _each(match, "close")

    @classmethod
    def reset_all(cls, match: Match = None) -> list[CircuitBreaker]:
        """Reset every live breaker (or those ``match`` picks); return them."""
        return _each(match, "reset")

    @classmethod
    def force_open_all(cls, match: Match = None) -> list[CircuitBreaker]:
        """Force open every live breaker (or those ``match`` picks); return them."""
        return _each(match, "force_open")

    @classmethod
    def disable_all(cls, match: Match = None) -> list[CircuitBreaker]:
        """Disable every live breaker (or those ``match`` picks); return them."""
        return _each(match, "disable")

    @classmethod
    def metrics_only_all(cls, match: Match = None) -> list[CircuitBreaker]:
        """Put every live breaker (or those ``match`` picks) in metrics-only mode."""
        return _each(match, "metrics_only")

    @classmethod
    def add_listener(cls, listener: Listener, *event_types: type[Event]) -> None:
        """Call ``listener(event)`` for the events of every breaker, present and future.

        The same rules as ``CircuitBreaker.add_listener``: sync or async, faults logged and
        ignored, ``event_types`` to narrow what it gets; adding it again replaces its types.
        """
        _change_global(listener, subscription(listener, event_types))

    @classmethod
    def remove_listener(cls, listener: Listener) -> None:
        """Stop calling a global listener.

        Raises:
            ValueError: ``listener`` was not added with :meth:`add_listener`.
        """
        if not _change_global(listener, None):
            msg = f"{listener!r} is not a global circuit breaker listener"
            raise ValueError(msg)


def _each(match: Match, method: str) -> list[CircuitBreaker]:
    breakers = _matching(match)
    for breaker in breakers:
        getattr(breaker, method)()
    return breakers
