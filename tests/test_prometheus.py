"""The Prometheus collector, scraped through the real prometheus_client and parsed back."""

from __future__ import annotations

import importlib
import math
import subprocess
import sys
from collections.abc import Awaitable, Callable

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from aiocircuitbreaker import CircuitBreaker, CountWindow, RatePolicy, State
from aiocircuitbreaker.prometheus import CircuitBreakerCollector, register
from aiocircuitbreaker.testing import FakeClock

pytestmark = pytest.mark.asyncio

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]
Call = Callable[..., Awaitable[object]]


class Down(Exception):
    """The expected failure of these tests."""


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    """Return a breaker name unique to the test (and free of glob characters)."""
    return f"test_prometheus.{request.node.name}".replace("[", "(").replace("]", ")")


def guard(breaker: CircuitBreaker, clock: FakeClock) -> Call:
    """Return an async function guarded by ``breaker`` that takes ``takes`` fake seconds."""

    @breaker
    async def call(outcome: object = "ok", takes: float = 0.0) -> object:
        clock.advance(takes)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return call


async def run(call: Call, outcome: object = "ok", takes: float = 0.0) -> object:
    """Call ``call``, returning what it raised instead of raising it."""
    try:
        return await call(outcome, takes)
    except Exception as exc:
        return exc


def scrape(registry: CollectorRegistry) -> Series:
    """Expose ``registry`` as text, parse it back and return its samples by name and labels."""
    text = generate_latest(registry).decode()
    series: Series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in series, f"duplicate series {key}"
            series[key] = sample.value
    return series


def value(series: Series, metric: str, **labels: str) -> float:
    """Return the value of the one sample of ``metric`` with exactly ``labels`` (``key`` is
    ``""`` unless given: a breaker outside any group)."""
    labels.setdefault("key", "")
    return series[metric, frozenset(labels.items())]


def labelsets(series: Series, metric: str) -> list[dict[str, str]]:
    """Return the label sets of ``metric``'s samples."""
    return [dict(labels) for sample, labels in series if sample == metric]


def state_of(series: Series, name: str, prefix: str = "circuit_breaker") -> str:
    """Return the state the enum gauge marks for ``name``, checking its shape on the way."""
    states = {
        dict(labels)["state"]: result
        for (metric, labels), result in series.items()
        if metric == f"{prefix}_state" and dict(labels)["name"] == name
    }
    assert sorted(states) == sorted(state.value for state in State)
    assert sorted(states.values()) == [0.0] * (len(State) - 1) + [1.0]
    return next(state for state, result in states.items() if result == 1.0)


async def test_state_gauge_follows_the_breaker(name: str, clock: FakeClock) -> None:
    """The state gauge marks the current state, through trip, half-open, close and the modes."""
    breaker = CircuitBreaker(2, 30, Down, name=name, clock=clock)
    call = guard(breaker, clock)
    registry = CollectorRegistry()
    register(registry, match=name)
    assert state_of(scrape(registry), name) == "closed"
    await run(call, Down())
    assert state_of(scrape(registry), name) == "closed"
    await run(call, Down())
    assert state_of(scrape(registry), name) == "open"
    clock.advance(30)
    assert state_of(scrape(registry), name) == "half_open"
    await run(call)
    assert state_of(scrape(registry), name) == "closed"
    breaker.force_open()
    assert state_of(scrape(registry), name) == "forced_open"
    breaker.disable()
    assert state_of(scrape(registry), name) == "disabled"
    breaker.metrics_only()
    assert state_of(scrape(registry), name) == "metrics_only"
    breaker.close()
    assert state_of(scrape(registry), name) == "closed"


