"""Where a breaker's state lives: the storage protocol, for implementing a storage of your own.

A breaker keeps its state in an :class:`InMemoryStorage` unless given ``storage=``. The
protocol's five operations, and what each must guarantee, are described in the docstring of
:class:`Storage`; a new storage is checked by running the contract suite
(``tests/test_storage_contract.py``) against it.
"""

from __future__ import annotations

from ._core import Outcome, State, Value
from ._memory import InMemoryStorage
from ._policies import Counts
from ._storage import Probes, Reading, Storage

__all__ = ["Counts", "InMemoryStorage", "Outcome", "Probes", "Reading", "State", "Storage", "Value"]
