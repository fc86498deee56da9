"""The MQTT server's two queues, pure and loop-free: what arrived, what goes again.

:class:`PendingQueue` holds the messages a link received and dispatch has not yet
routed; at its bound it says to pause the link, and to resume it once half has
drained. :class:`RedeliveryQueue` holds the deliveries an ended instance never
handled, for a fresh instance of the same key, and the time before which none of
them may go (the channel layer was unreachable).

Both are :class:`~collections.deque` s, so the dispatch loop's per-message checks
and pops stay the deque's own; add to them only with :meth:`PendingQueue.put` and
:meth:`RedeliveryQueue.add`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable
from typing import TypeVar

T = TypeVar("T")
D = TypeVar("D")


class PendingQueue(deque[T]):
    """Received, not yet routed; pause reading at ``bound``, resume at half of it."""

    def __init__(self, bound: int) -> None:
        if bound < 2:
            raise ValueError("inflight must be at least 2")
        super().__init__()
        self.bound = bound
        self.low = bound // 2
        #: Whether the link is paused by this queue's bound.
        self.paused = False

    def put(self, item: T) -> bool:
        """Queue ``item``; True if the bound is reached now: pause reading."""
        self.append(item)
        if len(self) >= self.bound and not self.paused:
            self.paused = True
            return True
        return False

    def resume(self) -> bool:
        """True once the paused queue has drained to half its bound: resume reading."""
        if self.paused and len(self) <= self.low:
            self.paused = False
            return True
        return False


class RedeliveryQueue(deque[tuple[Hashable, D]]):
    """Deliveries to give a key's fresh instance, in order, not before ``due``."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        #: Seconds nothing is redelivered after :meth:`hold`.
        self.delay = delay
        #: Loop time before which nothing is redelivered (the channel layer is down).
        self.due = 0.0

    def hold(self, now: float) -> None:
        """The channel layer is down: redeliver nothing for :attr:`delay` from ``now``."""
        self.due = now + self.delay

    def add(self, key: Hashable, deliveries: Iterable[D]) -> None:
        """Queue ``deliveries`` for ``key``'s next instance, after those already queued."""
        self.extend((key, delivery) for delivery in deliveries)

    def wait(self, now: float) -> float:
        """Seconds to wait before redelivering (0: now, or nothing is queued)."""
        return self.due - now if self and now < self.due else 0.0
