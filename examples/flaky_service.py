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

The demo also serves its own status on another port of 127.0.0.1, as a service would:

* ``GET /health``: JSON with every breaker's state and the open ones; 503 while a *critical*
  breaker (``CRITICAL``: the quote service's) is open or forced open, else 200. The
  "recommendations" breaker, switched off by an operator (forced open), is not critical: it is
  listed as open, and the service stays healthy.
* ``GET /metrics``: the Prometheus text exposition (``aiocircuitbreaker.prometheus``).

It scrapes both over HTTP while the breaker is closed, while it is open and at the end, and
checks the answers against what it saw; the last scrape is printed.

Run it from the repository root (the standard library, aiocircuitbreaker and prometheus_client)::

    pip install -e ".[prometheus]"
    python examples/flaky_service.py

It takes about 9 seconds and exits non-zero if the breaker or the status endpoints did not
behave as described, so it doubles as a smoke test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Literal

from aiocircuitbreaker import CircuitBreaker, CircuitBreakerMonitor, State, circuit

try:
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from aiocircuitbreaker.prometheus import register
except ImportError as exc:
    sys.exit(
        f"this example needs prometheus_client ({exc}); from the repository root run:\n"
        '    pip install -e ".[prometheus]"'
    )

HOST = "127.0.0.1"
TICK = 0.2  # seconds between two calls of the demo loop
CLIENT_TIMEOUT = 0.5  # seconds the client waits for a response
STALL_LIMIT = 10.0  # a stalling server gives up on its own after this long
FAILURE_THRESHOLD = 3
RECOVERY_TIMEOUT = 2.0
BURST = 50
WIDTH = 53  # of the outcome column

BREAKER_NAME = "quote_service"
# Breakers without which this service cannot work: /health answers 503 while one is open.
CRITICAL = frozenset({BREAKER_NAME})
# When the demo scrapes its own /health and /metrics (the first two during the run).
STATUS_CHECKS = ("while closed", "while open", "at the end")
STATUS_TIMEOUT = 2.0  # seconds the demo waits for its own status endpoints

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


def _response(
    status: int, reason: str, body: str, content_type: str = "text/plain; charset=utf-8"
) -> bytes:
    data = body.encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        f"Content-Type: {content_type}\r\n"
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
    name=BREAKER_NAME,
    fallback_function=serve_cached,
)
async def fetch(port: int) -> Reply:
    """GET /quote from the service on ``port``.

    Raises:
        ServiceUnavailable: The service answered 5xx, timed out or could not be reached.
    """
    try:
        status, _, body = await asyncio.wait_for(_get(port, "/quote"), CLIENT_TIMEOUT)
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

# Another dependency, not critical: the page still works without recommendations.
recommendations = CircuitBreaker(name="recommendations")


async def _get(port: int, path: str) -> tuple[int, dict[str, str], str]:
    """Send one HTTP/1.1 GET and return the status code, the headers and the body."""
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
        headers = {}
        while line := (await reader.readline()).strip():
            key, _, value = line.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        body = await reader.read()  # Connection: close, so the body ends with the stream
        return status, headers, body.decode()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


# -- the status endpoints ------------------------------------------------------------------


def health() -> tuple[int, str]:
    """Return /health's status code and JSON body, from the breakers' statistics."""
    breakers = [s for s in CircuitBreakerMonitor.statistics() if s.name is not None]
    rejecting = [s.name for s in breakers if s.state in (State.OPEN, State.FORCED_OPEN)]
    critical_open = [name for name in rejecting if name in CRITICAL]
    body = {
        "status": "unavailable" if critical_open else "ok",
        "critical_open": critical_open,
        "open": rejecting,
        "breakers": [
            {"name": s.name, "state": s.state.value, "critical": s.name in CRITICAL}
            for s in breakers
        ],
    }
    return (503 if critical_open else 200), json.dumps(body, indent=2)


class StatusServer:
    """A minimal HTTP/1.1 server for GET /health and GET /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        register(self.registry)  # every breaker of the process, read at each scrape
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        """Start listening on a free port of ``HOST`` and return the port."""
        self._server = await asyncio.start_server(self._handle, HOST, 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = (await reader.readline()).decode("latin-1").split()
            while (await reader.readline()).strip():  # the headers, up to the blank line
                pass
            method, path = [*request, "", ""][:2]
            content_type = "text/plain; charset=utf-8"
            if method != "GET":
                status, body = 405, "only GET\n"
            elif path == "/health":
                status, body = health()
                content_type = "application/json"
            elif path == "/metrics":
                status, body = 200, generate_latest(self.registry).decode()
                content_type = CONTENT_TYPE_LATEST
            else:
                status, body = 404, "try /health or /metrics\n"
            writer.write(_response(status, HTTPStatus(status).phrase, body, content_type))
            await writer.drain()
        except ConnectionError:
            pass  # the client went away
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


@dataclass(frozen=True)
class StatusCheck:
    """One scrape of /health and /metrics."""

    label: str
    health_status: int
    health_body: str
    metrics_text: str
    problems: tuple[str, ...]

    def breaker_lines(self) -> list[str]:
        """Return the /metrics sample lines of the demo's breaker."""
        return [
            line
            for line in self.metrics_text.splitlines()
            if not line.startswith("#") and f'name="{BREAKER_NAME}"' in line
        ]


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _samples(text: str) -> Samples:
    """Parse a Prometheus text exposition into sample values by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _sample(samples: Samples, metric: str, **labels: str) -> float | None:
    """Return the demo breaker's sample of ``metric`` with ``labels``, or ``None``."""
    return samples.get((metric, frozenset({"name": BREAKER_NAME, "key": "", **labels}.items())))