async def test_calls_are_counted_by_outcome(name: str, clock: FakeClock) -> None:
    """Successes, failures and neutral calls are the calls counter's three outcomes."""
    breaker = CircuitBreaker(10, 30, Down, name=name, clock=clock)
    call = guard(breaker, clock)
    registry = CollectorRegistry()
    register(registry, match=name)
    before = scrape(registry)
    for outcome in ("success", "failure", "neutral"):
        assert value(before, "circuit_breaker_calls_total", name=name, outcome=outcome) == 0
    for _ in range(3):
        await run(call)
    await run(call, Down())
    await run(call, Down())
    await run(call, ValueError("not expected: neutral"))
    after = scrape(registry)
    assert value(after, "circuit_breaker_calls_total", name=name, outcome="success") == 3
    assert value(after, "circuit_breaker_calls_total", name=name, outcome="failure") == 2
    assert value(after, "circuit_breaker_calls_total", name=name, outcome="neutral") == 1
    assert value(after, "circuit_breaker_rejected_calls_total", name=name) == 0


async def test_rejected_calls_grow_while_open(name: str, clock: FakeClock) -> None:
    """Each call an open breaker rejects adds one to the rejected counter, not to the calls."""
    breaker = CircuitBreaker(2, 30, Down, name=name, clock=clock)
    call = guard(breaker, clock)
    registry = CollectorRegistry()
    register(registry, match=name)
    await run(call, Down())
    await run(call, Down())
    assert value(scrape(registry), "circuit_breaker_rejected_calls_total", name=name) == 0
    for expected in (1, 2, 3):
        await run(call)
        series = scrape(registry)
        assert value(series, "circuit_breaker_rejected_calls_total", name=name) == expected
    assert value(series, "circuit_breaker_calls_total", name=name, outcome="success") == 0
    assert value(series, "circuit_breaker_calls_total", name=name, outcome="failure") == 2


async def test_transitions_and_openings_are_counted(name: str, clock: FakeClock) -> None:
    """Every state change is counted by its from and to states, and re-opening counts openings."""
    breaker = CircuitBreaker(1, 30, Down, name=name, clock=clock)
    call = guard(breaker, clock)
    registry = CollectorRegistry()
    register(registry, match=name)
    assert labelsets(scrape(registry), "circuit_breaker_state_transitions_total") == []
    await run(call, Down())  # closed -> open
    clock.advance(30)
    await run(call, Down())  # open -> half_open, the probe fails: half_open -> open
    clock.advance(30)
    await run(call)  # open -> half_open, the probe succeeds: half_open -> closed
    breaker.force_open()  # closed -> forced_open
    series = scrape(registry)
    transitions = {
        (labels["from_state"], labels["to_state"]): value(
            series, "circuit_breaker_state_transitions_total", **labels
        )
        for labels in labelsets(series, "circuit_breaker_state_transitions_total")
    }
    assert transitions == {
        ("closed", "open"): 1,
        ("open", "half_open"): 2,
        ("half_open", "open"): 1,
        ("half_open", "closed"): 1,
        ("closed", "forced_open"): 1,
    }
    assert value(series, "circuit_breaker_openings_total", name=name) == 2


async def test_failure_rate_is_exported_for_rate_policies(name: str, clock: FakeClock) -> None:
    """A RatePolicy breaker exports its window's failure and slow-call rates once it has calls."""
    policy = RatePolicy(CountWindow(10), failure_rate=0.5, minimum_calls=4, slow_call_duration=1)
    breaker = CircuitBreaker(name=name, expected_exception=Down, clock=clock, policy=policy)
    call = guard(breaker, clock)
    registry = CollectorRegistry()
    register(registry, match=name)
    empty = scrape(registry)
    assert labelsets(empty, "circuit_breaker_failure_rate") == []
    assert labelsets(empty, "circuit_breaker_slow_call_rate") == []
    await run(call)
    await run(call, takes=2.0)
    await run(call, Down())
    await run(call)
    series = scrape(registry)
    assert value(series, "circuit_breaker_failure_rate", name=name) == 0.25
    assert value(series, "circuit_breaker_slow_call_rate", name=name) == 0.25
    assert value(series, "circuit_breaker_slow_calls_total", name=name) == 1
    assert state_of(series, name) == "closed"
    await run(call, Down())
    await run(call, Down())  # 3 failures in 6 calls: the rate reaches 0.5 and trips
    assert state_of(scrape(registry), name) == "open"


