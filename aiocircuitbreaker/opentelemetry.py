"""Report the circuit breakers' statistics as OpenTelemetry metrics.

Install with ``pip install "aiocircuitbreaker[opentelemetry]"`` (it needs ``opentelemetry-api``
only; the application brings the SDK and its exporters), then call :func:`instrument` once::

    from aiocircuitbreaker.opentelemetry import instrument

    instrument()  # the global MeterProvider; or instrument(provider, match="payments.*")

Every instrument is asynchronous (observable): its callback reads
``CircuitBreakerMonitor.statistics()`` when the SDK collects, so a call through a breaker does no
extra work and no listener is added. With the default ``prefix`` the instruments are:

- ``circuit_breaker.state`` (gauge): 1 for the breaker's current ``state``, 0 for the others.
- ``circuit_breaker.calls`` (counter, ``{call}``): finished calls by ``outcome``: ``success``,
  ``failure`` or ``neutral``.
- ``circuit_breaker.rejected_calls`` (counter, ``{call}``): calls rejected without being run.
- ``circuit_breaker.slow_calls`` (counter, ``{call}``): calls slower than the policy's
  ``slow_call_duration``.
- ``circuit_breaker.openings`` (counter, ``{opening}``): times the breaker opened.
- ``circuit_breaker.state_transitions`` (counter, ``{transition}``): state changes by
  ``from_state`` and ``to_state``.
- ``circuit_breaker.failure_rate`` and ``circuit_breaker.slow_call_rate`` (gauges, ``1``): the
  rates over a ``RatePolicy`` window.
- ``circuit_breaker.open_remaining`` (gauge, ``s``): seconds until an open breaker admits a
  probe.

Every point carries the breaker's ``name``; breakers without a name are not reported. The
breakers of a :class:`~aiocircuitbreaker.CircuitBreakerGroup` are reported under the group's
name, with their key as a ``key`` attribute (at most ``max_keys`` keys per group, plus the
breakers it cannot evict: open, half-open, failing or in flight). Breakers
that share a name are reported as one: the counters add up their totals, and the gauges
(state, rates, open time) describe the newest of them, the one ``CircuitBreakerMonitor.get()``
returns. (When one of them is garbage collected its counts leave the sums, which a backend sees
as a counter reset.) The rate gauges have a point only while the breaker's window holds calls.
``open_remaining`` is 0 unless the breaker is open, and has no point while it is forced open
(it will never admit a probe by itself; the state gauge says ``forced_open``).
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

try:
    from opentelemetry import metrics
except ImportError as exc:
    msg = (
        "aiocircuitbreaker.opentelemetry needs the OpenTelemetry API: "
        'pip install "aiocircuitbreaker[opentelemetry]"'
    )
    raise ImportError(msg) from exc

from . import __version__
from ._core import FORCED_OPEN, OPEN, State
from ._registry import CircuitBreakerMonitor, check_match

if TYPE_CHECKING:
    from opentelemetry.metrics import (
        Asynchronous,
        CallbackOptions,
        Meter,
        MeterProvider,
        Observation,
    )

    from ._registry import Match
    from ._statistics import Statistics

    # A point's attributes besides ``name``, as a hashable key; what gives a breaker's points.
    _Attributes = tuple[tuple[str, str], ...]
    _Points = Callable[[Statistics], Iterable[tuple[_Attributes, float]]]

__all__ = ["Instrumentation", "instrument"]

_METER_NAME = "aiocircuitbreaker"

# Lower-case words joined by dots. OpenTelemetry allows up to 255 characters in an instrument
# name, and the longest name made from the prefix is the transitions counter's.
_PREFIX = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*")
_MAX_PREFIX = 255 - len(".state_transitions")


class _Slot:
    """Which handle the instruments of one provider and prefix report for (``None``: stopped).

    The SDK keeps the first instruments made with a name, and with them the first callbacks:
    calling :func:`instrument` again gets the same instruments back and its own callbacks are
    dropped. So the callbacks read the slot, and a new handle takes the slot over. Slots are
    kept by provider, not by meter: before the global provider is set, each ``get_meter()``
    returns a new proxy meter, whose instruments all land on the same meter once it is set.
    """

    __slots__ = ("owner",)

    def __init__(self) -> None:
        self.owner: Instrumentation | None = None

    def read(self) -> list[tuple[_Attributes, Statistics]]:
        """Return the named breakers' identities and statistics (oldest first).

        Nothing once stopped. A group's breaker is known by the group's name and its key.
        """
        owner = self.owner
        if owner is None:
            return []
        read: list[tuple[_Attributes, Statistics]] = []
        for stats in CircuitBreakerMonitor.statistics(owner.match):
            if stats.group is not None:
                read.append(((("name", stats.group), ("key", stats.key or "")), stats))
            elif stats.name is not None:
                read.append(((("name", stats.name),), stats))
        return read


_slots_lock = threading.Lock()
_slots: weakref.WeakKeyDictionary[MeterProvider, dict[str, _Slot]] = weakref.WeakKeyDictionary()


class Instrumentation:
    """The instruments that :func:`instrument` made, and the switch that stops their reports.

    OpenTelemetry cannot remove an instrument: :meth:`stop` leaves them registered, and their
    callbacks report no points from then on. Only one handle reports through the instruments
    of a provider and prefix: calling :func:`instrument` again with the same provider and prefix
    (say, with another ``match``, or after :meth:`stop`) takes them over, and the earlier
    handle becomes inactive. Made by :func:`instrument`, not meant to be made directly.
    """

    __slots__ = ("_instruments", "_match", "_meter", "_prefix", "_slot")

    def __init__(
        self,
        meter: Meter,
        prefix: str,
        match: Match,
        instruments: Mapping[str, Asynchronous],
        slot: _Slot,
    ) -> None:
        self._meter = meter
        self._prefix = prefix
        self._match = match
        self._instruments = MappingProxyType(dict(instruments))
        self._slot = slot

    @property
    def meter(self) -> Meter:
        """The ``aiocircuitbreaker`` meter the instruments belong to."""
        return self._meter

    @property
    def prefix(self) -> str:
        """The prefix of the instruments' names."""
        return self._prefix

    @property
    def match(self) -> Match:
        """Which breakers it reports (``None``: all; a glob on names; a predicate)."""
        return self._match

    @property
    def instruments(self) -> Mapping[str, Asynchronous]:
        """The instruments by name (``"circuit_breaker.state"``, ...), read-only."""
        return self._instruments

    @property
    def active(self) -> bool:
        """Whether the instruments report for this handle (not stopped, not taken over)."""
        return self._slot.owner is self

    def stop(self) -> None:
        """Stop reporting: the instruments stay registered but report no more points.

        Does nothing if this handle is already stopped or was taken over.
        """
        with _slots_lock:
            if self._slot.owner is self:
                self._slot.owner = None

    def __repr__(self) -> str:
        status = "active" if self.active else "stopped"
        return f"<Instrumentation prefix={self._prefix!r} {status}>"


