"""The Redis storage's link to the server: its own client, health, and the background sync.

A fleet (``redis.py``) talks to Redis through a synchronous client of its own, made from the
connection settings of the client it was given (sync ``redis.Redis`` or ``redis.asyncio``),
with bounded socket timeouts and no retries: an operation waits at most ``timeout`` seconds
for the server, then the fleet is *down* and every storage on it carries on locally until the
sync thread finds the server back.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import redis

__all__ = ["Health", "HealthChanged", "Link", "Member", "sync_client"]

logger = logging.getLogger("aiocircuitbreaker.redis")

# The connection settings a fleet carries over from the client it is given (the rest, timeouts
# and retries above all, are its own).
_KEPT = (
    "host",
    "port",
    "path",
    "db",
    "username",
    "password",
    "credential_provider",
    "client_name",
    "ssl_keyfile",
    "ssl_certfile",
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "ssl_check_hostname",
)


# The kinds of connection a fleet can make again with a sync client of its own (redis's names).
_CONNECTIONS = frozenset({"Connection", "SSLConnection", "UnixDomainSocketConnection"})


def sync_client(client: Any, timeout: float) -> redis.Redis:
    """Return a synchronous client to the server of ``client`` (sync or ``redis.asyncio``).

    Raises:
        TypeError: ``client`` is not a redis-py client of one server (TCP, TLS, unix socket).
    """
    import redis  # noqa: PLC0415 - the optional dependency, imported by this integration only
    from redis.backoff import NoBackoff  # noqa: PLC0415
    from redis.retry import Retry  # noqa: PLC0415

    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None)
    if not isinstance(kwargs, dict):
        msg = (
            f"client must be a redis-py client (redis.Redis or redis.asyncio.Redis), got {client!r}"
        )
        raise TypeError(msg)
    name = getattr(getattr(pool, "connection_class", None), "__name__", "")
    if name not in _CONNECTIONS:
        msg = (
            "client must connect to one Redis server (over TCP, TLS or a unix socket); "
            f"its connections are {name or 'unknown'} (Sentinel and Cluster clients are not "
            "supported yet)"
        )
        raise TypeError(msg)
    connection_class: Any = getattr(redis, name)  # (redis-py types it narrower than it takes)
    kept = {key: kwargs[key] for key in _KEPT if key in kwargs}
    connections = redis.ConnectionPool(
        connection_class=connection_class,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
        **kept,
    )
    return redis.Redis(connection_pool=connections)


@dataclass(frozen=True, slots=True)
class Health:
    """The health of a fleet's link to Redis.

    Attributes:
        healthy: Whether the last exchange with Redis worked (else: every storage of the fleet
            is running on its local state machine).
        since: When that became so (``time.time()``).
        errors: Redis errors met so far (timeouts, refused connections, a server restarting).
        outages: Times the link went down.
        last_error: The last error met, as text (``None`` before any).
    """

    healthy: bool
    since: float
    errors: int = 0
    outages: int = 0
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class HealthChanged:
    """An event: a fleet's link to Redis went down, or came back.

    Attributes:
        fleet: The fleet (a :class:`~aiocircuitbreaker.redis.RedisFleet`).
        health: Its health after the change.
    """

    fleet: object
    health: Health


class Member(Protocol):
    """A storage of a fleet, as the sync thread sees it."""

    def sync(self, generation: str | None) -> None:
        """Take in the generation Redis holds now (``None``: no state there)."""
        ...

    def resync(self) -> None:
        """Bring what was done locally while Redis was down back to Redis."""
        ...

    def renewals(self) -> list[tuple[int, list[str]]]:
        """Return the leases to renew: (generation, owner tokens) of this process's probes."""
        ...

    def renew(self, generation: int, tokens: list[str]) -> None:
        """Extend the leases ``tokens`` of ``generation``."""
        ...

    @property
    def state_key(self) -> str:
        """The key of the storage's state hash."""
        ...

    @property
    def keys(self) -> tuple[str, ...]:
        """Every key of the storage."""
        ...


