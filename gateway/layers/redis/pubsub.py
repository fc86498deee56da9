"""``RedisPubSubChannelLayer``: process-local channels delivered by Redis pub/sub.

It is :class:`~gateway.layers.redis.RedisChannelLayer` (normal channels queued in
Redis, group membership in Redis, the same capacity, expiry and ``ChannelFull``
rules for them) except for process-local (``!``) channels: a message for one is
``PUBLISH``-ed to its family's topic, which the receiving process subscribes to
(one subscription per family, made before ``new_channel()`` returns), instead of
being queued. A ``group_send`` publishes once per receiving process, which fans it
out to its members. Nothing for a local channel is stored in Redis, so:

* latency is one publish, and no acknowledgements flow back;
* capacity of a local channel is enforced where it is received: a message beyond
  it is dropped, counted in ``stats.dropped_full`` and logged; a ``send`` from the
  receiving process itself raises ``ChannelFull`` as usual;
* a message published while its process is not subscribed (not started yet, dead,
  or reconnecting after a Redis restart) is lost. After a reconnect every
  subscription is re-established and the ``on_reconnect`` callbacks run
  (``on_disconnect`` ones when the link drops); channels_redis' never fire.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio.client import PubSub

from gateway.backoff import Backoff
from gateway.exceptions import ChannelFull, ChannelLayerUnavailable
from gateway.layers.overflow import report_dropped
from gateway.types import Message

from .availability import report_receive_failure
from .config import HostConfig, describe_host, make_client
from .connection import LoopRegistry, close_client
from .core import RedisChannelLayer
from .errors import UNREACHABLE, raise_if_cancelling
from .keys import (
    consistent_hash,
    decode_entry,
    encode_entry,
    family_of,
    inbox_key,
    is_local,
)
from .mailbox import Entry, Mailboxes, Payload
from .serializers import require_dict

logger = logging.getLogger("gateway.layers.redis")

Callback = Callable[[], Any]
#: Seconds to wait for Redis to confirm a subscription.
SUBSCRIBE_TIMEOUT = 5.0
#: Seconds between sweeps of expired messages and idle mailboxes.
SWEEP_SECONDS = 10.0
#: Separates a direct send's channel from the id of the process that sent it.
ORIGIN = "@"


class _Subscriber:
    """One host's subscriber connection, in one event loop; re-subscribes after a drop."""

    def __init__(
        self,
        host: HostConfig,
        deliver: Callable[[str, bytes], None],
        on_disconnect: Callable[[], None],
        on_reconnect: Callable[[], None],
    ) -> None:
        self.name = describe_host(host)
        self.client = make_client(host)
        self.deliver = deliver
        self.on_disconnect = on_disconnect
        self.on_reconnect = on_reconnect
        self.subscriptions: set[str] = set()
        self.confirmations: dict[str, asyncio.Future[None]] = {}
        self.pubsub: PubSub | None = None
        self.listener: asyncio.Task[None] | None = None

    async def subscribe(self, name: str) -> None:
        """Subscribe to ``name`` (for good) and wait until Redis has confirmed it."""
        if name not in self.subscriptions:
            self.subscriptions.add(name)
            self.confirmations[name] = asyncio.get_running_loop().create_future()
            if self.pubsub is None:
                self.pubsub = self.client.pubsub()
            with contextlib.suppress(*UNREACHABLE):  # the listener re-subscribes when back
                await self.pubsub.subscribe(name)
            if self.listener is None:
                self.listener = asyncio.ensure_future(self._listen())
        confirmed = self.confirmations.get(name)
        if confirmed is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(confirmed), SUBSCRIBE_TIMEOUT)
        except TimeoutError:
            raise ChannelLayerUnavailable(
                f"Redis at {self.name} did not confirm a subscription in time"
            ) from None

    async def _listen(self) -> None:
        backoff = Backoff()
        while True:
            try:
                if self.pubsub is None:
                    self.pubsub = self.client.pubsub()
                    await self.pubsub.subscribe(*self.subscriptions)
                message = await self.pubsub.get_message(timeout=None)
            except Exception as exc:
                raise_if_cancelling(exc)
                if not isinstance(exc, UNREACHABLE):
                    report_receive_failure(f"from {self.name} (pub/sub)", exc, backoff)
                elif backoff.failures == 0:
                    logger.warning("Redis pub/sub link to %s lost: %s", self.name, exc)
                if backoff.failures == 0:
                    # Either way the link is dropped and made again: what was published
                    # meanwhile is lost, as in an outage (in-flight counts reset).
                    self.on_disconnect()
                await self._drop_pubsub()
                await backoff.wait()
                continue
            if message is None:
                continue
            kind = message["type"]
            channel = message["channel"].decode()
            if kind == "message":
                self.deliver(channel, message["data"])
            elif kind == "subscribe":
                confirmed = self.confirmations.pop(channel, None)
                if confirmed is not None and not confirmed.done():
                    confirmed.set_result(None)
                # Reconnected once every subscription is confirmed again.
                if not self.confirmations and backoff.succeeded():
                    logger.info("Redis pub/sub link to %s re-established", self.name)
                    self.on_reconnect()

    async def _drop_pubsub(self) -> None:
        pubsub, self.pubsub = self.pubsub, None
        if pubsub is not None:
            await pubsub.aclose()
        for name in self.subscriptions:
            if name not in self.confirmations:
                self.confirmations[name] = asyncio.get_running_loop().create_future()

    async def aclose(self) -> None:
        if self.listener is not None:
            self.listener.cancel()
            await asyncio.gather(self.listener, return_exceptions=True)
        await self._drop_pubsub()
        await close_client(self.client)


