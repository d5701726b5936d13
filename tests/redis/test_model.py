"""A breaker on Redis storage against the same breaker in memory, on random steps (hypothesis).

The in-memory breaker is the reference model: on one fake clock, the two must agree after every
step on the state, the failure count and which calls are rejected.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from aiocircuitbreaker import CircuitBreaker, CircuitBreakerError, HalfOpen
from aiocircuitbreaker.testing import FakeClock

from ..conftest import DependencyDown
from .server import RedisServer, unique


def outcome(breaker: CircuitBreaker, failed: bool) -> str:
    """Make one call through ``breaker``; say how it ended."""
    try:
        with breaker:
            if failed:
                raise DependencyDown
    except DependencyDown:
        return "failed"
    except CircuitBreakerError:
        return "rejected"
    return "succeeded"


def test_a_redis_breaker_behaves_as_the_in_memory_one(shared_server: RedisServer) -> None:
    """Random calls, waits and changes by hand: the Redis breaker answers as the model."""

    class Machine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.clock = FakeClock(1000.0)
            self.fleet = shared_server.fleet(
                clock=self.clock, sync_interval=None, lease=None, timeout=2.0
            )
            options = {
                "failure_threshold": 3,
                "recovery_timeout": 10,
                "expected_exception": DependencyDown,
                "clock": self.clock,
                "half_open": HalfOpen(probes=1, successes=2),
            }
            name = unique()
            self.real = CircuitBreaker(name=name, storage=self.fleet.storage(name), **options)
            self.model = CircuitBreaker(name=name, **options)

        @rule(failed=st.booleans())
        def call(self, failed: bool) -> None:
            assert outcome(self.real, failed) == outcome(self.model, failed)

        @rule(seconds=st.sampled_from([0.25, 1.0, 5.0, 10.0]))
        def wait(self, seconds: float) -> None:
            self.clock.advance(seconds)

        @rule(action=st.sampled_from(["open", "close", "reset", "force_open", "metrics_only"]))
        def by_hand(self, action: str) -> None:
            getattr(self.real, action)()
            getattr(self.model, action)()

        @invariant()
        def agree(self) -> None:
            assert self.real.state == self.model.state
            assert self.real.failure_count == self.model.failure_count

        def teardown(self) -> None:
            self.fleet.close()

    run_state_machine_as_test(
        Machine, settings=settings(max_examples=60, stateful_step_count=30, deadline=None)
    )
