"""Counting helpers shared by the storage and the statistics.

An ``itertools.count`` advances in one atomic step on every CPython build (free-threaded ones
included: CPython makes ``count.__next__`` thread-safe there), which is what lets the hot
paths count without a lock. It can only be read through its repr.
"""

from __future__ import annotations

import itertools

__all__ = ["count_value"]


def count_value(counter: itertools.count[int]) -> int:
    """Return how far an ``itertools.count()`` has counted, without advancing it.

    For reads (statistics, decisions after a state change), never for the per-call paths,
    which only advance counts.
    """
    return int(repr(counter)[6:-1])
