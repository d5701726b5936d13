"""Per-key breakers: CircuitBreakerGroup and circuit(key=...)."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry

from aiocircuitbreaker import (
    CircuitBreaker,
    CircuitBreakerError,
    CircuitBreakerGroup,
    CircuitBreakerMonitor,
    CountWindow,
    RatePolicy,
    State,
    StateChanged,
    circuit,
)
from aiocircuitbreaker.opentelemetry import instrument
from aiocircuitbreaker.prometheus import register
from aiocircuitbreaker.storage import InMemoryStorage
from aiocircuitbreaker.testing import FakeClock

from .conftest import DependencyDown, fast_switching, run_threads
from .test_opentelemetry import collect
from .test_opentelemetry import key as point
from .test_prometheus import labelsets, scrape, value


def group_of(clock: FakeClock, name: str = "upstream", **options: Any) -> CircuitBreakerGroup[Any]:
    """Return a group on ``clock``: threshold 2, 30 s, DependencyDown, unless overridden."""
    options.setdefault("failure_threshold", 2)
    options.setdefault("recovery_timeout", 30)
    options.setdefault("expected_exception", DependencyDown)
    return CircuitBreakerGroup(name, clock=clock, **options)


def fail(group: CircuitBreakerGroup[Any], key: object, times: int = 1) -> None:
    """Make ``times`` failed calls through ``key``'s breaker."""
    for _ in range(times):
        with pytest.raises(DependencyDown):
            group.call(key, _raise)


def _raise() -> None:
    raise DependencyDown


def _ok(value: object = "ok") -> object:
    return value


def test_each_key_gets_its_own_breaker_made_on_first_use(clock: FakeClock) -> None:
    """A key's breaker is made on its first use, named after the group and key, then reused."""
    group = group_of(clock)
    assert len(group) == 0
    assert group.get("a") is None
    a = group.breaker("a")
    assert group.breaker("a") is a
    assert group.get("a") is a
    assert a.name == "upstream/a"
    assert group.breaker("b") is not a
    assert list(group) == ["a", "b"]
    assert "a" in group
    assert "c" not in group
    assert group.max_keys == 1000
    assert repr(group) == "<CircuitBreakerGroup 'upstream': 2 of 1000 keys>"


def test_one_key_opening_leaves_the_others_closed(clock: FakeClock) -> None:
    """Failures of one key open that key's breaker only."""
    group = group_of(clock)
    fail(group, "down", 2)
    with pytest.raises(CircuitBreakerError):
        group.call("down", _ok)
    assert group.call("up", _ok) == "ok"
    assert group.breaker("down").state is State.OPEN
    assert group.breaker("up").state is State.CLOSED


def test_the_least_recently_used_idle_breaker_is_evicted(clock: FakeClock) -> None:
    """Past max_keys the least recently used idle breaker goes; using a key keeps it."""
    group = group_of(clock, max_keys=2)
    group.call("a", _ok)
    group.call("b", _ok)
    group.call("a", _ok)  # a is now the most recently used
    group.call("c", _ok)
    assert set(group) == {"a", "c"}


@pytest.mark.parametrize("state", ["open", "half_open", "failing", "forced_open", "disabled"])
def test_breakers_that_are_not_idle_are_never_evicted(clock: FakeClock, state: str) -> None:
    """Open, half-open, failing and breakers in a mode stay however many keys come after."""
    group = group_of(clock, max_keys=2)
    breaker = group.breaker("kept")
    if state in {"open", "half_open"}:
        fail(group, "kept", 2)
        if state == "half_open":
            clock.advance(30)
    elif state == "failing":
        fail(group, "kept", 1)
    elif state == "forced_open":
        breaker.force_open()
    else:
        breaker.disable()
    for key in range(100):
        group.call(key, _ok)
    assert group.get("kept") is breaker
    assert len(group) == 2


def test_a_window_with_failures_is_not_idle(clock: FakeClock) -> None:
    """A breaker whose rate window holds a failure is kept; once it slides out, it may go."""
    group = group_of(
        clock, max_keys=1, policy=RatePolicy(CountWindow(2), failure_rate=1.0, minimum_calls=2)
    )
    fail(group, "kept")
    group.call("other", _ok)
    assert "kept" in group
    group.call("kept", _ok)
    group.call("kept", _ok)  # the failure has left the window of 2
    group.call("third", _ok)
    assert list(group) == ["third"]


def test_cycling_keys_cannot_wipe_an_open_breakers_history(clock: FakeClock) -> None:
    """Thousands of other keys later, an open key still rejects."""
    group = group_of(clock, max_keys=10)
    fail(group, "victim", 2)
    for key in range(5_000):
        group.call(key, _ok)
    with pytest.raises(CircuitBreakerError):
        group.call("victim", _ok)
    assert len(group) == 10


