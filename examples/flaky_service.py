"""A circuit breaker in front of a real, flaky HTTP service.

The demo starts a tiny HTTP/1.1 server on 127.0.0.1 (a free port) and calls it through a
breaker every 0.2 s while the service goes through three phases:

* healthy   (0.0 s): answers 200 at once;
* failing   (1.0 s): answers 503, or stalls until the client gives up, turn about;
* recovered (5.5 s): answers 200 again.

The printed timeline shows each call with the breaker's state before and after it: failures
counted while closed, the trip to open, rejected calls answered by the fallback without touching
the server (its request counter stands still), the half-open probe after the recovery timeout
(a failing probe re-opens the breaker, a succeeding one closes it), and normal operation again.
When the breaker goes half-open after the recovery, 50 concurrent calls show that exactly one
probe reaches the server while the others get the fallback.

Run it from the repository root (standard library only, plus aiocircuitbreaker)::

    python examples/flaky_service.py

It takes about 9 seconds and exits non-zero if the breaker did not behave as described, so it
doubles as a smoke test.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from dataclasses import dataclass
from typing import Literal

from aiocircuitbreaker import CircuitBreaker, State, circuit

HOST = "127.0.0.1"
TICK = 0.2  # seconds between two calls of the demo loop
CLIENT_TIMEOUT = 0.5  # seconds the client waits for a response
STALL_LIMIT = 10.0  # a stalling server gives up on its own after this long
FAILURE_THRESHOLD = 3
RECOVERY_TIMEOUT = 2.0
BURST = 50
WIDTH = 53  # of the outcome column

Phase = Literal["healthy", "failing", "recovered"]

# When the service changes behaviour, in seconds since the start; the demo ends at END.
TIMELINE: list[tuple[float, Phase]] = [(0.0, "healthy"), (1.0, "failing"), (5.5, "recovered")]
END = 8.5

PHASE_DESCRIPTIONS: dict[Phase, str] = {
    "healthy": "answers 200 OK at once",
    "failing": "answers 503, or stalls without answering, turn about",
    "recovered": "answers 200 OK again",
}


# -- the service -----------------------------------------------------------------------------


class FlakyService:
    """A minimal HTTP/1.1 server whose behaviour follows ``phase``; counts the requests it gets."""

    def __init__(self) -> None:
        self.phase: Phase = "healthy"
        self.requests = 0
        self._failures = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        """Start listening on a free port of ``HOST`` and return the port."""
        self._server = await asyncio.start_server(self._handle, HOST, 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        """Stop listening and wait for the connections still being handled."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        # Before Python 3.12, wait_closed() does not wait for the handlers to finish.
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=STALL_LIMIT)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            if not await reader.readline():  # the request line
                return
            while (await reader.readline()).strip():  # the headers, up to the blank line
                pass
            self.requests += 1
            if self.phase == "failing":
                self._failures += 1
                if self._failures % 2 == 0:
                    # Overloaded: accept the request and never answer. The client times out
                    # and hangs up, which ends the read below.
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(reader.read(), STALL_LIMIT)
                    return
                writer.write(_response(503, "Service Unavailable", "overloaded"))
            else:
                writer.write(_response(200, "OK", f"quote #{self.requests}"))
            await writer.drain()
        except ConnectionError:
            pass  # the client went away
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            if task is not None:
                self._handlers.discard(task)


def _response(status: int, reason: str, body: str) -> bytes:
    data = body.encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(data)}\r\n"
        "Connection: close\r\n"
        "\r\n"
    )
    return head.encode("ascii") + data


# -- the client ------------------------------------------------------------------------------


class ServiceUnavailable(Exception):  # noqa: N818 - named for what the caller sees
    """The service answered 5xx, did not answer in time, or could not be reached."""


@dataclass(frozen=True)
class Reply:
    """What a call returned, and whether it came from the server or from the fallback."""

    body: str
    source: Literal["server", "fallback"]


_cache: dict[int, str] = {}  # the last good body per port


def serve_cached(port: int) -> Reply:
    """The fallback: called with fetch()'s arguments when the breaker rejects a call."""
    return Reply(_cache.get(port, "no quote yet") + " (cached)", "fallback")


