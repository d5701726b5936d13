"""Prometheus metrics of the live circuit breakers, read at scrape time.

::

    from aiocircuitbreaker.prometheus import register

    register()  # on prometheus_client.REGISTRY; or register(registry, match="payments.*")

The collector reads :meth:`CircuitBreakerMonitor.statistics` when Prometheus scrapes: the
breakers do no per-call work for it and get no listeners. Every series has a ``name`` and a
``key`` label; with the default prefix the metrics are::

    circuit_breaker_state{state}                        gauge: 1 for the current state, else 0
    circuit_breaker_calls_total{outcome}                counter: success | failure | neutral
    circuit_breaker_rejected_calls_total                counter
    circuit_breaker_slow_calls_total                    counter
    circuit_breaker_openings_total                      counter
    circuit_breaker_state_transitions_total{from_state,to_state}   counter
    circuit_breaker_failure_rate                        gauge: 0.0 to 1.0, RatePolicy only
    circuit_breaker_slow_call_rate                      gauge: 0.0 to 1.0, RatePolicy only
    circuit_breaker_open_remaining_seconds              gauge: seconds until a probe is admitted

The breakers of a :class:`~aiocircuitbreaker.CircuitBreakerGroup` are exported under the
group's name with their key as ``key`` (``str(key)``); other breakers have ``key=""``. A group
adds at most one series per key it holds: ``max_keys``, plus its breakers that are not idle
(open, half-open, failing, in flight), which it never evicts. An evicted key's series go away.

Breakers without a name are not exported (a series needs a ``name`` label). Breakers that
share a name are exported as one: their counters are summed, and the gauges (state, rates,
open remaining) are the newest breaker's, the one ``CircuitBreakerMonitor.get(name)`` returns.
A summed counter drops when one of the breakers is garbage collected, which Prometheus's
``rate()`` reads as a counter reset.

Needs ``prometheus_client``: ``pip install "aiocircuitbreaker[prometheus]"``. Importing
``aiocircuitbreaker`` itself never imports it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, NamedTuple

from ._core import State
from ._registry import CircuitBreakerMonitor, check_match

try:
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.registry import Collector
except ImportError as exc:
    msg = (
        "aiocircuitbreaker.prometheus needs prometheus_client: "
        'pip install "aiocircuitbreaker[prometheus]"'
    )
    raise ImportError(msg) from exc

if TYPE_CHECKING:
    from prometheus_client.core import Metric

    from ._breaker import CircuitBreaker
    from ._statistics import Statistics

__all__ = ["CircuitBreakerCollector", "register"]

# Letters, digits and underscores, not starting with a digit: a name every Prometheus version
# and exposition format accepts as is. Colons are left out: they are reserved for recording
# rules.
_PREFIX = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


Series = tuple[str, str]  # the labels (name, key) of one exported breaker


class _Families(NamedTuple):
    """The metric families of one scrape, in exposition order."""

    state: GaugeMetricFamily
    calls: CounterMetricFamily
    rejected_calls: CounterMetricFamily
    slow_calls: CounterMetricFamily
    openings: CounterMetricFamily
    state_transitions: CounterMetricFamily
    failure_rate: GaugeMetricFamily
    slow_call_rate: GaugeMetricFamily
    open_remaining: GaugeMetricFamily


def _families(prefix: str) -> _Families:
    """Return the metric families, without samples, named with ``prefix``."""
    return _Families(
        GaugeMetricFamily(
            f"{prefix}_state",
            "The circuit breaker's state: 1 for the current state, 0 for the others.",
            labels=("name", "key", "state"),
        ),
        CounterMetricFamily(
            f"{prefix}_calls",
            "Calls that ran through the circuit breaker, by how they counted.",
            labels=("name", "key", "outcome"),
        ),
        CounterMetricFamily(
            f"{prefix}_rejected_calls",
            "Calls the circuit breaker rejected without running them.",
            labels=("name", "key"),
        ),
        CounterMetricFamily(
            f"{prefix}_slow_calls",
            "Calls slower than the rate policy's slow_call_duration.",
            labels=("name", "key"),
        ),
        CounterMetricFamily(
            f"{prefix}_openings",
            "Times the circuit breaker opened.",
            labels=("name", "key"),
        ),
        CounterMetricFamily(
            f"{prefix}_state_transitions",
            "State changes of the circuit breaker.",
            labels=("name", "key", "from_state", "to_state"),
        ),
        GaugeMetricFamily(
            f"{prefix}_failure_rate",
            "Failed calls / calls over the rate policy's window (0 to 1).",
            labels=("name", "key"),
        ),
        GaugeMetricFamily(
            f"{prefix}_slow_call_rate",
            "Slow calls / calls over the rate policy's window (0 to 1).",
            labels=("name", "key"),
        ),
        GaugeMetricFamily(
            f"{prefix}_open_remaining_seconds",
            "Seconds until the circuit breaker admits a probe: 0 when it admits calls, "
            "+Inf while forced open.",
            labels=("name", "key"),
            unit="seconds",
        ),
    )


class CircuitBreakerCollector(Collector):
    """A Prometheus collector exporting the statistics of the live circuit breakers.

    Register it on a ``CollectorRegistry`` (or use :func:`register`); each scrape reads the
    breakers' statistics afresh, so breakers created later are exported too.

    Unnamed breakers are skipped. Breakers sharing a name are exported as one breaker: counters
    summed, gauges (state, rates, open remaining) taken from the newest.

    ``open_remaining_seconds`` is never negative: a breaker that is due to admit a probe (or is
    half-open) reports 0. While forced open it reports ``+Inf``, which Prometheus accepts: such
    a breaker admits no probe until released by hand.

    Args:
        match: Which breakers to export: all (``None``), a glob on their names
            (``"payments.*"``), or a predicate taking the breaker.
        prefix: The start of every metric name (default ``"circuit_breaker"``): letters,
            digits and underscores, not starting with a digit.

    Raises:
        TypeError: ``match`` is not ``None``, a string or a callable, or ``prefix`` is not a
            string.
        ValueError: ``prefix`` is not a valid start of a metric name.
    """

    def __init__(
        self,
        *,
        match: str | Callable[[CircuitBreaker], object] | None = None,
        prefix: str = "circuit_breaker",
    ) -> None:
        check_match(match)
        given_prefix: object = prefix
        if not isinstance(given_prefix, str):
            msg = f"prefix must be a string, got {given_prefix!r} ({type(given_prefix).__name__})"
            raise TypeError(msg)
        if not _PREFIX.fullmatch(prefix):
            msg = (
                "prefix must be a Prometheus metric name prefix (letters, digits and "
                f"underscores, not starting with a digit), got {prefix!r}"
            )
            raise ValueError(msg)
        self._match = match
        self._prefix = prefix

    def describe(self) -> Iterator[Metric]:
        """Return the metric families without samples (a registry checks their names)."""
        return iter(_families(self._prefix))

    def collect(self) -> Iterator[Metric]:
        """Return the metric families, with samples for every named breaker ``match`` picks."""
        families = _families(self._prefix)
        by_name: dict[tuple[str, str], list[Statistics]] = {}
        for statistics in CircuitBreakerMonitor.statistics(self._match):  # oldest first
            if statistics.group is not None:  # a group's breaker: the group's name, its key
                by_name.setdefault((statistics.group, statistics.key or ""), []).append(statistics)
            elif statistics.name is not None:
                by_name.setdefault((statistics.name, ""), []).append(statistics)
        for series, group in by_name.items():
            _add(families, series, group)
        return iter(families)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(match={self._match!r}, prefix={self._prefix!r})"


def _add(families: _Families, name: Series, group: list[Statistics]) -> None:
    """Add the samples of the breakers of one series (oldest first) to ``families``."""
    newest = group[-1]
    for state in State:
        families.state.add_metric((*name, state.value), 1.0 if state is newest.state else 0.0)
    _add_counters(families, name, group)
    for (old, new), count in _transitions(group).items():
        families.state_transitions.add_metric((*name, old.value, new.value), count)
    _add_gauges(families, name, newest)


def _add_counters(families: _Families, name: Series, group: list[Statistics]) -> None:
    """Add the call counters of the breakers called ``name``, summed."""
    totals = [s.total for s in group]
    for outcome, count in (
        ("success", sum(t.successes for t in totals)),
        ("failure", sum(t.failures for t in totals)),
        ("neutral", sum(t.neutral for t in totals)),
    ):
        families.calls.add_metric((*name, outcome), count)
    families.rejected_calls.add_metric(name, sum(t.rejected for t in totals))
    families.slow_calls.add_metric(name, sum(t.slow for t in totals))
    families.openings.add_metric(name, sum(s.openings for s in group))


def _transitions(group: list[Statistics]) -> dict[tuple[State, State], int]:
    """Return the state changes of the breakers of one name, summed."""
    transitions: dict[tuple[State, State], int] = {}
    for statistics in group:
        for change, count in statistics.transitions:
            transitions[change] = transitions.get(change, 0) + count
    return transitions


def _add_gauges(families: _Families, name: Series, newest: Statistics) -> None:
    """Add the gauges of the newest breaker of one name."""
    if newest.failure_rate is not None:
        families.failure_rate.add_metric(name, newest.failure_rate)
    if newest.slow_call_rate is not None:
        families.slow_call_rate.add_metric(name, newest.slow_call_rate)
    families.open_remaining.add_metric(name, max(0.0, newest.open_remaining))


def register(
    registry: CollectorRegistry | None = None,
    *,
    match: str | Callable[[CircuitBreaker], object] | None = None,
    prefix: str = "circuit_breaker",
) -> CircuitBreakerCollector:
    """Register a :class:`CircuitBreakerCollector` on ``registry`` and return it.

    Args:
        registry: Where to register (default: ``prometheus_client.REGISTRY``).
        match: Which breakers to export, as for :class:`CircuitBreakerCollector`.
        prefix: The start of every metric name, as for :class:`CircuitBreakerCollector`.

    Returns:
        The collector, e.g. to ``registry.unregister()`` it later.

    Raises:
        ValueError: ``registry`` already exports metrics of these names (another collector
            with the same prefix), or ``prefix`` is invalid.
        TypeError: ``match`` or ``prefix`` is of the wrong type.
    """
    collector = CircuitBreakerCollector(match=match, prefix=prefix)
    (REGISTRY if registry is None else registry).register(collector)
    return collector