def instrument(
    meter_provider: MeterProvider | None = None,
    *,
    match: Match = None,
    prefix: str = "circuit_breaker",
) -> Instrumentation:
    """Report the live circuit breakers' statistics through OpenTelemetry instruments.

    The instruments belong to the meter ``aiocircuitbreaker`` (versioned as the package) and
    read the breakers' statistics each time the SDK collects; see the module documentation for
    what they report.

    Args:
        meter_provider: The provider to get the meter from; ``None`` for the global one
            (``opentelemetry.metrics.get_meter_provider()``, read now).
        match: Which breakers to report: all of them (``None``), those whose name matches a glob
            (``"payments.*"``), or those a predicate on the breaker accepts. Read at every
            collection, so breakers made later are reported too.
        prefix: The start of every instrument's name: lower-case words joined by dots.

    Returns:
        The handle on the instruments; its ``stop()`` ends the reports.

    Raises:
        TypeError: ``match`` is not None, a string or callable; ``prefix`` is not a string.
        ValueError: ``prefix`` is not lower-case dotted words, or is too long.
    """
    check_match(match)
    _check_prefix(prefix)
    provider = metrics.get_meter_provider() if meter_provider is None else meter_provider
    meter = provider.get_meter(_METER_NAME, __version__)
    with _slots_lock:
        slot = _slots.setdefault(provider, {}).setdefault(prefix, _Slot())
    instruments: dict[str, Asynchronous] = {}
    for suffix, kind, unit, description, points in _INSTRUMENTS:
        name = f"{prefix}.{suffix}"
        if kind == "counter":
            instruments[name] = meter.create_observable_counter(
                name, [_summed(slot, points)], unit, description
            )
        else:
            instruments[name] = meter.create_observable_gauge(
                name, [_newest(slot, points)], unit, description
            )
    handle = Instrumentation(meter, prefix, match, instruments, slot)
    with _slots_lock:
        slot.owner = handle
    return handle


