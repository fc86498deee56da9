"""Drive an MQTT application as the MQTT server would, without a broker."""

from __future__ import annotations

from typing import Any

from gateway.mqtt.events import (
    ClientInfo,
    Incoming,
    LinkState,
    Role,
    build_scope,
    disconnect_event,
    link_event,
    message_event,
    parse_outgoing,
    presence_event,
)
from gateway.routing.topic import RouteMatch, find_topic_router
from gateway.testing.application import ApplicationCommunicator
from gateway.topics import Pattern
from gateway.types import ASGIApp, Message

__all__ = ["MqttCommunicator"]


class MqttCommunicator(ApplicationCommunicator):
    """One route key's instance, fed like the server feeds it (docs/specs/mqtt.md)::

        communicator = MqttCommunicator(application, "devices/d1/telemetry")
        await communicator.send_message(b'{"t": 21.5}')
        published = await communicator.receive_publish()
        assert published["topic"] == "devices/d1/ack"
        await communicator.disconnect()

    ``topic`` is resolved with the application's TopicRouter (through
    ProtocolTypeRouter and middleware) to build ``scope["route"]``; an application
    without one gets the topic itself as its pattern. ``role`` and ``client`` set
    the scope's role and, for the broker role, the publishing device.
    """

    def __init__(
        self,
        application: ASGIApp,
        topic: str,
        *,
        role: Role = "bridge",
        client: ClientInfo | None = None,
        mqtt_version: str = "5.0",
    ) -> None:
        router = find_topic_router(application)
        match = router.resolve(topic) if router is not None else None
        if router is not None and match is None:
            raise ValueError(f"no route of the application matches topic {topic!r}")
        if match is None:
            match = RouteMatch(Pattern.parse(topic), {}, 0)
        self.topic = topic
        self.match = match
        self.client = client
        scope = build_scope(
            match,
            role=role,
            mqtt_version=mqtt_version,
            broker={"host": "testserver", "port": 1883, "tls": False},
            client=client,
        )
        super().__init__(application, dict(scope))

    async def send_message(
        self,
        payload: bytes | str,
        topic: str | None = None,
        *,
        qos: int = 0,
        retain: bool = False,
        dup: bool = False,
        properties: dict[str, Any] | None = None,
    ) -> None:
        """Deliver an ``mqtt.message`` (``topic`` defaults to the communicator's)."""
        incoming = Incoming(
            topic or self.topic,
            payload.encode() if isinstance(payload, str) else payload,
            qos,
            retain,
            dup,
            properties or {},
            self.client,
        )
        await self.send_input(dict(message_event(incoming, self.match.pattern.filter)))

    async def send_link(self, state: LinkState, reason: str = "test") -> None:
        await self.send_input(dict(link_event(state, reason)))

    async def send_presence(
        self, client_id: str, connected: bool, reason: str = "connect", username: str | None = None
    ) -> None:
        await self.send_input(dict(presence_event(client_id, username, connected, reason)))

    async def receive_publish(self, timeout: float = 1) -> Message:
        """The next message the application sent, which must be an ``mqtt.publish`` the
        server would accept (:func:`~gateway.mqtt.events.parse_outgoing`); returned as sent."""
        message = await self.receive_output(timeout)
        if message.get("type") != "mqtt.publish":
            raise AssertionError(f"expected mqtt.publish, got {message!r}")
        try:
            parse_outgoing(message)
        except ValueError as exc:
            raise AssertionError(f"the server would refuse {message!r}: {exc}") from exc
        return message

    async def disconnect(self, reason: str = "shutdown", timeout: float = 1) -> None:
        """End the scope with ``mqtt.disconnect`` and wait for the application to return."""
        await self.send_input(dict(disconnect_event(reason)))
        await self.wait(timeout)
