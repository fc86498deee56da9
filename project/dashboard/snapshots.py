"""What a device page's socket sends first: everything the page draws, from the database.

One query per part, bounded: the chart's last hour (``recent_readings``: at most
2000 points), the last :data:`ALERTS` alerts (open ones first), every threshold,
the last :data:`COMMANDS` commands. Live events then change this state; their
shapes are docs/iot.md's, and these mirror them (times in ISO 8601, UTC).
"""

from __future__ import annotations

from typing import Any

from project.iot.events import command_info, device_summary, iso
from project.iot.models import Alert, Command, Thing, Threshold
from project.iot.services import recent_readings

ALERTS = 20
COMMANDS = 10


def alert_row(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.pk,
        "metric": alert.metric,
        "direction": alert.direction,
        "limit": alert.limit,
        "value": alert.value,
        "opened_at": alert.opened_at.isoformat(),
        "cleared_at": iso(alert.cleared_at),
        "clear_value": alert.clear_value,
    }


def threshold_rows(thing: Thing) -> list[dict[str, Any]]:
    return [
        {
            "metric": t.metric,
            "direction": t.direction,
            "limit": t.limit,
            "hysteresis": t.hysteresis,
            "enabled": t.enabled,
        }
        for t in Threshold.objects.filter(thing=thing)
    ]


def bad_payloads(thing: Thing) -> dict[str, Any]:
    return {
        "count": thing.bad_payloads,
        "reason": thing.last_bad_reason,
        "sample": thing.last_bad_sample,
        "at": iso(thing.last_bad_at),
    }


def device_snapshot(thing: Thing) -> dict[str, Any]:
    """The ``snapshot`` message of ``/ws/devices/<device_id>/`` (docs/dashboard.md)."""
    thing.refresh_from_db()
    alerts = Alert.objects.filter(thing=thing).order_by("-opened_at")[:ALERTS]
    open_count = Alert.objects.filter(thing=thing, cleared_at__isnull=True).count()
    commands = Command.objects.filter(thing=thing).select_related("thing")[:COMMANDS]
    return {
        "type": "snapshot",
        "device": device_summary(thing, open_count),
        "commands_allowed": list(thing.commands),
        "points": recent_readings(thing),
        "alerts": [alert_row(alert) for alert in alerts],
        "thresholds": threshold_rows(thing),
        "commands": [command_info(command) for command in commands],
        "bad_payloads": bad_payloads(thing),
    }
