"""State changes are logged on the `aiocircuitbreaker` logger, and can be silenced."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import subprocess
import sys

import pytest

from aiocircuitbreaker import CircuitBreaker, CountWindow, HalfOpen, RatePolicy
from aiocircuitbreaker.testing import FakeClock

from .conftest import DependencyDown

pytestmark = pytest.mark.asyncio


def fail(breaker: CircuitBreaker) -> None:
    with pytest.raises(DependencyDown), breaker:
        raise DependencyDown("down")


def messages(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "aiocircuitbreaker"]


async def test_open_half_open_close_are_logged(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Opening logs a WARNING with name, reason and timeout; the rest log at INFO."""
    caplog.set_level(logging.INFO, logger="aiocircuitbreaker")
    breaker = CircuitBreaker(failure_threshold=2, recovery_timeout=30, name="db", clock=clock)
    fail(breaker)
    assert messages(caplog) == []
    fail(breaker)
    clock.advance(30)
    with breaker:
        pass
    assert messages(caplog) == [
        (
            logging.WARNING,
            (
                "circuit breaker 'db' opened: 2 consecutive failures; rejecting calls for "
                "30.000 s (last failure: DependencyDown('down'))"
            ),
        ),
        (logging.INFO, "circuit breaker 'db' half-open: the open period is over; admitting probes"),
        (logging.INFO, "circuit breaker 'db' closed: half-open probe success"),
    ]


async def test_failed_probe_and_reset_are_logged(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A failed probe re-opens (WARNING); reset() of an open breaker closes (INFO)."""
    caplog.set_level(logging.INFO, logger="aiocircuitbreaker")
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=10, name="api", clock=clock)
    fail(breaker)
    clock.advance(10)
    fail(breaker)
    breaker.reset()
    breaker.reset()  # already closed: nothing to say
    logged = messages(caplog)
    assert logged[2][0] == logging.WARNING
    assert logged[2][1].startswith("circuit breaker 'api' opened: half-open probe failure;")
    assert logged[3] == (logging.INFO, "circuit breaker 'api' closed: reset()")
    assert len(logged) == 4


async def test_policy_and_probe_timeouts_are_explained(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The reason names the rate policy, or a probe that ran out of time."""
    caplog.set_level(logging.INFO, logger="aiocircuitbreaker")
    breaker = CircuitBreaker(
        recovery_timeout=10,
        name="rates",
        clock=clock,
        policy=RatePolicy(CountWindow(1)),
        half_open=HalfOpen(max_duration=5),
    )
    fail(breaker)
    assert "opened: the rate policy tripped" in messages(caplog)[0][1]
    clock.advance(10)
    context = contextvars.copy_context()
    context.run(breaker.__enter__)  # a probe that hangs
    clock.advance(40)  # it ran out of time at +5, and that new open period ended at +15
    with breaker:  # the next caller finds both and probes
        pass
    context.run(breaker.__exit__, None, None, None)  # the hung probe's late outcome: ignored
    # Two lazy transitions found at once are logged one by one.
    assert messages(caplog)[-3][1].startswith(
        "circuit breaker 'rates' opened: a probe ran out of time (HalfOpen.max_duration); "
    )
    assert messages(caplog)[-2][1] == (
        "circuit breaker 'rates' half-open: the open period is over; admitting probes"
    )
    assert messages(caplog)[-1][1] == "circuit breaker 'rates' closed: half-open probe success"


async def test_probe_timeout_found_at_admission(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A probe that ran out of time is reported when the next caller arrives."""
    caplog.set_level(logging.INFO, logger="aiocircuitbreaker")
    breaker = CircuitBreaker(
        failure_threshold=1,
        recovery_timeout=10,
        name="slow",
        clock=clock,
        half_open=HalfOpen(max_duration=5),
    )
    fail(breaker)
    clock.advance(10)
    release = asyncio.Event()

    @breaker
    async def hang() -> None:
        await release.wait()

    probe = asyncio.create_task(hang())
    await asyncio.sleep(0)
    clock.advance(5)
    with pytest.raises(Exception, match="OPEN"), breaker:
        pass  # pragma: no cover - rejected
    clock.advance(30)  # past the expiry and past the new open period too
    with breaker:
        pass
    release.set()
    await probe
    texts = [m for _, m in messages(caplog)]
    assert "opened: a probe ran out of time (HalfOpen.max_duration)" in texts[2]
    assert texts[3].endswith("half-open: the open period is over; admitting probes")


async def test_logging_can_be_silenced(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    """Raising the logger's level silences state changes, the usual way."""
    caplog.set_level(logging.INFO)
    logging.getLogger("aiocircuitbreaker").setLevel(logging.ERROR)
    try:
        fail(CircuitBreaker(failure_threshold=1, clock=clock))
    finally:
        logging.getLogger("aiocircuitbreaker").setLevel(logging.NOTSET)
    assert messages(caplog) == []


async def test_unconfigured_logging_prints_nothing() -> None:
    """In a program that configured no logging, a state change writes nothing to stderr."""
    program = (
        "from aiocircuitbreaker import CircuitBreaker\n"
        "breaker = CircuitBreaker(failure_threshold=1, name='quiet')\n"
        "try:\n"
        "    with breaker:\n"
        "        raise OSError\n"
        "except OSError:\n"
        "    pass\n"
        "assert breaker.opened\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
