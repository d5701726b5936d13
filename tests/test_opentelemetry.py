"""The OpenTelemetry integration, against the real SDK: what the instruments report, and when."""

from __future__ import annotations

import gc
import importlib
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import opentelemetry.metrics
import pytest
from opentelemetry.metrics._internal import _ProxyMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import aiocircuitbreaker
from aiocircuitbreaker import CircuitBreaker, CircuitBreakerError, CountWindow, RatePolicy, State
from aiocircuitbreaker.opentelemetry import Instrumentation, instrument
from aiocircuitbreaker.testing import FakeClock

from .conftest import DependencyDown

pytestmark = pytest.mark.asyncio

Key = tuple[str, frozenset[tuple[str, object]]]
Points = dict[Key, float]
Guarded = Callable[..., Awaitable[object]]


@pytest.fixture
def reader() -> InMemoryMetricReader:
    """Return an in-memory metric reader (registered by the provider fixture)."""
    return InMemoryMetricReader()


@pytest.fixture
def provider(reader: InMemoryMetricReader) -> Iterator[MeterProvider]:
    """Return an SDK provider collecting into ``reader``; shut it down after the test."""
    meter_provider = MeterProvider(metric_readers=[reader])
    yield meter_provider
    meter_provider.shutdown()


def collect(metric_reader: InMemoryMetricReader) -> Points:
    """Return every point collected now, as {(instrument name, attributes): value}."""
    data = metric_reader.get_metrics_data()
    if data is None:
        return {}
    return {
        (metric.name, frozenset(point.attributes.items())): point.value
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        for point in metric.data.data_points
    }


def key(suffix: str, **attributes: object) -> Key:
    """Return the key of one point in collect()'s result."""
    return f"circuit_breaker.{suffix}", frozenset(attributes.items())


def current(points: Points, name: str) -> str:
    """Return the state that the state gauge of ``name`` marks with 1 (checking the others)."""
    values = {state.value: points[key("state", name=name, state=state.value)] for state in State}
    marked = [state for state, value in values.items() if value == 1]
    assert len(marked) == 1
    assert sum(values.values()) == 1
    return marked[0]


def names_of(points: Points) -> set[str]:
    """Return the breaker names that have points."""
    return {value for _, attributes in points for name, value in attributes if name == "name"}


def guarded(breaker: CircuitBreaker, clock: FakeClock | None = None) -> Guarded:
    """Return an async function guarded by ``breaker``: it returns, raises, or takes time."""

    @breaker
    async def call(outcome: object = None, seconds: float = 0.0) -> object:
        if clock is not None:
            clock.advance(seconds)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return call


async def fail(call: Guarded, times: int = 1) -> None:
    """Make ``times`` calls that fail with the expected exception."""
    for _ in range(times):
        with pytest.raises(DependencyDown):
            await call(DependencyDown())


