#!/usr/bin/env python3
"""Per-request cost of each client integration, as a ratio to the same client without it.

Run from the repository root (needs the test extra: httpx, requests, aiohttp, grpcio,
starlette, uvicorn)::

    python benchmarks/integrations.py            # about half a minute
    python benchmarks/integrations.py --quick    # a smoke run

Two figures per integration, each a ratio to a baseline measured in the same run, in the same
rounds, the two variants interleaved (bare, guarded, bare, ...); the report gives the median of
the per-round ratios and the per-request times of the best rounds:

* ``local``: requests to a real server on 127.0.0.1 (uvicorn serving Starlette for httpx and
  requests, an aiohttp server for aiohttp, a grpc.aio server for grpc), the client with the
  integration (one closed ``CircuitBreaker``) against the same client without it. This is what
  a service sees: the breaker's share of a local round trip.
* ``in-memory`` (httpx and requests): the same against a transport that answers without I/O
  (``httpx.MockTransport``, a stub requests adapter), which isolates the integration's own
  cost per request, reported in microseconds as well.
* ``vs no-op`` (grpc): the interceptors against a no-op interceptor that awaits the status as
  they do: grpc.aio runs every intercepted call in a task of its own, whoever intercepts.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import grpc
import httpx
import requests
import uvicorn
from aiohttp import web
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from aiocircuitbreaker import CircuitBreaker
from aiocircuitbreaker.aiohttp import CircuitBreakerMiddleware
from aiocircuitbreaker.grpc import circuit_breaker_interceptors
from aiocircuitbreaker.httpx import AsyncCircuitBreakerTransport, CircuitBreakerTransport
from aiocircuitbreaker.requests import CircuitBreakerAdapter

HOST = "127.0.0.1"
HUGE = 10**9  # a threshold never reached


def breaker() -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=HUGE)


def listening() -> socket.socket:
    sock = socket.socket()
    sock.bind((HOST, 0))
    sock.listen(128)
    return sock


class Servers:
    """uvicorn (Starlette) and aiohttp servers on free ports, each in a thread of its own."""

    def __init__(self) -> None:
        async def ok(request: Request) -> Response:
            return PlainTextResponse("ok")

        self._sockets = [listening(), listening()]
        self.starlette = f"http://{HOST}:{self._sockets[0].getsockname()[1]}/"
        self.aiohttp = f"http://{HOST}:{self._sockets[1].getsockname()[1]}/"
        app = Starlette(routes=[Route("/", ok)])
        config = uvicorn.Config(app, log_level="error", lifespan="off", access_log=False)
        self._uvicorn = uvicorn.Server(config)
        threading.Thread(
            target=self._uvicorn.run, kwargs={"sockets": [self._sockets[0]]}, daemon=True
        ).start()
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        self._runner = asyncio.run_coroutine_threadsafe(self._aiohttp(), self._loop).result()
        while not self._uvicorn.started:
            time.sleep(0.01)

    async def _aiohttp(self) -> web.AppRunner:
        async def ok(request: web.Request) -> web.Response:
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_get("/", ok)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        await web.SockSite(runner, self._sockets[1]).start()
        return runner

    def close(self) -> None:
        self._uvicorn.should_exit = True
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        for sock in self._sockets:
            sock.close()


def compare_sync(
    bare: Callable[[], Any], guarded: Callable[[], Any], n: int, rounds: int
) -> dict[str, float]:
    times: dict[str, list[float]] = {"bare": [], "guarded": []}
    for fn in (bare, guarded):  # warm up: connections, caches
        for _ in range(max(1, n // 4)):
            fn()
    for _ in range(rounds):
        for name, fn in (("bare", bare), ("guarded", guarded)):
            start = time.perf_counter()
            for _ in range(n):
                fn()
            times[name].append((time.perf_counter() - start) / n)
    return summary(times)


async def compare_async(
    bare: Callable[[], Awaitable[Any]], guarded: Callable[[], Awaitable[Any]], n: int, rounds: int
) -> dict[str, float]:
    times: dict[str, list[float]] = {"bare": [], "guarded": []}
    for fn in (bare, guarded):  # warm up: connections, caches
        for _ in range(max(1, n // 4)):
            await fn()
    for _ in range(rounds):
        for name, fn in (("bare", bare), ("guarded", guarded)):
            start = time.perf_counter()
            for _ in range(n):
                await fn()
            times[name].append((time.perf_counter() - start) / n)
    return summary(times)


def summary(times: dict[str, list[float]]) -> dict[str, float]:
    ratios = [g / b for b, g in zip(times["bare"], times["guarded"], strict=True)]
    return {
        "ratio": statistics.median(ratios),
        "bare_us": min(times["bare"]) * 1e6,
        "guarded_us": min(times["guarded"]) * 1e6,
    }


def httpx_sync(url: str, n: int, rounds: int) -> dict[str, dict[str, float]]:
    with (
        httpx.Client() as bare,
        httpx.Client(transport=CircuitBreakerTransport(breaker=breaker())) as guarded,
    ):
        local = compare_sync(lambda: bare.get(url), lambda: guarded.get(url), n, rounds)
    mock = httpx.MockTransport(lambda request: httpx.Response(200, text="ok"))
    with (
        httpx.Client(transport=mock) as bare,
        httpx.Client(transport=CircuitBreakerTransport(mock, breaker=breaker())) as guarded,
    ):
        memory = compare_sync(lambda: bare.get(url), lambda: guarded.get(url), n * 10, rounds)
    return {"local": local, "in-memory": memory}


async def httpx_async(url: str, n: int, rounds: int) -> dict[str, dict[str, float]]:
    transport = AsyncCircuitBreakerTransport(breaker=breaker())
    async with httpx.AsyncClient() as bare, httpx.AsyncClient(transport=transport) as guarded:
        local = await compare_async(lambda: bare.get(url), lambda: guarded.get(url), n, rounds)
    mock = httpx.MockTransport(lambda request: httpx.Response(200, text="ok"))
    transport = AsyncCircuitBreakerTransport(mock, breaker=breaker())
    async with (
        httpx.AsyncClient(transport=mock) as bare,
        httpx.AsyncClient(transport=transport) as guarded,
    ):
        memory = await compare_async(
            lambda: bare.get(url), lambda: guarded.get(url), n * 10, rounds
        )
    return {"local": local, "in-memory": memory}


class Stub(requests.adapters.BaseAdapter):
    """A requests adapter that answers 200 without I/O."""

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        response = requests.Response()
        response.status_code, response.request, response.url = 200, request, request.url or ""
        response._content = b"ok"  # noqa: SLF001 - how requests' own adapters fill it in
        return response

    def close(self) -> None:
        pass


def requests_sync(url: str, n: int, rounds: int) -> dict[str, dict[str, float]]:
    results = {}
    for name, inner in (("local", None), ("in-memory", Stub())):
        with requests.Session() as bare, requests.Session() as guarded:
            if inner is not None:
                bare.mount("http://", inner)
            guarded.mount("http://", CircuitBreakerAdapter(inner, breaker=breaker()))
            count = n if inner is None else n * 10
            results[name] = compare_sync(
                lambda: bare.get(url), lambda: guarded.get(url), count, rounds
            )
    return results


async def aiohttp_async(url: str, n: int, rounds: int) -> dict[str, dict[str, float]]:
    middleware = CircuitBreakerMiddleware(breaker=breaker())
    async with (
        aiohttp.ClientSession() as bare,
        aiohttp.ClientSession(middlewares=(middleware,)) as guarded,
    ):

        async def get(session: aiohttp.ClientSession) -> None:
            async with session.get(url) as response:
                await response.read()

        return {"local": await compare_async(lambda: get(bare), lambda: get(guarded), n, rounds)}


class NoopInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """An interceptor doing what the breaker's does (await the status) but no breaker."""

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        call = await continuation(details, request)
        await call.code()
        return call


