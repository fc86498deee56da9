"""Fire-and-forget tasks a server starts: kept referenced, failures logged, ended at stop.

``asyncio`` keeps only weak references to tasks, so a task nobody holds may vanish
mid-flight; and an exception nobody retrieves is logged only when the task is
garbage-collected, far from its cause. :class:`BackgroundTasks` holds each task
until it is done, logs a failure at once, and cancels what is left at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any


class BackgroundTasks:
    """The tasks a server spawned and does not wait for."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self._logger = logger
        self._what = what
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        """Run ``coroutine`` as a task held until it is done."""
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._logger.error("%s background task failed", self._what, exc_info=task.exception())

    async def cancel(self) -> None:
        """Cancel every task still running and wait until they have ended."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
