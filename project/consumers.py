"""The starter project's consumers: device telemetry to a live feed, and the seed bot.

A device publishes to ``devices/<device_id>/telemetry``; every browser connected to
``/ws/telemetry/`` sees it at once, whatever process either is served by (the
channel layer carries it). The Telegram bot is the seed example, as written.
"""

from __future__ import annotations

from typing import Any

from gateway.consumer import SyncConsumer
from gateway.generic.mqtt import AsyncMqttConsumer
from gateway.generic.websocket import AsyncJsonWebsocketConsumer

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


class TelemetryFeedConsumer(AsyncJsonWebsocketConsumer):
    """A browser's live view of every device's telemetry."""

    groups = [TELEMETRY_GROUP]

    async def telemetry_reading(self, event: dict[str, Any]) -> None:
        await self.send_json({"device": event["device"], "payload": event["payload"]})


class ChattyBotConsumer(SyncConsumer):
    """The seed example, kept exactly as DESIGN.md writes it."""

    def telegram_message(self, message: dict[str, Any]) -> None:
        self.send({"type": "telegram.message", "text": "You said: %s" % message["text"]})  # noqa: UP031
