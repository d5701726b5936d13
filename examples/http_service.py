"""A service calling two upstreams through httpx with per-host breakers, retries and a 503.

The demo starts, on free ports of 127.0.0.1, two upstream services ("prices" and "stock") and
a small Starlette service in front of them:

* ``GET /quote`` calls both upstreams through one ``httpx.AsyncClient`` whose transport is
  :class:`aiocircuitbreaker.httpx.AsyncCircuitBreakerTransport` with a
  :class:`aiocircuitbreaker.CircuitBreakerGroup`: one breaker per upstream host;
* ``GET /price`` calls only "prices";
* each upstream call is retried by stamina (``aiocircuitbreaker.retry.stamina_on``): errors
  and 5xx answers are retried, a rejection never is, and after the attempt that opens a
  breaker stamina waits for the probe (here at most ``MAX_WAIT``) instead of its own backoff;
* a rejection that escapes an endpoint is answered ``503`` with ``Retry-After`` by
  :func:`aiocircuitbreaker.asgi.circuit_breaker_handler`.

Then it plays a timeline against the service and prints each request:

* healthy: both upstreams answer, ``/quote`` answers 200;
* "stock" fails with ``503`` and ``Retry-After: 2``: the first ``/quote`` makes two attempts
  (both counted), the breaker of "stock" opens for the 2 s the upstream asked for, the third
  attempt is rejected and the service answers 503 with ``Retry-After``; further ``/quote``
  calls are rejected without reaching "stock" (its hit counter stands still), while ``/price``
  keeps working: "prices" has a breaker of its own;
* "stock" recovers: after its Retry-After the next ``/quote`` is the probe, which closes the
  breaker; the service answers 200 again.

Run it from the repository root::

    pip install -e ".[httpx,asgi,stamina]" uvicorn
    python examples/http_service.py

It takes about 4 seconds and exits non-zero if what it printed is not what should happen, so it
doubles as a smoke test.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

try:
    import httpx
    import stamina
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    from aiocircuitbreaker import CircuitBreaker, CircuitBreakerGroup
    from aiocircuitbreaker.asgi import add_circuit_breaker_handler
    from aiocircuitbreaker.httpx import AsyncCircuitBreakerTransport, RetryAfter, request_origin
    from aiocircuitbreaker.retry import stamina_on
except ImportError as exc:
    sys.exit(
        f"this example needs httpx, starlette, stamina and uvicorn ({exc}); from the "
        'repository root run:\n    pip install -e ".[httpx,asgi,stamina]" uvicorn'
    )

HOST = "127.0.0.1"
RETRY_AFTER = 2  # seconds "stock" asks for while it fails
MAX_WAIT = 0.3  # the longest a request waits for a probe before its next attempt
ATTEMPTS = 3
CLIENT_TIMEOUT = 1.0


@dataclass
class Upstream:
    """A fake upstream: answers 200 with a value, or 503 with Retry-After; counts its hits."""

    name: str
    value: int
    failing: bool = False
    hits: int = 0
    url: str = ""

    async def endpoint(self, request: Request) -> Response:
        self.hits += 1
        if self.failing:
            return PlainTextResponse(
                "down", status_code=503, headers={"Retry-After": str(RETRY_AFTER)}
            )
        return JSONResponse({self.name: self.value})


prices = Upstream("price", 42)
stock = Upstream("stock", 7)

breakers = CircuitBreakerGroup(
    "upstreams", failure_threshold=2, open_duration=RetryAfter(5), max_keys=100
)
client = httpx.AsyncClient(
    transport=AsyncCircuitBreakerTransport(breaker=breakers), timeout=CLIENT_TIMEOUT
)


def breaker_of(exception: BaseException) -> CircuitBreaker | None:
    """Return the breaker of the request that raised ``exception`` (for the retry's wait)."""
    if isinstance(exception, httpx.RequestError | httpx.HTTPStatusError):
        return breakers.get(request_origin(exception.request))
    return None


retry_on = stamina_on((httpx.TransportError, httpx.HTTPStatusError), breaker_of, maximum=MAX_WAIT)


async def fetch(upstream: Upstream) -> object:
    """GET ``upstream`` with retries; a 5xx raises (and is retried), a rejection is not."""
    async for attempt in stamina.retry_context(
        on=retry_on, attempts=ATTEMPTS, wait_initial=0.01, wait_max=0.05, wait_jitter=0
    ):
        with attempt:
            response = await client.get(upstream.url)
            response.raise_for_status()
            return response.json()[upstream.name]
    raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover


async def quote(request: Request) -> Response:
    return JSONResponse({"price": await fetch(prices), "stock": await fetch(stock)})


async def price(request: Request) -> Response:
    return JSONResponse({"price": await fetch(prices)})


service = Starlette(routes=[Route("/quote", quote), Route("/price", price)])
add_circuit_breaker_handler(service)


def upstream_app(upstream: Upstream) -> Starlette:
    return Starlette(routes=[Route("/", upstream.endpoint)])


@asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on a free port of 127.0.0.1 (in this loop); yield its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((HOST, 0))
    config = uvicorn.Config(app, log_level="warning", lifespan="off", ws="none", http="h11")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()  # raise what stopped it
        await asyncio.sleep(0.01)
    try:
        yield f"http://{HOST}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@dataclass
class Step:
    """One request of the timeline and what it must show."""

    path: str
    status: int
    stock_state: str
    stock_hits: int  # how many requests "stock" received during this step
    retry_after: bool = False


def state_of(upstream: Upstream) -> str:
    found = breakers.get(request_origin(httpx.Request("GET", upstream.url)))
    return "-" if found is None else str(found.state)


async def play(url: str, caller: httpx.AsyncClient, steps: list[Step], start: float) -> list[str]:
    """Run ``steps`` against the service, print each, and return what was not as expected."""
    wrong: list[str] = []
    for step in steps:
        before = stock.hits
        response = await caller.get(url + step.path)
        hits = stock.hits - before
        after = response.headers.get("retry-after")
        shown = response.text if response.status_code == 200 else f"Retry-After: {after}"
        print(
            f"{time.monotonic() - start:5.2f}s  GET {step.path:<6} -> {response.status_code} "
            f"{shown:<26} stock breaker: {state_of(stock):<7} stock hits: +{hits}  "
            f"prices breaker: {state_of(prices)}"
        )
        seen = (response.status_code, state_of(stock), hits, after is not None)
        wanted = (step.status, step.stock_state, step.stock_hits, step.retry_after)
        if seen != wanted:
            wrong.append(f"GET {step.path}: saw {seen}, expected {wanted}")
        if after is not None and not 1 <= int(after) <= RETRY_AFTER:
            wrong.append(f"Retry-After {after} is not within 1..{RETRY_AFTER}")
    return wrong


async def main() -> int:
    # The breakers' and stamina's warnings (an opening, a retry), interleaved with the timeline.
    logging.basicConfig(stream=sys.stdout, format="        (log) %(name)s: %(message)s")
    start = time.monotonic()
    async with (
        serving(upstream_app(prices)) as prices.url,
        serving(upstream_app(stock)) as stock.url,
        serving(service) as url,
        httpx.AsyncClient(timeout=5) as caller,
    ):
        print(f"upstreams: prices {prices.url}, stock {stock.url}; service {url}\n")
        print("healthy:")
        wrong = await play(url, caller, [Step("/quote", 200, "closed", 1)] * 2, start)
        print(f'\n"stock" answers 503 with Retry-After: {RETRY_AFTER}:')
        stock.failing = True
        wrong += await play(
            url,
            caller,
            [
                Step("/quote", 503, "open", 2, retry_after=True),  # two attempts, then rejected
                Step("/quote", 503, "open", 0, retry_after=True),  # rejected: "stock" untouched
                Step("/price", 200, "open", 0),  # "prices" has its own breaker
            ],
            start,
        )
        stock.failing = False
        print(f'\n"stock" recovers; {RETRY_AFTER} s later its breaker lets a probe through:')
        await asyncio.sleep(RETRY_AFTER)
        wrong += await play(
            url, caller, [Step("/quote", 200, "closed", 1), Step("/quote", 200, "closed", 1)], start
        )
    await client.aclose()
    if wrong:
        print("\nNOT AS EXPECTED:\n  " + "\n  ".join(wrong))
        return 1
    print("\nall as expected: per-host breakers, retries, 503 + Retry-After, recovery")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
