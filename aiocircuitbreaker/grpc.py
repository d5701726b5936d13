"""grpc.aio client interceptors that guard every RPC with a circuit breaker.

Install with ``pip install "aiocircuitbreaker[grpc]"``::

    breakers = CircuitBreakerGroup("inventory")
    channel = grpc.aio.insecure_channel(
        "inventory:50051", interceptors=circuit_breaker_interceptors(breaker=breakers)
    )

Unary-unary and unary-stream RPCs are admitted by their breaker (with a group: one breaker per
method, ``"/package.Service/Method"``, or per ``key(client_call_details)``; pass ``target=``
for one breaker per channel target). A rejected RPC raises :class:`CircuitOpenError` without
reaching the channel. An RPC that ends with a status in ``failure_codes`` (default
``UNAVAILABLE``, ``DEADLINE_EXCEEDED``, ``RESOURCE_EXHAUSTED``) counts as a failure, an
:class:`RpcFailure` the breaker records, while the caller gets the RPC's own ``AioRpcError`` as
usual; ``CANCELLED`` is neutral; any other status (``OK``, and the application's own errors
such as ``NOT_FOUND``) is a success: the dependency answered.

A stall is seen through the call's deadline (``timeout=``), which ends it with
``DEADLINE_EXCEEDED``; a refused connection ends it with ``UNAVAILABLE``. The breaker times a
unary call to its status, and a stream to its end (a long stream that is a half-open probe
holds its probe slot until it ends).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Hashable
from typing import Any

import grpc
from grpc.aio import ClientCallDetails, UnaryStreamClientInterceptor, UnaryUnaryClientInterceptor

from ._breaker import CircuitBreaker
from ._core import Outcome
from ._errors import CircuitBreakerError
from ._http import Breakers, BreakerSource, copy_rejection
from ._ticket import Ticket

__all__ = [
    "DEFAULT_FAILURE_CODES",
    "CircuitOpenError",
    "RpcFailure",
    "UnaryStreamInterceptor",
    "UnaryUnaryInterceptor",
    "circuit_breaker_interceptors",
    "method_of",
]

DEFAULT_FAILURE_CODES: frozenset[grpc.StatusCode] = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)

KeyFunction = Callable[[ClientCallDetails], Hashable]


class CircuitOpenError(grpc.RpcError, CircuitBreakerError):
    """An RPC rejected by its breaker: a ``grpc.RpcError`` and a ``CircuitBreakerError``.

    Its ``code()`` is ``UNAVAILABLE``, what the service is to this client for now; a retry
    policy that retries on codes should test for a rejection first
    (:func:`aiocircuitbreaker.retry.is_rejection`): retrying it would be rejected again.
    """

    def __init__(self, error: CircuitBreakerError) -> None:
        # Not grpc's __init__: its super() chain would reach CircuitBreakerError's.
        self.args = error.args
        copy_rejection(error, self)

    def code(self) -> grpc.StatusCode:
        """Return ``UNAVAILABLE``."""
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        """Return the rejection's message."""
        return str(self)


def _rejection(error: CircuitBreakerError, details: object) -> CircuitOpenError:
    return CircuitOpenError(error)


class RpcFailure(Exception):  # noqa: N818 - it is recorded as a failure, never raised
    """The failure a breaker records for an RPC that ended with a failure code.

    Attributes:
        code: The RPC's status code.
        details: The status details.
        key: The RPC's key (by default its method).
    """

    def __init__(self, code: grpc.StatusCode, details: str | None, key: object) -> None:
        super().__init__(code, details, key)
        self.code = code
        self.details = details
        self.key = key

    def __str__(self) -> str:
        return f"{self.key} ended with {self.code.name}: {self.details}"


def method_of(details: ClientCallDetails) -> str:
    """Return the RPC's method, ``"/package.Service/Method"`` (the default breaker key)."""
    method: str | bytes = details.method
    return method.decode() if isinstance(method, bytes) else method


def _check_codes(codes: object) -> frozenset[grpc.StatusCode]:
    if isinstance(codes, (str, bytes)) or not isinstance(codes, Collection):
        msg = f"failure_codes must be a collection of grpc.StatusCode members, got {codes!r}"
        raise TypeError(msg)
    for code in codes:
        if not isinstance(code, grpc.StatusCode):
            msg = f"failure_codes must hold grpc.StatusCode members, got {code!r} in it"
            raise TypeError(msg)
    return frozenset(codes)


