"""Logging repeated failures without flooding the log.

An outage or an attack makes the same failure happen thousands of times a minute;
one line (or traceback) each would bury everything else. :class:`FailureLog` logs
the first event of a kind in full, then counts the same kind for ``interval``
seconds and logs one line with the count when the interval ends. For exceptions
(:meth:`FailureLog.failed`) a *kind* is the exception type and the line that raised
it, so two different bugs are never folded into one count, and the traceback is
logged once; other repeated events (:meth:`FailureLog.repeated`) name their kind.
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
    latest: str
    count: int = 0


class FailureLog:
    """Logs on ``logger`` at ``level``: the first of a kind in full, then counts.

    While a kind keeps happening, one line per ``interval`` says how often it did;
    once an interval passes without it, its next occurrence is logged at once again
    (in one line: an exception's traceback is logged only the first time).
    """

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 60.0,
        clock: Clock = time.monotonic,
        level: int = logging.ERROR,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self.level = level
        self._seen: set[Kind] = set()
        self._intervals: dict[Kind, _Interval] = {}

    def failed(self, message: str, error: BaseException) -> None:
        """Log ``message`` and ``error`` now, or count it if its kind was just logged."""
        kind = failure_kind(error)
        latest = f"{kind[0]}: {error}"
        if self._counted(kind, message, latest):
            return
        if kind in self._seen:
            self.logger.log(self.level, "%s (%s; traceback logged before)", message, latest)
        else:
            self._seen.add(kind)
            self.logger.log(self.level, message, exc_info=error)
        self._start(kind, message, latest)

    def repeated(self, kind: str, message: str) -> None:
        """Log ``message`` now, or count it if an event of ``kind`` was just logged."""
        key = ("", kind)
        if self._counted(key, kind, message):
            return
        self.logger.log(self.level, "%s", message)
        self._start(key, kind, message)

    def _counted(self, kind: Kind, message: str, latest: str) -> bool:
        """Count an occurrence within its kind's interval; False if it must be logged."""
        current = self._intervals.get(kind)
        if current is None:
            return False
        if self.clock() < current.until:
            current.count += 1
            current.latest = latest
            return True
        self._summarise(kind, message, current)  # its timer's loop is gone
        return False

    def _start(self, kind: Kind, message: str, latest: str) -> None:
        interval = self._intervals[kind] = _Interval(self.clock() + self.interval, latest)
        with contextlib.suppress(RuntimeError):  # no running loop: summarised on next event
            asyncio.get_running_loop().call_later(
                self.interval, self._summarise, kind, message, interval
            )

    def _summarise(self, kind: Kind, message: str, interval: _Interval) -> None:
        if self._intervals.get(kind) is not interval:
            return
        del self._intervals[kind]
        if interval.count:
            self.logger.log(
                self.level,
                "%s: %d more times in the last %.0f s (latest: %s)",
                message,
                interval.count,
                self.interval,
                interval.latest,
            )
            self._start(kind, message, interval.latest)
