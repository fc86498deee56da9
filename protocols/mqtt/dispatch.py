"""Received messages to their route keys' instances: in order, bounded, redelivered.

A link hands every received message to :meth:`Dispatcher.queue`; one task routes
them one at a time (so one key's messages reach its instance in the order they
arrived) to the instance of their route key, and to every other live key whose
dynamic subscription matches. Each key's instance starts with the scope built from
its first message's route (:func:`gateway.mqtt.events.build_scope`).

Bounds and overflow policies:

- messages received but not yet in an instance queue: ``inflight``; at the bound
  the link is paused (it stops reading the broker socket) until half have drained;
- each instance queue: full, dispatch waits (backpressure through the bound above).

A message whose handling failed because the channel layer was unreachable is not
acknowledged: with whatever its instance never read, it goes to a fresh instance
of the same scope, before anything newer, after ``retry_delay`` (dispatch
holds meanwhile, so the ``inflight`` bound pauses the link rather than losing
messages). Both queues are in :mod:`protocols.mqtt.queues`; when a QoS 1/2 message
is acknowledged is :mod:`protocols.mqtt.settlement`'s business.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Hashable

from gateway.mqtt.events import Incoming, PresenceEvent, build_scope, message_event
from gateway.types import Message, Scope
from protocols.instances import ApplicationInstance, Delivery, Handled, InstanceManager
from protocols.mqtt.link import Ack, Link
from protocols.mqtt.queues import PendingQueue, RedeliveryQueue
from protocols.mqtt.route_cache import RouteCache
from protocols.mqtt.settlement import Settlement, layer_was_down
from protocols.mqtt.stats import MqttStats
from protocols.mqtt.subscriptions import DynamicSubscriptions

logger = logging.getLogger("gateway.server.mqtt")

#: Seconds dispatch waits, by default, before retrying a message that failed on the
#: channel layer (``retry_delay``).
LAYER_RETRY_DELAY = 1.0


class Dispatcher:
    """Feeds received messages to the instances of their route keys, one at a time."""

    def __init__(
        self,
        link: Link,
        routes: RouteCache,
        manager: InstanceManager,
        dynamic: DynamicSubscriptions,
        *,
        inflight: int,
        stats: MqttStats,
        retry_delay: float = LAYER_RETRY_DELAY,
    ) -> None:
        self.link = link
        self.routes = routes
        self.manager = manager
        self.dynamic = dynamic
        self.stats = stats
        #: Set once the server stops: what ended instances left is not redelivered, and
        #: a message an instance was cut short on stays unacknowledged (the broker resends).
        self.stopping = False
        self._pending: PendingQueue[tuple[Incoming, PresenceEvent | None, Ack | None]] = (
            PendingQueue(inflight)
        )
        #: Deliveries an ended instance never handled, with its scope for the next one.
        self._redeliver: RedeliveryQueue[tuple[Delivery, Scope]] = RedeliveryQueue(retry_delay)
        self._wakeup = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mqtt dispatcher")

    async def wait_drained(self, timeout: float) -> None:
        """Return once nothing received waits for dispatch, or after ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._drained.wait()

    async def cancel(self) -> None:
        """Stop dispatching (what is still pending stays undelivered, and unacknowledged)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # -- in -----------------------------------------------------------------

    def queue(self, incoming: Incoming, event: PresenceEvent | None, ack: Ack | None) -> None:
        """Queue a received message (or a presence ``event``) for routing; never blocks."""
        self.stats.received += 1
        self._drained.clear()
        pause = self._pending.put((incoming, event, ack))
        self.stats.max_pending = max(self.stats.max_pending, len(self._pending))
        if pause:
            self.stats.pauses += 1
            self.link.pause_reading()
        self._wakeup.set()

    async def _run(self) -> None:
        pending = self._pending
        redeliver = self._redeliver
        loop = asyncio.get_running_loop()
        while True:
            if redeliver and (wait := redeliver.wait(loop.time())):
                await asyncio.sleep(wait)
            while redeliver:
                key, ((message, handled), scope) = redeliver.popleft()
                await self._put(key, message, handled, scope)
            if not pending:
                self._drained.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            incoming, event, ack = pending.popleft()
            settlement = Settlement(ack) if ack is not None else None
            try:
                await self._route(incoming, event, settlement)
            except Exception:
                logger.exception("mqtt message on %r could not be dispatched", incoming.topic)
            if settlement is not None:
                settlement.routed()
            if pending.paused and pending.resume():
                self.link.resume_reading()

    async def _route(
        self, incoming: Incoming, event: PresenceEvent | None, settlement: Settlement | None
    ) -> None:
        match = self.routes.resolve(incoming.topic)
        delivered = False
        if match is not None:
            key = match.key
            scope: Scope | None = None
            if self.manager.live(key) is None:  # the key's first message (again)
                scope = dict(
                    build_scope(
                        match,
                        role=self.link.role,
                        mqtt_version=self.link.mqtt_version,
                        broker=self.link.broker_info,
                        client=incoming.client,
                    )
                )
            message = dict(
                event if event is not None else message_event(incoming, match.pattern.filter)
            )
            handled = settlement.expect() if settlement is not None else None
            await self._put(key, message, handled, scope)
            delivered = True
        if event is None and self.dynamic.by_key:
            routed_key = match.key if match is not None else None
            for key, topic_filter in self.dynamic.matches(incoming.topic):
                if key != routed_key and self.manager.live(key) is not None:
                    handled = settlement.expect() if settlement is not None else None
                    await self._put(key, dict(message_event(incoming, topic_filter)), handled)
                    delivered = True
        if delivered:
            self.stats.dispatched += 1
        elif event is None:
            self.stats.unroutable += 1
            if self.stats.unroutable <= 10 or self.stats.unroutable % 1000 == 0:
                logger.warning(
                    "mqtt message on %r matches no route: dropped (%d so far)",
                    incoming.topic,
                    self.stats.unroutable,
                )

    async def _put(
        self,
        key: Hashable,
        message: Message,
        handled: Handled | None = None,
        scope: Scope | None = None,
    ) -> None:
        """Queue ``message`` for ``key``'s instance, in order; ``scope`` starts one if
        none lives, and one that ends meanwhile is followed by one of its own scope."""
        instance = self.manager.get(key, scope)
        while True:
            await instance.wait_for_room()
            if not instance.done:
                instance.put_nowait(message, handled)
                return
            instance = self.manager.get(key, dict(instance.scope))

    # -- out ----------------------------------------------------------------

    def take_back(self, key: Hashable, instance: ApplicationInstance) -> None:
        """``key``'s ``instance`` ended: settle what it held, redeliver what it never read.

        The message in hand when the channel layer was unreachable goes again, first,
        never acknowledged; one handled by raising is acknowledged (not retried
        forever); one cut short by shutdown stays unacknowledged, for the broker to
        resend to the next run. What the instance never read goes to a fresh instance
        of the same scope, before anything newer.
        """
        unread = [d for d in instance.drain() if d[0]["type"] != "mqtt.disconnect"]
        if instance.in_hand is not None:
            if layer_was_down(instance.failed):
                unread.insert(0, instance.in_hand)
                self._redeliver.hold(asyncio.get_running_loop().time())
            elif instance.in_hand[1] is not None and not (
                self.stopping and instance.failed is None
            ):
                instance.in_hand[1]()
        if unread and not self.stopping:
            scope = dict(instance.scope)
            self._redeliver.add(key, [(delivery, scope) for delivery in unread])
            self._wakeup.set()
