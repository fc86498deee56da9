"""What instances send, and the fixed channel: publishes, subscriptions, their acks.

An instance's ``send`` goes to :meth:`Outbox.handle`: ``mqtt.publish`` becomes a
publish on the link, ``mqtt.subscribe``/``mqtt.unsubscribe`` change the key's
dynamic subscriptions and the link's, and a ``request_id`` is answered with an
``mqtt.ack`` event (errors are data: a lost link is an ack with ``error``).
:meth:`Outbox.listen` publishes what any process sends to
:data:`~gateway.mqtt.events.PUBLISH_CHANNEL` (docs/specs/mqtt.md).

A filter stays subscribed on the link while a route or any live key wants it;
:meth:`Outbox.release` drops an ended key's filters and unsubscribes those nobody
wants any more.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable
from typing import Any

from gateway.layers.receiving import receive_retrying
from gateway.mqtt.codes import SUCCESS, SubackCode
from gateway.mqtt.events import (
    PUBLISH_CHANNEL,
    AckEvent,
    Publish,
    Subscribe,
    ack_event,
    parse_outgoing,
)
from gateway.types import Message, Scope, Send
from protocols.background import BackgroundTasks
from protocols.mqtt.link import Link
from protocols.mqtt.stats import MqttStats
from protocols.mqtt.subscriptions import DynamicSubscriptions

logger = logging.getLogger("gateway.server.mqtt")

#: Hands an event to ``key``'s instance if it still lives (never waits).
Reply = Callable[[Hashable, AckEvent], None]


class Outbox:
    """Turns what instances and the fixed channel send into link operations."""

    def __init__(
        self,
        link: Link,
        route_filters: dict[str, int],
        dynamic: DynamicSubscriptions,
        *,
        reply: Reply,
        stats: MqttStats,
        tasks: BackgroundTasks,
    ) -> None:
        self.link = link
        #: The filters the router declares (``$presence/`` ones are the broker's own).
        self.route_filters = {
            f: q for f, q in route_filters.items() if not f.startswith("$presence/")
        }
        self.dynamic = dynamic
        self._reply = reply
        self._stats = stats
        self._tasks = tasks

    def wanted_filters(self) -> dict[str, int]:
        """Every filter to subscribe now: the routes' and the live keys' (highest QoS)."""
        wanted = dict(self.route_filters)
        for topic_filter, qos in self.dynamic.filters().items():
            wanted[topic_filter] = max(qos, wanted.get(topic_filter, 0))
        return wanted

    def send_for(self, key: Hashable, scope: Scope) -> Send:
        """The ``send`` of ``key``'s instance."""

        async def send(message: Message) -> None:
            await self.handle(key, message)

        return send

    async def handle(self, key: Hashable, message: Message) -> None:
        """Carry out what ``key``'s instance sent."""
        outgoing = parse_outgoing(message)
        if isinstance(outgoing, Publish):
            try:
                done = await self.link.publish(outgoing)
            except ConnectionError as exc:
                self._stats.publish_failures += 1
                if outgoing.request_id is None:
                    logger.warning("publish to %r failed: %s", outgoing.topic, exc)
                    return
                done = asyncio.get_running_loop().create_future()
                done.set_exception(exc)
            self._stats.published += 1
            if done is not None:
                self._tasks.spawn(self._ack_when_done(key, outgoing.request_id, done))
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
            self._reply(key, event)

    async def _ack_when_done(
        self, key: Hashable, request_id: Any, done: asyncio.Future[list[int]]
    ) -> None:
        try:
            event = ack_event(request_id, "publish", await done)
        except ConnectionError as exc:
            event = ack_event(request_id, "publish", [], str(exc))
        self._reply(key, event)

    def release(self, key: Hashable) -> None:
        """``key`` has no instance any more: drop its subscriptions, and unsubscribe
        the filters nothing else wants (in the background)."""
        dropped = self.dynamic.drop(key)
        if dropped:
            wanted = self.wanted_filters()
            for topic_filter in dropped:
                if topic_filter not in wanted:
                    self._tasks.spawn(self._unsubscribe_quietly(topic_filter))

    async def _unsubscribe_quietly(self, topic_filter: str) -> None:
        try:
            await self.link.unsubscribe([topic_filter])
        except ConnectionError as exc:
            logger.info("could not unsubscribe %r: %s", topic_filter, exc)

    async def listen(self, layer: Any) -> None:
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
                self._stats.bad_channel_messages += 1
                logger.warning("dropped a message on %r: %s", PUBLISH_CHANNEL, exc)
                continue
            try:
                await self.link.publish(outgoing)
                self._stats.published += 1
            except ConnectionError as exc:
                self._stats.publish_failures += 1
                logger.warning(
                    "publish to %r from %r failed: %s", outgoing.topic, PUBLISH_CHANNEL, exc
                )
