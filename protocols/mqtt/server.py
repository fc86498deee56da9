"""The MQTT interface server: routes a link's messages to one instance per route key.

Role-independent: a :class:`~protocols.mqtt.link.Link` (bridge or embedded broker)
hands over received messages; this server resolves them with the application's
:class:`~gateway.routing.topic.TopicRouter`, feeds each route key's instance in
order through :class:`~protocols.instances.InstanceManager`, and turns what
instances send back into publishes and subscriptions (docs/specs/mqtt.md).

It wires its parts and owns their lifecycle:

- :mod:`protocols.mqtt.dispatch`: received messages to instances, in order, with
  the ``inflight`` bound that pauses the link and the redelivery of what an ended
  instance never handled;
- :mod:`protocols.mqtt.outbox`: what instances send, the fixed channel
  :data:`~gateway.mqtt.events.PUBLISH_CHANNEL`, dynamic subscriptions;
- :mod:`protocols.mqtt.route_cache`: topic names resolved to routes (bounded, LRU).

Bounds and overflow policies beyond those parts': live instances, ``max_instances``,
least recently used evicted with ``mqtt.disconnect``; idle ones closed after
``idle_timeout``; each instance queue holds ``queue_size`` messages.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from gateway import metrics
from gateway.layers import get_channel_layer
from gateway.metrics import ProtocolCounters, ServerReading
from gateway.mqtt.events import (
    PUBLISH_CHANNEL,
    AckEvent,
    Incoming,
    LinkEvent,
    disconnect_event,
    presence_incoming,
)
from gateway.routing.topic import TopicRouter, find_topic_router
from gateway.startup import Summary
from gateway.types import ASGIApp
from protocols.background import BackgroundTasks
from protocols.instances import ApplicationInstance, InstanceManager
from protocols.mqtt.dispatch import Dispatcher
from protocols.mqtt.link import Ack, Link
from protocols.mqtt.outbox import Outbox
from protocols.mqtt.route_cache import RouteCache
from protocols.mqtt.stats import MqttStats
from protocols.mqtt.subscriptions import DynamicSubscriptions
from protocols.service import Service

logger = logging.getLogger("gateway.server.mqtt")


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
        self.router: TopicRouter = router
        self.link = link
        self.channel_layer_alias = channel_layer_alias
        self.stats = MqttStats()
        self._tasks = BackgroundTasks(logger, "mqtt")
        dynamic = DynamicSubscriptions()
        self.outbox = Outbox(
            link, router.filters, dynamic, reply=self._reply, stats=self.stats, tasks=self._tasks
        )
        self.manager = InstanceManager(
            application,
            send_factory=self.outbox.send_for,
            terminal_message=lambda reason: dict(disconnect_event(reason)),
            idle_timeout=idle_timeout,
            max_instances=max_instances,
            queue_size=queue_size,
            close_timeout=close_timeout,
            name="mqtt scope",
            on_exit=self._instance_ended,
        )
        self.dispatcher = Dispatcher(
            link, RouteCache(router), self.manager, dynamic, inflight=inflight, stats=self.stats
        )
        self._listener: asyncio.Task[None] | None = None
        self._unregister: Callable[[], None] | None = None

    # -- Service ------------------------------------------------------------

    async def start(self) -> None:
        self.dispatcher.start()
        try:
            await self.link.start(self)
        except BaseException:
            await self.dispatcher.cancel()
            raise
        layer = self._channel_layer()
        if layer is not None:
            self._listener = asyncio.create_task(
                self.outbox.listen(layer), name=f"mqtt {PUBLISH_CHANNEL} listener"
            )
        self._unregister = metrics.registry.register(self.name, self.reading)
        logger.info(
            "mqtt %s serving %d filter(s): %s",
            self.link.role,
            len(self.router.filters),
            ", ".join(self.router.filters),
        )

    async def stop(self, timeout: float) -> None:
        if self.dispatcher.stopping:
            return
        self.dispatcher.stopping = True
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        self.link.pause_reading()
        await self.dispatcher.wait_drained(timeout / 2)
        await self.dispatcher.cancel()
        await self.manager.shutdown(timeout / 2)
        await self._tasks.cancel()
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

    def _channel_layer(self) -> Any:
        if self.channel_layer_alias is None:
            return None
        return get_channel_layer(self.channel_layer_alias)

    # -- LinkSink -----------------------------------------------------------

    def deliver(self, incoming: Incoming, ack: Ack | None = None) -> None:
        self.dispatcher.queue(incoming, None, ack)

    def presence(self, client_id: str, username: str | None, connected: bool, reason: str) -> None:
        self.stats.presence_events += 1
        incoming, event = presence_incoming(client_id, username, connected, reason)
        self.dispatcher.queue(incoming, event, None)

    def link_changed(self, event: LinkEvent) -> None:
        logger.info("mqtt link %s (%s)", event["state"], event["reason"])
        for instance in list(self.manager.instances.values()):
            instance.put_soon(dict(event), self._tasks)

    def wanted_filters(self) -> dict[str, int]:
        return self.outbox.wanted_filters()

    # -- instances ----------------------------------------------------------

    def _instance_ended(self, key: Hashable, instance: ApplicationInstance) -> None:
        if instance.failed is not None:
            self.stats.consumer_errors += 1
        self.dispatcher.take_back(key, instance)
        if key not in self.manager.instances:  # else a newer instance owns its subscriptions
            self.outbox.release(key)

    def _reply(self, key: Hashable, event: AckEvent) -> None:
        """Queue an ``mqtt.ack`` for ``key``'s instance, if it still lives."""
        instance = self.manager.instances.get(key)
        if instance is not None:
            instance.put_soon(dict(event), self._tasks)
