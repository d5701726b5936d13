"""Breakers of several processes sharing one state through Redis (each fleet is a process).

Time is injected: the fleets' scripts measure with the test's FakeClock, not the server's TIME,
and syncs are made by hand (``fleet.sync()``) where the sync thread would make them.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.sentinel

from aiocircuitbreaker import (
    CircuitBreaker,
    CircuitBreakerError,
    CountWindow,
    HalfOpen,
    RatePolicy,
    State,
    TimeWindow,
)
from aiocircuitbreaker.redis import HealthChanged, RedisFleet, RedisStorage
from aiocircuitbreaker.storage import Outcome, Value
from aiocircuitbreaker.testing import FakeClock

from ..conftest import DependencyDown
from .server import RedisServer, unique

Fleets = Callable[..., RedisFleet]
TIMEOUT_FAST = 0.05


def evalsha_calls(server: RedisServer) -> int:
    """Return how many scripts the server has run so far."""
    client = server.client()
    try:
        stats: dict[str, Any] = client.info("commandstats")
    finally:
        client.close()
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


def breakers(
    fleets: Fleets, server: RedisServer, clock: FakeClock, count: int = 2, **options: Any
) -> list[CircuitBreaker]:
    """Return ``count`` breakers of one name, each in a fleet (a process) of its own."""
    name = unique()
    fleet_options = {
        key: options.pop(key) for key in ("lease", "quorum", "listeners") if key in options
    }
    window = options.pop("window", None)
    options.setdefault("failure_threshold", 3)
    options.setdefault("recovery_timeout", 30)
    options.setdefault("expected_exception", DependencyDown)
    made = []
    for _ in range(count):
        fleet_options.setdefault("timeout", 2.0)  # (a loaded machine is not an outage)
        fleet = fleets(server, clock=clock, sync_interval=None, **fleet_options)
        storage = fleet.storage(name, window=window)
        made.append(CircuitBreaker(name=name, clock=clock, storage=storage, **options))
    return made


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(DependencyDown), breaker:
            raise DependencyDown


def sync_all(breakers: list[CircuitBreaker]) -> None:
    for breaker in breakers:
        storage = breaker._live.storage  # type: ignore[union-attr]
        storage._fleet.sync()


def test_failures_count_fleet_wide_and_a_trip_reaches_every_process_at_the_next_sync(
    fleets: Fleets, shared_server: RedisServer, clock: FakeClock
) -> None:
    """Failures in different processes add up to one streak; once one process trips, the
    others reject from their next sync on."""
    first, second, third = breakers(fleets, shared_server, clock, 3)
    fail(first)
    fail(second)
    assert third.failure_count == 2
    fail(third)
    assert third.state is State.OPEN
    sync_all([first, second])
    for breaker in (first, second):
        with pytest.raises(CircuitBreakerError):
            breaker.call(lambda: None)


def test_the_success_path_sends_nothing_to_redis(
    fleets: Fleets, shared_server: RedisServer, clock: FakeClock
) -> None:
    """A closed breaker's successes, and an open one's rejections, run no script at all."""
    (breaker,) = breakers(fleets, shared_server, clock, 1)
    guarded = breaker(lambda: "ok")
    guarded()
    before = evalsha_calls(shared_server)
    for _ in range(200):
        assert guarded() == "ok"
    assert evalsha_calls(shared_server) == before
    fail(breaker, 3)
    before = evalsha_calls(shared_server)
    for _ in range(200):
        with pytest.raises(CircuitBreakerError):
            guarded()
    assert evalsha_calls(shared_server) == before


def test_one_probe_runs_across_the_fleet_and_its_success_closes_it_everywhere(
    fleets: Fleets, shared_server: RedisServer, clock: FakeClock
) -> None:
    """After the open period one process probes, every other is rejected, and the probe's
    success closes the breaker in every process."""
    group = breakers(fleets, shared_server, clock, 4)
    fail(group[0], 3)
    sync_all(group)
    clock.advance(30)
    probe = group[1].admit()
    assert probe.probe is not None
    for other in (group[0], group[2], group[3]):
        with pytest.raises(CircuitBreakerError):
            other.admit()
    group[1].finish(probe)
    sync_all(group)
    assert [breaker.state for breaker in group] == [State.CLOSED] * 4
    assert all(breaker._fast is not None for breaker in group)  # the fast path again


def test_a_cancelled_probe_frees_its_slot_at_once(
    fleets: Fleets, shared_server: RedisServer, clock: FakeClock
) -> None:
    """A probe cancelled in one process gives its slot back: another process probes next."""
    first, second = breakers(fleets, shared_server, clock, 2)
    fail(first, 3)
    sync_all([second])
    clock.advance(30)
    started = asyncio.Event()

    async def hang() -> None:
        started.set()
        await asyncio.Event().wait()

    async def main() -> None:
        task = asyncio.create_task(first.call(hang))
        await started.wait()
        with pytest.raises(CircuitBreakerError):
            second.admit()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    probe = second.admit()
    assert probe.probe is not None
    second.finish(probe)
    assert first.state is State.CLOSED


def test_a_dead_probes_lease_runs_out_after_the_fleets_lease(
    fleets: Fleets, shared_server: RedisServer, clock: FakeClock
) -> None:
    """A probe whose process died holds its slot for ``lease`` seconds at most; then it counts
    as failed, and the breaker opens again rather than stalling half-open."""
    first, second = breakers(fleets, shared_server, clock, 2, lease=2.0)
    fail(first, 3)
    sync_all([second])
    clock.advance(30)
    assert first.admit().probe is not None  # and its process dies: never finished
    first._live.storage._fleet.close()  # type: ignore[union-attr]
    clock.advance(1.75)
    with pytest.raises(CircuitBreakerError):
        second.admit()
    clock.advance(0.25)
    with pytest.raises(CircuitBreakerError):
        second.admit()  # the lease ran out: a failed probe, open again
    assert second.state is State.OPEN
    clock.advance(30)
    probe = second.admit()
    assert probe.probe is not None
    second.finish(probe)
    assert second.state is State.CLOSED


def test_a_live_probe_keeps_its_slot_past_the_lease_by_renewing_it(
    fleets: Fleets, shared_server: RedisServer, clock: FakeClock
) -> None:
    """A probe running longer than the lease keeps its slot while its process syncs."""
    first, second = breakers(fleets, shared_server, clock, 2, lease=2.0)
    fail(first, 3)
    sync_all([second])
    clock.advance(30)
    probe = first.admit()
    for _ in range(5):
        clock.advance(1.5)
        sync_all([first])
        with pytest.raises(CircuitBreakerError):
            second.admit()
    first.finish(probe)
    assert second.state is State.CLOSED


@pytest.mark.parametrize(
    ("action", "state"),
    [
        ("force_open", State.FORCED_OPEN),
        ("disable", State.DISABLED),
        ("metrics_only", State.METRICS_ONLY),
        ("open", State.OPEN),
    ],
)
def test_manual_control_applies_to_the_whole_fleet(
    fleets: Fleets, shared_server: RedisServer, clock: FakeClock, action: str, state: State
) -> None:
    """A mode set by hand in one process is every process's from its next sync; so is
    close() from another process."""
    first, second = breakers(fleets, shared_server, clock, 2)
    second.call(lambda: None)
    getattr(first, action)()
    sync_all([second])
    assert second._view.value.state is state
    second.close()
    sync_all([first])
    assert first._view.value.state is State.CLOSED
    assert first._fast is not None


def test_a_quorum_keeps_one_process_from_opening_the_breaker_for_all(
    fleets: Fleets, shared_server: RedisServer, clock: FakeClock
) -> None:
    """With quorum=2, one process's failures alone never trip; a second process's do."""
    first, second = breakers(fleets, shared_server, clock, 2, quorum=2)
    fail(first, 10)
    assert first.state is State.CLOSED
    assert first.failure_count == 0  # below the quorum failures read as none
    fail(second)
    assert second.state is State.OPEN
    sync_all([first])
    assert first.state is State.OPEN


def test_a_rate_window_is_shared_by_the_fleet(
    fleets: Fleets, shared_server: RedisServer, clock: FakeClock
) -> None:
    """Calls of every process fill one count window, which trips on its rate."""
    policy = RatePolicy(CountWindow(4), failure_rate=0.5, minimum_calls=4)
    first, second = breakers(fleets, shared_server, clock, 2, policy=policy, window=CountWindow(4))
    first.call(lambda: None)
    second.call(lambda: None)
    fail(first)
    assert second.state is State.CLOSED
    fail(second)
    assert first.state is State.OPEN


def test_a_breaker_gone_is_no_longer_told_of_changes(
    fleets: Fleets, shared_server: RedisServer, clock: FakeClock
) -> None:
    """A storage drops the hook of a breaker that was freed."""
    fleet = fleets(shared_server, clock=clock, sync_interval=None)
    storage = fleet.storage(unique())
    breaker = CircuitBreaker(storage=storage, clock=clock)
    other = CircuitBreaker(storage=storage, clock=clock)
    assert len(storage._watchers) == 2
    del breaker
    other.open()
    storage._seen = -1  # as if another process had moved it on
    fleet.sync()
    assert len(storage._watchers) == 1


def test_any_name_is_escaped_into_one_hash_tag_and_every_key_has_a_ttl(
    fleets: Fleets, shared_server: RedisServer, clock: FakeClock
) -> None:
    """Names with braces, colons or spaces cannot reach another breaker's keys; each breaker's
    keys share one Cluster hash tag, and every key expires."""
    fleet = fleets(shared_server, clock=clock, sync_interval=None, ttl=120.0)
    names = ["a}:{b", "a", "a:b", "a b", "{a}", "ä%7B"]
    storages = [fleet.storage(name, window=CountWindow(2)) for name in names]
    assert len({storage.state_key for storage in storages}) == len(names)
    for storage in storages:
        tags = {key[key.index("{") : key.index("}") + 1] for key in storage.keys}
        assert len(tags) == 1
        assert storage.keys[0].count("{") == 1
    storages[0].record(0, True)
    assert storages[1].read().counts == (0, 0, 0, 0)
    storages[1].replace(0, Value(State.OPEN, 1, open_for=5.0))
    client = shared_server.client()
    try:
        for key in storages[0].keys[:2]:
            assert 0 < client.pttl(key) <= 120_000
    finally:
        client.close()
    assert repr(storages[0]).startswith("<RedisStorage 'a}:{b'")
    assert "breakers=6" in repr(fleet)


def test_an_async_client_is_accepted_and_never_used_on_the_event_loop(
    fleets: Fleets, shared_server: RedisServer, clock: FakeClock
) -> None:
    """A fleet made from a redis.asyncio client shares one breaker with sync callers."""

    async def main() -> None:
        client = redis.asyncio.Redis(port=shared_server.port)
        fleet = RedisFleet(client, clock=clock, sync_interval=None)
        await client.aclose()
        name = unique()
        try:
            breaker = CircuitBreaker(2, 30, DependencyDown, storage=fleet.storage(name))

            async def down() -> None:
                raise DependencyDown

            for _ in range(2):
                with pytest.raises(DependencyDown):
                    await breaker.call(down)
            with pytest.raises(CircuitBreakerError):
                await breaker.call(down)
        finally:
            fleet.close()
        sync_fleet = fleets(shared_server, clock=clock, sync_interval=None)
        assert CircuitBreaker(storage=sync_fleet.storage(name)).state is State.OPEN

    asyncio.run(main())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"prefix": ""}, "prefix must be a non-empty string"),
        ({"prefix": "a{b}"}, "prefix must be .* got 'a{b}'"),
        ({"sync_interval": 0}, "sync_interval must be a finite number of seconds > 0 or None"),
        ({"timeout": None}, r"timeout must be a finite number of seconds > 0, got None"),
        ({"timeout": True}, "timeout must be"),
        ({"lease": float("inf")}, "lease must be"),
        ({"ttl": 1.0}, r"ttl must be at least 4 \* sync_interval \(2.0\), got 1.0"),
        ({"lease": 0.5}, r"lease must be at least 2 \* sync_interval \(1.0: .*got 0.5"),
        ({"quorum": 0}, r"quorum must be an int >= 1 \(processes\), got 0"),
        ({"quorum_window": -1}, "quorum_window must be"),
    ],
)
def test_bad_options_are_refused_at_construction(
    shared_server: RedisServer, options: dict[str, Any], message: str
) -> None:
    """Each bad option is refused with its name, its value and what is allowed."""
    client = shared_server.client()
    try:
        with pytest.raises(ValueError, match=message):
            RedisFleet(client, **options)
    finally:
        client.close()


def test_bad_clients_names_and_windows_are_refused(
    fleets: Fleets, shared_server: RedisServer
) -> None:
    """Only a redis-py client makes a fleet; a storage needs a name and a window or None."""
    with pytest.raises(TypeError, match=r"client must be a redis-py client .* got 'redis'"):
        RedisFleet("redis")
    sentinel = redis.Redis(
        connection_pool=redis.sentinel.SentinelConnectionPool(
            "mymaster", redis.sentinel.Sentinel([("127.0.0.1", 1)])
        )
    )
    with pytest.raises(TypeError, match="its connections are SentinelManagedConnection"):
        RedisFleet(sentinel)
    fleet = fleets(shared_server, sync_interval=None)
    with pytest.raises(ValueError, match="name must be a non-empty string, got ''"):
        fleet.storage("")
    with pytest.raises(TypeError, match="window must be a CountWindow, a TimeWindow or None"):
        fleet.storage("x", window=5)  # type: ignore[arg-type]
    storage = fleet.storage("x", window=CountWindow(3))
    with pytest.raises(ValueError, match="generation after 0"):
        storage.replace(0, Value(State.OPEN, 0))
    assert isinstance(storage, RedisStorage)
    assert storage.window == CountWindow(3)


def test_a_unix_socket_or_tls_client_keeps_its_kind_of_connection(
    shared_server: RedisServer,
) -> None:
    """The fleet's own client connects the way the given one does (TCP, unix socket, TLS)."""
    for client in (
        redis.Redis(unix_socket_path="/nonexistent/redis.sock"),
        redis.Redis(port=shared_server.port, ssl=True),
    ):
        fleet = RedisFleet(client, sync_interval=None, timeout=0.05)
        client.close()
        kind = fleet._link.client.connection_pool.connection_class.__name__
        assert kind in {"UnixDomainSocketConnection", "SSLConnection"}
        storage = fleet.storage("x")
        assert fleet.health.healthy is False  # nothing answers there: local state
        assert storage.read().value == Value()
        fleet.close()