@circuit(
    failure_threshold=FAILURE_THRESHOLD,
    recovery_timeout=RECOVERY_TIMEOUT,
    expected_exception=ServiceUnavailable,
    fallback_function=serve_cached,
)
async def fetch(port: int) -> Reply:
    """GET /quote from the service on ``port``.

    Raises:
        ServiceUnavailable: The service answered 5xx, timed out or could not be reached.
    """
    try:
        status, body = await asyncio.wait_for(_get(port, "/quote"), CLIENT_TIMEOUT)
    except asyncio.TimeoutError as exc:
        raise ServiceUnavailable(f"no response within {CLIENT_TIMEOUT} s") from exc
    except OSError as exc:  # refused, reset, ...
        raise ServiceUnavailable(f"connection failed: {exc!r}") from exc
    if status >= 500:
        raise ServiceUnavailable(f"HTTP {status}: {body.strip()}")
    if status != 200:
        raise RuntimeError(f"unexpected HTTP {status}")  # a bug of ours: not counted
    _cache[port] = body
    return Reply(body, "server")


# The decorator attaches the breaker to the function. The ignore covers type stubs that do not
# declare the attribute; "unused-ignore" keeps mypy quiet if they do.
breaker: CircuitBreaker = fetch.circuit_breaker  # type: ignore[attr-defined,unused-ignore]


async def _get(port: int, path: str) -> tuple[int, str]:
    """Send one HTTP/1.1 GET and return the status code and the body."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        status_line = await reader.readline()
        if not status_line:
            raise ServiceUnavailable("connection closed without a response")
        status = int(status_line.split()[1])
        while (await reader.readline()).strip():  # skip the headers
            pass
        body = await reader.read()  # Connection: close, so the body ends with the stream
        return status, body.decode()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


# -- the demo --------------------------------------------------------------------------------

TRANSITION_NOTES: dict[tuple[State, State], str] = {
    (State.CLOSED, State.OPEN): f"{FAILURE_THRESHOLD} failures in a row: calls are now rejected",
    (State.OPEN, State.HALF_OPEN): f"{RECOVERY_TIMEOUT} s passed: the next call is a probe",
    (State.HALF_OPEN, State.OPEN): "the probe failed: rejecting again",
    (State.HALF_OPEN, State.CLOSED): "the probe succeeded: back to normal",
}


@dataclass
class Stats:
    """What the demo saw."""

    calls: int = 0
    ok: int = 0
    failed: int = 0
    rejected: int = 0
    rejected_hitting_server: int = 0
    burst_to_server: int | None = None  # None until the burst has run
    burst_fallback: int | None = None


class Demo:
    """Drives the service's timeline, calls it, and prints what happens."""

    def __init__(self, service: FlakyService, port: int) -> None:
        self.service = service
        self.port = port
        self.stats = Stats()
        self.transitions: list[tuple[State, State]] = []
        self._seen = breaker.state
        self._phase: Phase | None = None
        self._start = 0.0

    def elapsed(self) -> float:
        return asyncio.get_running_loop().time() - self._start

    async def run(self) -> None:
        print(
            f"service on http://{HOST}:{self.port}/quote; breaker: failure_threshold="
            f"{FAILURE_THRESHOLD}, recovery_timeout={RECOVERY_TIMEOUT} s; "
            f"client timeout {CLIENT_TIMEOUT} s; one call every {TICK} s\n"
        )
        header = f"{'time':>6}  {'phase':<9}  {'breaker before -> after':<26}  {'outcome':<{WIDTH}}"
        print(f"{header}  server requests")
        self._start = asyncio.get_running_loop().time()
        burst_done = False
        while (now := self.elapsed()) < END:
            self.set_phase(_phase_at(now))
            before = self.observe()
            if before is State.HALF_OPEN and self.service.phase == "recovered" and not burst_done:
                await self.burst()
                burst_done = True
            else:
                await self.call_once(before)
            await asyncio.sleep(TICK)

    def set_phase(self, phase: Phase) -> None:
        if phase != self._phase:
            self.service.phase = self._phase = phase
            print(f"--- {self.elapsed():5.2f}s  service is {phase}: {PHASE_DESCRIPTIONS[phase]}")

    def observe(self) -> State:
        """Read the breaker's state; print a banner if it changed since last read."""
        state = breaker.state
        if state is not self._seen:
            change = (self._seen, state)
            self.transitions.append(change)
            note = TRANSITION_NOTES.get(change, "")
            print(f"{'':8}*** breaker {self._seen} -> {state} *** {note}")
            self._seen = state
        return state

    async def call_once(self, before: State) -> None:
        started = self.elapsed()
        label_before = _label(before)
        requests_before = self.service.requests
        self.stats.calls += 1
        try:
            reply = await fetch(self.port)
        except ServiceUnavailable as exc:
            self.stats.failed += 1
            outcome = f"FAILED ({type(exc).__name__}: {exc})"
        else:
            if reply.source == "server":
                self.stats.ok += 1
                outcome = f"ok: {reply.body!r}"
            else:
                self.stats.rejected += 1
                if self.service.requests != requests_before:
                    self.stats.rejected_hitting_server += 1
                outcome = f"rejected -> fallback: {reply.body!r}"
        delta = self.service.requests - requests_before
        print(
            f"{started:5.2f}s  {self.service.phase:<9}  "
            f"{label_before:>11} -> {_label(breaker.state):<11}  {outcome:<{WIDTH}}  "
            f"{self.service.requests:>3} (+{delta})"
        )
        self.observe()

    async def burst(self) -> None:
        """Fire BURST concurrent calls at a half-open breaker: one probe only may get through."""
        started = self.elapsed()
        requests_before = self.service.requests
        results = await asyncio.gather(
            *(fetch(self.port) for _ in range(BURST)), return_exceptions=True
        )
        replies = [r for r in results if isinstance(r, Reply)]
        to_server = self.stats.burst_to_server = sum(r.source == "server" for r in replies)
        fallback = self.stats.burst_fallback = sum(r.source == "fallback" for r in replies)
        errors = len(results) - len(replies)
        hits = self.service.requests - requests_before
        print(
            f"{started:5.2f}s  {self.service.phase:<9}  "
            f"{_label(State.HALF_OPEN):>11} -> {_label(breaker.state):<11}  "
            f"BURST of {BURST} concurrent calls while half-open:"
        )
        print(
            f"{'':8}{to_server} reached the server (the probe), "
            f"{fallback} rejected -> fallback, {errors} failed; "
            f"server requests +{hits}"
        )
        if hits != to_server:
            self.stats.rejected_hitting_server += abs(hits - to_server)
        self.observe()


