"""The pause between retries of every reconnect and retry loop.

One helper for all of them (the Redis layer's receive loops and outage probe, the
MQTT bridge's reconnects, a worker replacing an instance, the Telegram client's
retries and the poller): delays double from ``first`` to ``cap`` seconds while the
failures continue, and each pause is jittered down to as little as half its delay,
so processes that lost the same server do not all come back at the same instant.
"""

from __future__ import annotations

import asyncio
import random


class Backoff:
    """Exponential backoff with jitter; :meth:`succeeded` starts it over."""

    def __init__(self, first: float = 0.05, cap: float = 2.0) -> None:
        self.first = first
        self.cap = cap
        self.failures = 0

    @property
    def delay(self) -> float:
        """The longest the next :meth:`wait` pauses, in seconds (what a log line says)."""
        return min(self.cap, self.first * 2.0 ** min(self.failures, 32))

    async def wait(self) -> None:
        """Pause after one more failure."""
        delay = self.delay
        self.failures += 1
        await asyncio.sleep(delay * random.uniform(0.5, 1.0))

    def succeeded(self) -> bool:
        """Start over; True when this success ends a run of failures (a recovery)."""
        recovered = self.failures > 0
        self.failures = 0
        return recovered
