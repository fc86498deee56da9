"""``/ws/fleet/``: the fleet page's live feed of device summaries.

Every socket follows ``iot.fleet`` (every device, coalesced by the IoT app to
at most 10 updates a second each) and forwards only the devices its user may
see: staff every one, others those they own, decided here, on the server, from
the event's ``owner_id``, so another user's device never reaches the browser.
A slow browser only fills its own channel, whose capacity drops the excess
(the channel layer's policy): nothing here buffers.
"""

from __future__ import annotations

from typing import Any

from project.dashboard.sockets import DashboardSocket
from project.iot.events import FLEET_GROUP
from project.iot.services import asummaries


class FleetSocket(DashboardSocket):
    """Sends ``{"type": "snapshot", "devices": [...]}``, then ``{"type": "device", ...}``."""

    def live_groups(self) -> list[str]:
        return [FLEET_GROUP]

    async def admitted(self) -> None:
        devices = await asummaries(self.scope["user"])
        await self.send_json({"type": "snapshot", "devices": devices})

    def may_see(self, device: dict[str, Any]) -> bool:
        user = self.scope["user"]
        return bool(user.is_staff) or device["owner_id"] == user.pk

    async def iot_devices(self, event: dict[str, Any]) -> None:
        for device in event["devices"]:
            if self.may_see(device):
                await self.send_json({"type": "device", "device": device})