class _Family:
    """The mailboxes of one process-local family received in this process."""

    def __init__(self, layer: RedisPubSubChannelLayer) -> None:
        self.layer = layer
        self.mailboxes = Mailboxes(layer.get_capacity)
        #: Direct sends from this process published but not yet delivered back.
        self.in_flight: dict[str, int] = {}
        self.next_sweep = time.monotonic() + SWEEP_SECONDS

    def occupancy(self, channel: str) -> int:
        mailbox = self.mailboxes.boxes.get(channel)
        return (len(mailbox) if mailbox else 0) + self.in_flight.get(channel, 0)

    def deliver(self, data: bytes) -> None:
        if time.monotonic() >= self.next_sweep:
            self.next_sweep = time.monotonic() + SWEEP_SECONDS
            self.layer.stats.expired += len(self.mailboxes.sweep(self.layer._now_ms()))
        deadline, names, body = decode_entry(data)
        if ORIGIN in names:  # a direct send, maybe from this very process
            channel, _, origin = names.partition(ORIGIN)
            if origin == self.layer.client_prefix:
                self.landed(channel)
            self._put(channel, (deadline, Payload(body, 1)))
        else:
            channels = names.split(",")
            payload = Payload(body, len(channels))
            for channel in channels:
                self._put(channel, (deadline, payload))

    def landed(self, channel: str) -> None:
        """One of this process's direct sends to ``channel`` arrived (or was lost)."""
        count = self.in_flight.pop(channel, 0) - 1
        if count > 0:
            self.in_flight[channel] = count

    def _put(self, channel: str, item: Entry) -> None:
        mailbox = self.mailboxes[channel]
        if not mailbox.put(item):
            self.layer.stats.dropped_full += 1
            report_dropped(channel, f"at capacity ({mailbox.capacity}), published")


class _PubSubState:
    def __init__(self, layer: RedisPubSubChannelLayer) -> None:
        self.subscribers = [
            _Subscriber(host, self._deliver, self._disconnected, layer._reconnected)
            for host in (layer.hosts[:1] if layer._cluster else layer.hosts)
        ]
        self.families: dict[str, _Family] = {}
        self.topics: dict[str, _Family] = {}
        self.layer = layer

    def _disconnected(self) -> None:
        # Messages published but not yet back are lost with the link: stop counting them.
        for family in self.families.values():
            family.in_flight.clear()
        self.layer._disconnected()

    def _deliver(self, topic: str, data: bytes) -> None:
        family = self.topics.get(topic)
        if family is not None:
            family.deliver(data)

    async def family(self, name: str) -> _Family:
        """This process's receiver of family ``name``, subscribed before returning."""
        topic = inbox_key(self.layer.prefix, name)
        subscriber = self.subscribers[consistent_hash(name, len(self.subscribers))]
        family = self.families.get(name)
        if family is None:
            family = self.families[name] = self.topics[topic] = _Family(self.layer)
        # Returns at once when confirmed; else waits, also for a concurrent caller's.
        await subscriber.subscribe(topic)
        return family

    async def aclose(self) -> None:
        for subscriber in self.subscribers:
            await subscriber.aclose()


