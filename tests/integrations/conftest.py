"""Real servers on 127.0.0.1 for the integration tests: they stall, fail with 503, recover.

Each server runs in a thread of its own with its own event loop, on a port the kernel picked,
and is shut down at the end of the session. ``refused_url`` is a port nobody listens on.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
import uvicorn
from aiohttp import web
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Mode = Literal["ok", "fail", "stall"]
HOST = "127.0.0.1"
STALL_LIMIT = 5.0  # a stalling server gives up on its own after this long


@dataclass
class Upstream:
    """What the test servers do: answer 200, fail with ``status``, or stall; and count hits."""

    url: str = ""
    mode: Mode = "ok"
    status: int = 503
    retry_after: str | None = None
    hits: int = 0
    stopping: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        """Answer 200 again (releasing stalled requests) and count from zero."""
        self.mode, self.status, self.retry_after, self.hits = "ok", 503, None, 0

    def fail(self, status: int = 503, retry_after: str | None = None) -> None:
        """Answer ``status`` (with this ``Retry-After``) from now on."""
        self.status, self.retry_after, self.mode = status, retry_after, "fail"

    async def answer(self) -> tuple[int, dict[str, str], bytes]:
        """Return the status, headers and body of the next answer (stalling first if asked)."""
        with self.lock:
            self.hits += 1
        waited = 0.0
        while self.mode == "stall" and not self.stopping and waited < STALL_LIMIT:
            await asyncio.sleep(0.005)
            waited += 0.005
        if self.mode == "fail":
            headers = {} if self.retry_after is None else {"Retry-After": self.retry_after}
            return self.status, headers, b"unavailable"
        return 200, {}, b"ok"


def free_socket() -> socket.socket:
    """Return a listening TCP socket on a free port of 127.0.0.1."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def url_of(sock: socket.socket) -> str:
    """Return the http URL of ``sock``."""
    return f"http://{HOST}:{sock.getsockname()[1]}"


@pytest.fixture(scope="session")
def refused_url() -> str:
    """Return the URL of a port of 127.0.0.1 on which nothing listens."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port = sock.getsockname()[1]
    return f"http://{HOST}:{port}"


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve the ASGI ``app`` with uvicorn on a free port of 127.0.0.1; yield its URL."""
    sock = free_socket()
    config = uvicorn.Config(
        app, log_level="warning", lifespan="off", ws="none", http="h11", loop="asyncio"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        threading.Event().wait(0.002)
    try:
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(scope="session")
def starlette_server() -> Iterator[Upstream]:
    """Start uvicorn serving a Starlette app on a free port; stop it at the end."""
    upstream = Upstream()

    async def endpoint(request: Request) -> Response:
        status, headers, body = await upstream.answer()
        return Response(body, status_code=status, headers=headers)

    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST"])])
    with serve(app) as url:
        upstream.url = url
        try:
            yield upstream
        finally:
            upstream.stopping = True


@pytest.fixture
def upstream(starlette_server: Upstream) -> Iterator[Upstream]:
    """Return the Starlette upstream, healthy and with no hits counted."""
    starlette_server.reset()
    yield starlette_server
    starlette_server.reset()


@pytest.fixture(scope="session")
def aiohttp_server() -> Iterator[Upstream]:
    """Start an aiohttp web server on a free port in a thread; stop it at the end."""
    upstream = Upstream()

    async def handler(request: web.Request) -> web.Response:
        status, headers, body = await upstream.answer()
        return web.Response(body=body, status=status, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{path:.*}", handler)
    sock = free_socket()
    upstream.url = url_of(sock)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, handle_signals=False)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.SockSite(runner, sock).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield upstream
    finally:
        upstream.stopping = True
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        sock.close()


@pytest.fixture
def aiohttp_upstream(aiohttp_server: Upstream) -> Iterator[Upstream]:
    """Return the aiohttp upstream, healthy and with no hits counted."""
    aiohttp_server.reset()
    yield aiohttp_server
    aiohttp_server.reset()
