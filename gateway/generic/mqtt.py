"""MQTT consumers: receive messages, publish, subscribe, JSON (docs/specs/mqtt.md).

One implementation of the ``mqtt`` events (:class:`MqttHandlers`); the async and
sync classes differ only in how their hooks run and how they send, as in
:mod:`gateway.generic.websocket`::

    class TelemetryConsumer(AsyncJsonMqttConsumer):
        groups = ["telemetry"]

        async def receive_json(self, topic, content, **kwargs):
            device = self.scope["route"]["kwargs"]["device_id"]
            await self.publish_json(f"devices/{device}/ack", {"seen": content["seq"]})

Hooks (all optional): ``receive(topic, payload, **details)`` for each
``mqtt.message`` (details: ``qos``, ``retain``, ``dup``, ``subscription``,
``properties`` and, in the broker role, ``client``); ``presence(client_id,
connected, **details)``; ``link(state, **details)`` when the broker link goes
``down``/``up``; ``ack(request_id, ok, **details)`` for requests sent with a
``request_id``; ``disconnect(reason)`` when the scope ends.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from gateway.consumer import AsyncConsumer, SyncConsumer
from gateway.generic.codec import JsonCodec
from gateway.mqtt.events import (
    message_details,
    publish_message,
    subscribe_message,
    unsubscribe_message,
)
from gateway.types import Message

__all__ = [
    "AsyncJsonMqttConsumer",
    "AsyncMqttConsumer",
    "JsonMqttConsumer",
    "MqttConsumer",
]

logger = logging.getLogger("gateway.consumer")


class MqttHandlers(AsyncConsumer):
    """The ``mqtt.*`` event handlers shared by every MQTT consumer."""

    async def mqtt_message(self, message: Message) -> None:
        await self._call_hook(
            self.receive, message["topic"], message["payload"], **message_details(message)
        )

    async def mqtt_presence(self, message: Message) -> None:
        details = {k: v for k, v in message.items() if k not in ("type", "client_id", "connected")}
        await self._call_hook(self.presence, message["client_id"], message["connected"], **details)

    async def mqtt_link(self, message: Message) -> None:
        details = {k: v for k, v in message.items() if k not in ("type", "state")}
        await self._call_hook(self.link, message["state"], **details)

    async def mqtt_ack(self, message: Message) -> None:
        details = {k: v for k, v in message.items() if k not in ("type", "request_id", "ok")}
        await self._call_hook(self.ack, message["request_id"], message["ok"], **details)

    async def mqtt_disconnect(self, message: Message) -> None:
        """Leave the groups, then run ``disconnect(reason)``; the consumer then ends."""
        await self._leave_groups()
        await self._call_hook(self.disconnect, message.get("reason", "shutdown"))

    # The hooks subclasses define (async or sync) ------------------------------
    receive: Any
    presence: Any
    link: Any
    ack: Any
    disconnect: Any


class AsyncMqttConsumer(MqttHandlers):
    """An MQTT consumer with async hooks; one instance per route key."""

    async def receive(self, topic: str, payload: bytes, **details: Any) -> None:
        """Called with each message on this scope's topics; does nothing by default."""

    async def presence(self, client_id: str, connected: bool, **details: Any) -> None:
        """A device connected or went away (broker role); does nothing by default."""

    async def link(self, state: str, **details: Any) -> None:
        """The broker link went ``down`` or came back ``up``; does nothing by default."""

    async def ack(self, request_id: Any, ok: bool, **details: Any) -> None:
        """The answer to a request sent with ``request_id``; does nothing by default."""

    async def disconnect(self, reason: str) -> None:
        """The scope ends (``idle``, ``evicted``, ``shutdown``); does nothing by default."""

    async def publish(
        self,
        topic: str,
        payload: bytes | str,
        qos: int = 0,
        retain: bool = False,
        properties: dict[str, Any] | None = None,
        request_id: Any = None,
    ) -> None:
        """Publish ``payload`` (str is sent as UTF-8) to ``topic``."""
        await self.base_send(
            dict(publish_message(topic, payload, qos, retain, properties, request_id))
        )

    async def subscribe(self, topic_filter: str, qos: int = 0, request_id: Any = None) -> None:
        """Also receive messages matching ``topic_filter`` in this instance."""
        await self.base_send(dict(subscribe_message(topic_filter, qos, request_id)))

    async def unsubscribe(self, topic_filter: str, request_id: Any = None) -> None:
        await self.base_send(dict(unsubscribe_message(topic_filter, request_id)))