async def test_state_follows_trip_half_open_and_close(
    provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    """The state gauge marks closed, then open on a trip, half-open when due, closed again."""
    clock = FakeClock(0)
    breaker = CircuitBreaker(
        failure_threshold=2, recovery_timeout=30, name="otel-trip", clock=clock
    )
    call = guarded(breaker)
    instrument(provider, match="otel-trip")
    assert current(collect(reader), "otel-trip") == "closed"
    await fail(call, 2)
    assert current(collect(reader), "otel-trip") == "open"
    clock.advance(30)
    assert current(collect(reader), "otel-trip") == "half_open"
    assert await call("ok") == "ok"
    assert current(collect(reader), "otel-trip") == "closed"


async def test_open_remaining_counts_down_to_zero(
    provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    """open_remaining is 0 while closed, the seconds left while open, and 0 once half-open."""
    clock = FakeClock(0)
    breaker = CircuitBreaker(recovery_timeout=30, name="otel-remaining", clock=clock)
    instrument(provider, match="otel-remaining")
    remaining = key("open_remaining", name="otel-remaining")
    assert collect(reader)[remaining] == 0.0
    breaker.open()
    assert collect(reader)[remaining] == 30.0
    clock.advance(12)
    assert collect(reader)[remaining] == 18.0
    clock.advance(20)
    points = collect(reader)
    assert current(points, "otel-remaining") == "half_open"
    assert points[remaining] == 0.0


async def test_forced_open_has_a_state_but_no_open_remaining(
    provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    """A forced-open breaker is marked forced_open and reports no (infinite) open_remaining."""
    breaker = CircuitBreaker(name="otel-forced", clock=FakeClock(0))
    instrument(provider, match="otel-forced")
    breaker.force_open()
    points = collect(reader)
    assert current(points, "otel-forced") == "forced_open"
    assert key("open_remaining", name="otel-forced") not in points
    breaker.close()
    points = collect(reader)
    assert current(points, "otel-forced") == "closed"
    assert points[key("open_remaining", name="otel-forced")] == 0.0


@pytest.mark.parametrize(
    ("mode", "state"), [("disable", "disabled"), ("metrics_only", "metrics_only")]
)
async def test_pass_through_modes_are_states_with_nothing_remaining(
    provider: MeterProvider, reader: InMemoryMetricReader, mode: str, state: str
) -> None:
    """Disabled and metrics-only breakers are marked as such, with 0 seconds open_remaining."""
    breaker = CircuitBreaker(name=f"otel-mode-{mode}", clock=FakeClock(0))
    instrument(provider, match=f"otel-mode-{mode}")
    getattr(breaker, mode)()
    points = collect(reader)
    assert current(points, f"otel-mode-{mode}") == state
    assert points[key("open_remaining", name=f"otel-mode-{mode}")] == 0.0


async def test_calls_are_counted_by_outcome(
    provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    """The calls counter reports successes, expected failures and neutral calls separately."""
    breaker = CircuitBreaker(
        failure_threshold=10,
        expected_exception=DependencyDown,
        name="otel-outcomes",
        clock=FakeClock(0),
    )
    call = guarded(breaker)
    instrument(provider, match="otel-outcomes")
    for _ in range(3):
        await call("ok")
    await fail(call, 2)
    with pytest.raises(KeyError):
        await call(KeyError("not expected: neutral"))
    points = collect(reader)
    assert points[key("calls", name="otel-outcomes", outcome="success")] == 3
    assert points[key("calls", name="otel-outcomes", outcome="failure")] == 2
    assert points[key("calls", name="otel-outcomes", outcome="neutral")] == 1
    assert points[key("rejected_calls", name="otel-outcomes")] == 0
    assert points[key("openings", name="otel-outcomes")] == 0


async def test_counters_keep_counting_across_resets(
    provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    """The counters report totals since the breaker was made, which a reset does not clear."""
    breaker = CircuitBreaker(failure_threshold=2, name="otel-monotonic", clock=FakeClock(0))
    call = guarded(breaker)
    instrument(provider, match="otel-monotonic")
    await fail(call, 2)
    breaker.reset()
    await fail(call, 2)
    points = collect(reader)
    assert points[key("calls", name="otel-monotonic", outcome="failure")] == 4
    assert points[key("openings", name="otel-monotonic")] == 2


async def test_rejections_openings_and_transitions_are_counted(
    provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    """Rejected calls, openings and every state change (by from_state, to_state) are counted."""
    clock = FakeClock(0)
    breaker = CircuitBreaker(
        failure_threshold=1, recovery_timeout=10, name="otel-rejections", clock=clock
    )
    call = guarded(breaker)
    instrument(provider, match="otel-rejections")
    await fail(call)
    for _ in range(3):
        with pytest.raises(CircuitBreakerError):
            await call("never runs")
    clock.advance(10)
    await fail(call)  # the half-open probe fails: open again
    clock.advance(10)
    await call("ok")  # this probe succeeds: closed
    points = collect(reader)
    name = "otel-rejections"
    assert points[key("rejected_calls", name=name)] == 3
    assert points[key("openings", name=name)] == 2
    transitions = {
        (dict(attributes)["from_state"], dict(attributes)["to_state"]): value
        for (metric, attributes), value in points.items()
        if metric == "circuit_breaker.state_transitions" and ("name", name) in attributes
    }
    assert transitions == {
        ("closed", "open"): 1,
        ("open", "half_open"): 2,
        ("half_open", "open"): 1,
        ("half_open", "closed"): 1,
    }


async def test_rates_and_slow_calls_with_a_rate_policy(
    provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    """With a RatePolicy the rate gauges appear once the window holds calls, with slow calls."""
    clock = FakeClock(0)
    breaker = CircuitBreaker(
        name="otel-rates",
        clock=clock,
        policy=RatePolicy(
            CountWindow(10), failure_rate=0.9, slow_call_duration=1.0, slow_call_rate=0.9
        ),
    )
    call = guarded(breaker, clock)
    instrument(provider, match="otel-rates")
    points = collect(reader)
    assert key("failure_rate", name="otel-rates") not in points
    assert key("slow_call_rate", name="otel-rates") not in points
    await call("ok")
    await call("slow", seconds=2.0)
    await fail(call)
    await call("ok")
    points = collect(reader)
    assert points[key("failure_rate", name="otel-rates")] == pytest.approx(0.25)
    assert points[key("slow_call_rate", name="otel-rates")] == pytest.approx(0.25)
    assert points[key("slow_calls", name="otel-rates")] == 1
    assert current(points, "otel-rates") == "closed"


async def test_no_rates_without_a_rate_policy(
    provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    """A breaker counting consecutive failures has no rate gauges, even after calls."""
    breaker = CircuitBreaker(name="otel-no-rates", clock=FakeClock(0))
    call = guarded(breaker)
    instrument(provider, match="otel-no-rates")
    await call("ok")
    points = collect(reader)
    assert key("failure_rate", name="otel-no-rates") not in points
    assert key("slow_call_rate", name="otel-no-rates") not in points
    assert points[key("slow_calls", name="otel-no-rates")] == 0


async def test_breakers_sharing_a_name_add_up_and_show_the_newest(
    provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    """Breakers sharing a name give one series: counters summed, gauges of the newest."""
    clock = FakeClock(0)
    older = CircuitBreaker(failure_threshold=2, name="otel-shared", clock=clock)
    newer = CircuitBreaker(failure_threshold=5, name="otel-shared", clock=clock)
    instrument(provider, match="otel-shared")
    await fail(guarded(older), 2)
    await guarded(newer)("ok")
    await guarded(newer)("ok")
    points = collect(reader)
    assert points[key("calls", name="otel-shared", outcome="success")] == 2
    assert points[key("calls", name="otel-shared", outcome="failure")] == 2
    assert points[key("openings", name="otel-shared")] == 1
    assert current(points, "otel-shared") == "closed"  # the newer one's state
    assert points[key("open_remaining", name="otel-shared")] == 0.0
    newer.open()
    older.close()
    points = collect(reader)
    assert current(points, "otel-shared") == "open"
    assert points[key("openings", name="otel-shared")] == 2
    assert (
        points[key("state_transitions", name="otel-shared", from_state="closed", to_state="open")]
        == 2
    )


async def test_unnamed_breakers_are_not_reported(
    provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    """A breaker without a name has no points, even when match picks it."""
    unnamed = CircuitBreaker(clock=FakeClock(0))  # a decorator would name it after the function
    named = CircuitBreaker(name="otel-named", clock=FakeClock(0))
    instrument(provider, match=lambda breaker: breaker is unnamed or breaker is named)
    async with unnamed:
        pass
    assert unnamed.name is None
    points = collect(reader)
    assert names_of(points) == {"otel-named"}
    assert all(value == 0 for (metric, _), value in points.items() if metric.endswith(".calls"))


async def test_match_picks_breakers_at_every_collection(
    provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    """A glob reports only the breakers it matches, including ones made after instrument()."""
    clock = FakeClock(0)
    first = CircuitBreaker(name="otel-glob.first", clock=clock)
    other = CircuitBreaker(name="otel-elsewhere", clock=clock)
    instrument(provider, match="otel-glob.*")
    assert names_of(collect(reader)) == {first.name}
    later = CircuitBreaker(name="otel-glob.later", clock=clock)
    assert names_of(collect(reader)) == {first.name, later.name}
    assert other.name not in names_of(collect(reader))


async def test_collected_breakers_leave_the_reports(
    provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    """A breaker that was garbage collected is no longer reported."""
    breaker = CircuitBreaker(name="otel-gone", clock=FakeClock(0))
    instrument(provider, match="otel-gone")
    assert names_of(collect(reader)) == {"otel-gone"}
    del breaker
    gc.collect()
    assert collect(reader) == {}


async def test_every_instrument_is_named_typed_and_has_a_unit(
    provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    """The instruments come in documented order with their units, on the versioned meter."""
    clock = FakeClock(0)
    breaker = CircuitBreaker(
        failure_threshold=1,
        name="otel-units",
        clock=clock,
        policy=RatePolicy(CountWindow(10), slow_call_duration=1.0),
    )
    handle = instrument(provider, match="otel-units")
    await guarded(breaker, clock)("slow", seconds=5)
    data = reader.get_metrics_data()
    assert data is not None
    (resource,) = data.resource_metrics
    (scope,) = resource.scope_metrics
    assert scope.scope.name == "aiocircuitbreaker"
    assert scope.scope.version == aiocircuitbreaker.__version__
    units = {metric.name: metric.unit for metric in scope.metrics}
    assert units == {
        "circuit_breaker.state": "1",
        "circuit_breaker.calls": "{call}",
        "circuit_breaker.rejected_calls": "{call}",
        "circuit_breaker.slow_calls": "{call}",
        "circuit_breaker.openings": "{opening}",
        "circuit_breaker.failure_rate": "1",
        "circuit_breaker.slow_call_rate": "1",
        "circuit_breaker.open_remaining": "s",
    }  # no transitions yet
    sums = {metric.name for metric in scope.metrics if getattr(metric.data, "is_monotonic", False)}
    assert sums == {
        "circuit_breaker.calls",
        "circuit_breaker.rejected_calls",
        "circuit_breaker.slow_calls",
        "circuit_breaker.openings",
    }
    assert list(handle.instruments) == [
        "circuit_breaker.state",
        "circuit_breaker.calls",
        "circuit_breaker.rejected_calls",
        "circuit_breaker.slow_calls",
        "circuit_breaker.openings",
        "circuit_breaker.state_transitions",
        "circuit_breaker.failure_rate",
        "circuit_breaker.slow_call_rate",
        "circuit_breaker.open_remaining",
    ]
    assert handle.meter is provider.get_meter("aiocircuitbreaker", aiocircuitbreaker.__version__)
    assert handle.prefix == "circuit_breaker"


async def test_prefix_names_the_instruments(
    provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    """A prefix replaces circuit_breaker at the start of every instrument's name."""
    breaker = CircuitBreaker(name="otel-prefix", clock=FakeClock(0))
    handle = instrument(provider, match="otel-prefix", prefix="myapp.resilience.breaker")
    points = collect(reader)
    assert {metric for metric, _ in points} == {
        "myapp.resilience.breaker.state",
        "myapp.resilience.breaker.calls",
        "myapp.resilience.breaker.rejected_calls",
        "myapp.resilience.breaker.slow_calls",
        "myapp.resilience.breaker.openings",
        "myapp.resilience.breaker.open_remaining",
    }
    assert all(name.startswith("myapp.resilience.breaker.") for name in handle.instruments)
    assert breaker.name == "otel-prefix"


@pytest.mark.parametrize(
    "prefix",
    ["", "Circuit_Breaker", "circuit-breaker", "circuit breaker", "1circuit", ".cb", "cb.", "a..b"],
)
async def test_a_prefix_that_is_not_dotted_lower_case_words_is_refused(
    provider: MeterProvider, prefix: str
) -> None:
    """instrument() refuses a prefix that would make names outside the OpenTelemetry style."""
    with pytest.raises(ValueError, match="prefix must be lower-case words"):
        instrument(provider, prefix=prefix)


async def test_a_prefix_too_long_for_an_instrument_name_is_refused(
    provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    """A prefix may make names of up to 255 characters, OpenTelemetry's limit, and no longer."""
    breaker = CircuitBreaker(name="otel-long", clock=FakeClock(0))
    instrument(provider, match="otel-long", prefix="a" * 237)
    breaker.open()
    assert max(len(metric) for metric, _ in collect(reader)) == 255
    with pytest.raises(ValueError, match="at most 237 characters, got 238"):
        instrument(provider, prefix="a" * 238)


async def test_a_prefix_or_match_of_the_wrong_type_is_refused(provider: MeterProvider) -> None:
    """instrument() refuses a prefix that is not a string, and a match that is not a pattern."""
    with pytest.raises(TypeError, match="prefix must be a string, got b'cb'"):
        instrument(provider, prefix=b"cb")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="match must be None, a glob"):
        instrument(provider, match=42)  # type: ignore[arg-type]


async def test_stop_ends_the_reports(provider: MeterProvider, reader: InMemoryMetricReader) -> None:
    """After stop() the instruments stay registered but report no points; stopping again is fine."""
    breaker = CircuitBreaker(name="otel-stop", clock=FakeClock(0))
    handle = instrument(provider, match="otel-stop")
    assert handle.active
    assert repr(handle) == "<Instrumentation prefix='circuit_breaker' active>"
    assert names_of(collect(reader)) == {"otel-stop"}
    handle.stop()
    assert not handle.active
    assert repr(handle) == "<Instrumentation prefix='circuit_breaker' stopped>"
    assert collect(reader) == {}
    handle.stop()
    assert collect(reader) == {}
    assert breaker.name == "otel-stop"


async def test_instrument_again_takes_the_instruments_over(
    provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    """A second instrument() on the same provider and prefix reports instead of the first."""
    clock = FakeClock(0)
    first = CircuitBreaker(name="otel-takeover.first", clock=clock)
    second = CircuitBreaker(name="otel-takeover.second", clock=clock)
    old = instrument(provider, match="otel-takeover.first")
    new = instrument(provider, match="otel-takeover.second")
    assert not old.active
    assert new.active
    assert names_of(collect(reader)) == {"otel-takeover.second"}
    old.stop()  # no longer its instruments: changes nothing
    assert names_of(collect(reader)) == {"otel-takeover.second"}
    new.stop()
    assert collect(reader) == {}
    again = instrument(provider, match="otel-takeover.*")
    assert names_of(collect(reader)) == {first.name, second.name}
    assert isinstance(again, Instrumentation)


async def test_other_prefixes_report_side_by_side(
    provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    """Handles with different prefixes have their own instruments, and stop separately."""
    breaker = CircuitBreaker(name="otel-side", clock=FakeClock(0))
    one = instrument(provider, match="otel-side", prefix="one")
    two = instrument(provider, match="otel-side", prefix="two")
    assert one.active
    assert two.active
    one.stop()
    assert {metric.split(".")[0] for metric, _ in collect(reader)} == {"two"}
    assert breaker.name == "otel-side"


async def test_the_global_provider_is_the_default(
    provider: MeterProvider, reader: InMemoryMetricReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a provider, instrument() uses OpenTelemetry's global one."""
    monkeypatch.setattr(opentelemetry.metrics, "get_meter_provider", lambda: provider)
    breaker = CircuitBreaker(name="otel-global", clock=FakeClock(0))
    handle = instrument(match="otel-global")
    assert current(collect(reader), "otel-global") == "closed"
    handle.stop()
    assert breaker.name == "otel-global"


async def test_importing_the_package_does_not_import_opentelemetry() -> None:
    """import aiocircuitbreaker leaves opentelemetry unimported (it is an optional extra)."""
    code = (
        "import sys, aiocircuitbreaker, aiocircuitbreaker.testing\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] == 'opentelemetry']\n"
        "assert not loaded, loaded\n"
    )
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, capture_output=True)


async def test_a_missing_api_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without opentelemetry-api the import fails with the pip command, chained to the cause."""
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    monkeypatch.delitem(sys.modules, "aiocircuitbreaker.opentelemetry")
    with pytest.raises(
        ImportError, match=r'pip install "aiocircuitbreaker\[opentelemetry\]"'
    ) as info:
        importlib.import_module("aiocircuitbreaker.opentelemetry")
    assert isinstance(info.value.__cause__, ImportError)


async def test_instrumenting_before_the_global_provider_is_set(
    provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    """Handles made on the global proxy provider report once the real provider is set."""
    proxy = _ProxyMeterProvider()  # what get_meter_provider() returns before it is set
    breaker = CircuitBreaker(name="otel-proxy", clock=FakeClock(0))
    first = instrument(proxy, match="otel-proxy")
    first.stop()
    second = instrument(proxy, match="otel-proxy")
    proxy.on_set_meter_provider(provider)
    assert second.active
    assert current(collect(reader), breaker.name) == "closed"