class RedisPubSubChannelLayer(RedisChannelLayer):
    """A channel layer whose process-local channels ride on Redis pub/sub.

    Takes every :class:`RedisChannelLayer` CONFIG key, plus ``on_disconnect`` and
    ``on_reconnect``: callables (plain or async), or lists of them, run when a
    subscriber link drops and once it is back with every subscription restored.
    In Redis Cluster mode the subscriber connects to the first host (a cluster
    forwards publishes to every node).
    """

    _local_delivery = "p"

    def __init__(
        self,
        *args: Any,
        on_disconnect: Callback | Sequence[Callback] | None = None,
        on_reconnect: Callback | Sequence[Callback] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.on_disconnect = _callbacks(on_disconnect)
        self.on_reconnect = _callbacks(on_reconnect)
        self._callback_tasks: set[asyncio.Task[Any]] = set()
        self._pubsub: LoopRegistry[_PubSubState] = LoopRegistry(
            lambda: _PubSubState(self), _PubSubState.aclose
        )

    # Callbacks ------------------------------------------------------------------

    def _run_callbacks(self, callbacks: list[Callback]) -> None:
        for callback in callbacks:
            try:
                result = callback()
            except Exception:
                logger.exception("Channel layer connection callback %r failed", callback)
                continue
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._callback_tasks.add(task)
                task.add_done_callback(self._callback_tasks.discard)

    def _disconnected(self) -> None:
        self._run_callbacks(self.on_disconnect)

    def _reconnected(self) -> None:
        self.stats.reconnects += 1
        self._run_callbacks(self.on_reconnect)

    # Process-local channels -------------------------------------------------------

    async def new_channel(self, prefix: str = "specific") -> str:
        """A new process-local channel, subscribed so nothing sent to it is missed."""
        channel = await super().new_channel(prefix)
        await self._pubsub.get().family(family_of(channel))
        return channel

    async def send(self, channel: str, message: Message) -> None:
        if not is_local(channel):
            await super().send(channel, message)
            return
        self._check_channel(channel)
        require_dict(message)
        payload = self._serializer.serialize(message)
        name = family_of(channel)
        family = self._pubsub.get().families.get(name)
        target = channel
        if family is not None:  # received here: enforce capacity now, exactly
            capacity = self.get_capacity(channel)
            if family.occupancy(channel) >= capacity:
                self.stats.dropped_full += 1
                raise ChannelFull(f"Channel {channel!r} is at capacity ({capacity})")
            family.in_flight[channel] = family.in_flight.get(channel, 0) + 1
            target = f"{channel}{ORIGIN}{self.client_prefix}"
        entry = encode_entry(self._now_ms() + int(self.expiry * 1000), target, payload)
        topic = inbox_key(self.prefix, name)
        shard = self._shard(self._loops.get(), name)
        try:
            await self._through_outages(shard, lambda: shard.publish(topic, entry), message=True)
        except BaseException:
            if family is not None:
                family.landed(channel)
            raise
        self.stats.sent += 1

    async def receive(self, channel: str) -> Message:
        if not is_local(channel):
            return await super().receive(channel)
        self._check_channel(channel)
        self._require_own(channel)
        state = self._pubsub.get()
        name = family_of(channel)
        family = state.families.get(name) or await state.family(name)
        mailbox = family.mailboxes[channel]
        while True:
            deadline, payload = await mailbox.get()
            if deadline >= self._now_ms():
                break
            self.stats.expired += 1
        self.stats.received += 1
        return payload.decode(self._serializer)

    # Lifecycle ----------------------------------------------------------------------

    async def flush(self) -> None:
        await super().flush()
        state = self._pubsub.current()
        if state is not None:
            for family in state.families.values():
                family.mailboxes.clear()

    async def close(self) -> None:
        await self._pubsub.close_current()
        await super().close()
        if self._callback_tasks:
            await asyncio.gather(*self._callback_tasks, return_exceptions=True)


def _callbacks(value: Callback | Sequence[Callback] | None) -> list[Callback]:
    if value is None:
        return []
    if callable(value):
        return [value]
    return list(value)