@pytest.mark.asyncio
async def test_a_call_in_flight_keeps_its_breaker(clock: FakeClock) -> None:
    """A key with a call of the group in flight is not evicted, and its failure counts."""
    group = group_of(clock, max_keys=1, failure_threshold=1)
    started, release = asyncio.Event(), asyncio.Event()

    async def slow() -> None:
        started.set()
        await release.wait()
        raise DependencyDown

    task = asyncio.ensure_future(group.call("slow", slow))
    await started.wait()
    group.call("other", _ok)
    assert "slow" in group
    release.set()
    with pytest.raises(DependencyDown):
        await task
    assert group.breaker("slow").state is State.OPEN


def test_a_decorated_generator_is_in_flight_until_it_ends(clock: FakeClock) -> None:
    """A generator of the group's holds its key while it is being iterated."""
    group = group_of(clock, max_keys=1, key=lambda name: name)

    @group
    def numbers(name: str) -> Iterator[int]:
        yield 1
        yield 2

    running = numbers("a")
    assert next(running) == 1
    group.call("b", _ok)
    assert "a" in group
    assert list(running) == [2]
    group.call("c", _ok)
    assert list(group) == ["c"]


def test_many_distinct_keys_keep_the_group_bounded(clock: FakeClock) -> None:
    """100,000 keys through a group of max_keys=1,000 leave 1,000 breakers alive."""
    group = group_of(clock, name="bounded", max_keys=1_000)
    for key in range(100_000):
        group.call(key, _ok)
    assert len(group) == 1_000
    gc.collect()
    members = [
        b for b in CircuitBreakerMonitor.get_circuits() if (b.name or "").startswith("bounded/")
    ]
    assert len(members) == 1_000


def test_statistics_per_key(clock: FakeClock) -> None:
    """statistics() gives each key's breaker's, with the group's name and the key."""
    group = group_of(clock)
    group.call("a", _ok)
    fail(group, "b")
    stats = group.statistics()
    assert set(stats) == {"a", "b"}
    assert stats["a"].total.successes == 1
    assert stats["b"].failure_count == 1
    assert (stats["b"].group, stats["b"].key, stats["b"].name) == ("upstream", "b", "upstream/b")
    assert list(group.breakers()) == ["a", "b"]


def test_prometheus_shows_a_group_under_its_name_with_a_key_label(clock: FakeClock) -> None:
    """The exporter labels a group's breakers with the group's name and their key."""
    group = group_of(clock, name="prom-group", max_keys=2)
    registry = CollectorRegistry()
    register(registry, match="prom-group/*")
    group.call("a", _ok)
    fail(group, "b", 2)
    series = scrape(registry)
    assert (
        value(series, "circuit_breaker_calls_total", name="prom-group", key="a", outcome="success")
        == 1
    )
    assert value(series, "circuit_breaker_state", name="prom-group", key="b", state="open") == 1
    group.call("c", _ok)  # evicts a (b is open)
    keys = {
        labels["key"] for labels in labelsets(scrape(registry), "circuit_breaker_openings_total")
    }
    assert keys == {"b", "c"}


def test_the_decorator_form_takes_a_key_function(clock: FakeClock) -> None:
    """@circuit(key=...) makes a group named after the function, keyed by the arguments."""

    @circuit(
        failure_threshold=1,
        expected_exception=DependencyDown,
        key=lambda host, **_: host,
        clock=clock,
    )
    def get(host: str, *, down: bool = False) -> str:
        if down:
            raise DependencyDown
        return host

    group = get.circuit_breaker_group  # type: ignore[attr-defined]
    assert isinstance(group, CircuitBreakerGroup)
    assert group.name.endswith("get")
    with pytest.raises(DependencyDown):
        get("a", down=True)
    with pytest.raises(CircuitBreakerError):
        get("a")
    assert get("b") == "b"
    assert get.__name__ == "get"


@pytest.mark.asyncio
async def test_the_decorator_form_guards_coroutine_functions(clock: FakeClock) -> None:
    """A decorated coroutine function is still one, and is guarded per key."""
    group = group_of(clock, failure_threshold=1, key=lambda host: host, max_keys=5)

    @group
    async def get(host: str) -> str:
        if host == "down":
            raise DependencyDown
        return host

    assert asyncio.iscoroutinefunction(get)
    assert await get("up") == "up"
    with pytest.raises(DependencyDown):
        await get("down")
    with pytest.raises(CircuitBreakerError):
        await get("down")
    assert await group.call("up", get, "up") == "up"


