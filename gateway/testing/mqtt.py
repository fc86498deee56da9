"""Drive an MQTT application as the MQTT server would, without a broker."""

from __future__ import annotations

from typing import Any

from gateway.routing.topic import RouteMatch, find_topic_router
from gateway.testing.application import ApplicationCommunicator
from gateway.topics import Pattern
from gateway.types import ASGIApp, Message, Scope

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
        role: str = "bridge",
        client: dict[str, Any] | None = None,
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
        scope: Scope = {
            "type": "mqtt",
            "asgi": {"version": "3.0", "spec_version": "1.0"},
            "role": role,
            "mqtt_version": mqtt_version,
            "broker": {"host": "testserver", "port": 1883, "tls": False},
            **match.scope_keys(),
        }
        if client is not None:
            scope["client"] = client
        super().__init__(application, scope)

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
        message: Message = {
            "type": "mqtt.message",
            "topic": topic or self.topic,
            "payload": payload.encode() if isinstance(payload, str) else payload,
            "qos": qos,
            "retain": retain,
            "dup": dup,
            "subscription": self.match.pattern.filter,
            "properties": properties or {},
        }
        if self.client is not None:
            message["client"] = self.client
        await self.send_input(message)

    async def send_link(self, state: str, reason: str = "test") -> None:
        message: Message = {"type": "mqtt.link", "state": state, "reason": reason}
        if state == "up":
            message["session_present"] = False
        await self.send_input(message)

    async def send_presence(
        self, client_id: str, connected: bool, reason: str = "connect", username: str | None = None
    ) -> None:
        await self.send_input(
            {
                "type": "mqtt.presence",
                "client_id": client_id,
                "username": username,
                "connected": connected,
                "reason": reason,
            }
        )

    async def receive_publish(self, timeout: float = 1) -> Message:
        """The next message the application sent, which must be an ``mqtt.publish``."""
        message = await self.receive_output(timeout)
        if message.get("type") != "mqtt.publish":
            raise AssertionError(f"expected mqtt.publish, got {message!r}")
        return message

    async def disconnect(self, reason: str = "shutdown", timeout: float = 1) -> None:
        """End the scope with ``mqtt.disconnect`` and wait for the application to return."""
        await self.send_input({"type": "mqtt.disconnect", "reason": reason})
        await self.wait(timeout)
