"""protocols.background: tasks held until done, failures logged at once, cancelled at stop."""

from __future__ import annotations

import asyncio
import logging

from protocols.background import BackgroundTasks

WAIT = 5.0


class Records(logging.Handler):
    """Log records, awaitable as they come."""

    def __init__(self) -> None:
        super().__init__()
        self.queue: asyncio.Queue[logging.LogRecord] = asyncio.Queue()

    def emit(self, record: logging.LogRecord) -> None:
        self.queue.put_nowait(record)


async def test_a_task_is_held_until_done_and_a_failure_is_logged() -> None:
    logger = logging.getLogger("test.background")
    records = Records()
    logger.addHandler(records)
    tasks = BackgroundTasks(logger, "test")

    async def works() -> None:
        pass

    async def fails() -> None:
        raise RuntimeError("boom")

    try:
        tasks.spawn(works())
        tasks.spawn(fails())
        assert len(tasks) == 2
        async with asyncio.timeout(WAIT):
            record = await records.queue.get()
    finally:
        logger.removeHandler(records)
    assert record.getMessage() == "test background task failed"
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)
    assert len(tasks) == 0  # both done, neither held any more


async def test_cancel_ends_what_still_runs() -> None:
    tasks = BackgroundTasks(logging.getLogger("test.background"), "test")
    started = asyncio.Event()
    ended = asyncio.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            ended.set()

    tasks.spawn(forever())
    async with asyncio.timeout(WAIT):
        await started.wait()
        await tasks.cancel()
    assert ended.is_set()
    assert len(tasks) == 0
