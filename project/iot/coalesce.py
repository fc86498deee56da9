"""Rate limits for live updates, pure: time is passed in, nothing sleeps or sends.

Two shapes, both keyed (per device, in practice) and both bounded:

- :class:`Throttle` keeps only the latest value per key and releases it at most
  once per ``interval`` (state summaries: a device publishing 100 messages a
  second yields at most 1/``interval`` summaries, and the last state always goes
  out, one interval after the previous one at the latest);
- :class:`Batches` keeps every item per key and releases them together
  ``interval`` after the first one (readings), or as soon as ``limit`` wait.

The caller (``project.iot.live``) asks :meth:`next_due` when to come back and
takes what is due then.
"""

from __future__ import annotations

import heapq
import itertools
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Throttle(Generic[K, V]):
    """The latest value per key, released at most once per ``interval`` per key.

    A value put after a quiet interval is due at once (leading edge); values that
    come faster replace each other and the last one is due ``interval`` after the
    previous release (trailing edge). Memory: one value per key with something
    pending, plus the release time of keys released within the last interval.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._pending: dict[K, V] = {}
        self._due: list[tuple[float, int, K]] = []
        self._released: OrderedDict[K, float] = OrderedDict()
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._pending)

    def put(self, key: K, value: V, now: float) -> None:
        if key not in self._pending:
            released = self._released.get(key)
            due = now if released is None else max(now, released + self.interval)
            heapq.heappush(self._due, (due, next(self._order), key))
        self._pending[key] = value

    def next_due(self) -> float | None:
        """When the earliest pending value is due, or None when nothing is pending."""
        return self._due[0][0] if self._due else None

    def take_due(self, now: float) -> list[tuple[K, V]]:
        released = []
        while self._due and self._due[0][0] <= now:
            _, _, key = heapq.heappop(self._due)
            released.append((key, self._pending.pop(key)))
            self._released[key] = now
            self._released.move_to_end(key)
        while self._released:
            key, at = next(iter(self._released.items()))
            if at + self.interval > now:
                break
            del self._released[key]
        return released

    def take_all(self) -> list[tuple[K, V]]:
        """Everything pending, due or not (a final flush)."""
        released = list(self._pending.items())
        self._pending.clear()
        self._due.clear()
        return released


@dataclass
class Batch(Generic[V]):
    items: list[V]
    due: float
    #: Items refused because the batch was full.
    dropped: int = 0
    #: Identifies the batch's entry in the due heap (a full batch gets a new one).
    entry: int = field(default=0, repr=False)


class Batches(Generic[K, V]):
    """Every item per key, released together ``interval`` after a batch's first item.

    A batch holding ``limit`` items is due at once, so nothing is lost while the
    caller keeps up. Items that find their batch full (the caller has not taken it
    yet) are dropped and counted in its ``dropped``: memory stays bounded by
    ``limit`` per key.
    """

    def __init__(self, interval: float, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.interval = interval
        self.limit = limit
        self._batches: dict[K, Batch[V]] = {}
        self._due: list[tuple[float, int, K]] = []
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._batches)

    def _schedule(self, key: K, batch: Batch[V], due: float) -> None:
        batch.due = due
        batch.entry = next(self._order)
        heapq.heappush(self._due, (due, batch.entry, key))

    def add(self, key: K, item: V, now: float) -> None:
        batch = self._batches.get(key)
        if batch is None:
            batch = self._batches[key] = Batch([], now + self.interval)
            self._schedule(key, batch, now + self.interval)
        if len(batch.items) >= self.limit:
            batch.dropped += 1
            return
        batch.items.append(item)
        if len(batch.items) == self.limit:
            self._schedule(key, batch, now)

    def next_due(self) -> float | None:
        """When the earliest batch is due, or None when nothing is pending."""
        while self._due:
            _, entry, key = self._due[0]
            batch = self._batches.get(key)
            if batch is not None and batch.entry == entry:
                return batch.due
            heapq.heappop(self._due)  # the batch was released or rescheduled
        return None

    def take_due(self, now: float) -> list[tuple[K, Batch[V]]]:
        released = []
        while (due := self.next_due()) is not None and due <= now:
            _, _, key = heapq.heappop(self._due)
            released.append((key, self._batches.pop(key)))
        return released

    def take_all(self) -> list[tuple[K, Batch[V]]]:
        """Every batch, due or not (a final flush)."""
        released = list(self._batches.items())
        self._batches.clear()
        self._due.clear()
        return released
