"""One shared receive loop per process-local channel family.

All ``new_channel()`` names of a layer share a family (``specific.<id>!``) and one
Redis inbox list. One task per family and event loop pops that inbox in batches
(``BLMPOP ... COUNT``) and hands each entry to the waiting ``receive()`` of its
channel, or buffers it per channel. Capacity is counted per channel in Redis (the
family's count hash) from the send until the consumer's ``receive()`` takes the
message, so buffered messages count too and a buffer can never exceed its channel's
capacity. Counts are decremented in batches ("acks"): carried by the loop's next
pop (same write), by this process's next send to the family, or else flushed by a
background task.

A ``group_send`` stores one inbox entry per family listing its members, and the loop
admits it here for each member within the member's capacity: a group message
crosses the network, and costs Redis, once per receiving process, not once per
member. The members it admitted are counted in Redis with the acks (net: a member
that received it meanwhile costs nothing). A message sent to a member in the
meantime was accepted against a count without them; should it find the member's
buffer full, it takes the place of the newest group message buffered there, which
that member is then counted as having missed: a full member misses group messages,
never sent ones, and never holds more than its capacity.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from gateway.backoff import Backoff
from gateway.layers.overflow import report_dropped
from gateway.layers.stats import LayerStats

from . import scripts
from .availability import report_receive_failure
from .connection import BlockingReader, Lease, Shard
from .errors import UNREACHABLE, raise_if_cancelling, translate_errors
from .keys import counts_key, decode_entry, encode_entry, inbox_key
from .mailbox import Entry, Mailbox, Mailboxes, Payload

logger = logging.getLogger("gateway.layers.redis")

#: Entries popped from the inbox per round trip.
BATCH = 256
#: Seconds a BLMPOP waits; also how often the loop sweeps expired buffered messages.
BLOCK_SECONDS = 5


class FamilyReceiver:
    """Receives every channel of one process-local family, in one event loop.

    Each channel's buffer is a :class:`Mailbox` bounded by the channel's capacity.
    Redis counts keep a buffer within it; if they were lost (a Redis restart while
    messages were buffered), an entry beyond it is dropped, counted and logged.
    """

    def __init__(
        self,
        shard: Shard,
        prefix: str,
        family: str,
        reader: BlockingReader,
        now_ms: Callable[[], int],
        ttl_ms: int,
        capacity_of: Callable[[str], int],
        stats: LayerStats,
    ) -> None:
        self.shard = shard
        self.family = family
        self.inbox = inbox_key(prefix, family)
        self.counts = counts_key(prefix, family)
        self.reader = reader
        self.now_ms = now_ms
        self.ttl_ms = ttl_ms
        self.stats = stats
        self.mailboxes = Mailboxes(capacity_of)
        self.pending_acks: dict[str, int] = {}
        self.ack_flush: asyncio.Task[None] | None = None
        #: Ack batches written but not yet confirmed by Redis.
        self.acks_in_flight: set[asyncio.Future[None]] = set()
        #: True while the loop waits in BLMPOP (it will not carry acks soon).
        self.popping = False
        self.lease: Lease | None = None
        self.task = asyncio.ensure_future(self._run())

    # Consumers ------------------------------------------------------------------

    async def receive(self, channel: str) -> Payload:
        """The next unexpired payload for ``channel``; cancellation-safe."""
        mailbox = self.mailboxes[channel]
        while True:
            deadline, payload = await mailbox.get()
            self._ack(channel)
            if deadline >= self.now_ms():
                return payload
            self.stats.expired += 1

    def _deliver(self, entry: bytes) -> None:
        deadline, names, data = decode_entry(entry)
        channels = names.split(",")
        if not channels[0]:  # ",a,b": a group message, admitted here
            self._admit(deadline, channels[1:], data)
            return
        payload = Payload(data, len(channels))
        for channel in channels:
            mailbox = self.mailboxes[channel]
            if mailbox.put((deadline, payload)):
                continue
            if self._evict_group_message(channel, mailbox):
                mailbox.put((deadline, payload))
            else:
                self.stats.dropped_full += 1
                self._ack(channel)
                report_dropped(channel, "over capacity; Redis lost its counts?")

    def _admit(self, deadline: int, channels: list[str], data: bytes) -> None:
        """Give a group message to each of ``channels`` that has room, and count it."""
        payload = Payload(data, 0, group=True)
        for channel in channels:
            mailbox = self.mailboxes[channel]
            if mailbox.put((deadline, payload)):
                payload.shares += 1
                self.pending_acks[channel] = self.pending_acks.get(channel, 0) - 1
            else:
                self._missed(channel, mailbox)

    def _missed(self, channel: str, mailbox: Mailbox[Entry]) -> None:
        """``channel``'s member misses a group message: its capacity is full."""
        self.stats.dropped_full += 1
        report_dropped(channel, f"at capacity ({mailbox.capacity}), group message")

    def _evict_group_message(self, channel: str, mailbox: Mailbox[Entry]) -> bool:
        """Drop the newest group message buffered for ``channel``; False if none is.

        A sent message finding its channel full can only be due to group messages
        admitted here that Redis had not counted yet when it accepted the send; the
        newest buffered one is among them.
        """
        items = mailbox.items
        for index in range(len(items) - 1, -1, -1):
            payload = items[index][1]
            if payload.group:
                del items[index]
                payload.shares -= 1
                self._ack(channel)
                self._missed(channel, mailbox)
                return True
        return False

    def clear(self) -> None:
        """Forget buffered messages and pending acks (the layer was flushed)."""
        self.mailboxes.clear()
        self.pending_acks.clear()

    # Acks -----------------------------------------------------------------------

    def _ack(self, channel: str) -> None:
        self.pending_acks[channel] = self.pending_acks.get(channel, 0) + 1
        if self.popping:  # else the loop is about to pop again and carries them
            self._ack_flush_soon()

    def _ack_flush_soon(self) -> None:
        if self.ack_flush is None or self.ack_flush.done():
            self.ack_flush = asyncio.ensure_future(self._flush_acks())

    def take_acks(self) -> dict[str, int]:
        """Pending acks (channel -> count, none zero), removed from the pending set."""
        acks = {channel: count for channel, count in self.pending_acks.items() if count}
        self.pending_acks = {}
        return acks

    def restore_acks(self, acks: dict[str, int]) -> None:
        """Put back acks of a call that failed, which Redis may or may not have applied,
        for a later call to carry: those that bring a channel's count down.

        Applied twice, such an ack leaves the count low by what it took (never below
        zero), and right again once the channel is empty; lost, it would leave the
        count high for good (a family in use never expires), and the channel would
        refuse sends it has room for. A negative ack (group messages admitted) is the
        other way round, so it is dropped.
        """
        for channel, count in acks.items():
            if count > 0:
                self.pending_acks[channel] = self.pending_acks.get(channel, 0) + count

    async def settle(self) -> bool:
        """Wait for acks on their way to Redis; True if there were any.

        A send that found its channel full retries once after this, since the
        capacity it saw may not have included acks this process had already sent.
        """
        if not self.acks_in_flight:
            return False
        await asyncio.gather(*self.acks_in_flight, return_exceptions=True)
        return True

    def _track(self) -> asyncio.Future[None]:
        confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.acks_in_flight.add(confirmed)
        confirmed.add_done_callback(self.acks_in_flight.discard)
        return confirmed

    async def _flush_acks(self) -> None:
        await asyncio.sleep(0)  # let a send in this turn carry the acks instead
        while acks := self.take_acks():
            confirmed = self._track()
            try:
                await self._apply_acks(acks)
            except Exception:
                logger.debug(
                    "Could not decrement counts of %s; the next pop or send carries them",
                    self.family,
                    exc_info=True,
                )
                self.restore_acks(acks)
                return
            finally:
                confirmed.set_result(None)

    async def _apply_acks(self, acks: dict[str, int]) -> None:
        """Apply ``acks`` now, loading the script into Redis if it lacks it."""
        with translate_errors(self.shard.name):
            await scripts.deliver.run(
                self.shard, [self.inbox, self.counts], _acks_only(acks, self.ttl_ms)
            )

    # The loop ---------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = Backoff()
        command = ("BLMPOP", BLOCK_SECONDS, 1, self.inbox, "LEFT", "COUNT", BATCH)
        next_sweep = self.now_ms() + BLOCK_SECONDS * 1000
        while True:
            await asyncio.sleep(0)  # let the receivers just woken ack, to carry their acks
            acks = self.take_acks()
            prelude = []
            confirmed = self._track()
            if acks:
                sha = scripts.deliver.sha
                args = _acks_only(acks, self.ttl_ms)
                prelude.append(("EVALSHA", sha, 2, self.inbox, self.counts, *args))
            self.popping = True
            try:
                if self.lease is None:
                    self.lease = await self.shard.lease(self.inbox)
                replies, reply = await self.reader.call(
                    self.shard, self.inbox, command, self._requeue, prelude, confirmed, self.lease
                )
            except Exception as exc:
                raise_if_cancelling(exc)
                if not confirmed.done():  # the prelude's replies never came
                    self.restore_acks(acks)
                if isinstance(exc, UNREACHABLE):
                    logger.debug("Receiving %s: %s; retrying", self.family, exc)
                    self.shard.availability.lost(exc)
                else:
                    report_receive_failure(self.family, exc, backoff)
                if self.lease is not None:  # take a fresh one (maybe of another node)
                    await self.lease.release()
                    self.lease = None
                await self.shard.availability.pause_after_failure(backoff)
                continue
            finally:
                self.popping = False
                if not confirmed.done():
                    confirmed.set_result(None)
            if replies and isinstance(replies[0], Exception):
                # NOSCRIPT: this Redis restarted or its scripts were flushed, and this
                # process may never send (which would load the script). Apply them now.
                await self._retry_acks(acks, replies[0])
            if backoff.succeeded():
                self.stats.reconnects += 1
            if reply is not None:
                for entry in reply[1]:
                    self._deliver(entry)
            if reply is None or self.now_ms() >= next_sweep:
                self._sweep()
                next_sweep = self.now_ms() + BLOCK_SECONDS * 1000

    async def _retry_acks(self, acks: dict[str, int], error: Exception) -> None:
        """Apply acks whose call in the pop's prelude failed with ``error``."""
        try:
            await self._apply_acks(acks)
        except UNREACHABLE:
            self.restore_acks(acks)  # the next pop carries them again
        except Exception:
            # Not a missing script: counts of these channels stay too high until the
            # family's keys expire; say so rather than retrying forever.
            logger.exception("Could not decrement counts of %s (%s)", self.family, error)

    async def _requeue(self, reply: list[object]) -> None:
        entries = reply[1]
        if isinstance(entries, list) and entries:
            await self.shard.push_back(self.inbox, entries, self.ttl_ms)

    def _sweep(self) -> None:
        """Drop expired messages nobody is receiving, and mailboxes nobody uses."""
        for channel in self.mailboxes.sweep(self.now_ms()):
            self.stats.expired += 1
            self._ack(channel)

    async def aclose(self) -> None:
        """Stop receiving; give back to Redis what was popped but not received.

        Buffered messages go back to the head of the inbox and pending acks are
        applied, so another event loop of this process (``async_to_sync`` runs each
        call in a new one) receives them next, in order.
        """
        self.task.cancel()
        flush = self.ack_flush
        await asyncio.gather(self.task, *([flush] if flush else []), return_exceptions=True)
        await self.reader.aclose()  # a cancelled pop pushed its entries back first
        if self.lease is not None:
            await self.lease.release()
            self.lease = None
        entries = [
            encode_entry(deadline, channel, payload.data)
            for channel, mailbox in self.mailboxes.boxes.items()
            for deadline, payload in mailbox.items
        ]
        self.mailboxes.clear()
        try:
            if entries:
                await self.shard.push_back(self.inbox, entries, self.ttl_ms)
            if self.pending_acks:
                await self._flush_acks()
        except UNREACHABLE:
            logger.warning(
                "Redis unreachable while closing %s: %d buffered messages lost",
                self.family,
                len(entries),
            )


def pack_acks(acks: dict[str, int]) -> str:
    """``acks`` as :data:`scripts.DELIVER` takes them: one ``channel=count,...`` argument.

    A count is what to take off the channel's count in Redis (negative for group
    messages admitted and not received yet); :meth:`FamilyReceiver.take_acks`
    leaves zeros out.
    """
    return ",".join(f"{channel}={count}" for channel, count in acks.items())


def _acks_only(acks: dict[str, int], ttl_ms: int) -> list[Any]:
    """:data:`scripts.DELIVER` arguments that apply ``acks`` and deliver nothing."""
    return [0, ttl_ms, b"", b"", pack_acks(acks)]
