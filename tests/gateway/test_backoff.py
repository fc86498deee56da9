"""gateway.backoff: the one pause every retry loop takes."""

from __future__ import annotations

import asyncio

from gateway.backoff import Backoff


def test_delays_double_up_to_the_cap_and_a_success_starts_over() -> None:
    backoff = Backoff(first=0.5, cap=3.0)
    delays = []
    for _ in range(5):
        delays.append(backoff.delay)
        backoff.failures += 1
    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff.succeeded() is True  # a recovery: it ends a run of failures
    assert backoff.delay == 0.5
    assert backoff.succeeded() is False


async def test_each_pause_is_between_half_its_delay_and_its_delay() -> None:
    loop = asyncio.get_running_loop()
    backoff = Backoff(first=0.02, cap=0.04)
    for expected in (0.02, 0.04, 0.04):
        assert backoff.delay == expected
        start = loop.time()
        await backoff.wait()
        paused = loop.time() - start
        assert expected / 2 - 0.005 <= paused
    assert backoff.failures == 3


def test_a_long_run_of_failures_stays_at_the_cap() -> None:
    backoff = Backoff(first=0.05, cap=2.0)
    backoff.failures = 10_000  # no overflow however long an outage lasts
    assert backoff.delay == 2.0