def _count(value: float | None) -> str:
    return "missing" if value is None else f"{value:g}"


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
    status_checks: dict[str, StatusCheck] = field(default_factory=dict)  # by label


class Demo:
    """Drives the service's timeline, calls it, and prints what happens."""

    def __init__(self, service: FlakyService, port: int, status_port: int) -> None:
        self.service = service
        self.port = port
        self.status_port = status_port
        self.stats = Stats()
        self.transitions: list[tuple[State, State]] = []
        self._seen = breaker.state
        self._phase: Phase | None = None
        self._start = 0.0

    def elapsed(self) -> float:
        return asyncio.get_running_loop().time() - self._start

    async def run(self) -> None:
        print(
            f"service on http://{HOST}:{self.port}/quote; breaker {BREAKER_NAME!r}: "
            f"failure_threshold={FAILURE_THRESHOLD}, recovery_timeout={RECOVERY_TIMEOUT} s; "
            f"client timeout {CLIENT_TIMEOUT} s; one call every {TICK} s"
        )
        print(
            f"status on http://{HOST}:{self.status_port}/health and /metrics; "
            f"an operator switched {recommendations.name!r} off (forced open): not critical\n"
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
            await self.check_status_once()
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

    async def check_status_once(self) -> None:
        """Scrape the status endpoints the first time the breaker is seen closed, and open."""
        state = breaker.state
        for label, wanted in (("while closed", State.CLOSED), ("while open", State.OPEN)):
            if state is wanted and label not in self.stats.status_checks:
                await self.check_status(label, wanted)

    async def check_status(self, label: str, state: State) -> StatusCheck:
        """Scrape /health and /metrics over HTTP; check them against ``state`` and the stats."""
        health_status, _, health_body = await asyncio.wait_for(
            _get(self.status_port, "/health"), STATUS_TIMEOUT
        )
        metrics_status, headers, metrics_text = await asyncio.wait_for(
            _get(self.status_port, "/metrics"), STATUS_TIMEOUT
        )
        problems: list[str] = []
        rejecting = state in (State.OPEN, State.FORCED_OPEN)
        wanted = 503 if rejecting else 200
        if health_status != wanted:
            problems.append(f"/health answered {health_status}, not {wanted}")
        report = json.loads(health_body)
        listed = {entry["name"]: entry["state"] for entry in report["breakers"]}.get(BREAKER_NAME)
        if listed != state.value:
            problems.append(f"/health lists {BREAKER_NAME} as {listed}, not {state}")
        if (BREAKER_NAME in report["open"]) is not rejecting:
            problems.append(f"/health lists {report['open']} as open")
        if recommendations.name not in report["open"]:
            problems.append(f"/health does not list the forced-open {recommendations.name}")
        content_type = headers.get("content-type")
        if metrics_status != 200 or content_type != CONTENT_TYPE_LATEST:
            problems.append(f"/metrics answered {metrics_status} ({content_type})")
        try:
            samples = _samples(metrics_text)
        except ValueError as exc:
            problems.append(f"/metrics does not parse: {exc}")
            samples = {}
        # What the breaker must have counted, from what the demo saw.
        stats = self.stats
        calls = {
            "success": stats.ok + (stats.burst_to_server or 0),
            "failure": stats.failed,
            "neutral": 0,
        }
        rejected = stats.rejected + (stats.burst_fallback or 0)
        exported = {
            outcome: _sample(samples, "circuit_breaker_calls_total", outcome=outcome)
            for outcome in calls
        }
        exported_rejected = _sample(samples, "circuit_breaker_rejected_calls_total")
        exported_state = _sample(samples, "circuit_breaker_state", state=state.value)
        for series, got, expected in (
            (f"circuit_breaker_state{{state={state.value!r}}}", exported_state, 1),
            *(
                (f"circuit_breaker_calls_total{{outcome={outcome!r}}}", exported[outcome], count)
                for outcome, count in calls.items()
            ),
            ("circuit_breaker_rejected_calls_total", exported_rejected, rejected),
        ):
            if got != expected:
                problems.append(f"/metrics: {series} is {got}, the demo expects {expected}")
        check = StatusCheck(label, health_status, health_body, metrics_text, tuple(problems))
        stats.status_checks[label] = check
        print(
            f"{'':8}status {label}: GET /health -> {health_status} {report['status']}, "
            f"open: {', '.join(report['open']) or 'none'}; GET /metrics -> "
            f"{_count(exported['success'])} ok, {_count(exported['failure'])} failed, "
            f"{_count(exported_rejected)} rejected" + ("  <- MISMATCH" if problems else "")
        )
        return check


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
    for label in STATUS_CHECKS:
        check = stats.status_checks.get(label)
        if check is None:
            problems.append(f"the status endpoints were not scraped {label}")
        else:
            problems.extend(f"status {label}: {problem}" for problem in check.problems)
    return problems


async def main() -> int:
    recommendations.force_open()  # an operator switched it off; the service does without
    service, status = FlakyService(), StatusServer()
    port = await service.start()
    status_port = await status.start()
    demo = Demo(service, port, status_port)
    try:
        await demo.run()
        final = await demo.check_status("at the end", State.CLOSED)
    finally:
        await service.stop()
        await status.stop()
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
    print(f"\nGET /metrics at the end ({BREAKER_NAME}'s samples):")
    for line in final.breaker_lines():
        print(f"    {line}")
    print(f"\nGET /health at the end: HTTP {final.health_status}")
    print(final.health_body)
    problems = _problems(demo)
    for problem in problems:
        print(f"UNEXPECTED: {problem}", file=sys.stderr)
    if problems:
        return 1
    print("\nthe breaker and the status endpoints behaved as expected")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
