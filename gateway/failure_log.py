"""Logging repeated failures without flooding the log.

An outage or an attack makes the same failure happen thousands of times a minute;
one traceback each would bury everything else. :class:`FailureLog` logs the first
failure of a kind in full (with its traceback), then counts the same kind for
``interval`` seconds and logs one line with the count when the interval ends.
A *kind* is the exception type and the line that raised it, so two different bugs
are never folded into one count.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

Kind = tuple[str, str]
Clock = Callable[[], float]


def failure_kind(error: BaseException) -> Kind:
    """The exception type and where it was raised (``file:line`` of the last frame)."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return type(error).__qualname__, where


@dataclass
class _Interval:
    until: float
    latest: BaseException
    count: int = 0


class FailureLog:
    """Logs failures on ``logger`` at ERROR: one traceback per kind, then counts.

    While a kind keeps failing, one line per ``interval`` says how often it did; once
    an interval passes without it, its next failure is logged at once again (in one
    line: its traceback was logged the first time).
    """

    def __init__(
        self, logger: logging.Logger, interval: float = 60.0, clock: Clock = time.monotonic
    ) -> None:
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self._seen: set[Kind] = set()
        self._intervals: dict[Kind, _Interval] = {}

    def failed(self, message: str, error: BaseException) -> None:
        """Log ``message`` and ``error`` now, or count it if its kind was just logged."""
        kind = failure_kind(error)
        current = self._intervals.get(kind)
        if current is not None:
            if self.clock() < current.until:
                current.count += 1
                current.latest = error
                return
            self._summarise(kind, message, current)  # its timer's loop is gone
        if kind in self._seen:
            self.logger.error("%s (%s: %s; traceback logged before)", message, kind[0], error)
        else:
            self._seen.add(kind)
            self.logger.error(message, exc_info=error)
        self._start(kind, message, error)

    def _start(self, kind: Kind, message: str, error: BaseException) -> None:
        interval = self._intervals[kind] = _Interval(self.clock() + self.interval, error)
        with contextlib.suppress(RuntimeError):  # no running loop: summarised on next failure
            asyncio.get_running_loop().call_later(
                self.interval, self._summarise, kind, message, interval
            )

    def _summarise(self, kind: Kind, message: str, interval: _Interval) -> None:
        if self._intervals.get(kind) is not interval:
            return
        del self._intervals[kind]
        if interval.count:
            self.logger.error(
                "%s: %d more times in the last %.0f s (latest %s: %s)",
                message,
                interval.count,
                self.interval,
                kind[0],
                interval.latest,
            )
            self._start(kind, message, interval.latest)