class MqttConsumer(MqttHandlers, SyncConsumer):
    """An MQTT consumer with sync hooks, run in a worker thread (same hooks, same methods)."""

    def receive(self, topic: str, payload: bytes, **details: Any) -> None:
        """Called with each message on this scope's topics; does nothing by default."""

    def presence(self, client_id: str, connected: bool, **details: Any) -> None:
        """A device connected or went away (broker role); does nothing by default."""

    def link(self, state: str, **details: Any) -> None:
        """The broker link went ``down`` or came back ``up``; does nothing by default."""

    def ack(self, request_id: Any, ok: bool, **details: Any) -> None:
        """The answer to a request sent with ``request_id``; does nothing by default."""

    def disconnect(self, reason: str) -> None:
        """The scope ends (``idle``, ``evicted``, ``shutdown``); does nothing by default."""

    def publish(
        self,
        topic: str,
        payload: bytes | str,
        qos: int = 0,
        retain: bool = False,
        properties: dict[str, Any] | None = None,
        request_id: Any = None,
    ) -> None:
        """Publish ``payload`` (str is sent as UTF-8) to ``topic``."""
        self.base_send(dict(publish_message(topic, payload, qos, retain, properties, request_id)))

    def subscribe(self, topic_filter: str, qos: int = 0, request_id: Any = None) -> None:
        """Also receive messages matching ``topic_filter`` in this instance."""
        self.base_send(dict(subscribe_message(topic_filter, qos, request_id)))

    def unsubscribe(self, topic_filter: str, request_id: Any = None) -> None:
        self.base_send(dict(unsubscribe_message(topic_filter, request_id)))


class JsonMqttHandlers(JsonCodec, MqttHandlers):
    """Decode payloads as JSON before ``receive_json(topic, content, **details)``.

    A payload that is not JSON (or not UTF-8) is logged and counted in
    :attr:`decode_errors` (per class) and skipped: the scope goes on.
    """

    decode_errors: ClassVar[int] = 0

    async def mqtt_message(self, message: Message) -> None:
        try:
            content = self.decode_json(message["payload"])
        except (ValueError, UnicodeDecodeError) as exc:
            type(self).decode_errors += 1
            logger.warning(
                "%s: payload on %r is not JSON (%s); skipped",
                type(self).__name__,
                message.get("topic"),
                exc,
            )
            return
        await self._call_hook(
            self.receive_json, message["topic"], content, **message_details(message)
        )

    receive_json: Any


class AsyncJsonMqttConsumer(JsonMqttHandlers, AsyncMqttConsumer):
    """An async MQTT consumer exchanging JSON payloads."""

    async def receive_json(self, topic: str, content: Any, **details: Any) -> None:
        """Called with each decoded payload; does nothing by default."""

    async def publish_json(self, topic: str, content: Any, qos: int = 0, **options: Any) -> None:
        await self.publish(topic, self.encode_json(content), qos, **options)


class JsonMqttConsumer(JsonMqttHandlers, MqttConsumer):
    """A sync MQTT consumer exchanging JSON payloads."""

    def receive_json(self, topic: str, content: Any, **details: Any) -> None:
        """Called with each decoded payload; does nothing by default."""

    def publish_json(self, topic: str, content: Any, qos: int = 0, **options: Any) -> None:
        self.publish(topic, self.encode_json(content), qos, **options)
