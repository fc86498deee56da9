"""When a request body that arrives too slowly is given up (pure, time passed in).

A body sent a byte every few seconds would otherwise hold a connection, a task and
the application's attention forever (a "slow POST" attack). The rule is Apache
mod_reqtimeout's ``body=20,MinRate=500``, in two parts:

- at most ``timeout`` seconds may pass between two pieces of the body;
- after the first ``timeout`` seconds the body must average ``min_rate`` bytes per
  second: every ``min_rate`` bytes received buy one more second.

Time during which the server itself is not reading (backpressure: the application
has not taken what it was sent, or a pipelined request waits its turn) does not
count, and a pause restarts the gap between pieces.
"""

from __future__ import annotations


class BodyDeadline:
    __slots__ = ("_last", "_min_rate", "_paused_at", "_received", "_start", "_timeout")

    def __init__(self, timeout: float, min_rate: float, now: float) -> None:
        self._timeout = timeout
        self._min_rate = min_rate
        self._start = now
        self._last = now
        self._received = 0
        self._paused_at: float | None = None

    def received(self, size: int, now: float) -> None:
        self._received += size
        self._last = now

    def pause(self, now: float) -> None:
        if self._paused_at is None:
            self._paused_at = now

    def resume(self, now: float) -> None:
        if self._paused_at is not None:
            self._start += now - self._paused_at
            self._last = now
            self._paused_at = None

    @property
    def paused(self) -> bool:
        return self._paused_at is not None

    def deadline(self) -> float:
        """The time the body times out unless more of it arrives first."""
        gap = self._last + self._timeout
        rate = self._start + self._timeout + self._received / self._min_rate
        return min(gap, rate)

    def expired(self, now: float) -> bool:
        return not self.paused and now >= self.deadline()
