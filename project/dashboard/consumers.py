"""The dashboard's WebSocket consumers."""

from __future__ import annotations

from typing import Any

from gateway.generic.websocket import AsyncJsonWebsocketConsumer
from project.iot.consumers import TELEMETRY_GROUP


class TelemetryFeedConsumer(AsyncJsonWebsocketConsumer):
    """A browser's live view of every device's telemetry."""

    groups = [TELEMETRY_GROUP]

    async def telemetry_reading(self, event: dict[str, Any]) -> None:
        await self.send_json({"device": event["device"], "payload": event["payload"]})