class _Guard:
    """What both interceptors share: the breakers, the key and the failure codes."""

    __slots__ = ("breakers", "failure_codes", "tasks")

    def __init__(
        self,
        breaker: CircuitBreaker | BreakerSource | None,
        key: KeyFunction | None,
        target: object,
        failure_codes: Collection[grpc.StatusCode],
    ) -> None:
        if target is not None and not isinstance(target, str):
            msg = f"target must be the channel's target (a str), got {target!r}"
            raise TypeError(msg)
        if key is None and target is not None:
            key = _constant(target)
        self.breakers: Breakers[ClientCallDetails] = Breakers(
            breaker, key, method_of, (), name="grpc", rejection=_rejection
        )
        self.failure_codes = _check_codes(failure_codes)
        self.tasks: set[asyncio.Task[None]] = set()  # stream outcomes being read

    def admit(self, details: ClientCallDetails) -> Ticket:
        return self.breakers.admit(details)

    async def finish(self, ticket: Ticket, details: ClientCallDetails, call: Any) -> None:
        """Report how ``call`` ended (it has ended, or this waits for it to)."""
        try:
            code: grpc.StatusCode = await call.code()
        except BaseException as exc:
            ticket.finish(exc)
            raise
        if code in self.failure_codes:
            failure = RpcFailure(code, await call.details(), self.breakers.key(details))
            ticket.finish(failure, outcome=Outcome.FAILURE)
        elif code is grpc.StatusCode.CANCELLED:
            ticket.finish(outcome=Outcome.NEUTRAL)
        else:
            ticket.finish(outcome=Outcome.SUCCESS)

    def finish_later(self, ticket: Ticket, details: ClientCallDetails, call: Any) -> None:
        """Report how ``call`` ended once it has (a stream's end)."""
        tasks = self.tasks

        def done(_: object) -> None:
            task = asyncio.get_running_loop().create_task(self.finish(ticket, details, call))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        call.add_done_callback(done)


def _constant(target: str) -> KeyFunction:
    def key(details: ClientCallDetails) -> Hashable:
        return target

    return key


class UnaryUnaryInterceptor(UnaryUnaryClientInterceptor):
    """Guards unary-unary RPCs (made by :func:`circuit_breaker_interceptors`)."""

    def __init__(self, guard: _Guard) -> None:
        self._guard = guard

    @property
    def breaker(self) -> CircuitBreaker | BreakerSource:
        """The breaker, or the group, RPCs go through."""
        return self._guard.breakers.breaker

    async def intercept_unary_unary(
        self, continuation: Any, client_call_details: ClientCallDetails, request: Any
    ) -> Any:
        """Admit the RPC, run it, and report its status to the breaker."""
        guard = self._guard
        ticket = guard.admit(client_call_details)
        try:
            call = await continuation(client_call_details, request)
        except BaseException as exc:
            ticket.finish(exc)
            raise
        await guard.finish(ticket, client_call_details, call)
        return call


class UnaryStreamInterceptor(UnaryStreamClientInterceptor):
    """Guards unary-stream RPCs (made by :func:`circuit_breaker_interceptors`)."""

    def __init__(self, guard: _Guard) -> None:
        self._guard = guard

    @property
    def breaker(self) -> CircuitBreaker | BreakerSource:
        """The breaker, or the group, RPCs go through."""
        return self._guard.breakers.breaker

    async def intercept_unary_stream(
        self, continuation: Any, client_call_details: ClientCallDetails, request: Any
    ) -> Any:
        """Admit the RPC, start it, and report its status to the breaker when it ends."""
        guard = self._guard
        ticket = guard.admit(client_call_details)
        try:
            call = await continuation(client_call_details, request)
        except BaseException as exc:
            ticket.finish(exc)
            raise
        guard.finish_later(ticket, client_call_details, call)
        return call


def circuit_breaker_interceptors(
    *,
    breaker: CircuitBreaker | BreakerSource | None = None,
    key: KeyFunction | None = None,
    target: str | None = None,
    failure_codes: Collection[grpc.StatusCode] = DEFAULT_FAILURE_CODES,
) -> list[UnaryUnaryInterceptor | UnaryStreamInterceptor]:
    """Return the interceptors to pass to ``grpc.aio.*_channel(..., interceptors=...)``.

    Args:
        breaker: A ``CircuitBreaker`` for every RPC of the channel, or a
            ``CircuitBreakerGroup``: one breaker per key (default: a new group named
            ``"grpc"``, each breaker with the default options).
        key: With a group, the key of an RPC, a function of its ``ClientCallDetails``
            (default: its method).
        target: With a group and no ``key``: the channel's target, the key of all its RPCs
            (one breaker per target).
        failure_codes: The status codes counted as failures (default ``UNAVAILABLE``,
            ``DEADLINE_EXCEEDED``, ``RESOURCE_EXHAUSTED``).
    """
    guard = _Guard(breaker, key, target, failure_codes)
    return [UnaryUnaryInterceptor(guard), UnaryStreamInterceptor(guard)]
