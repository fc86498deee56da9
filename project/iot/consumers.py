"""The IoT bridge's MQTT consumers: one instance per device and topic, all thin.

Each hands its messages to the process's :class:`~project.iot.ingest.Ingest`,
which validates, stores (in batches), evaluates thresholds and announces; see
docs/iot.md for the topics and payloads.
"""

from __future__ import annotations

from typing import Any

from gateway.generic.mqtt import AsyncMqttConsumer
from project.iot.ingest import current_ingest


class DeviceConsumer(AsyncMqttConsumer):
    """A consumer of one device's topic; the device id is the route's ``<device_id>``."""

    @property
    def device_id(self) -> str:
        device_id: str = self.scope["route"]["kwargs"]["device_id"]
        return device_id

    async def disconnect(self, reason: str) -> None:
        """At shutdown, write what waits: the process is about to end."""
        if reason == "shutdown":
            await current_ingest().flush()


class TelemetryConsumer(DeviceConsumer):
    """``devices/<device_id>/telemetry``: JSON metrics, ``{"temperature": 21.5}``."""

    async def receive(self, topic: str, payload: bytes, **details: Any) -> None:
        await current_ingest().telemetry(self.device_id, topic, payload)


class StatusConsumer(DeviceConsumer):
    """``devices/<device_id>/status``: ``online``/``offline``, retained, and the Last Will."""

    async def receive(self, topic: str, payload: bytes, **details: Any) -> None:
        await current_ingest().status(self.device_id, topic, payload)


class CommandAckConsumer(DeviceConsumer):
    """``devices/<device_id>/commands/ack``: ``{"id": ..., "ok": true, "result": ...}``."""

    async def receive(self, topic: str, payload: bytes, **details: Any) -> None:
        await current_ingest().command_ack(self.device_id, topic, payload)


class PresenceConsumer(DeviceConsumer):
    """``$presence/<client_id>`` (embedded broker): a device connected or went away.

    The device is the authenticated username, which for devices created by
    project.iot is also the device id; a client without one is named by its id.
    """

    async def presence(self, client_id: str, connected: bool, **details: Any) -> None:
        device_id = details.get("username") or client_id
        reason = details.get("reason", "")
        await current_ingest().presence(device_id, client_id, connected, reason)
