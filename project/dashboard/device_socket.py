"""``/ws/devices/<device_id>/``: one device's page, live, and its controls.

Admission: a logged-in user (the base, 4401 otherwise) who may see the device
(``services.thing_for``); a device that is another user's, or none, closes with
:data:`NOT_FOUND` (4404, HTTP's 404) before the socket joins the device's group,
so its events never reach it. Then a ``snapshot`` (project.dashboard.snapshots),
and every event of ``iot.device.<device_id>`` as the IoT app sends it: readings
batched per 100 ms, device summaries at most 10 a second. Nothing is buffered
here: a slow browser's channel fills and the layer drops for it alone.

The page sends its controls on the same socket (the Origin check of
``project.asgi`` is the CSRF defence a socket needs):

- ``{"type": "command", "name": "reboot", "args": {...}}``: the command's state
  comes back at once (``refused`` with its reason, or ``pending``), then on each
  change through the device's group;
- ``{"type": "threshold", "metric", "direction", "limit", "hysteresis"}`` and
  ``{"type": "delete_threshold", "metric", "direction"}``: answered with
  ``{"type": "thresholds", "thresholds": [...]}``;
- anything else: ``{"type": "error", "reason": ...}`` (fields: ``errors``).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError

from gateway.db import database_sync_to_async
from project.dashboard.snapshots import device_snapshot, threshold_rows
from project.dashboard.sockets import DashboardSocket
from project.iot.events import command_info, device_group
from project.iot.models import Thing
from project.iot.services import adelete_threshold, asend_command, aset_threshold, athing_for

NOT_FOUND = 4404

snapshot_of = database_sync_to_async(device_snapshot)
thresholds_of = database_sync_to_async(threshold_rows)


class DeviceSocket(DashboardSocket):
    """One device's live page; see the module docstring for the messages."""

    thing: Thing | None = None

    @property
    def device_id(self) -> str:
        device_id: str = self.scope["url_route"]["kwargs"]["device_id"]
        return device_id

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is not None and user.is_authenticated:
            try:
                self.thing = await athing_for(user, self.device_id)
            except Thing.DoesNotExist:
                self.thing = None
        await super().connect()

    def live_groups(self) -> list[str]:
        return [device_group(self.thing.device_id)] if self.thing is not None else []

    async def admitted(self) -> None:
        if self.thing is None:
            await self.close(code=NOT_FOUND, reason="no such device")
            return
        await self.send_json(await snapshot_of(self.thing))

    # -- from the page --------------------------------------------------------------

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if self.thing is None:
            return
        kind = content.get("type") if isinstance(content, dict) else None
        try:
            if kind == "command":
                await self.command(self.thing, content)
            elif kind == "threshold":
                await self.threshold(self.thing, content)
            elif kind == "delete_threshold":
                await adelete_threshold(self.thing, content["metric"], content["direction"])
                await self.send_json(
                    {"type": "thresholds", "thresholds": await thresholds_of(self.thing)}
                )
            else:
                await self.send_json({"type": "error", "reason": f"unknown message type {kind!r}"})
        except (KeyError, TypeError, ValueError) as exc:
            await self.send_json({"type": "error", "reason": f"malformed {kind}: {exc!r}"})
        except ValidationError as exc:
            await self.send_json(
                {"type": "error", "reason": "invalid threshold", "errors": exc.message_dict}
            )

    async def command(self, thing: Thing, content: dict[str, Any]) -> None:
        """Send a command with the device as it is now (``send_command`` refuses an
        offline device, and the copy loaded at connect time may be hours old)."""
        args = content.get("args") or {}
        thing = await athing_for(self.scope["user"], thing.device_id)
        command = await asend_command(
            thing, str(content["name"]), args, user=self.scope["user"], via="dashboard"
        )
        await self.send_json({"type": "command", "command": command_info(command)})

    async def threshold(self, thing: Thing, content: dict[str, Any]) -> None:
        await aset_threshold(
            thing,
            str(content["metric"]),
            str(content["direction"]),
            float(content["limit"]),
            hysteresis=float(content.get("hysteresis") or 0),
        )
        await self.send_json({"type": "thresholds", "thresholds": await thresholds_of(thing)})

    # -- from the IoT app (docs/iot.md) ------------------------------------------------

    async def iot_device(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "device", "device": event["device"]})

    async def iot_readings(self, event: dict[str, Any]) -> None:
        await self.send_json(
            {"type": "readings", "points": event["points"], "dropped": event.get("dropped", 0)}
        )

    async def iot_alert(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "alert", "alert": event["alert"]})

    async def iot_command(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "command", "command": event["command"]})

    async def iot_bad_payload(self, event: dict[str, Any]) -> None:
        fields = ("reason", "sample", "at")
        await self.send_json({"type": "bad_payload", **{key: event[key] for key in fields}})
