"""Fleet mode: one breaker shared by every process through Redis (``aiocircuitbreaker[redis]``).

A :class:`RedisFleet` wraps a redis-py client; its :meth:`RedisFleet.storage` gives a breaker
a storage whose state lives in Redis, shared by every process that names the same breaker::

    fleet = RedisFleet(redis.Redis(), prefix="checkout")
    payments = CircuitBreaker(name="payments", storage=fleet.storage("payments"))

What crosses the network, and when:

- A closed breaker's successes, and an open breaker's rejections: nothing. Each process keeps
  a local view, which the fleet's sync thread (one per fleet) brings up to date every
  ``sync_interval`` seconds, with one pipelined ``HGET`` per breaker.
- A failure, a transition, a probe taken or given back: one ``EVALSHA`` (``_redis_lua.py``),
  atomic on the server, fenced by generation. The server's ``TIME`` measures open periods,
  ages, leases and windows: the hosts' clocks are never compared.
- Redis down, slow or restarted: each such step waits at most ``timeout`` seconds, then the
  fleet is down and its breakers carry on with local state machines (seeded with what they
  last saw) until a sync finds Redis back; what changed locally is then written back if
  nobody else moved the breaker on, and every breaker reads the shared state again. An
  exception from Redis never reaches a caller.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from . import _redis_codec as codec
from ._core import COUNTING, Outcome, Value
from ._counting import count_value
from ._memory import InMemoryStorage
from ._redis_link import Health, HealthChanged, Link, sync_client
from ._redis_lua import SCRIPT
from ._storage import Probes, Reading, Tally
from ._windows import CountWindow, TimeWindow

if TYPE_CHECKING:
    from redis.commands.core import Script

__all__ = ["Health", "HealthChanged", "RedisFleet", "RedisStorage"]

_OUTCOMES = {Outcome.SUCCESS: "s", Outcome.FAILURE: "f", Outcome.NEUTRAL: "n"}


class RedisFleet:
    """The breakers of one application shared through one Redis server.

    Args:
        client: A redis-py client, ``redis.Redis`` or ``redis.asyncio.Redis``: the fleet
            connects to the same server with a synchronous client of its own (bounded
            timeouts, no retries), so that sync and async callers share every breaker and an
            event loop never waits on Redis for a success or a rejection.
        prefix: The namespace of the fleet's keys (letters, digits, ``_ - . :``).
        sync_interval: How often, in seconds, each process looks for changes made by others
            (the bound on how long a process keeps admitting calls after another opened the
            breaker, besides any failure of its own, which finds out at once). ``None``: no
            sync thread (call :meth:`sync`; for tests).
        timeout: The longest, in seconds, any call waits on Redis before the fleet goes local.
        lease: How long a probe's slot outlives its process, in seconds: the holder renews it
            at each sync, up to the breaker's ``HalfOpen.max_duration``; a process that dies
            holding it frees it after at most this long. ``None``: leases last the probe's
            ``max_duration`` only (for tests).
        ttl: Seconds an abandoned breaker's keys stay in Redis (kept fresh while any process
            syncs them; at least ``4 * sync_interval``).
        quorum: Trip fleet-wide only once at least this many processes reported a failure in
            the last ``quorum_window`` seconds (below it, failures read as zero).
        quorum_window: See ``quorum``.
        listeners: Callables given a :class:`HealthChanged` each time Redis goes or returns.
        clock: For tests only: the time the scripts measure with, instead of the server's
            ``TIME`` (a ``FakeClock``, say); it also drives the local fallbacks.
    """

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = "aiocircuitbreaker",
        sync_interval: float | None = 0.5,
        timeout: float = 0.1,
        lease: float | None = 5.0,
        ttl: float = 86400.0,
        quorum: int = 1,
        quorum_window: float = 60.0,
        listeners: Iterable[Callable[[HealthChanged], object]] = (),
        clock: Callable[[], float] | None = None,
    ) -> None:
        codec.check_options(prefix, sync_interval, timeout, lease, ttl, quorum, quorum_window)
        self.prefix = prefix
        self.quorum = quorum
        self.quorum_window = quorum_window
        self.lease = lease
        self.clock = clock
        self.owner = uuid.uuid4().hex  # this process's (this fleet's) token
        self._local_clock = time.monotonic if clock is None else clock
        client = sync_client(client, timeout)
        self._script: Script = client.register_script(SCRIPT)
        self._link = Link(client, sync_interval, ttl, listeners, self)
        self._ttl_ms = str(round(ttl * 1000))
        weakref.finalize(self, self._link.close)  # a fleet dropped unclosed stops its thread

    @property
    def health(self) -> Health:
        """The health of the link to Redis (also in every storage's ``statistics()``)."""
        return self._link.health

    @property
    def breakers(self) -> int:
        """How many storages of this fleet are alive in this process."""
        return len(self._link.members)

    def storage(self, name: str, *, window: CountWindow | TimeWindow | None = None) -> RedisStorage:
        """Return the storage of the breaker ``name``, shared by every process of the fleet.

        Args:
            name: The breaker's name: any string (it is escaped into the keys).
            window: The rate window the breaker's policy counts in (``None``: failures in a
                row only); every process must use the same.

        Raises:
            ValueError: ``name`` is not a non-empty string.
        """
        if not isinstance(name, str) or not name:
            msg = f"name must be a non-empty string, got {name!r}"
            raise ValueError(msg)
        return RedisStorage(self, name, window)

    def sync(self) -> None:
        """Look for changes made by other processes now (what the sync thread does)."""
        self._link.sync()

    def close(self) -> None:
        """Stop the sync thread and close the fleet's connections."""
        self._link.close()

    def __enter__(self) -> RedisFleet:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RedisFleet {self.prefix!r} breakers={self.breakers} {self.health}>"

    def _call(self, keys: tuple[str, ...], op: str, window: list[str], *args: str | int) -> Any:
        """Run one operation of the script (raises redis-py's errors)."""
        head = [op, "" if self.clock is None else codec.text(self.clock()), self._ttl_ms, *window]
        quorum = [str(self.quorum), codec.text(self.quorum_window)]
        return self._script(keys=list(keys), args=[*head, *quorum, *args])


class RedisStorage:
    """A breaker's state in Redis, shared by the processes of a fleet (see the module docs).

    Made by :meth:`RedisFleet.storage`. Follows the storage protocol (``_storage.py``), each
    operation one script run; ``watch()`` lets a breaker hear of changes made elsewhere.
    Manual control (``open()``, ``close()``, ``force_open()``, ``disable()``, ...) of a breaker
    on it is a transition like any other: it applies to the whole fleet.
    """

    __slots__ = (
        "__weakref__",
        "_fleet",
        "_held",
        "_keys",
        "_known",
        "_local",
        "_lock",
        "_name",
        "_pending",
        "_seed",
        "_seen",
        "_wargs",
        "_watchers",
        "_window",
    )

    def __init__(
        self, fleet: RedisFleet, name: str, window: CountWindow | TimeWindow | None
    ) -> None:
        given: object = window  # checked as any object: callers may pass anything
        if given is not None and not isinstance(given, (CountWindow, TimeWindow)):
            msg = f"window must be a CountWindow, a TimeWindow or None, got {given!r}"
            raise TypeError(msg)
        self._fleet = fleet
        self._name = name
        self._window = window
        if isinstance(window, CountWindow):
            self._wargs = ["c", str(window.size), "0"]
        elif isinstance(window, TimeWindow):
            self._wargs = ["t", codec.text(window.bucket_length), str(window.buckets)]
        else:
            self._wargs = ["", "0", "0"]
        tag = f"{fleet.prefix}:{{{quote(name, safe='')}}}"
        self._keys = (f"{tag}:s", f"{tag}:w", f"{tag}:l", f"{tag}:q")
        self._lock = threading.RLock()
        self._local: InMemoryStorage | None = None  # the fallback while Redis is down
        self._seed = 0  # the generation the fallback started from
        self._known: tuple[Value, float, int] = (Value(), fleet._local_clock(), 0)  # noqa: SLF001
        self._seen = 0  # the generation last handed out
        self._held: dict[str, int] = {}  # this process's probe leases: token -> generation
        self._watchers: list[Callable[[], bool]] = []
        self._pending: codec.Pending | None = None  # successes counted here, not yet in Redis
        with contextlib.suppress(_Down):  # Redis down: the fallback starts from the initial value
            self._run("init")
        link = fleet._link  # noqa: SLF001 - the fleet's own parts, one module
        link.members.add(self)
        link.start()

    # -- what the sync thread needs ----------------------------------------------------------

    @property
    def state_key(self) -> str:
        """The key of the state hash."""
        return self._keys[0]

    @property
    def keys(self) -> tuple[str, ...]:
        """Every key of this breaker (they share one Cluster hash tag)."""
        return self._keys

    @property
    def window(self) -> CountWindow | TimeWindow | None:
        """The window the storage counts calls in (a breaker's policy must use the same)."""
        return self._window

    def watch(self, changed: Callable[[], bool]) -> None:
        """Call ``changed()`` whenever another process may have moved the state on.

        The breaker's hook: it then reads the storage again. A callable that returns false is
        dropped (its breaker is gone).
        """
        with self._lock:
            self._watchers.append(changed)

    def statistics(self) -> Health:
        """Return the health of the link to Redis (the breaker's ``statistics().storage``)."""
        return self._fleet.health

    def sync(self, generation: str | None) -> None:
        """Take in the generation Redis holds now (the sync thread's answer for this key)."""
        if self._pending is not None:
            with contextlib.suppress(_Down):
                self._run("flush")
        if generation is None:
            value, at, _ = self._known
            if value.generation > 0:  # Redis lost it (restarted, or the key expired): restore
                self.replace(0, replace(value, open_for=value.open_for - (self._now() - at)))
            return
        if int(generation) != self._seen:
            self._notify()

    def _notify(self) -> None:
        with self._lock:
            watchers = list(self._watchers)
        alive = [watcher for watcher in watchers if codec.call_hook(watcher)]
        if len(alive) != len(watchers):
            with self._lock:
                self._watchers = [w for w in self._watchers if w in alive]

    def renewals(self) -> list[tuple[int, list[str]]]:
        """Return this process's probe leases to renew, by generation."""
        if self._fleet.lease is None:
            return []
        with self._lock:
            by: dict[int, list[str]] = {}
            for token, generation in self._held.items():
                by.setdefault(generation, []).append(token)
            return list(by.items())

    def renew(self, generation: int, tokens: list[str]) -> None:
        """Extend this process's leases of ``generation`` (up to their maximum).

        Leases of a generation that is over are forgotten (their probes can no longer count).
        """
        if self._call("renew", generation, "", self._hold(), *tokens) is None:
            with self._lock:
                for token in tokens:
                    self._held.pop(token, None)

    def resync(self) -> None:
        """Write back what changed locally while Redis was down (if nobody moved on).

        If another process moved on meanwhile, the fleet's state wins; it is stored again as
        a new generation, so that no process keeps a local value of the same generation. If
        Redis lost the state (a restart), what this process knows is stored.
        """
        with self._lock:
            local = self._local
            if local is None:
                return
            reading = local.read()
            if reading.value.generation != self._seed:
                mine = codec.carried(reading)
                if self._call("replace", self._seed, *codec.fields(mine)) != 1:
                    fleet = codec.reading(self._call("read"))
                    behind = fleet.value.generation
                    if behind < self._seed:  # Redis lost the state (restarted): ours is it
                        newer = mine
                    else:
                        newer = replace(codec.carried(fleet), generation=behind + 1)
                    self._call("replace", behind, *codec.fields(newer))
            self._local = None
        self._notify()

    # -- the protocol ------------------------------------------------------------------------

    def read(self) -> Reading:
        """Return the current value, its age and its generation's counts; change nothing."""
        try:
            answer = self._run("read")
        except _Down:
            reading = self._fallback().read()
        else:
            reading = codec.reading(answer)
        value = reading.value
        streak = reading.counts[3] if reading.counts is not None else 0
        self._known = (value, self._now() - reading.age, streak)
        self._seen = value.generation
        return reading

    def record(
        self,
        generation: int,
        failed: bool,  # noqa: FBT001
        slow: bool = False,  # noqa: FBT001, FBT002
        duration: float = 0.0,
    ) -> Tally | None:
        """Count one finished call of ``generation``; return the new counts, or ``None``."""
        args = (int(failed), int(slow), codec.text(duration), self._fleet.owner)
        try:
            answer = self._run("record", generation, *args)
        except _Down:
            return self._fallback().record(generation, failed, slow, duration)
        if answer is None:
            return None
        calls, failures, slow_calls, streak = (int(float(x)) for x in answer)
        value, at, _ = self._known
        if value.generation == generation:
            self._known = (value, at, streak)
        return (calls, failures, slow_calls, streak)

    def acquire(
        self, generation: int, ticket: int, probes: int, successes: int | None, lease: float
    ) -> Probes | None:
        """Take a half-open probe slot for ``ticket`` if one is free; ``None`` if stale."""
        token = self._token(ticket)
        wanted = "" if successes is None else str(successes)
        try:
            answer = self._run(
                "acquire", generation, token, probes, wanted, codec.text(lease), self._hold()
            )
        except _Down:
            return self._fallback().acquire(generation, ticket, probes, successes, lease)
        if answer is None:
            return None
        result = codec.probes(answer)
        if result.admitted:
            with self._lock:
                self._held[token] = generation
        return result

    def release(
        self,
        generation: int,
        ticket: int,
        outcome: Outcome,
        slow: bool = False,  # noqa: FBT001, FBT002
    ) -> Probes | None:
        """Give back ``ticket``'s slot with its outcome; ``None`` if it holds none."""
        token = self._token(ticket)
        with self._lock:
            self._held.pop(token, None)
        try:
            answer = self._run("release", generation, token, _OUTCOMES[outcome], int(slow))
        except _Down:
            return self._fallback().release(generation, ticket, outcome, slow)
        return None if answer is None else codec.probes(answer)

    def success_counter(self, generation: int) -> Iterator[int] | None:
        """Return a counter of successes of ``generation``, counted here and sent in batches.

        For a generation counted in a count window (the breaker asks once the window holds
        its minimum_calls, when successes can no longer trip it): each ``next()`` counts one
        success in this process, with no I/O; they reach Redis, in one step, before this
        storage's next operation and at each sync. ``None`` for any other generation.
        """
        if not isinstance(self._window, CountWindow):
            return None
        local = self._local
        if local is not None:
            return local.success_counter(generation)
        with self._lock:
            pending = self._pending
            if pending is None or pending.generation != generation:
                value = self.read().value  # (once per generation)
                if value.generation != generation or value.state not in COUNTING:
                    return None
                pending = self._pending = codec.Pending(generation)
            return pending.counter

    def replace(self, generation: int, value: Value) -> bool:
        """Store ``value`` if ``generation`` is still current; return whether it was.

        Raises:
            ValueError: ``value`` is not of a later generation than ``generation``.
        """
        try:
            answer = self._run("replace", generation, *codec.fields(value))
        except _Down:
            stored = self._fallback().replace(generation, value)
        else:
            if answer == 2:
                msg = f"replace() needs a value of a generation after {generation}, got {value!r}"
                raise ValueError(msg)
            stored = answer == 1
        if stored:
            streak = value.failures if value.state in COUNTING else 0
            self._known = (value, self._now(), streak)
            self._seen = value.generation
        return stored

    def __repr__(self) -> str:
        return f"<RedisStorage {self._name!r} at {self._keys[0]!r}>"

    # -- helpers -----------------------------------------------------------------------------

    def _now(self) -> float:
        return self._fleet._local_clock()  # noqa: SLF001

    def _token(self, ticket: int) -> str:
        """Return ``ticket`` made unique across processes: the fleet's owner token with it."""
        return f"{self._fleet.owner}:{ticket}"

    def _hold(self) -> str:
        lease = self._fleet.lease
        return "inf" if lease is None else codec.text(lease)

    def _call(self, op: str, *args: str | int) -> Any:
        """Run ``op`` on Redis (raises redis-py's errors)."""
        return self._fleet._call(self._keys, op, self._wargs, *args)  # noqa: SLF001

    def _run(self, op: str, *args: str | int) -> Any:
        """Run ``op`` on Redis; raise ``_Down`` if it cannot (now, or since an earlier error)."""
        fleet = self._fleet
        link = fleet._link  # noqa: SLF001
        if self._local is not None or not link.up:
            raise _Down
        try:
            if self._pending is not None:
                self._flush()
            return None if op == "flush" else self._call(op, *args)
        except Exception as error:  # noqa: BLE001 - any failure of Redis: carry on locally
            link.failed(error)
            raise _Down from None

    def _flush(self) -> None:
        """Send the successes counted here since the last flush (raises redis-py's errors)."""
        with self._lock:  # (one flush at a time: each success is sent once)
            pending = self._pending
            assert pending is not None
            total = count_value(pending.counter)
            waiting = total - pending.flushed
            if waiting:
                pending.flushed = total
                self._call("successes", pending.generation, waiting)

    def _fallback(self) -> InMemoryStorage:
        """Return the local state machine, seeded with what was last seen, making it once."""
        with self._lock:
            local = self._local
            if local is not None:
                return local
            value, at, streak = self._known
            local = InMemoryStorage(clock=self._fleet._local_clock, window=self._window)  # noqa: SLF001
            now = self._now()
            if value.generation > 0:
                seeded = replace(value, open_for=value.open_for - (now - at))
                if value.state in COUNTING:
                    seeded = replace(seeded, failures=streak)
                local.replace(0, seeded)
            else:
                for _ in range(streak):
                    local.record(0, True)  # noqa: FBT003
            self._seed = value.generation
            self._local = local
            return local


class _Down(Exception):  # noqa: N818 - a signal inside this module, never raised out of it
    """Redis cannot be used now: the storage answers from its local state machine."""
