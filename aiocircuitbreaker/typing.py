"""Types for annotating code that uses aiocircuitbreaker.

- :class:`Guarded`: what decorating a callable returns: the callable, with the same signature
  (bound like the original on methods), plus its ``circuit_breaker`` attribute.
- ``Listener``, ``OpenDuration``, ``ExpectedException`` and ``FailurePredicate``: the shapes
  of the callables and values the options take.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar, overload

from ._config import ExpectedException, FailurePredicate
from ._events import Listener
from ._policies import OpenDuration

if TYPE_CHECKING:
    from typing import Concatenate

    from ._breaker import CircuitBreaker

__all__ = ["ExpectedException", "FailurePredicate", "Guarded", "Listener", "OpenDuration"]

P = ParamSpec("P")
Q = ParamSpec("Q")
R_co = TypeVar("R_co", covariant=True)
S = TypeVar("S")


class Guarded(Protocol[P, R_co]):
    """A callable guarded by a circuit breaker (what ``@circuit`` and ``@breaker`` return).

    It takes the arguments of the original and returns what the original returns (a coroutine
    for an ``async def`` function, a generator for a generator function); on a method it binds
    like the original. ``circuit_breaker`` is the breaker guarding it.
    """

    @property
    def circuit_breaker(self) -> CircuitBreaker:
        """The breaker guarding this callable."""
        ...

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co:
        """Call the original through the breaker."""
        ...

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> Guarded[P, R_co]: ...
    @overload
    def __get__(
        self: Guarded[Concatenate[S, Q], R_co], instance: S, owner: type[Any] | None = None
    ) -> Guarded[Q, R_co]: ...
    def __get__(self, instance: object, owner: type[Any] | None = None) -> Any:
        """Bind like a function (a guarded method binds its instance)."""
        ...
