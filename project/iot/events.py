"""The IoT app's live-update contract: channel-layer group names and event shapes.

Other apps (the dashboard, the chatbot) join these groups and handle these
events; docs/iot.md is the reference. Times are ISO 8601 strings in UTC, ids are
strings for commands (UUIDs) and integers for alerts and owners, so every event
is JSON- and msgpack-safe. Fields may be added; none is renamed or removed.

==========================  ===================================================
group                       events
==========================  ===================================================
``iot.fleet``               ``iot.devices``: the summaries due, one batch per
                            100 ms tick (<= 10/s per device)
``iot.device.<device_id>``  ``iot.device``, ``iot.readings`` (batched per
                            100 ms), ``iot.alert``, ``iot.command``,
                            ``iot.bad_payload`` (<= 10/s)
``iot.alerts``              ``iot.alert``: once when opened, once when cleared
``iot.commands``            ``iot.command`` on every status change
==========================  ===================================================

The MQTT traffic of devices goes to the traffic log, ``iot.traffic``, whose shape
and batching ``project.traffic`` defines for every protocol.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol, TypedDict

from gateway.types import Message

if TYPE_CHECKING:
    from project.iot.models import Alert, Command

FLEET_GROUP = "iot.fleet"
ALERTS_GROUP = "iot.alerts"
COMMANDS_GROUP = "iot.commands"


def device_group(device_id: str) -> str:
    """The group of one device's events: ``iot.device.<device_id>``."""
    return f"iot.device.{device_id}"


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


class ThingLike(Protocol):
    """What a device summary is made of: a ``Thing`` row or the ingest's live copy."""

    @property
    def device_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def owner_id(self) -> int: ...
    @property
    def online(self) -> bool: ...
    @property
    def last_seen(self) -> datetime | None: ...
    @property
    def last_values(self) -> dict[str, float]: ...
    @property
    def last_reading_at(self) -> datetime | None: ...
    @property
    def bad_payloads(self) -> int: ...


class DeviceSummary(TypedDict):
    device_id: str
    name: str
    owner_id: int
    online: bool
    last_seen: str | None
    last_values: dict[str, float]
    last_reading_at: str | None
    bad_payloads: int
    open_alerts: int


class AlertInfo(TypedDict):
    id: int
    #: The threshold it belongs to (None once that threshold was deleted).
    threshold_id: int | None
    device_id: str
    device_name: str
    owner_id: int
    metric: str
    direction: str
    limit: float
    #: The value that opened it ("opened"), or cleared it ("cleared"; None when its
    #: threshold was removed or disabled).
    value: float | None
    state: Literal["opened", "cleared"]
    at: str


class CommandInfo(TypedDict):
    id: str
    device_id: str
    owner_id: int
    name: str
    args: dict[str, object]
    status: str
    reason: str
    via: str
    created_at: str
    acked_at: str | None
    #: What the device's ack carried as ``result`` (None until acked).
    result: object


def device_summary(thing: ThingLike, open_alerts: int) -> DeviceSummary:
    return {
        "device_id": thing.device_id,
        "name": thing.name,
        "owner_id": thing.owner_id,
        "online": thing.online,
        "last_seen": iso(thing.last_seen),
        "last_values": dict(thing.last_values),
        "last_reading_at": iso(thing.last_reading_at),
        "bad_payloads": thing.bad_payloads,
        "open_alerts": open_alerts,
    }


def device_event(summary: DeviceSummary) -> Message:
    return {"type": "iot.device", "device": summary}


def devices_event(summaries: Sequence[DeviceSummary]) -> Message:
    """Every summary due at one tick, for the fleet: one message, not one per device.

    A fleet page follows every device; one message per device per tick would make a
    busy fleet's page fall behind and drop summaries (a card's last one among them).
    """
    return {"type": "iot.devices", "devices": list(summaries)}


def readings_event(
    device_id: str, points: Sequence[tuple[str, Mapping[str, float]]], dropped: int = 0
) -> Message:
    """``points`` are ``(iso time, {metric: value})``; ``dropped`` counts points the
    live view lost because the channel layer could not keep up (the database has them)."""
    return {
        "type": "iot.readings",
        "device": device_id,
        "points": [[at, dict(values)] for at, values in points],
        "dropped": dropped,
    }


def alert_info(alert: Alert, thing: ThingLike, state: Literal["opened", "cleared"]) -> AlertInfo:
    value: float | None
    if state == "opened":
        moment, value = alert.opened_at, alert.value
    elif alert.cleared_at is None:
        raise ValueError(f"alert {alert.pk} is still open")
    else:
        moment, value = alert.cleared_at, alert.clear_value
    return {
        "id": alert.pk,
        "threshold_id": alert.threshold_id,
        "device_id": thing.device_id,
        "device_name": thing.name,
        "owner_id": thing.owner_id,
        "metric": alert.metric,
        "direction": alert.direction,
        "limit": alert.limit,
        "value": value,
        "state": state,
        "at": moment.isoformat(),
    }


def alert_event(info: AlertInfo) -> Message:
    return {"type": "iot.alert", "alert": info}


def command_info(command: Command) -> CommandInfo:
    """The command's state; ``command.thing`` must be loaded (it is where commands are made)."""
    return {
        "id": str(command.pk),
        "device_id": command.thing.device_id,
        "owner_id": command.thing.owner_id,
        "name": command.name,
        "args": dict(command.args),
        "status": command.status,
        "reason": command.reason,
        "via": command.via,
        "created_at": command.created_at.isoformat(),
        "acked_at": iso(command.acked_at),
        "result": command.result,
    }


def command_event(info: CommandInfo) -> Message:
    return {"type": "iot.command", "command": info}


def bad_payload_event(device_id: str, reason: str, sample: str, at: datetime) -> Message:
    return {
        "type": "iot.bad_payload",
        "device": device_id,
        "reason": reason,
        "sample": sample,
        "at": at.isoformat(),
    }