def _check_prefix(prefix: str) -> None:
    given: object = prefix  # checked as any object: callers may pass anything
    if not isinstance(given, str):
        msg = f"prefix must be a string, got {given!r} ({type(given).__name__})"
        raise TypeError(msg)
    if not _PREFIX.fullmatch(given):
        msg = (
            "prefix must be lower-case words (letters, digits, underscores) joined by dots, "
            f"such as 'circuit_breaker' or 'myapp.circuit_breaker', got {given!r}"
        )
        raise ValueError(msg)
    if len(given) > _MAX_PREFIX:
        msg = f"prefix must be at most {_MAX_PREFIX} characters, got {len(given)}"
        raise ValueError(msg)


def _summed(slot: _Slot, points: _Points) -> Callable[[CallbackOptions], Iterable[Observation]]:
    """Return a counter's callback: the points of the breakers sharing a name, added up."""

    def callback(options: CallbackOptions) -> Iterable[Observation]:
        sums: dict[tuple[_Attributes, _Attributes], float] = {}
        for identity, stats in slot.read():
            for attributes, value in points(stats):
                key = (identity, attributes)
                sums[key] = sums.get(key, 0) + value
        return [
            metrics.Observation(value, {**dict(identity), **dict(attributes)})
            for (identity, attributes), value in sums.items()
        ]

    return callback


def _newest(slot: _Slot, points: _Points) -> Callable[[CallbackOptions], Iterable[Observation]]:
    """Return a gauge's callback: the points of the newest breaker of each name."""

    def callback(options: CallbackOptions) -> Iterable[Observation]:
        # Oldest first: a newer breaker of the same name replaces an older one.
        newest = dict(slot.read())
        return [
            metrics.Observation(value, {**dict(identity), **dict(attributes)})
            for identity, stats in newest.items()
            for attributes, value in points(stats)
        ]

    return callback


def _calls(stats: Statistics) -> Iterator[tuple[_Attributes, float]]:
    total = stats.total
    yield (("outcome", "success"),), total.successes
    yield (("outcome", "failure"),), total.failures
    yield (("outcome", "neutral"),), total.neutral


def _transitions(stats: Statistics) -> Iterator[tuple[_Attributes, float]]:
    for (old, new), count in stats.transitions:
        yield (("from_state", old.value), ("to_state", new.value)), count


def _states(stats: Statistics) -> Iterator[tuple[_Attributes, float]]:
    for state in State:
        yield (("state", state.value),), int(stats.state is state)


def _failure_rate(stats: Statistics) -> Iterator[tuple[_Attributes, float]]:
    if stats.failure_rate is not None:
        yield (), stats.failure_rate


def _slow_call_rate(stats: Statistics) -> Iterator[tuple[_Attributes, float]]:
    if stats.slow_call_rate is not None:
        yield (), stats.slow_call_rate


def _open_remaining(stats: Statistics) -> Iterator[tuple[_Attributes, float]]:
    # Forced open has no finite answer; half-open reads as negative (the deadline has passed).
    if stats.state is OPEN:
        yield (), max(0.0, stats.open_remaining)
    elif stats.state is not FORCED_OPEN:
        yield (), 0.0


# (name suffix, kind, unit, description, points), in the order of the module documentation.
_INSTRUMENTS: tuple[tuple[str, str, str, str, _Points], ...] = (
    ("state", "gauge", "1", "The breaker's state: 1 for the current state, 0 for others.", _states),
    ("calls", "counter", "{call}", "Calls that ran and finished, by outcome.", _calls),
    (
        "rejected_calls",
        "counter",
        "{call}",
        "Calls the breaker rejected without running them.",
        lambda stats: [((), stats.total.rejected)],
    ),
    (
        "slow_calls",
        "counter",
        "{call}",
        "Finished calls slower than the policy's slow_call_duration.",
        lambda stats: [((), stats.total.slow)],
    ),
    (
        "openings",
        "counter",
        "{opening}",
        "Times the breaker opened.",
        lambda stats: [((), stats.openings)],
    ),
    (
        "state_transitions",
        "counter",
        "{transition}",
        "State changes, by the state left and the state entered.",
        _transitions,
    ),
    (
        "failure_rate",
        "gauge",
        "1",
        "Failures per finished call over the rate policy's window (0 to 1).",
        _failure_rate,
    ),
    (
        "slow_call_rate",
        "gauge",
        "1",
        "Slow calls per finished call over the rate policy's window (0 to 1).",
        _slow_call_rate,
    ),
    (
        "open_remaining",
        "gauge",
        "s",
        "Seconds until the open breaker admits a probe; 0 unless open, none if forced open.",
        _open_remaining,
    ),
)