def test_health_events_and_logs_say_when_redis_goes_and_returns(
    fleets: Fleets, server: RedisServer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Losing Redis is logged once and told to the fleet's listeners; so is its return."""
    events: list[HealthChanged] = []

    def broken(event: HealthChanged) -> None:
        raise RuntimeError

    fleet = fleets(
        server, clock=clock, sync_interval=None, timeout=0.05, listeners=[events.append, broken]
    )
    storage = fleet.storage(unique())
    breaker = CircuitBreaker(3, 30, DependencyDown, clock=clock, storage=storage)
    server.kill()
    with caplog.at_level(logging.WARNING, "aiocircuitbreaker.redis"):
        fail(breaker, 2)
        fleet.sync()
        fleet.sync()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "Redis is unreachable" in warnings[0].getMessage()
    assert [event.health.healthy for event in events] == [False]
    assert events[0].fleet is fleet
    assert storage.statistics().outages == 1
    assert breaker.statistics().storage == fleet.health  # in the breaker's statistics too
    assert CircuitBreaker().statistics().storage is None  # (the in-memory storage: nothing)
    assert storage.statistics().errors >= 3
    assert breaker.failure_count == 2  # counted locally meanwhile
    server.start()
    fleet.sync()
    assert [event.health.healthy for event in events] == [False, True]
    assert fleet.health.healthy
    assert fleet.health.last_error is None


def test_outcomes_of_a_probe_while_redis_is_down_are_counted_locally(
    fleets: Fleets, server: RedisServer, clock: FakeClock
) -> None:
    """Probes taken and given back while Redis is down work on the local state machine."""
    fleet = fleets(server, clock=clock, sync_interval=None, timeout=0.05)
    storage = fleet.storage(unique())
    breaker = CircuitBreaker(1, 30, DependencyDown, clock=clock, storage=storage)
    fail(breaker)
    server.kill()
    clock.advance(30)
    probe = breaker.admit()
    assert storage.release(1, 999, Outcome.SUCCESS) is None
    breaker.finish(probe)
    assert breaker.state is State.CLOSED
    server.start()
    fleet.sync()
    assert storage.read().value.state is State.CLOSED  # written back to the new server


def test_syncs_keep_the_keys_of_a_breaker_in_use_from_expiring(
    shared_server: RedisServer, clock: FakeClock
) -> None:
    """A sync refreshes the TTL of every key of the fleet's breakers (once a quarter TTL)."""
    with RedisFleet(shared_server.client(), clock=clock, sync_interval=None, ttl=60.0) as fleet:
        storage = fleet.storage(unique())
        CircuitBreaker(storage=storage, clock=clock).open()
        client = shared_server.client()
        try:
            client.pexpire(storage.state_key, 5000)
            fleet.sync()
            assert client.pttl(storage.state_key) <= 5000  # not a quarter TTL since the last
            fleet._link._touched = -math.inf
            fleet.sync()
            assert client.pttl(storage.state_key) > 50_000
        finally:
            client.close()
    assert fleet._link._stop.is_set()


def test_a_closed_breakers_failure_streak_carries_into_the_local_fallback(
    fleets: Fleets, server: RedisServer, clock: FakeClock
) -> None:
    """Redis lost mid-streak: the local state machine goes on from the streak last seen, and
    an outage with no change made locally writes nothing back."""
    fleet = fleets(server, clock=clock, sync_interval=None, timeout=TIMEOUT_FAST, lease=None)
    storage = fleet.storage(unique())
    breaker = CircuitBreaker(3, 30, DependencyDown, clock=clock, storage=storage)
    breaker.open()
    breaker.close()  # closed, generation 2
    fail(breaker, 2)
    assert storage.renewals() == []
    server.kill()
    fail(breaker)
    assert breaker.state is State.OPEN  # 2 in Redis, the third locally
    server.start()
    fleet.sync()
    assert storage.read().value.state is State.OPEN
    server.kill()
    assert breaker.state is State.OPEN
    server.start()
    fleet.sync()  # nothing changed meanwhile: nothing to write back
    assert fleet.health.healthy


def test_a_time_window_evicts_a_bucket_of_successes_only(
    fleets: Fleets, shared_server: RedisServer, clock: FakeClock
) -> None:
    """A bucket with calls but no failures or slow calls leaves the window cleanly (the script
    subtracts zeros; Redis refuses an increment of '-0')."""
    fleet = fleets(shared_server, clock=clock, sync_interval=None)
    storage = fleet.storage(unique(), window=TimeWindow(10.0, buckets=10))
    assert storage.record(0, False) == (1, 0, 0, 0)
    clock.advance(1.0)
    assert storage.record(0, False) == (2, 0, 0, 0)
    clock.advance(9.0)
    assert storage.record(0, True) == (2, 1, 0, 1)  # the first bucket left, the second stays
    assert fleet.health.healthy


def test_successes_in_a_count_window_are_sent_in_batches(
    fleets: Fleets, shared_server: RedisServer, clock: FakeClock
) -> None:
    """Once a shared count window holds its minimum_calls, successes run no script: they
    reach Redis in one step at the next sync (or the storage's next operation)."""
    policy = RatePolicy(CountWindow(10), failure_rate=0.5, minimum_calls=4)
    first, second = breakers(fleets, shared_server, clock, 2, policy=policy, window=CountWindow(10))
    guarded = first(lambda: "ok")
    for _ in range(4):
        guarded()
    before = evalsha_calls(shared_server)
    for _ in range(50):
        assert guarded() == "ok"
    assert evalsha_calls(shared_server) == before
    sync_all([first])
    assert second._live.storage.read().counts == (10, 0, 0, 0)  # type: ignore[union-attr]
    fail(second, 4)
    assert first.state is State.CLOSED  # 4 of the last 10 failed
    fail(second)  # 5 of the last 10: the rate trips
    assert second.state is State.OPEN
    sync_all([first])
    assert first.state is State.OPEN


def test_successes_counted_while_redis_is_down_go_into_the_local_window(
    fleets: Fleets, shared_server: RedisServer, clock: FakeClock
) -> None:
    """While the fleet is down, the success counter is the local state machine's."""
    fleet = fleets(shared_server, clock=clock, sync_interval=None)
    storage = fleet.storage(unique(), window=CountWindow(3))
    fleet._link.failed(ConnectionError("a network partition"))
    assert storage.record(0, True) == (1, 1, 0, 1)
    counter = storage.success_counter(0)
    assert counter is not None
    next(counter)
    assert storage.read().counts == (2, 1, 0, 0)


def test_a_hook_that_raises_is_logged_and_the_sync_goes_on(
    fleets: Fleets, shared_server: RedisServer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A breaker hook that raises is logged; Redis is not taken for down, and the hook stays."""
    fleet = fleets(shared_server, clock=clock, sync_interval=None)
    storage = fleet.storage(unique())

    def broken() -> bool:
        raise RuntimeError

    storage.watch(broken)
    storage._seen = -1  # as if another process had moved it on
    with caplog.at_level(logging.ERROR, "aiocircuitbreaker.redis"):
        fleet.sync()
    assert "failed to read its shared state again" in caplog.text
    assert fleet.health.healthy
    assert storage._watchers == [broken]


def test_leases_of_a_generation_that_is_over_are_no_longer_renewed(
    fleets: Fleets, shared_server: RedisServer, clock: FakeClock
) -> None:
    """A probe never finished (its ticket dropped) stops being renewed once the breaker moved
    on."""
    (breaker,) = breakers(fleets, shared_server, clock, 1, lease=2.0)
    storage = breaker._live.storage  # type: ignore[union-attr]
    fail(breaker, 3)
    clock.advance(30)
    assert breaker.admit().probe is not None  # never finished
    assert len(storage.renewals()) == 1
    breaker.close()
    sync_all([breaker])
    assert storage.renewals() == []


def test_a_streak_of_the_first_generation_carries_into_the_local_fallback(
    fleets: Fleets, shared_server: RedisServer, clock: FakeClock
) -> None:
    """Redis lost while the initial generation has failures pending: the local state machine
    goes on from that streak."""
    fleet = fleets(shared_server, clock=clock, sync_interval=None)
    storage = fleet.storage(unique())
    assert storage.record(0, True) == (0, 0, 0, 1)
    assert storage.record(0, True) == (0, 0, 0, 2)
    fleet._link.failed(ConnectionError("a network partition"))
    assert storage.record(0, True) == (0, 0, 0, 3)


def test_a_change_by_hand_while_a_probe_runs_wins_and_the_probe_counts_for_nothing(
    fleets: Fleets, shared_server: RedisServer, clock: FakeClock
) -> None:
    """force_open() while a probe (with a max_duration) runs in another process: the fleet is
    forced open, and the probe's success, stale, closes nothing."""
    first, second = breakers(fleets, shared_server, clock, 2, half_open=HalfOpen(max_duration=5))
    fail(first, 3)
    sync_all([second])
    clock.advance(30)
    probe = first.admit()
    assert probe.probe is not None
    second.force_open()
    first.finish(probe)
    assert first.state is State.FORCED_OPEN
    assert second.state is State.FORCED_OPEN
