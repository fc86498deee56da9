"""One timeout per connection, kept by one lazily re-armed timer.

A keep-alive HTTP connection waits for a head, then for nothing, then for the next
request, on every request. Moving one timer each time would cost two timers per
request; :class:`LazyTimer` keeps a timer that fires no later than the deadline and,
when it fires early because the deadline moved, re-arms for the new one. A busy
connection thus re-arms about once per timeout, not twice per request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

#: A timer may fire this early (uvloop counts milliseconds): not worth re-arming for.
SLACK = 0.001


class LazyTimer:
    """Calls ``expired()`` once the loop time reaches the last deadline :meth:`set`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, expired: Callable[[], None]) -> None:
        self._loop = loop
        self._expired = expired
        self._timer: asyncio.TimerHandle | None = None  # fires at or before _deadline
        self._deadline = 0.0

    def set(self, deadline: float) -> None:
        """Time out at ``deadline`` (loop time), keeping the timer if it fires no later."""
        self._deadline = deadline
        timer = self._timer
        if timer is not None:
            if timer.when() <= deadline:
                return
            timer.cancel()
        self._timer = self._loop.call_at(deadline, self._fire)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        if self._loop.time() < self._deadline - SLACK:
            self.set(self._deadline)  # the deadline moved since this timer was set
        else:
            self._expired()