def test_max_keys_given_alone_makes_a_group() -> None:
    """circuit(max_keys=...) without key= makes a group too, which cannot decorate."""
    group = circuit(max_keys=5, name="alone")
    assert isinstance(group, CircuitBreakerGroup)
    with pytest.raises(TypeError, match="key= function"):
        group(_ok)


def test_bare_circuit_with_a_key_is_refused() -> None:
    """@circuit(key=...) must be called with options, not given the function."""
    with pytest.raises(TypeError, match="must be called"):
        circuit(_ok, key=lambda: 1)


def test_async_generator_functions_are_refused() -> None:
    """A group cannot decorate an async generator function, and says what to do instead."""
    group = CircuitBreakerGroup("agen", key=lambda: 1)

    async def stream() -> Any:
        yield 1

    with pytest.raises(TypeError, match="call_async_generator"):
        group(stream)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"max_keys": 0}, ValueError, "max_keys must be at least 1, got 0"),
        ({"max_keys": True}, TypeError, r"max_keys must be an int, got True \(bool\)"),
        ({"max_keys": 1.5}, TypeError, "max_keys must be an int"),
        ({"cls": dict}, TypeError, "cls must be CircuitBreaker"),
        ({"storage": InMemoryStorage()}, TypeError, "one storage per key"),
        ({"storage": 3}, TypeError, "storage must be callable"),
        ({"key": 3}, TypeError, "key must be callable"),
        ({"failure_threshold": 0}, ValueError, "failure_threshold"),
        ({"policy": "fast"}, TypeError, "policy"),
        ({"listeners": 3}, TypeError, "listeners must be an iterable"),
        ({"colour": "red"}, TypeError, "unexpected option"),
        ({"fallback": _ok}, TypeError, "unexpected option"),
    ],
)
def test_bad_options_are_refused_when_the_group_is_made(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    """Every option is checked by the group's constructor, not at the first key."""
    with pytest.raises(error, match=message):
        CircuitBreakerGroup("bad", **options)


def test_a_name_must_be_a_string() -> None:
    """The group's name is a string or None."""
    with pytest.raises(TypeError, match="name must be a string"):
        CircuitBreakerGroup(3)  # type: ignore[arg-type]


def test_each_key_gets_a_storage_from_the_storage_function(clock: FakeClock) -> None:
    """storage= is a function of the key, called once per new breaker."""
    made: dict[object, InMemoryStorage] = {}

    def storage(key: object) -> InMemoryStorage:
        made[key] = InMemoryStorage(clock=clock)
        return made[key]

    group = group_of(clock, storage=storage)
    fail(group, "a")
    assert set(made) == {"a"}
    assert made["a"].read().counts[3] == 1


def test_listeners_and_class_defaults_reach_every_key(clock: FakeClock) -> None:
    """Each key's breaker is of the group's class and gets its listeners (an iterator too)."""
    events: list[tuple[str | None, State]] = []

    class Strict(CircuitBreaker):
        FAILURE_THRESHOLD = 1
        EXPECTED_EXCEPTION = DependencyDown

    def listener(event: object) -> None:
        if isinstance(event, StateChanged):
            events.append((event.breaker.name, event.new_state))

    group = CircuitBreakerGroup("strict", cls=Strict, clock=clock, listeners=iter([listener]))
    fail(group, "a")
    fail(group, "b")
    assert isinstance(group.breaker("a"), Strict)
    assert events == [("strict/a", State.OPEN), ("strict/b", State.OPEN)]


def test_a_failing_key_function_runs_nothing(clock: FakeClock) -> None:
    """An exception from the key function reaches the caller; no breaker is made."""
    group = group_of(clock, key=lambda value: {}[value])
    calls: list[object] = []
    guarded = group(calls.append)
    with pytest.raises(KeyError):
        guarded("x")
    assert calls == []
    assert len(group) == 0


def test_threads_racing_on_a_new_key_share_one_breaker(clock: FakeClock) -> None:
    """64 threads asking for one new key all get the same breaker."""
    group = group_of(clock)
    seen: list[CircuitBreaker] = []
    lock = threading.Lock()

    def worker(_: int) -> None:
        breaker = group.breaker("shared")
        with lock:
            seen.append(breaker)

    with fast_switching():
        run_threads(64, worker)
    assert len({id(b) for b in seen}) == 1


def test_threads_on_many_keys_keep_exact_counts_and_the_bound(clock: FakeClock) -> None:
    """8 threads through 50 keys of a group of 10: every call counted once, 10 kept."""
    group = group_of(clock, max_keys=10, failure_threshold=10**9)
    kept: dict[int, int] = {}

    def worker(index: int) -> None:
        for n in range(500):
            group.call((index * 7 + n) % 50, _ok)

    with fast_switching():
        run_threads(8, worker)
    for key, stats in group.statistics().items():
        kept[key] = stats.total.successes
    assert len(group) == 10
    assert all(count >= 1 for count in kept.values())


def test_unnamed_groups_name_their_breakers_none(clock: FakeClock) -> None:
    """A group without a name (not yet decorating) makes unnamed breakers."""
    group = CircuitBreakerGroup(clock=clock)
    assert group.name is None
    assert group.breaker(1).name is None
    assert group.breaker(1).statistics().key == "1"


def test_opentelemetry_shows_a_group_under_its_name_with_a_key(clock: FakeClock) -> None:
    """The OpenTelemetry instruments give a group's breakers the group's name and a key."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        instrument(provider, match="otel-group/*")
        group = group_of(clock, name="otel-group")
        group.call("a", _ok)
        fail(group, "b", 2)
        points = collect(reader)
        calls = point("calls", name="otel-group", key="a", outcome="success")
        assert points[calls] == 1
        assert points[point("state", name="otel-group", key="b", state="open")] == 1
    finally:
        provider.shutdown()


class Sly:
    """A key equal to any other Sly of its name; its ``nth`` comparison runs ``hook`` first.

    The group looks a key up twice on a call's way in (before and after counting its start),
    and a lookup compares the key held with the key given: a hook on the held key's second
    comparison lines a race with an eviction up by hand.
    """

    def __init__(self, name: str, hook: Any = None, nth: int = 2) -> None:
        self.name, self.hook, self.nth = name, hook, nth

    def __hash__(self) -> int:
        return hash(self.name)

    def __eq__(self, other: object) -> bool:
        self.nth -= 1
        if self.nth == 0 and self.hook is not None:
            self.hook()
        return isinstance(other, Sly) and other.name == self.name

    def __str__(self) -> str:
        return self.name


@pytest.mark.parametrize("way", ["call", "function", "coroutine"])
def test_a_call_racing_an_eviction_gets_the_keys_next_breaker(clock: FakeClock, way: str) -> None:
    """A call whose key is evicted between its lookup and its start uses a new breaker."""
    group = group_of(clock, key=lambda k: k)
    held = Sly("k")
    first = group.breaker(held)
    held.hook, held.nth = group._entries.clear, 2  # the eviction, lined up by hand

    @group
    def function(k: object) -> str:
        return "ran"

    @group
    async def coroutine(k: object) -> str:
        return "ran"

    k = Sly("k")
    if way == "call":
        assert group.call(k, _ok) == "ok"
    elif way == "function":
        assert function(k) == "ran"
    else:
        assert asyncio.run(coroutine(k)) == "ran"
    second = group.get(Sly("k"))
    assert second is not None
    assert second is not first
    assert second.statistics().total.successes == 1
    assert first.statistics().total.calls == 0


def test_a_new_key_reads_a_bounded_number_of_breakers(clock: FakeClock) -> None:
    """Among many breakers that cannot go, a new key looks at a few; the bound comes back."""
    group = group_of(clock, max_keys=2)
    for key in range(40):
        fail(group, key, 2)  # 40 open breakers, none evictable
    group.call("new", _ok)
    assert len(group) == 41
    clock.advance(30)
    for key in range(40):
        group.call(key, _ok)  # each probe succeeds: closed and idle again
    for key in range(5):
        group.call(f"later-{key}", _ok)
    assert len(group) == 2


def test_a_ticket_admitted_by_the_group_keeps_its_breaker_until_finished(
    clock: FakeClock,
) -> None:
    """group.admit(key) counts the call in flight until its ticket is finished."""
    group = group_of(clock, max_keys=1, failure_threshold=1)
    ticket = group.admit("held")
    group.call("other", _ok)
    assert "held" in group
    ticket.finish(DependencyDown())
    assert group.breaker("held").state is State.OPEN
    with pytest.raises(CircuitBreakerError):
        group.admit("held")
    group.breaker("held").reset()
    group.call("third", _ok)
    assert "held" not in group  # idle again, nothing in flight: evicted


def test_a_rejected_admission_is_not_left_in_flight(clock: FakeClock) -> None:
    """A key whose breaker rejects holds no call in flight for it."""
    group = group_of(clock, max_keys=1, failure_threshold=1)
    fail(group, "down")
    with pytest.raises(CircuitBreakerError):
        group.admit("down")
    group.breaker("down").close()
    group.call("other", _ok)
    assert list(group) == ["other"]
