"""A real redis-server for the tests, on a free 127.0.0.1 port, with nothing persisted."""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from aiocircuitbreaker.redis import RedisFleet
from aiocircuitbreaker.storage import Storage
from aiocircuitbreaker.testing import FakeClock

_names = itertools.count()


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """One redis-server process: start, stop, kill, pause (SIGSTOP), resume, restart."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            msg = "redis-server is not on PATH: .ci/run installs it (apt-get install redis-server)"
            raise RuntimeError(msg)
        self.binary = binary
        self.port = free_port()
        self.directory = tempfile.mkdtemp(prefix="aiocb-redis-")
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        """Start the server (on the same port as before) and wait until it answers."""
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", self.directory]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.005)

    def kill(self) -> None:
        """Kill the server (SIGKILL): its data is gone."""
        process = self.process
        if process is not None:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)
                process.kill()
            process.wait()
            self.process = None

    def pause(self) -> None:
        """Stop the server (SIGSTOP): connections stay open, nothing answers."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server go on (SIGCONT)."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def restart(self) -> None:
        """Kill the server and start a fresh one on the same port."""
        self.kill()
        self.start()

    def client(self) -> redis.Redis:
        """Return a new client to this server (close it)."""
        return redis.Redis(port=self.port, socket_timeout=2)

    def fleet(self, **options: object) -> RedisFleet:
        """Return a fleet on this server (close it)."""
        client = self.client()
        try:
            return RedisFleet(client, **options)  # type: ignore[arg-type]
        finally:
            client.close()

    def close(self) -> None:
        """Kill the server and remove its directory."""
        self.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


_shared: list[RedisServer] = []


def shared() -> RedisServer:
    """Return the server shared by the tests that need no faults (started once, killed at exit)."""
    if not _shared:
        server = RedisServer()
        _shared.append(server)
        atexit.register(server.close)
    server = _shared[0]
    if server.process is None or server.process.poll() is not None:
        server.start()
    return server


def unique(stem: str = "breaker") -> str:
    """Return a breaker name no other test uses."""
    return f"{stem}-{os.getpid()}-{next(_names)}"


class RedisHarness:
    """Redis storages of one fleet, on a fake clock the scripts measure with (never TIME)."""

    def __init__(self, fleet: RedisFleet, clock: FakeClock) -> None:
        self.fleet = fleet
        self.clock = clock

    def storage(self, window: object = None) -> Storage:
        """Return a fresh Redis storage (a name no other storage has) on the fake clock."""
        return self.fleet.storage(unique(), window=window)  # type: ignore[arg-type]

    def advance(self, seconds: float) -> None:
        """Advance the fake clock."""
        self.clock.advance(seconds)


@contextmanager
def harness() -> Iterator[RedisHarness]:
    """Make the Redis kind's harness for the storage contract suite (no sync thread)."""
    clock = FakeClock(1000.0)
    # A generous timeout: this suite checks the protocol, not what a slow server does to it.
    fleet = shared().fleet(clock=clock, sync_interval=None, lease=None, timeout=5.0)
    try:
        yield RedisHarness(fleet, clock)
    finally:
        fleet.close()