async def grpc_async(n: int, rounds: int) -> dict[str, dict[str, float]]:
    async def unary(request: bytes, context: Any) -> bytes:
        return request

    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Unary": grpc.unary_unary_rpc_method_handler(unary)}
    )
    server.add_generic_rpc_handlers((handler,))
    target = f"{HOST}:{server.add_insecure_port(f'{HOST}:0')}"
    await server.start()
    bare = grpc.aio.insecure_channel(target)
    noop = grpc.aio.insecure_channel(target, interceptors=[NoopInterceptor()])
    guarded = grpc.aio.insecure_channel(
        target, interceptors=circuit_breaker_interceptors(breaker=breaker())
    )
    try:
        call_bare = bare.unary_unary("/bench.Echo/Unary")
        call_noop = noop.unary_unary("/bench.Echo/Unary")
        call_guarded = guarded.unary_unary("/bench.Echo/Unary")
        return {
            "local": await compare_async(
                lambda: call_bare(b"x"), lambda: call_guarded(b"x"), n, rounds
            ),
            # grpc.aio runs each intercepted call in a task of its own: most of the cost
            "vs no-op": await compare_async(
                lambda: call_noop(b"x"), lambda: call_guarded(b"x"), n, rounds
            ),
        }
    finally:
        for channel in (bare, noop, guarded):
            await channel.close()
        await server.stop(None)


async def async_runs(
    servers: Servers, n: int, rounds: int
) -> dict[str, dict[str, dict[str, float]]]:
    return {
        "httpx (async)": await httpx_async(servers.starlette, n, rounds),
        "aiohttp": await aiohttp_async(servers.aiohttp, n, rounds),
        "grpc.aio (unary)": await grpc_async(n, rounds),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (few requests)")
    parser.add_argument("--requests", type=int, default=300, help="requests per round")
    parser.add_argument("--rounds", type=int, default=7, help="rounds per variant")
    args = parser.parse_args()
    n, rounds = (20, 2) if args.quick else (args.requests, args.rounds)
    servers = Servers()
    try:
        results = {
            "httpx (sync)": httpx_sync(servers.starlette, n, rounds),
            "requests": requests_sync(servers.starlette, n, rounds),
        }
        results |= asyncio.run(async_runs(servers, n, rounds))
    finally:
        servers.close()
    print(
        f"{n} requests x {rounds} rounds per variant; ratio = guarded / bare (median of rounds)\n"
    )
    print(
        f"{'integration':<18} {'figure':<10} {'ratio':>7} {'bare':>10} {'guarded':>10} {'added':>9}"
    )
    for name, figures in results.items():
        for figure, result in figures.items():
            added = result["guarded_us"] - result["bare_us"]
            print(
                f"{name:<18} {figure:<10} {result['ratio']:>6.3f}x {result['bare_us']:>8.1f}us "
                f"{result['guarded_us']:>8.1f}us {added:>+7.1f}us"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
