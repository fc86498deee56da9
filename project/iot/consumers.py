"""The IoT bridge's MQTT consumers."""

from __future__ import annotations

from typing import Any

from gateway.generic.mqtt import AsyncMqttConsumer

TELEMETRY_GROUP = "telemetry"


class TelemetryConsumer(AsyncMqttConsumer):
    """One instance per device: forwards each telemetry message to the live feed."""

    async def receive(self, topic: str, payload: bytes, **details: Any) -> None:
        await self.channel_layer.group_send(
            TELEMETRY_GROUP,
            {
                "type": "telemetry.reading",
                "device": self.scope["route"]["kwargs"]["device_id"],
                "payload": payload.decode("utf-8", errors="replace"),
            },
        )
