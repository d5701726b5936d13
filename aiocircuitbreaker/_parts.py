"""What a breaker's engine holds: its view of the state, the gate, the barrier, its parts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from . import _core
from ._core import Value
from ._statistics import Counters

if TYPE_CHECKING:
    from ._events import Subscription
    from ._settings import Settings
    from ._storage import Storage
    from ._ticket import Ticket

__all__ = ["INITIAL_VIEW", "Barrier", "Counter", "Gate", "Live", "View", "failure_counter"]


class Counter(Protocol):
    """A counter: each ``next()`` counts one and returns the count before it."""

    def __next__(self) -> int: ...


class Gate:
    """The fast path's permit for one closed generation (see ``_admission``).

    A breaker holds one in ``_fast`` while it is closed, has no result predicate and nothing to
    time (no slow calls, no time window), and has no listener of call events. It carries what
    a call through it needs, so that finishing one takes no further lookups: the totals, the
    expected exceptions, the threshold and a failure counter (the storage's lock-free one, or
    one that goes through ``record()`` for a storage without it); each ``next(counter)``
    counts one failure and returns the streak before it.

    ``dirty`` is true while a failure streak may be pending: a success must then reach the
    storage to end it. It is set after a failure is counted, and cleared only under the lock,
    right after a success ended the streak, so it is never false while a streak is pending.
    Under a policy it stays true (every outcome feeds the window), and ``policy`` sends
    failures to the engine's full recording.
    ``last`` is the last failure through the gate: the breaker's last failure while the gate
    is current (a failure of an older generation lands on an older gate).
    """

    __slots__ = (
        "counter",
        "dirty",
        "expected",
        "failures",
        "generation",
        "last",
        "limit",
        "neutral",
        "pending",
        "policy",
        "successes",
    )

    def __init__(
        self,
        generation: int,
        live: Live,
        settings: Settings,
        counter: Counter,
        *,
        dirty: bool,
    ) -> None:
        self.generation = generation
        self.successes = live.successes
        self.failures = live.failures
        self.neutral = live.neutral
        self.expected = settings.expected
        self.limit = settings.failure_threshold - 1  # the streak before a failure that trips
        self.policy = settings.policy is not None  # then every outcome goes to the window
        # Under a count window holding its minimum_calls, successes no rate can trip on go to
        # the storage's lock-free counter of them (set by the engine when that is so).
        self.pending: Counter | None = None
        self.counter = counter
        self.dirty = dirty
        self.last: BaseException | None = None


class Barrier:
    """The rejections' shortcut for one open period (see ``_admission``).

    A breaker holds one in ``_barrier`` while it is open or forced open and has no listener of
    call events. It carries what a rejection needs, so that a call that comes before
    ``deadline`` is refused with no further lookups; a call that finds the period over goes on
    with the barrier's view and that reading of the clock, as any other.
    """

    __slots__ = ("clock", "deadline", "failures", "fallback", "live", "view")

    def __init__(self, view: View, live: Live, settings: Settings) -> None:
        self.view = view
        self.deadline = view.deadline  # infinite while forced open
        self.failures = view.value.failures
        self.clock = settings.clock
        self.fallback = settings.fallback is not None  # it answers rejected calls
        self.live = live


@dataclass(frozen=True, slots=True)
class View:
    """The breaker's value as this process sees it, with its times on the breaker's clock.

    Attributes:
        value: The stored value.
        deadline: When the open period ends (``OPEN``; ``HALF_OPEN`` keeps it for reporting).
        since: When this state began (for ``time_in_state``).
        gate: The fast path's gate, for a closed generation that can have one.
    """

    value: Value
    deadline: float = 0.0
    since: float = 0.0
    gate: Gate | None = None


INITIAL_VIEW = View(_core.INITIAL)


class Live(Counters):
    """What a breaker needs once it is used (made on first use, to keep unused ones small)."""

    __slots__ = (
        "blocks",
        "last_failure",
        "listeners",
        "opening",
        "own",
        "pending",
        "saved",
        "storage",
        "subscriptions",
    )

    def __init__(self, now: float, storage: Storage, *, own: bool) -> None:
        super().__init__(now)
        self.storage = storage
        self.own = own  # the breaker made its storage: nobody else writes to it
        self.last_failure: BaseException | None = None
        self.subscriptions: tuple[Subscription, ...] = ()  # the breaker's own listeners
        self.listeners: tuple[Subscription, ...] = ()  # those (own and global) of call events
        self.blocks: tuple[tuple[object, Ticket], ...] = ()  # open `with` blocks: (frame, ticket)
        self.opening = -1  # the generation whose opening a thread is deciding now
        # (generation, seconds): the open duration asked for the opening after that generation
        self.pending: tuple[int, float] | None = None
        # What the testing helpers saved, newest last: (token, saved state, pinned).
        self.saved: tuple[tuple[object, Any, bool], ...] = ()


def failure_counter(storage: Storage, generation: int) -> Counter:
    """Return a gate's failure counter: the storage's lock-free one, or ``record()``."""
    counter = getattr(storage, "failure_counter", None)
    found: Counter | None = None if counter is None else counter(generation)
    return _ThroughRecord(storage, generation) if found is None else found


class _ThroughRecord:
    """A failure counter for a storage without a lock-free one: ``record()`` each failure."""

    __slots__ = ("generation", "storage")

    def __init__(self, storage: Storage, generation: int) -> None:
        self.storage, self.generation = storage, generation

    def __next__(self) -> int:
        counts = self.storage.record(self.generation, True)  # noqa: FBT003
        return -1 if counts is None else counts[3] - 1  # -1: stale, it trips nothing
