"""Bounded in-process queues per channel, with cancellation-safe waiting."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from gateway.layers.base import copy_message
from gateway.types import Message

from .serializers import load_message

T = TypeVar("T")


class Mailbox(Generic[T]):
    """FIFO of items for one channel; ``put`` refuses beyond ``capacity``.

    Overflow policy: the caller decides (the pub/sub layer drops, counts and logs).
    A ``get`` cancelled just after an item was handed to it puts the item back at
    the head, so cancellation never loses a message.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.items: deque[T] = deque()
        self.waiters: deque[asyncio.Future[T]] = deque()

    def put(self, item: T) -> bool:
        """Hand ``item`` to a waiter or queue it; False if the mailbox is full."""
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(item)
                return True
        if len(self.items) >= self.capacity:
            return False
        self.items.append(item)
        return True

    async def get(self) -> T:
        if self.items:
            return self.items.popleft()
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            return await waiter  # put() has removed it from the waiters
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.items.appendleft(waiter.result())
            else:
                with contextlib.suppress(ValueError):
                    self.waiters.remove(waiter)
            raise

    def __len__(self) -> int:
        return len(self.items)


class Payload:
    """A received entry's bytes, decoded once for every channel it was delivered to.

    A group message reaches the members in one process as one entry; each member's
    receive decodes (and decrypts) it only if no other member did yet, and otherwise
    gets a copy of what was decoded (:func:`copy_message`). The last one of the
    ``shares`` takes the decoded message itself, so a message for one channel is
    never copied.
    """

    __slots__ = ("data", "group", "message", "shares")

    def __init__(self, data: bytes, shares: int, *, group: bool = False) -> None:
        self.data = data
        self.shares = shares
        #: A group message this process admitted (see ``FamilyReceiver``).
        self.group = group
        self.message: Message | None = None

    def decode(self, serializer: Any) -> Message:
        self.shares -= 1
        message = self.message
        if message is None:
            message = load_message(serializer, self.data)
            if self.shares <= 0:
                return message
            self.message = message
        elif self.shares <= 0:
            self.message = None
            return message
        return copy_message(message)


Entry = tuple[int, Payload]  # (deadline ms, payload)


class Mailboxes:
    """One :class:`Mailbox` of ``(deadline ms, payload)`` per channel, made on demand."""

    def __init__(self, capacity_of: Callable[[str], int]) -> None:
        self.capacity_of = capacity_of
        self.boxes: dict[str, Mailbox[Entry]] = {}

    def __getitem__(self, channel: str) -> Mailbox[Entry]:
        box = self.boxes.get(channel)
        if box is None:
            box = self.boxes[channel] = Mailbox(self.capacity_of(channel))
        return box

    def sweep(self, now_ms: int) -> list[str]:
        """Drop expired entries and forget idle empty mailboxes (channels come and go).

        Returns the channel of each dropped entry.
        """
        dropped = []
        for channel in list(self.boxes):
            box = self.boxes[channel]
            while box.items and box.items[0][0] < now_ms:
                box.items.popleft()
                dropped.append(channel)
            if not box.items and not box.waiters:
                del self.boxes[channel]
        return dropped

    def clear(self) -> None:
        for box in self.boxes.values():
            box.items.clear()
