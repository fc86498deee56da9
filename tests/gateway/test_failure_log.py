"""gateway.failure_log: one traceback per kind of failure, then counts per interval."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gateway.failure_log import FailureLog

LOGGER = "tests.failure_log"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fail(error: Exception) -> Exception:
    """``error`` raised and caught, so it has a traceback."""
    try:
        raise error
    except Exception as caught:
        return caught


def boom(n: int) -> Exception:
    return fail(RuntimeError(f"boom {n}"))


async def test_repeated_failures_log_one_traceback_then_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger=LOGGER)
    clock = Clock()
    failures = FailureLog(logging.getLogger(LOGGER), interval=60, clock=clock)
    for n in range(1000):
        failures.failed("consumer raised", boom(n))
    assert [r.getMessage() for r in caplog.records] == ["consumer raised"]
    assert caplog.records[0].exc_info is not None

    clock.now += 61  # the interval is over: the next failure brings the count
    failures.failed("consumer raised", boom(1000))
    messages = [r.getMessage() for r in caplog.records]
    assert messages[1] == (
        "consumer raised: 999 more times in the last 60 s (latest: RuntimeError: boom 999)"
    )
    assert messages[2] == "consumer raised (RuntimeError: boom 1000; traceback logged before)"
    assert all(r.exc_info is None for r in caplog.records[1:])


async def test_the_count_is_logged_when_the_interval_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger=LOGGER)
    summary = asyncio.Event()
    handler = logging.Handler()
    handler.emit = lambda record: summary.set() if "more times" in record.getMessage() else None  # type: ignore[method-assign]
    logger = logging.getLogger(LOGGER)
    logger.addHandler(handler)
    try:
        failures = FailureLog(logger, interval=0.05)
        for n in range(3):
            failures.failed("handler failed", boom(n))
        async with asyncio.timeout(5):
            await summary.wait()
    finally:
        logger.removeHandler(handler)
    assert caplog.records[1].getMessage().startswith("handler failed: 2 more times")


async def test_different_failures_are_never_folded_together(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger=LOGGER)
    failures = FailureLog(logging.getLogger(LOGGER), clock=Clock())
    failures.failed("a", boom(1))
    failures.failed("b", fail(ValueError("other type")))
    try:
        raise RuntimeError("same type, raised on another line")
    except RuntimeError as error:
        failures.failed("c", error)
    assert [r.getMessage() for r in caplog.records] == ["a", "b", "c"]
    assert all(r.exc_info for r in caplog.records)


async def test_repeated_events_of_a_named_kind_are_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    clock = Clock()
    log = FailureLog(logging.getLogger(LOGGER), interval=60, clock=clock, level=logging.WARNING)
    for n in range(50):
        log.repeated("room full", f"group_send to 'room': member {n} full")
    log.repeated("lobby full", "group_send to 'lobby': member full")
    clock.now += 61
    log.repeated("room full", "group_send to 'room': member 50 full")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "group_send to 'room': member 0 full"),
        (logging.WARNING, "group_send to 'lobby': member full"),
        (
            logging.WARNING,
            "room full: 49 more times in the last 60 s "
            "(latest: group_send to 'room': member 49 full)",
        ),
        (logging.WARNING, "group_send to 'room': member 50 full"),
    ]