def _phase_at(elapsed: float) -> Phase:
    return [phase for start, phase in TIMELINE if start <= elapsed][-1]


def _label(state: State) -> str:
    if state is State.CLOSED and breaker.failure_count:
        return f"closed {breaker.failure_count}/{FAILURE_THRESHOLD}"
    return str(state)


def _problems(demo: Demo) -> list[str]:
    """Return what went wrong, compared with what the demo is meant to show."""
    stats, transitions = demo.stats, demo.transitions
    problems = []
    if (State.CLOSED, State.OPEN) not in transitions:
        problems.append("the breaker never opened")
    if stats.rejected == 0:
        problems.append("no call was rejected while the breaker was open")
    if stats.rejected_hitting_server:
        problems.append(f"{stats.rejected_hitting_server} rejected call(s) reached the server")
    if (State.HALF_OPEN, State.OPEN) not in transitions:
        problems.append("no failing half-open probe re-opened the breaker")
    if (State.HALF_OPEN, State.CLOSED) not in transitions:
        problems.append("no successful half-open probe closed the breaker")
    if stats.burst_to_server is None:
        problems.append("the breaker was never half-open while the service was recovered")
    elif stats.burst_to_server != 1 or stats.burst_fallback != BURST - 1:
        problems.append(
            f"half-open burst: {stats.burst_to_server} call(s) reached the server and "
            f"{stats.burst_fallback} got the fallback (expected 1 and {BURST - 1})"
        )
    if breaker.state is not State.CLOSED:
        problems.append(f"the breaker ended {breaker.state}, not closed")
    return problems


async def main() -> int:
    service = FlakyService()
    port = await service.start()
    demo = Demo(service, port)
    try:
        await demo.run()
    finally:
        await service.stop()
    stats = demo.stats
    burst = (
        "no burst"
        if stats.burst_to_server is None
        else f"burst of {BURST}: {stats.burst_to_server} to the server, "
        f"{stats.burst_fallback} fallback"
    )
    print(
        f"\nsummary: {stats.calls} calls: {stats.ok} ok, {stats.failed} failed, "
        f"{stats.rejected} rejected -> fallback; {burst}; "
        f"the server got {service.requests} requests"
    )
    problems = _problems(demo)
    for problem in problems:
        print(f"UNEXPECTED: {problem}", file=sys.stderr)
    if problems:
        return 1
    print("the breaker behaved as expected")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
