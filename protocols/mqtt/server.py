"""The MQTT interface server: routes a link's messages to one instance per route key.

Role-independent: a :class:`~protocols.mqtt.link.Link` (bridge or embedded broker)
hands over received messages; this server resolves them with the application's
:class:`~gateway.routing.topic.TopicRouter`, feeds each route key's instance in
order through :class:`~protocols.instances.InstanceManager`, and turns what
instances send back into publishes and subscriptions (docs/specs/mqtt.md).

Bounds and overflow policies:

- messages received but not yet in an instance queue: ``inflight``; at the bound
  the link is paused (it stops reading the broker socket) until half have drained;
- each instance queue: ``queue_size``; when full the dispatcher waits (backpressure
  through the bound above);
- live instances: ``max_instances``, least recently used evicted with
  ``mqtt.disconnect``; idle ones closed after ``idle_timeout``;
- the route cache: ``ROUTE_CACHE_SIZE`` topics, least recently used forgotten.

QoS 1/2 messages are acknowledged (bridge role) once every instance they were
queued for has handled them. A message whose handling failed because the channel
layer was unreachable is not acknowledged: it goes to a fresh instance for its key,
before anything newer, after ``LAYER_RETRY_DELAY`` (dispatch holds meanwhile, so
the link is paused by the ``inflight`` bound rather than losing messages). Both
queues are in :mod:`protocols.mqtt.queues`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from gateway import metrics
from gateway.exceptions import ChannelLayerUnavailable
from gateway.layers import get_channel_layer
from gateway.layers.receiving import receive_retrying
from gateway.metrics import ProtocolCounters, ServerReading
from gateway.mqtt.codes import SUCCESS, SubackCode
from gateway.mqtt.events import (
    PUBLISH_CHANNEL,
    AckEvent,
    Incoming,
    LinkEvent,
    PresenceEvent,
    Publish,
    Subscribe,
    ack_event,
    build_scope,
    disconnect_event,
    message_event,
    parse_outgoing,
    presence_incoming,
)
from gateway.routing.topic import RouteMatch, TopicRouter, find_topic_router
from gateway.startup import Summary
from gateway.types import ASGIApp, Message, Scope, Send
from protocols.instances import ApplicationInstance, Delivery, Handled, InstanceManager
from protocols.mqtt.link import Ack, Link
from protocols.mqtt.queues import PendingQueue, RedeliveryQueue
from protocols.mqtt.subscriptions import DynamicSubscriptions
from protocols.service import Service

logger = logging.getLogger("gateway.server.mqtt")

ROUTE_CACHE_SIZE = 10_000
#: Seconds dispatch waits before retrying a message that failed on the channel layer.
LAYER_RETRY_DELAY = 1.0


@dataclass
class MqttStats:
    """Counters, for logs, tests and benchmarks."""

    received: int = 0
    dispatched: int = 0
    unroutable: int = 0
    consumer_errors: int = 0
    published: int = 0
    publish_failures: int = 0
    bad_channel_messages: int = 0
    presence_events: int = 0
    max_pending: int = 0
    pauses: int = 0


class MqttServer(Service):
    name = "mqtt"

    def __init__(
        self,
        application: ASGIApp,
        link: Link,
        *,
        idle_timeout: float | None = 300.0,
        max_instances: int = 10_000,
        queue_size: int = 100,
        inflight: int = 1000,
        close_timeout: float = 5.0,
        channel_layer_alias: str | None = "default",
    ) -> None:
        router = find_topic_router(application)
        if router is None:
            raise ImproperlyConfigured(
                "the application routes 'mqtt' to no TopicRouter: mount "
                "TopicRouter([topic(...), ...]) under 'mqtt' in the ProtocolTypeRouter"
            )
        self._pending: PendingQueue[tuple[Incoming, PresenceEvent | None, Ack | None]] = (
            PendingQueue(inflight)
        )
        self.router: TopicRouter = router
        self.link = link
        self.channel_layer_alias = channel_layer_alias
        self.stats = MqttStats()
        self.dynamic = DynamicSubscriptions()
        self.manager = InstanceManager(
            application,
            send_factory=self._make_send,
            terminal_message=lambda reason: dict(disconnect_event(reason)),
            idle_timeout=idle_timeout,
            max_instances=max_instances,
            queue_size=queue_size,
            close_timeout=close_timeout,
            name="mqtt scope",
            on_exit=self._instance_ended,
        )
        self._routes: OrderedDict[str, RouteMatch | None] = OrderedDict()
        #: Deliveries an ended instance never handled, with its scope for the next one.
        self._redeliver: RedeliveryQueue[tuple[Delivery, Scope]] = RedeliveryQueue(
            LAYER_RETRY_DELAY
        )
        self._wakeup = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._dispatcher: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._unregister: Callable[[], None] | None = None

    # -- Service ------------------------------------------------------------

    async def start(self) -> None:
        self._dispatcher = asyncio.create_task(self._dispatch_loop(), name="mqtt dispatcher")
        try:
            await self.link.start(self)
        except BaseException:
            self._dispatcher.cancel()
            await asyncio.gather(self._dispatcher, return_exceptions=True)
            raise
        layer = self._channel_layer()
        if layer is not None:
            self._listener = asyncio.create_task(
                self._listen_channel(layer), name=f"mqtt {PUBLISH_CHANNEL} listener"
            )
        self._unregister = metrics.registry.register(self.name, self.reading)
        logger.info(
            "mqtt %s serving %d filter(s): %s",
            self.link.role,
            len(self.router.filters),
            ", ".join(self.router.filters),
        )

    async def stop(self, timeout: float) -> None:
        if self._stopping:
            return
        self._stopping = True
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        self.link.pause_reading()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout / 2):
                await self._drained.wait()
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            await asyncio.gather(self._dispatcher, return_exceptions=True)
        await self.manager.shutdown(timeout / 2)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.link.stop()
        if self._unregister is not None:
            self._unregister()

    async def ready(self) -> str | None:
        """Not ready while the bridge is disconnected from its broker (or the embedded
        broker does not listen)."""
        if self.link.connected:
            return None
        info = self.link.broker_info
        return f"{self.link.role} link to {info.get('host')}:{info.get('port')} is down"

    def describe(self, summary: Summary) -> None:
        self.link.describe(summary)

    def reading(self) -> ServerReading:
        """Connections the link holds, messages received (presence excluded) and
        published, live instances and the link's state."""
        stats = self.stats
        mqtt = ProtocolCounters(
            self.link.open_connections(),
            stats.received - stats.presence_events,
            stats.published,
        )
        return ServerReading({"mqtt": mqtt}, len(self.manager), self.link.connected)

    # -- LinkSink -----------------------------------------------------------

    def deliver(self, incoming: Incoming, ack: Ack | None = None) -> None:
        self._queue(incoming, None, ack)

    def presence(self, client_id: str, username: str | None, connected: bool, reason: str) -> None:
        self.stats.presence_events += 1
        incoming, event = presence_incoming(client_id, username, connected, reason)
        self._queue(incoming, event, None)

    def link_changed(self, event: LinkEvent) -> None:
        logger.info("mqtt link %s (%s)", event["state"], event["reason"])
        for instance in list(self.manager.instances.values()):
            self._put_soon(instance, dict(event))

    def wanted_filters(self) -> dict[str, int]:
        wanted = {f: q for f, q in self.router.filters.items() if not f.startswith("$presence/")}
        for topic_filter, qos in self.dynamic.filters().items():
            wanted[topic_filter] = max(qos, wanted.get(topic_filter, 0))
        return wanted

    # -- inbound ------------------------------------------------------------

    def _queue(self, incoming: Incoming, event: PresenceEvent | None, ack: Ack | None) -> None:
        self.stats.received += 1
        self._drained.clear()
        pause = self._pending.put((incoming, event, ack))
        self.stats.max_pending = max(self.stats.max_pending, len(self._pending))
        if pause:
            self.stats.pauses += 1
            self.link.pause_reading()
        self._wakeup.set()

    async def _dispatch_loop(self) -> None:
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
            settlement = _Settlement(ack) if ack is not None else None
            try:
                await self._route(incoming, event, settlement)
            except Exception:
                logger.exception("mqtt message on %r could not be dispatched", incoming.topic)
            if settlement is not None:
                settlement.routed()
            if pending.paused and pending.resume():
                self.link.resume_reading()

    def _resolve(self, topic_name: str) -> RouteMatch | None:
        routes = self._routes
        try:
            match = routes[topic_name]
            routes.move_to_end(topic_name)
        except KeyError:
            match = routes[topic_name] = self.router.resolve(topic_name)
            if len(routes) > ROUTE_CACHE_SIZE:
                routes.popitem(last=False)
        return match

    async def _route(
        self, incoming: Incoming, event: PresenceEvent | None, settlement: _Settlement | None
    ) -> None:
        match = self._resolve(incoming.topic)
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

    def _put_soon(self, instance: ApplicationInstance, message: Message) -> None:
        """Queue a non-message event (link, ack) for a live instance, without blocking."""
        try:
            instance.put_nowait(message)
        except asyncio.QueueFull:
            self._spawn(self._put_when_room(instance, message))

    @staticmethod
    async def _put_when_room(instance: ApplicationInstance, message: Message) -> None:
        await instance.wait_for_room()
        if not instance.done:
            instance.put_nowait(message)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("mqtt background task failed", exc_info=task.exception())

    # -- instances ----------------------------------------------------------

    def _instance_ended(self, key: Hashable, instance: ApplicationInstance) -> None:
        if instance.failed is not None:
            self.stats.consumer_errors += 1
        unread = [d for d in instance.drain() if d[0]["type"] != "mqtt.disconnect"]
        if instance.in_hand is not None:
            if _layer_was_down(instance.failed):
                unread.insert(0, instance.in_hand)  # not handled: retried, never acked
                self._redeliver.hold(asyncio.get_running_loop().time())
            elif instance.in_hand[1] is not None and not (
                self._stopping and instance.failed is None
            ):
                # Handled by raising: acked, not retried forever. Only one cut short by
                # shutdown stays unacknowledged, for the broker to resend to the next run.
                instance.in_hand[1]()
        if unread and not self._stopping:
            # What the instance never read goes to a fresh one, before anything newer.
            scope = dict(instance.scope)
            self._redeliver.add(key, [(delivery, scope) for delivery in unread])
            self._wakeup.set()
        if key in self.manager.instances:
            return  # a newer instance serves the key and owns its subscriptions
        dropped = self.dynamic.drop(key)
        if dropped:
            wanted = self.wanted_filters()
            for topic_filter in dropped:
                if topic_filter not in wanted:
                    self._spawn(self._unsubscribe_quietly(topic_filter))

    async def _unsubscribe_quietly(self, topic_filter: str) -> None:
        try:
            await self.link.unsubscribe([topic_filter])
        except ConnectionError as exc:
            logger.info("could not unsubscribe %r: %s", topic_filter, exc)

    def _make_send(self, key: Hashable, scope: Scope) -> Send:
        async def send(message: Message) -> None:
            await self._handle_outgoing(key, message)

        return send

    async def _handle_outgoing(self, key: Hashable, message: Message) -> None:
        outgoing = parse_outgoing(message)
        if isinstance(outgoing, Publish):
            try:
                done = await self.link.publish(outgoing)
            except ConnectionError as exc:
                self.stats.publish_failures += 1
                if outgoing.request_id is None:
                    logger.warning("publish to %r failed: %s", outgoing.topic, exc)
                    return
                done = asyncio.get_running_loop().create_future()
                done.set_exception(exc)
            self.stats.published += 1
            if done is not None:
                self._spawn(self._ack_when_done(key, outgoing.request_id, "publish", done))
            return
        operation = "subscribe" if isinstance(outgoing, Subscribe) else "unsubscribe"
        try:
            if isinstance(outgoing, Subscribe):
                self.dynamic.add(key, outgoing.filter, outgoing.qos)
                codes = await self.link.subscribe({outgoing.filter: outgoing.qos})
                if codes and codes[0] >= SubackCode.FAILURE:
                    self.dynamic.remove(key, outgoing.filter)
            else:
                self.dynamic.remove(key, outgoing.filter)
                codes = (
                    [SUCCESS]
                    if outgoing.filter in self.wanted_filters()
                    else await self.link.unsubscribe([outgoing.filter])
                )
            event = ack_event(outgoing.request_id, operation, codes)
        except ConnectionError as exc:
            event = ack_event(outgoing.request_id, operation, [], str(exc))
        if outgoing.request_id is not None:
            self._send_ack(key, event)

    async def _ack_when_done(
        self, key: Hashable, request_id: Any, operation: str, done: asyncio.Future[list[int]]
    ) -> None:
        try:
            event = ack_event(request_id, operation, await done)
        except ConnectionError as exc:
            event = ack_event(request_id, operation, [], str(exc))
        self._send_ack(key, event)

    def _send_ack(self, key: Hashable, event: AckEvent) -> None:
        """Queue an ``mqtt.ack`` for ``key``'s instance, if it still lives."""
        instance = self.manager.instances.get(key)
        if instance is not None:
            self._put_soon(instance, dict(event))

    # -- the fixed channel --------------------------------------------------

    def _channel_layer(self) -> Any:
        if self.channel_layer_alias is None:
            return None
        return get_channel_layer(self.channel_layer_alias)

    async def _listen_channel(self, layer: Any) -> None:
        """Publish every ``mqtt.publish`` message sent to :data:`PUBLISH_CHANNEL`."""
        while True:
            message = await receive_retrying(layer, PUBLISH_CHANNEL, logger)
            try:
                outgoing = parse_outgoing(message)
                if not isinstance(outgoing, Publish):
                    raise ValueError(
                        f"{PUBLISH_CHANNEL} takes mqtt.publish, not {message.get('type')!r}"
                    )
            except ValueError as exc:
                self.stats.bad_channel_messages += 1
                logger.warning("dropped a message on %r: %s", PUBLISH_CHANNEL, exc)
                continue
            try:
                await self.link.publish(outgoing)
                self.stats.published += 1
            except ConnectionError as exc:
                self.stats.publish_failures += 1
                logger.warning(
                    "publish to %r from %r failed: %s", outgoing.topic, PUBLISH_CHANNEL, exc
                )


class _Settlement:
    """Acknowledges a received message once each instance it went to has handled it."""

    __slots__ = ("ack", "waiting")

    def __init__(self, ack: Ack) -> None:
        self.ack = ack
        self.waiting = 1  # routing itself, until routed()

    def expect(self) -> Handled:
        """One more instance to wait for; the callback it calls once it handled it."""
        self.waiting += 1
        return self._handled

    def routed(self) -> None:
        self._handled()

    def _handled(self) -> None:
        self.waiting -= 1
        if self.waiting == 0:
            self.ack()


def _layer_was_down(error: BaseException | None) -> bool:
    """Whether ``error`` (or what caused it) is the channel layer being unreachable."""
    while error is not None:
        if isinstance(error, ChannelLayerUnavailable):
            return True
        error = error.__cause__ or error.__context__
    return False