async def test_breakers_without_a_rate_policy_export_no_rates(name: str, clock: FakeClock) -> None:
    """A consecutive-failures breaker has no rate series, only the others."""
    breaker = CircuitBreaker(5, 30, Down, name=name, clock=clock)
    call = guard(breaker, clock)
    registry = CollectorRegistry()
    register(registry, match=name)
    await run(call, Down())
    series = scrape(registry)
    assert labelsets(series, "circuit_breaker_failure_rate") == []
    assert labelsets(series, "circuit_breaker_slow_call_rate") == []
    assert labelsets(series, "circuit_breaker_openings_total") == [{"name": name, "key": ""}]


async def test_open_remaining_counts_down_and_is_infinite_when_forced(
    name: str, clock: FakeClock
) -> None:
    """The remaining open time counts down to 0 (never below), and is +Inf while forced open."""
    breaker = CircuitBreaker(1, 30, Down, name=name, clock=clock)
    call = guard(breaker, clock)
    registry = CollectorRegistry()
    register(registry, match=name)
    metric = "circuit_breaker_open_remaining_seconds"
    assert value(scrape(registry), metric, name=name) == 0
    await run(call, Down())
    assert value(scrape(registry), metric, name=name) == 30
    clock.advance(10)
    assert value(scrape(registry), metric, name=name) == 20
    clock.advance(25)  # due: half-open, 5 s past the deadline
    assert value(scrape(registry), metric, name=name) == 0
    breaker.force_open()
    remaining = value(scrape(registry), metric, name=name)
    assert math.isinf(remaining)
    assert remaining > 0


async def test_unnamed_breakers_are_skipped(name: str, clock: FakeClock) -> None:
    """A breaker without a name exports nothing, while a named one next to it does."""
    unnamed = CircuitBreaker(1, 30, Down, clock=clock)
    named = CircuitBreaker(1, 30, Down, name=name, clock=clock)
    with pytest.raises(Down):
        async with unnamed:
            raise Down
    assert unnamed.name is None
    registry = CollectorRegistry()
    register(registry, match=lambda breaker: breaker is unnamed or breaker is named)
    series = scrape(registry)
    assert {dict(labels)["name"] for _, labels in series} == {name}
    assert value(series, "circuit_breaker_calls_total", name=name, outcome="failure") == 0
    assert state_of(series, name) == "closed"


async def test_breakers_sharing_a_name_are_exported_once(name: str, clock: FakeClock) -> None:
    """Same-named breakers give one set of series: counters summed, gauges of the newest."""
    older = CircuitBreaker(2, 30, Down, name=name, clock=clock)
    newer = CircuitBreaker(2, 30, Down, name=name, clock=clock)
    call_older, call_newer = guard(older, clock), guard(newer, clock)
    await run(call_older, Down())
    await run(call_older, Down())  # the older one opens
    await run(call_older)  # and rejects
    await run(call_newer)
    await run(call_newer, Down())
    await run(call_newer, Down())  # the newer one opens too
    clock.advance(30)
    await run(call_newer)  # its probe succeeds: closed again; the older one is half-open
    registry = CollectorRegistry()
    register(registry, match=name)
    series = scrape(registry)  # (scrape() fails on a duplicate series)
    assert state_of(series, name) == "closed"
    assert value(series, "circuit_breaker_open_remaining_seconds", name=name) == 0
    assert value(series, "circuit_breaker_calls_total", name=name, outcome="success") == 2
    assert value(series, "circuit_breaker_calls_total", name=name, outcome="failure") == 4
    assert value(series, "circuit_breaker_rejected_calls_total", name=name) == 1
    assert value(series, "circuit_breaker_openings_total", name=name) == 2
    transitions = "circuit_breaker_state_transitions_total"
    closed_open = {"name": name, "from_state": "closed", "to_state": "open"}
    assert value(series, transitions, **closed_open) == 2
    newer.force_open()
    assert state_of(scrape(registry), name) == "forced_open"