class Link:
    """A fleet's client, health, logging and sync thread.

    Args:
        client: The synchronous client (see :func:`sync_client`).
        interval: Seconds between syncs, or ``None`` for no thread (``sync()`` by hand).
        ttl: The keys' time to live, in seconds (kept fresh by the syncs).
        listeners: Callables given a :class:`HealthChanged` on every change.
        owner: The fleet.
    """

    LOG_EVERY = 60.0  # a link that keeps failing logs at most once a minute

    def __init__(
        self,
        client: redis.Redis,
        interval: float | None,
        ttl: float,
        listeners: Iterable[Callable[[HealthChanged], object]],
        owner: object,
    ) -> None:
        self.client = client
        self.interval = interval
        self.ttl = ttl
        self.listeners = tuple(listeners)
        self.owner = weakref.ref(owner)
        self.members: weakref.WeakSet[Any] = weakref.WeakSet()
        self.health = Health(healthy=True, since=time.time())
        self._lock = threading.Lock()
        self._logged = -self.LOG_EVERY
        self._touched = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def up(self) -> bool:
        """Whether storages should use Redis (the link is not known to be down)."""
        return self.health.healthy

    def start(self) -> None:
        """Start the sync thread, once (if there is an interval)."""
        with self._lock:
            if self._thread is not None or self.interval is None or self._stop.is_set():
                return
            self._thread = threading.Thread(
                target=self._run, name="aiocircuitbreaker-redis-sync", daemon=True
            )
            self._thread.start()

    def close(self) -> None:
        """Stop the sync thread and close the connections."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self.client.close()

    def _run(self) -> None:
        interval = self.interval
        assert interval is not None
        while not self._stop.wait(interval):
            self.sync()

    # -- health ------------------------------------------------------------------------------

    def failed(self, error: BaseException) -> None:
        """Take note of a Redis error: the link is down; log it once in a while."""
        with self._lock:
            health = self.health
            went_down = health.healthy
            self.health = Health(
                healthy=False,
                since=time.time() if went_down else health.since,
                errors=health.errors + 1,
                outages=health.outages + went_down,
                last_error=f"{type(error).__name__}: {error}",
            )
            now = time.monotonic()
            log = now - self._logged >= self.LOG_EVERY
            if log:
                self._logged = now
        if log:
            logger.warning(
                "Redis is unreachable (%s: %s); breakers carry on with local state until it "
                "returns",
                type(error).__name__,
                error,
            )
        if went_down:
            self._announce()

    def recovered(self) -> None:
        """Take note that Redis answers again."""
        with self._lock:  # (only the sync calls it, on a link that was down)
            health = self.health
            self.health = Health(
                healthy=True, since=time.time(), errors=health.errors, outages=health.outages
            )
        logger.warning("Redis is reachable again; breakers share their state again")
        self._announce()

    def _announce(self) -> None:
        owner = self.owner()
        event = HealthChanged(owner, self.health)
        for listener in self.listeners:
            _tell(listener, event)

    # -- one sync ----------------------------------------------------------------------------

    def sync(self) -> None:
        """Bring every storage up to date with Redis, or find Redis back; never raise."""
        members = list(self.members)
        try:
            if not self.up:
                self.client.ping()
                self.recovered()
            # (every time: a call that lost the race with the last resync may have gone local)
            for member in members:
                member.resync()
            self._sync(members)
        except Exception as error:  # noqa: BLE001 - any failure of the link is an outage
            self.failed(error)

    def _sync(self, members: list[Member]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for member in members:
            pipe.hget(member.state_key, "g")
        generations = pipe.execute()
        for member in members:
            for generation, tokens in member.renewals():
                member.renew(generation, tokens)
        now = time.monotonic()
        if now - self._touched >= self.ttl / 4:
            self._touched = now
            pipe = self.client.pipeline(transaction=False)
            for member in members:
                for key in member.keys:
                    pipe.pexpire(key, round(self.ttl * 1000))
            pipe.execute()
        for member, generation in zip(members, generations, strict=True):
            member.sync(generation)


def _tell(listener: Callable[[HealthChanged], object], event: HealthChanged) -> None:
    """Give ``event`` to ``listener``; log what it raises (a listener never breaks the link)."""
    try:
        listener(event)
    except Exception:
        logger.exception("a Redis health listener raised; ignored")
