"""The dashboard's WebSocket consumers, each a :class:`DashboardSocket` (login required)."""

from __future__ import annotations

from typing import Any

from gateway.metrics import HEALTH_GROUP, HEALTH_INTERVAL, health_event, registry
from project.dashboard.sockets import DashboardSocket
from project.traffic import TRAFFIC_GROUP


class HealthConsumer(DashboardSocket):
    """Every gateway process's heartbeat (``gateway.health``), as it arrives.

    This process's own snapshot goes out at once, so the page has numbers before
    the first heartbeat (and with no heartbeat at all, e.g. in tests).
    """

    def live_groups(self) -> list[str]:
        return [HEALTH_GROUP]

    async def admitted(self) -> None:
        await self.send_json(health_event(registry.snapshot(), HEALTH_INTERVAL, "running"))

    async def gateway_health(self, event: dict[str, Any]) -> None:
        await self.send_json(event)


class TrafficConsumer(DashboardSocket):
    """The traffic log (``iot.traffic`` batches). Staff only: it shows every device's
    and every chat's messages."""

    staff_only = True

    def live_groups(self) -> list[str]:
        return [TRAFFIC_GROUP]

    async def iot_traffic(self, event: dict[str, Any]) -> None:
        await self.send_json({"entries": event["entries"], "dropped": event.get("dropped", 0)})
