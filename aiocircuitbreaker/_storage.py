"""Where a breaker's state lives: the storage protocol, and the in-memory storage.

A storage owns two things: the breaker's current :class:`~aiocircuitbreaker._core.Value`, and
the counting of that value's generation (failures in a row, the rate window, the half-open
probes). The breaker's shell reads it, reports outcomes to it, and replaces the value when it
decides on a transition. Five operations, each **one atomic step** (what one Redis Lua script
can do): nothing else may run in between the parts of one operation, and no operation waits
for anything but the store itself.

``read() -> Reading``
    The value, its age (seconds since it was stored, by the storage's clock), and the counts of
    its generation. A read changes nothing (a time window is not moved by it).
``record(generation, failed, slow, duration) -> Tally | None``
    Count one finished call of a counting generation (closed or metrics-only): a failure or a
    success, slow or not, that took ``duration`` seconds (a time window credits it to the
    moment it started: now minus ``duration``). Returns the new counts as a tuple ``(calls,
    failures, slow_calls, consecutive_failures)`` (calls, failures and slow calls in the rate
    window, zero without one; a ``Counts`` is such a tuple), or ``None`` when ``generation`` is
    not the current one (a stale outcome: nothing changes).
``acquire(generation, ticket, probes, successes, lease) -> Probes | None``
    Take a half-open probe slot for ``ticket`` if the half-open period is still undecided and
    a slot is free: at most ``probes`` run at once and, when ``successes`` is ``None`` (probes
    judged by rate), at most ``probes`` in all. A slot is held for at most ``lease`` seconds:
    a lease that has run out is dropped and counted as a failed probe (by this or any later
    probe operation). Returns the probe counts (``admitted`` says whether ``ticket`` got a
    slot; a ticket that holds one already keeps it, and its lease, and is answered admitted),
    or ``None`` when ``generation`` is not the current one or not half-open.
``release(generation, ticket, outcome, slow) -> Probes | None``
    Give back ``ticket``'s slot with its outcome (a neutral one only frees the slot), after
    dropping the leases that ran out (the ticket's own among them: its outcome then counts
    for nothing, the expiry was its failure). Returns the new probe counts; when the ticket
    holds no slot (stale, given back, or run out) and no lease ran out, ``None``: nothing
    changed.
``replace(generation, value) -> bool``
    Store ``value`` if the current generation is still ``generation`` (compare-and-set), and
    start its counting afresh: no probes, an empty window, a failure streak starting at
    ``value.failures``. ``value`` is of a later generation (a storage may refuse anything
    else). Returns whether it was stored.

``record()`` and the probe operations also answer ``None`` for the current generation when it
is in a state they do not apply to (a record while open, an acquire while closed). A probe
that runs out of time counts as failed, never as slow. ``Reading.leases`` may hold leases at
or below zero: run out, not dropped yet (a read changes nothing); they still count as running
until the next probe operation drops them.

Tickets are numbered by each breaker, from 1, in its own process: a storage shared between
processes keeps them apart itself (by an id of its own per process, say). The probe settings
(``probes``, ``successes``, ``lease``) come with each call: breakers sharing a storage are
expected to be configured alike.

A storage's clock is monotonic (``time.monotonic`` in the in-memory one). A shared storage that
measures with the server's wall clock must not let a step back shorten or lengthen an age,
lease or window: it keeps them from going negative, at least.

Only durations cross the protocol, never one host's clock readings: the value's ``open_for``,
a call's ``duration`` and a probe's ``lease`` are all relative, and the storage measures ages
with its own clock. A storage shared by several processes therefore needs no agreement between
their clocks. The contract every storage must meet is ``tests/test_storage_contract.py``.

A storage counts in one window, made with it; a storage that says which (a ``window``
attribute, as the in-memory one has) is refused by a breaker whose policy uses another.

The in-memory storage, the default, is in ``_memory.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ._core import Outcome, Value

__all__ = ["Probes", "Reading", "Storage", "Tally"]

Tally = tuple[int, int, int, int]
"""A generation's counts: ``(calls, failures, slow_calls, consecutive_failures)``."""


@dataclass(frozen=True, slots=True)
class Probes:
    """The half-open probes of the current generation.

    Attributes:
        running: Probes holding a slot now.
        successes: Probes that finished and succeeded.
        failures: Probes that finished and failed, their leases run out included.
        slow: Finished probes that were slow.
        admitted: Whether the ``acquire()`` that returned this got its slot.
        expired: For every lease that this operation found run out, how long ago it ran out
            (seconds, oldest first).
        run: Probes that failed since the last one that succeeded (all the failed ones if
            none succeeded), leases run out included.
    """

    running: int = 0
    successes: int = 0
    failures: int = 0
    slow: int = 0
    admitted: bool = False
    expired: tuple[float, ...] = ()
    run: int = 0

    @property
    def finished(self) -> int:
        """Probes that finished, succeeded or failed (neutral ones are not counted)."""
        return self.successes + self.failures


@dataclass(frozen=True, slots=True)
class Reading:
    """What ``Storage.read()`` returns.

    Attributes:
        value: The current value.
        age: Seconds since it was stored, by the storage's clock.
        counts: The counts of a counting generation (closed or metrics-only), else ``None``.
        probes: The probes of a half-open generation, else ``None``.
        leases: Seconds left on each running probe's lease, soonest first (half-open only).
    """

    value: Value
    age: float
    counts: Tally | None = None
    probes: Probes | None = None
    leases: tuple[float, ...] = ()


@runtime_checkable
class Storage(Protocol):
    """The storage protocol (see the module docstring for the semantics of each operation)."""

    def read(self) -> Reading:
        """Return the current value, its age and its generation's counts; change nothing."""
        ...

    def record(
        self,
        generation: int,
        failed: bool,  # noqa: FBT001 - the protocol's positional form, one call per outcome
        slow: bool = False,  # noqa: FBT001, FBT002
        duration: float = 0.0,
    ) -> Tally | None:
        """Count one finished call of ``generation``; return the new counts, or ``None``."""
        ...

    def acquire(
        self, generation: int, ticket: int, probes: int, successes: int | None, lease: float
    ) -> Probes | None:
        """Take a half-open probe slot for ``ticket`` if one is free; ``None`` if stale."""
        ...

    def release(
        self,
        generation: int,
        ticket: int,
        outcome: Outcome,
        slow: bool = False,  # noqa: FBT001, FBT002
    ) -> Probes | None:
        """Give back ``ticket``'s slot with its outcome; ``None`` if it holds none."""
        ...

    def replace(self, generation: int, value: Value) -> bool:
        """Store ``value`` if ``generation`` is still current; return whether it was."""
        ...
