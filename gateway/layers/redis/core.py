"""``RedisChannelLayer``: queues in Redis lists, one round trip per operation.

What each operation costs (standalone Redis; see ``docs/redis.md``):

* ``send``: one ``EVALSHA`` of :data:`scripts.DELIVER` (capacity check, expired-entry
  trim when full, push, key expiry), against channels_redis' four commands.
* ``receive`` of a normal channel: one ``BLPOP``; of a process-local channel: nothing
  per message, the family's shared loop pops up to 256 entries per round trip.
* ``group_send``: one round trip whatever the group size on a single Redis without
  ``channel_capacity`` patterns (:data:`scripts.GROUP_SEND`), else two (read the
  members, then one script per shard or cluster slot, in parallel); either way each
  member's capacity is honoured and the members that were full are reported. The
  process-local members of one process cost one inbox entry, not one per member:
  that process admits each of them within its capacity.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from re import Pattern
from typing import Any, TypeVar

from gateway.backoff import Backoff
from gateway.exceptions import ChannelFull, ChannelLayerUnavailable
from gateway.layers.base import BaseChannelLayer
from gateway.layers.overflow import report_full_members
from gateway.layers.stats import LayerStats
from gateway.types import Message

from . import scripts
from .availability import Availability
from .config import decode_hosts
from .connection import BlockingReader, LoopRegistry, Shard, make_shards
from .errors import UNREACHABLE, CommandNotSent, raise_if_cancelling, translate_errors
from .keys import (
    channel_key,
    consistent_hash,
    counts_key,
    decode_entry,
    encode_deadline,
    family_of,
    group_index_key,
    group_key,
    inbox_key,
    is_local,
)
from .local import FamilyReceiver, pack_acks
from .scripts import Script
from .serializers import load_message, registry, require_dict

logger = logging.getLogger("gateway.layers.redis")

T = TypeVar("T")

#: Seconds a normal-channel BLPOP waits server-side before re-issuing; keeps dead
#: TCP connections from hanging a receiver forever.
BLOCK_SECONDS = 5


def inbox_limit(capacity: int) -> int:
    """Unread inbox entries past which a process gets no more group messages.

    Its members' capacities are applied by the process itself, as it reads; a
    process this far behind is not reading, and the limit bounds what it costs Redis.
    """
    return 10 * capacity


class _LoopState:
    """Everything a layer holds in one event loop."""

    def __init__(self, layer: RedisChannelLayer) -> None:
        self.shards = make_shards(layer.hosts, layer._cluster, layer._restore_memberships)
        self.reader = BlockingReader()
        self.families: dict[str, FamilyReceiver] = {}
        self.closed = False

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        await asyncio.gather(*(family.aclose() for family in self.families.values()))
        await self.reader.aclose()
        for shard in self.shards:
            await shard.aclose()


class RedisChannelLayer(BaseChannelLayer):
    """A channel layer over one or more Redis servers, a Sentinel master or a Cluster.

    Configured with channels_redis' keys::

        CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "gateway.layers.redis.RedisChannelLayer",
                "CONFIG": {"hosts": ["redis://127.0.0.1:6379/0"], "capacity": 100},
            }
        }

    Besides channels_redis' keys: ``cluster=True`` makes ``hosts`` the startup
    nodes of a Redis Cluster; ``outage_timeout`` is how long (seconds) a ``send``,
    ``group_send``, ``group_add`` or ``group_discard`` waits for an unreachable Redis
    to come back before it raises; ``clock`` replaces ``time.time`` (deadlines are
    wall clock because they cross processes and machines).

    Delivery is at most once: a message is gone from Redis once a receiver has
    popped it, and a send whose reply was lost with the connection is never
    repeated. ``send`` raises :class:`~gateway.exceptions.ChannelFull` at capacity
    and :class:`~gateway.exceptions.ChannelLayerUnavailable` when Redis stayed
    unreachable for ``outage_timeout``. The group memberships this process made are
    re-added whenever Redis answers again after an outage (a restarted Redis has
    forgotten them), so live consumers keep receiving their groups' messages.
    """

    extensions = ["groups", "flush"]
    #: How process-local families get messages: queued in Redis ("l") or published
    #: to the receiving process ("p", RedisPubSubChannelLayer).
    _local_delivery = "l"

    def __init__(
        self,
        hosts: Sequence[object] | None = None,
        prefix: str = "asgi",
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: Mapping[str | Pattern[str], int] | None = None,
        symmetric_encryption_keys: Sequence[str | bytes] | None = None,
        serializer_format: str = "msgpack",
        random_prefix_length: int = 12,
        cluster: bool = False,
        outage_timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # random_prefix_length is accepted so channels_redis CONFIGs work unchanged;
        # queued entries live in lists, which need no random prefix to stay unique.
        del random_prefix_length
        super().__init__(expiry=expiry, capacity=capacity, channel_capacity=channel_capacity)
        if not isinstance(prefix, str) or "{" in prefix or "}" in prefix:
            raise ValueError(f"prefix must be a str without braces, not {prefix!r}")
        self.hosts = decode_hosts(hosts)
        #: How many hosts names are spread over (channels_redis' name).
        self.ring_size = len(self.hosts)
        self._cluster = cluster
        if not outage_timeout >= 0:
            raise ValueError(f"outage_timeout must be >= 0 seconds, not {outage_timeout!r}")
        self._outage_timeout = outage_timeout
        self.prefix = prefix
        self.group_expiry = group_expiry
        # expiry bounds the age of an encrypted message, as in channels_redis.
        self._serializer = registry.get_serializer(
            serializer_format, symmetric_encryption_keys=symmetric_encryption_keys, expiry=expiry
        )
        #: Wall clock shared by every process (deadlines cross machines); injectable.
        self._clock = clock
        self.client_prefix = uuid.uuid4().hex[:12]
        self.stats = LayerStats()
        self._loops: LoopRegistry[_LoopState] = LoopRegistry(
            lambda: _LoopState(self), _LoopState.aclose
        )
        self._valid_channels: set[str] = set()
        #: group -> {channel: join time in ms}: what this process added, to re-add
        #: after Redis lost it. Entries older than group_expiry are dropped.
        self._memberships: dict[str, dict[str, int]] = {}

    # Helpers ------------------------------------------------------------------

    def _check_channel(self, channel: str) -> None:
        """:meth:`require_valid_channel_name`, remembering recent good names."""
        if channel in self._valid_channels:
            return
        self.require_valid_channel_name(channel)
        if len(self._valid_channels) >= 4096:
            self._valid_channels.clear()
        self._valid_channels.add(channel)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _shard(self, state: _LoopState, name: str) -> Shard:
        return state.shards[consistent_hash(name, len(state.shards))]

    def _targets(
        self, channels: Sequence[str], *, group: bool = False
    ) -> tuple[list[str], list[str | int], list[str]]:
        """Script keys and arguments delivering to ``channels`` (one shard and slot).

        Process-local members of one family become one target, so they share one
        inbox entry; for a ``group`` message the receiving process admits each of
        them within its capacity. Also returns the channels in the order the script
        numbers them.
        """
        keys: list[str] = []
        args: list[str | int] = []
        order: list[str] = []
        families: dict[str, list[str]] = {}
        for channel in channels:
            if is_local(channel):
                families.setdefault(family_of(channel), []).append(channel)
            else:
                keys.append(channel_key(self.prefix, channel))
                args += ("n", channel, self.get_capacity(channel))
                order.append(channel)
        for family, members in families.items():
            order += members
            if self._local_delivery == "p":
                keys.append(inbox_key(self.prefix, family))
                args += ("p", len(members), *members)
                continue
            keys += (inbox_key(self.prefix, family), counts_key(self.prefix, family))
            if group:
                limit = inbox_limit(max(self.get_capacity(member) for member in members))
                args += ("g", len(members), limit, *members)
                continue
            args += ("l", len(members))
            for member in members:
                args += (member, self.get_capacity(member))
        return keys, args, order

    def _group_keys(self, group: str) -> list[str]:
        return [group_key(self.prefix, group), group_index_key(self.prefix, group)]

    async def _script(
        self, shard: Shard, script: Script, keys: list[str], args: list[Any], *, message: bool
    ) -> Any:
        """Run ``script`` on ``shard`` through outages (see :meth:`_through_outages`)."""
        return await self._through_outages(
            shard, lambda: script.run(shard, keys, args), message=message
        )

    async def _through_outages(
        self, shard: Shard, call: Callable[[], Awaitable[T]], *, message: bool
    ) -> T:
        """``await call()``, waiting out an outage of ``shard`` for ``outage_timeout``.

        A call that failed before reaching Redis is retried once Redis answers again.
        One that may have reached it is retried only if it is not a message
        (``message=False``: group membership changes and reads are idempotent), so
        a message is never delivered twice. Messages given up are counted.
        """
        availability = shard.availability
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._outage_timeout
        while True:
            # During an outage nothing goes out until the recovery (which re-adds
            # memberships) is done, or a message could reach a group still empty.
            if availability.down and not await availability.wait_up(deadline - loop.time()):
                raise self._gave_up(availability, message, f"Redis at {shard.name} is unavailable")
            try:
                with translate_errors(shard.name):
                    return await call()
            except ChannelLayerUnavailable as exc:
                availability.lost(exc)
                retry = not message or isinstance(exc, CommandNotSent)
                if not retry or loop.time() >= deadline:
                    raise self._gave_up(availability, message, str(exc)) from exc

    def _gave_up(
        self, availability: Availability, message: bool, reason: str
    ) -> ChannelLayerUnavailable:
        if message:
            self.stats.unavailable += 1
            availability.gave_up()
        return ChannelLayerUnavailable(f"{reason} (waited up to {self._outage_timeout} s)")

    def _family(self, state: _LoopState, family: str, channel: str) -> FamilyReceiver:
        """The receive loop of ``family`` (``channel``'s), started on first use."""
        receiver = state.families.get(family)
        if receiver is None:
            self._require_own(channel)
            receiver = state.families[family] = FamilyReceiver(
                self._shard(state, family),
                self.prefix,
                family,
                state.reader,
                self._now_ms,
                int(self.expiry * 1000),
                self.get_capacity,
                self.stats,
            )
        return receiver

    # Channels -----------------------------------------------------------------

    async def send(self, channel: str, message: Message) -> None:
        """Queue ``message`` on ``channel`` in one round trip."""
        self._check_channel(channel)
        require_dict(message)
        payload = self._serializer.serialize(message)
        state = self._loops.get()
        receiver = state.families.get(family_of(channel)) if is_local(channel) else None
        shard = self._shard(state, self.non_local_name(channel))
        delivered = await self._send_once(shard, channel, payload, receiver)
        if not delivered and receiver is not None and await receiver.settle():
            # Our own receive loop had acks in flight: now applied, try again once.
            delivered = await self._send_once(shard, channel, payload, receiver)
        if not delivered:
            self.stats.dropped_full += 1
            raise ChannelFull(f"Channel {channel!r} is at capacity ({self.get_capacity(channel)})")
        self.stats.sent += 1

    async def _send_once(
        self, shard: Shard, channel: str, payload: bytes, receiver: FamilyReceiver | None
    ) -> bool:
        """One delivery attempt, carrying this process's pending acks for the family."""
        keys, targets, _ = self._targets([channel])
        acks = receiver.take_acks() if receiver is not None else {}
        now = self._now_ms()
        expiry_ms = int(self.expiry * 1000)
        head = [now, expiry_ms, encode_deadline(now + expiry_ms), payload, pack_acks(acks)]
        try:
            result = await self._script(
                shard, scripts.deliver, keys, [*head, *targets], message=True
            )
        except BaseException:
            if receiver is not None:
                receiver.restore_acks(acks)
            raise
        self.stats.expired += int(result[0])
        return len(result) == 1

    async def receive(self, channel: str) -> Message:
        """The next message on ``channel``; waits, reconnecting, while Redis is down."""
        self._check_channel(channel)
        state = self._loops.get()
        if is_local(channel):
            family = family_of(channel)
            receiver = state.families.get(family) or self._family(state, family, channel)
            message = (await receiver.receive(channel)).decode(self._serializer)
        else:
            message = load_message(self._serializer, await self._receive_normal(state, channel))
        self.stats.received += 1
        return message

    async def _receive_normal(self, state: _LoopState, channel: str) -> bytes:
        key = channel_key(self.prefix, channel)
        shard = self._shard(state, channel)
        backoff = Backoff()

        async def requeue(reply: list[bytes]) -> None:
            await shard.push_back(key, [reply[1]], int(self.expiry * 1000))

        while True:
            try:
                _, reply = await state.reader.call(
                    shard, key, ("BLPOP", key, BLOCK_SECONDS), requeue
                )
            except UNREACHABLE as exc:
                raise_if_cancelling(exc)
                logger.debug("Receiving %s: %s; retrying", channel, exc)
                shard.availability.lost(exc)
                await shard.availability.pause_after_failure(backoff)
                continue
            if backoff.succeeded():
                self.stats.reconnects += 1
            if reply is None:
                continue
            deadline, _, payload = decode_entry(reply[1])
            if deadline >= self._now_ms():
                return payload
            self.stats.expired += 1

    def _require_own(self, channel: str) -> None:
        """Refuse to receive a process-local channel this layer did not make.

        Its messages go to the process that made it; waiting here would wait
        forever (or, on the pub/sub layer, steal them).
        """
        if not family_of(channel).endswith(f".{self.client_prefix}!"):
            raise AssertionError(
                f"Wrong client prefix: {channel!r} was not made by this layer's new_channel() "
                f"(its process-local channels look like 'specific.{self.client_prefix}!...'); "
                "only the process that made a process-local channel can receive from it"
            )

    async def new_channel(self, prefix: str = "specific") -> str:
        """A new process-local channel name; only this process receives from it."""
        return f"{prefix}.{self.client_prefix}!{uuid.uuid4().hex}"

    # Groups -------------------------------------------------------------------

    async def group_add(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        shard = self._shard(self._loops.get(), group)
        joined = self._now_ms()
        await self._add_member(shard, group, channel, joined)
        self._memberships.setdefault(group, {})[channel] = joined

    async def _add_member(self, shard: Shard, group: str, channel: str, joined: int) -> None:
        ttl = int(self.group_expiry * 1000)
        args = [joined, channel, ttl]
        await self._script(shard, scripts.group_add, self._group_keys(group), args, message=False)

    async def group_discard(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        members = self._memberships.get(group)
        if members is not None:
            members.pop(channel, None)
            if not members:
                del self._memberships[group]
        shard = self._shard(self._loops.get(), group)
        keys = self._group_keys(group)
        await self._script(shard, scripts.group_discard, keys, [channel], message=False)

    async def _restore_memberships(self, shard: Shard) -> None:
        """Re-add this process's memberships of the groups kept on ``shard``.

        Runs when ``shard``'s Redis answers again after an outage: if it restarted,
        it forgot them, and the live consumers they belong to would silently stop
        getting group messages. Re-adding keeps the original join time, so
        ``group_expiry`` still counts from the real join. Idempotent.
        """
        state = self._loops.get()
        oldest = self._now_ms() - int(self.group_expiry * 1000)
        restored = []
        for group, members in list(self._memberships.items()):
            if self._shard(state, group) is not shard:
                continue
            for channel, joined in list(members.items()):
                if joined < oldest:
                    del members[channel]
                else:
                    restored.append((group, channel, joined))
            if not members:
                del self._memberships[group]
        for first in range(0, len(restored), 1000):
            await asyncio.gather(
                *(
                    scripts.group_add.run(
                        shard,
                        self._group_keys(group),
                        [joined, channel, int(self.group_expiry * 1000)],
                    )
                    for group, channel, joined in restored[first : first + 1000]
                )
            )
        if restored:
            logger.info("Re-added %d group memberships on %s", len(restored), shard.name)

    async def group_send(self, group: str, message: Message) -> None:
        """Deliver ``message`` to every member, each within its own capacity.

        Members that are full are skipped, counted in ``stats.dropped_full`` and
        logged; the others still get the message. For process-local members that
        happens in the process that receives them, as the message arrives there.
        """
        self.require_valid_group_name(group)
        require_dict(message)
        payload = self._serializer.serialize(message)
        state = self._loops.get()
        shard = self._shard(state, group)
        now = self._now_ms()
        expiry_ms = int(self.expiry * 1000)
        head = [now, expiry_ms, encode_deadline(now + expiry_ms), payload]
        oldest = now - int(self.group_expiry * 1000)
        gkeys = self._group_keys(group)
        if len(state.shards) == 1 and not self._cluster and not self.channel_capacity:
            # Everything on one server and one capacity: one round trip.
            args = [*head, oldest, self.prefix, self.capacity, self._local_delivery]
            args.append(inbox_limit(self.capacity))
            result = await self._script(shard, scripts.group_send, gkeys, args, message=True)
            self.stats.expired += int(result[0])
            members = int(result[1])
            undelivered = [raw.decode() for raw in result[2:]]
        else:
            undelivered, members = await self._group_send_spread(state, shard, gkeys, head, oldest)
        self.stats.group_sent += 1
        self.stats.sent += members - len(undelivered)
        if undelivered:
            self.stats.dropped_full += len(undelivered)
            report_full_members(group, undelivered, members)

    async def _group_send_spread(
        self, state: _LoopState, shard: Shard, gkeys: list[str], head: list[Any], oldest: int
    ) -> tuple[list[str], int]:
        """group_send over several shards or slots: read members, then one script each.

        Returns (members that were full, number of members).
        """
        members = await self._script(shard, scripts.group_members, gkeys, [oldest], message=False)
        if not members:
            return [], 0
        buckets: dict[tuple[int, object], list[str]] = defaultdict(list)
        for raw in members:
            channel = raw.decode()
            tag = self.non_local_name(channel)
            index = consistent_hash(tag, len(state.shards))
            buckets[index, state.shards[index].bucket(tag)].append(channel)
        results = await asyncio.gather(
            *(
                self._deliver_many(state.shards[index], channels, [*head, ""])
                for (index, _), channels in buckets.items()
            )
        )
        return [channel for failed in results for channel in failed], len(members)

    async def _deliver_many(self, shard: Shard, channels: list[str], head: list[Any]) -> list[str]:
        """Deliver to ``channels`` (one shard, one slot) in one script call."""
        keys, targets, order = self._targets(channels, group=True)
        result = await self._script(shard, scripts.deliver, keys, [*head, *targets], message=True)
        self.stats.expired += int(result[0])
        return [order[int(index) - 1] for index in result[1:]]

    # Lifecycle ----------------------------------------------------------------

    async def ping(self) -> None:
        """PING every shard once; :class:`~gateway.exceptions.ChannelLayerUnavailable`
        names the first that does not answer. What a readiness probe asks
        (``/readyz``, docs/deploy.md); it never waits out an outage."""
        for shard in self._loops.get().shards:
            await shard.execute("PING")

    async def flush(self) -> None:
        """Delete every key under this layer's prefix and drop buffered messages."""
        state = self._loops.get()
        for shard in state.shards:
            await shard.delete_matching(f"{self.prefix}:*")
        for family in state.families.values():
            family.clear()

    async def close(self) -> None:
        """Close this event loop's connections and receive loops."""
        await self._loops.close_current()

    async def close_pools(self) -> None:
        """channels_redis' name for :meth:`close`, which shutdown code and fixtures call."""
        await self.close()

    # channels_redis' helpers, for code that calls them --------------------------

    def serialize(self, message: Message) -> bytes:
        """``message`` as the bytes stored in Redis (format, then encryption)."""
        data: bytes = self._serializer.serialize(message)
        return data

    def deserialize(self, message: bytes) -> Message:
        """The message stored as ``message`` (decrypted, then decoded)."""
        return load_message(self._serializer, message)

    def consistent_hash(self, value: str) -> int:
        """The index in ``hosts`` of the host that stores ``value``, as channels_redis maps it."""
        return consistent_hash(value, self.ring_size)