async def test_match_selects_the_breakers(name: str, clock: FakeClock) -> None:
    """A glob or a predicate picks which breakers a collector exports."""
    breakers = [
        CircuitBreaker(name=f"{name}.{suffix}", clock=clock) for suffix in ("a", "b", "other")
    ]
    first, second, other = (breaker.name for breaker in breakers)
    by_glob = CollectorRegistry()
    register(by_glob, match=f"{name}.?")
    assert {labels["name"] for labels in labelsets(scrape(by_glob), "circuit_breaker_state")} == {
        first,
        second,
    }
    by_predicate = CollectorRegistry()
    register(by_predicate, match=lambda breaker: breaker is breakers[2])
    assert {
        labels["name"] for labels in labelsets(scrape(by_predicate), "circuit_breaker_state")
    } == {other}


async def test_breakers_made_after_registration_are_exported(name: str, clock: FakeClock) -> None:
    """The collector reads the live breakers at each scrape, so later breakers appear."""
    registry = CollectorRegistry()
    register(registry, match=name)
    assert labelsets(scrape(registry), "circuit_breaker_state") == []
    breaker = CircuitBreaker(name=name, clock=clock)
    assert state_of(scrape(registry), name) == "closed"
    assert breaker.closed


async def test_prefix_names_the_metrics(name: str, clock: FakeClock) -> None:
    """A custom prefix starts every metric name, and two prefixes share a registry."""
    breaker = CircuitBreaker(name=name, clock=clock)
    registry = CollectorRegistry()
    collector = register(registry, match=name, prefix="payments_cb")
    register(registry, match=name)
    series = scrape(registry)
    assert state_of(series, name, prefix="payments_cb") == "closed"
    assert state_of(series, name) == "closed"
    assert value(series, "payments_cb_calls_total", name=name, outcome="success") == 0
    assert repr(collector) == f"CircuitBreakerCollector(match={name!r}, prefix='payments_cb')"
    assert breaker.closed


@pytest.mark.parametrize("prefix", ["", "1st", "circuit-breaker", "app:cb", "a b", "café"])
async def test_invalid_prefixes_are_refused(prefix: str) -> None:
    """A prefix that cannot start a metric name is a ValueError that names it."""
    with pytest.raises(ValueError, match=r"metric name prefix .*got") as info:
        CircuitBreakerCollector(prefix=prefix)
    assert repr(prefix) in str(info.value)


async def test_wrong_types_are_refused() -> None:
    """A prefix that is not a string, or a match that is no glob or predicate, is a TypeError."""
    with pytest.raises(TypeError, match="prefix must be a string"):
        CircuitBreakerCollector(prefix=b"cb")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="match must be None, a glob"):
        CircuitBreakerCollector(match=3)  # type: ignore[arg-type]


async def test_registering_the_same_prefix_twice_is_refused() -> None:
    """A registry refuses a second collector with the same metric names."""
    registry = CollectorRegistry()
    register(registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        register(registry)


async def test_register_defaults_to_the_global_registry(name: str, clock: FakeClock) -> None:
    """Without a registry, register() uses prometheus_client.REGISTRY."""
    breaker = CircuitBreaker(name=name, clock=clock)
    collector = register(match=name, prefix="test_prometheus_global")
    try:
        assert state_of(scrape(REGISTRY), name, prefix="test_prometheus_global") == "closed"
    finally:
        REGISTRY.unregister(collector)
    assert "test_prometheus_global_state" not in generate_latest(REGISTRY).decode()
    assert breaker.closed


async def test_importing_the_package_does_not_import_prometheus_client() -> None:
    """Importing aiocircuitbreaker (and its testing helpers) leaves prometheus_client alone."""
    program = (
        "import sys\n"
        "import aiocircuitbreaker, aiocircuitbreaker.testing\n"
        "assert 'prometheus_client' not in sys.modules, 'imported'\n"
        "import aiocircuitbreaker.prometheus\n"
        "assert 'prometheus_client' in sys.modules\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


async def test_missing_prometheus_client_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without prometheus_client, importing the module says which extra to install."""
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.delitem(sys.modules, "aiocircuitbreaker.prometheus")
    with pytest.raises(ImportError, match=r'pip install "aiocircuitbreaker\[prometheus\]"') as info:
        importlib.import_module("aiocircuitbreaker.prometheus")
    assert isinstance(info.value.__cause__, ImportError)
