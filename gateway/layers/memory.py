"""The in-memory channel layer: the whole layer contract inside one process.

It is what a single-process deployment (``gateway run`` without ``REDIS_URL``)
and the test suite use, so it is complete rather than a toy:

* **Delivery.** At most once, first-in first-out per channel. Every message is
  deep-copied on the way in, as it would be serialized by a networked layer, so
  a sender mutating its dict afterwards changes nothing.
* **Expiry.** A message not received within ``expiry`` seconds is discarded
  (``stats.expired``); a group membership not renewed by ``group_add`` within
  ``group_expiry`` seconds ends. Time comes from a monotonic clock, injectable
  for tests (``clock=``).
* **Capacity.** A channel holds at most ``capacity`` messages, or the capacity of
  the first ``channel_capacity`` pattern its name matches (a glob string or a
  compiled regex). Overflow policy: ``send`` to a full channel raises
  :class:`~gateway.exceptions.ChannelFull`; ``group_send`` skips the full
  members, delivers to the others, counts each skipped one in
  ``stats.dropped_full`` and logs a warning naming the group.
* **Bounded memory.** Expired messages, ended memberships, empty groups and
  channels that hold nothing and have no receiver waiting are removed, found
  through two heaps ordered by expiry time, so cleaning costs nothing while
  nothing is due.
* **Any event loop, any thread.** Receivers wait on futures of their own loop and
  senders wake them thread-safely, so one layer object serves the server's loop
  and the short-lived loops ``async_to_sync`` creates in sync code alike.
* **Cancellation-safe receive.** A message leaves its queue only in the receiver
  that returns it: a cancelled ``receive`` loses nothing, and a wake-up it had
  already been given passes on to the next waiting receiver.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from re import Pattern
from typing import Any, ClassVar

from gateway.exceptions import ChannelFull
from gateway.layers.base import BaseChannelLayer, copy_message, message_copier
from gateway.layers.overflow import report_full_members
from gateway.layers.stats import LayerStats
from gateway.types import Message

logger = logging.getLogger("gateway.layers")

Clock = Callable[[], float]


class _Channel:
    """One channel's queued messages, their expiry times and its waiting receivers.

    The expiry times are a deque of their own beside the messages, not a tuple per
    message: a group broadcast queues one message on every member's channel, and
    each tuple would be one more object for the cyclic garbage collector to track,
    promote and traverse while thousands of them wait to be received.
    """

    __slots__ = ("expiries", "in_heap", "messages", "reader", "waiters")

    def __init__(self) -> None:
        self.messages: deque[Message] = deque()
        #: ``expiries[i]`` is when ``messages[i]`` expires (monotonic seconds).
        self.expiries: deque[float] = deque()
        #: Waiting ``receive`` calls, woken with None to take the next message.
        self.waiters: deque[asyncio.Future[None]] = deque()
        #: The future the channel's :class:`ChannelReader` waits on, if it does.
        self.reader: asyncio.Future[Message | None] | None = None
        self.in_heap = False

    def pop(self) -> Message:
        """The oldest message, taken off the queue with its expiry time."""
        self.expiries.popleft()
        return self.messages.popleft()


def _resolve(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class ChannelReader:
    """One channel of an :class:`InMemoryChannelLayer`, read by polling: a consumer's
    dispatch loop takes what is queued and otherwise waits on a future of its own,
    the same future it waits on for its scope. A message sent while the reader
    waits on the sender's loop and nothing is queued is handed over as the future's
    result, without being queued. A group broadcast then costs each member one
    wake-up of its task with the message in hand: no receive Task, no queueing.
    """

    __slots__ = ("channel", "layer")

    def __init__(self, layer: InMemoryChannelLayer, channel: str) -> None:
        self.layer = layer
        self.channel = channel

    def take(self) -> Message | None:
        """The next unexpired message, or None: ``receive`` without waiting."""
        with self.layer._lock:
            return self.layer._take_queued(self.channel)

    def wait(self, waiter: asyncio.Future[Message | None]) -> bool:
        """Resolve ``waiter`` when a message arrives: with the message itself when it
        is handed over, else with None (:meth:`take` it). False, and nothing
        registered, if a message is queued already."""
        layer = self.layer
        with layer._lock:
            state = layer._state(self.channel)
            if state.messages:
                return False
            current = state.reader
            if current is not None and not current.done():
                raise RuntimeError(f"{self.channel} already has a waiting reader")
            state.reader = waiter
            return True

    def unwait(self, waiter: asyncio.Future[Message | None]) -> None:
        """Undo :meth:`wait`. A message already handed to ``waiter`` and never read
        (its reader was cancelled) goes back to the front of the queue."""
        layer = self.layer
        with layer._lock:
            state = layer._channels.get(self.channel)
            if state is not None and state.reader is waiter:
                state.reader = None
                layer._forget_if_idle(self.channel, state)
            elif waiter.done() and not waiter.cancelled():
                message = waiter.result()
                if message is not None:
                    layer._put_back(self.channel, message)


class InMemoryChannelLayer(BaseChannelLayer):
    """A channel layer that keeps everything in this process's memory.

    ``InMemoryChannelLayer(expiry=60, group_expiry=86400, capacity=100,
    channel_capacity=None)`` takes Channels' ``CONFIG`` keys; ``clock`` (a
    monotonic ``() -> seconds``) is for tests.
    """

    extensions: ClassVar[list[str]] = ["groups", "flush"]

    def __init__(
        self,
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: Mapping[str | Pattern[str], int] | None = None,
        *,
        clock: Clock = time.monotonic,
        **unused: Any,
    ) -> None:
        if unused:
            # Channels accepts and ignores them too, so a CONFIG written for a
            # networked layer (``hosts`` ...) keeps working; but not silently.
            logger.warning(
                "InMemoryChannelLayer ignores the CONFIG key(s) %s", ", ".join(sorted(unused))
            )
        if expiry <= 0 or group_expiry <= 0:
            raise ValueError("expiry and group_expiry must be positive numbers of seconds")
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        super().__init__(expiry=expiry, capacity=capacity, channel_capacity=channel_capacity)
        self.group_expiry = group_expiry
        self.stats = LayerStats()
        self._clock = clock
        self._lock = threading.Lock()
        self._channels: dict[str, _Channel] = {}
        self._groups: dict[str, dict[str, float]] = {}
        # (due time, tie-breaker, name): a channel's entry is due no later than its
        # oldest message expires, a group's no later than its first member does.
        self._channel_heap: list[tuple[float, int, str]] = []
        self._group_heap: list[tuple[float, int, str]] = []
        self._groups_in_heap: set[str] = set()
        self._sequence = itertools.count()
        #: Names this layer's process-local channels (the part before ``!``).
        self._local_id = secrets.token_hex(6)

    # Channels -------------------------------------------------------------------

    async def send(self, channel: str, message: Message) -> None:
        """Queue ``message`` on ``channel``; raise ``ChannelFull`` if it is at capacity."""
        self._require_message(message)
        self.require_valid_channel_name(channel)
        loop = asyncio.get_running_loop()
        with self._lock:
            now = self._clock()
            self._clean(now)
            self._deliver(channel, copy_message(message), now, loop)

    async def receive(self, channel: str) -> Message:
        """The next message on ``channel``, waiting for one to arrive."""
        self.require_valid_channel_name(channel)
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                message = self._take_queued(channel)
                if message is not None:
                    return message
                state = self._state(channel)
                waiter: asyncio.Future[None] = loop.create_future()
                state.waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                # Only cancellation: a coroutine closed by the garbage collector must
                # not take the lock, which its own thread may be holding right then.
                with self._lock:
                    try:
                        state.waiters.remove(waiter)
                    except ValueError:
                        # A sender already chose this receiver: hand the wake-up on.
                        self._wake_one(state, loop)
                    self._forget_if_idle(channel, state)
                raise

    def _local_reader(self, channel: str) -> ChannelReader:
        """A reader of ``channel`` for a consumer's dispatch loop (``gateway.consumer``):
        it takes messages and waits for them without a Task per message."""
        self.require_valid_channel_name(channel)
        return ChannelReader(self, channel)

    async def new_channel(self, prefix: str = "specific") -> str:
        """A new, unused process-local channel name: ``<prefix>.<layer id>!<random>``."""
        while True:
            name = f"{prefix}.{self._local_id}!{secrets.token_hex(8)}"
            self.require_valid_channel_name(name)
            if name not in self._channels:
                return name

    # Groups -----------------------------------------------------------------------

    async def group_add(self, group: str, channel: str) -> None:
        """Add ``channel`` to ``group`` (or renew its membership) for ``group_expiry`` s."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        with self._lock:
            now = self._clock()
            self._clean(now)
            expires = now + self.group_expiry
            self._groups.setdefault(group, {})[channel] = expires
            if group not in self._groups_in_heap:
                self._groups_in_heap.add(group)
                heapq.heappush(self._group_heap, (expires, next(self._sequence), group))

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove ``channel`` from ``group``; nothing happens if it is not a member."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        with self._lock:
            members = self._groups.get(group)
            if members is not None:
                members.pop(channel, None)
                if not members:
                    del self._groups[group]

    async def group_send(self, group: str, message: Message) -> None:
        """Send ``message`` to every member of ``group``, skipping (and counting) full ones."""
        self._require_message(message)
        self.require_valid_group_name(group)
        loop = asyncio.get_running_loop()
        copier = message_copier(message)
        full: list[str] = []
        with self._lock:
            now = self._clock()
            self._clean(now)
            members = list(self._groups.get(group, ()))
            self.stats.group_sent += 1
            for channel in members:
                try:
                    self._deliver(channel, copier(message), now, loop)
                except ChannelFull:
                    full.append(channel)
        if full:
            report_full_members(group, full, len(members))

    # Housekeeping -----------------------------------------------------------------

    async def flush(self) -> None:
        """Drop every queued message and every group; waiting receivers keep waiting."""
        with self._lock:
            for name, state in list(self._channels.items()):
                state.messages.clear()
                state.expiries.clear()
                state.in_heap = False
                self._forget_if_idle(name, state)
            self._groups.clear()
            self._channel_heap.clear()
            self._group_heap.clear()
            self._groups_in_heap.clear()

    async def close(self) -> None:
        """Nothing to release: the layer holds no connections or tasks.

        Queued messages stay, as they stay in Redis when a Redis layer closes,
        and the layer remains usable.
        """

    def occupancy(self) -> dict[str, int]:
        """How much the layer holds right now (channels, messages, groups, memberships)."""
        with self._lock:
            self._clean(self._clock())
            return {
                "channels": len(self._channels),
                "messages": sum(len(state.messages) for state in self._channels.values()),
                "groups": len(self._groups),
                "memberships": sum(len(members) for members in self._groups.values()),
            }

    # Internals (called with the lock held) ----------------------------------------

    @staticmethod
    def _require_message(message: object) -> None:
        if not isinstance(message, dict):
            raise TypeError(f"A message must be a dict, not {type(message).__name__}")

    def _state(self, channel: str) -> _Channel:
        """``channel``'s state, made if it has none."""
        state = self._channels.get(channel)
        if state is None:
            state = self._channels[channel] = _Channel()
        return state

    def _take_queued(self, channel: str) -> Message | None:
        """The next unexpired message queued on ``channel``, or None."""
        self._clean(self._clock())
        state = self._channels.get(channel)
        if state is None or not state.messages:
            return None
        message = state.pop()
        self.stats.received += 1
        self._forget_if_idle(channel, state)
        return message

    def _deliver(
        self, channel: str, message: Message, now: float, loop: asyncio.AbstractEventLoop
    ) -> None:
        """Give ``message`` (the receiver's own copy) to ``channel``'s reader if it is
        waiting on ``loop`` with nothing queued, else queue it and wake a receiver."""
        state = self._state(channel)
        reader = state.reader
        if (
            reader is not None
            and not state.messages
            and not reader.done()
            and reader.get_loop() is loop
        ):
            state.reader = None
            reader.set_result(message)
            self.stats.sent += 1
            self.stats.received += 1
            return
        self._queue(channel, state, message, now)
        if reader is not None:
            state.reader = None
            if self._wake(reader, loop):
                return
        self._wake_one(state, loop)

    def _queue(self, channel: str, state: _Channel, message: Message, now: float) -> None:
        if len(state.messages) >= self.get_capacity(channel):
            self.stats.dropped_full += 1
            self._forget_if_idle(channel, state)
            raise ChannelFull(channel)
        expires = now + self.expiry
        state.messages.append(message)
        state.expiries.append(expires)
        self.stats.sent += 1
        self._expire_later(channel, state, expires)

    def _put_back(self, channel: str, message: Message) -> None:
        """Queue ``message`` again at the front of ``channel``, where it was taken from."""
        state = self._state(channel)
        expires = state.expiries[0] if state.expiries else self._clock() + self.expiry
        state.messages.appendleft(message)
        state.expiries.appendleft(expires)
        self.stats.received -= 1
        self._expire_later(channel, state, expires)

    def _expire_later(self, channel: str, state: _Channel, expires: float) -> None:
        """Have :meth:`_clean` look at ``channel`` by ``expires``, its oldest message's expiry."""
        if not state.in_heap:
            state.in_heap = True
            heapq.heappush(self._channel_heap, (expires, next(self._sequence), channel))

    def _wake_one(self, state: _Channel, loop: asyncio.AbstractEventLoop) -> None:
        """Wake the longest-waiting live receiver of ``state``, on its own loop."""
        while state.waiters:
            if self._wake(state.waiters.popleft(), loop):
                return

    @staticmethod
    def _wake(waiter: asyncio.Future[Any], loop: asyncio.AbstractEventLoop) -> bool:
        """Resolve ``waiter`` with None, on its own loop; False if it is done or its
        loop is closed (then it wakes nobody)."""
        if waiter.done():
            return False
        waiter_loop = waiter.get_loop()
        if waiter_loop is loop:
            waiter.set_result(None)
            return True
        try:
            waiter_loop.call_soon_threadsafe(_resolve, waiter)
        except RuntimeError:
            return False
        return True

    def _forget_if_idle(self, name: str, state: _Channel) -> None:
        idle = state.reader is None and not (state.messages or state.waiters or state.in_heap)
        if idle and self._channels.get(name) is state:
            del self._channels[name]

    def _clean(self, now: float) -> None:
        """Drop what has expired by ``now``: messages, memberships, empty containers."""
        heap = self._channel_heap
        while heap and heap[0][0] <= now:
            _, _, name = heapq.heappop(heap)
            state = self._channels.get(name)
            if state is None:
                continue
            expiries = state.expiries
            while expiries and expiries[0] <= now:
                state.pop()
                self.stats.expired += 1
            if expiries:
                heapq.heappush(heap, (expiries[0], next(self._sequence), name))
            else:
                state.in_heap = False
                self._forget_if_idle(name, state)
        groups = self._group_heap
        while groups and groups[0][0] <= now:
            _, _, group = heapq.heappop(groups)
            members = self._groups.get(group)
            if members is None:
                self._groups_in_heap.discard(group)
                continue
            for channel in [c for c, expires in members.items() if expires <= now]:
                del members[channel]
            if members:
                heapq.heappush(groups, (min(members.values()), next(self._sequence), group))
            else:
                del self._groups[group]
                self._groups_in_heap.discard(group)
