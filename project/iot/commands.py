"""Commands to devices: what may be sent, the MQTT message, acks and timeouts.

Sync ORM code, called by the service layer (any process) and by the ingest side.
A command goes out as JSON on ``devices/<device_id>/commands`` at QoS 1::

    {"id": "6f1c...", "name": "reboot", "args": {"delay": 5}}

and the device answers on ``devices/<device_id>/commands/ack`` with
``{"id": "6f1c...", "ok": true, "result": ...}``. A command is ``pending`` until
then, ``acknowledged`` or ``failed`` after, ``timed_out`` when no ack came within
``IOT_COMMAND_TIMEOUT`` seconds, ``refused`` when it was never sent.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from gateway.mqtt.events import PublishMessage
from project.iot.models import Command, CommandStatus, Thing
from project.iot.payloads import NAME, Ack

#: Overdue commands expired per sweep; the rest wait for the next one.
EXPIRE_BATCH = 1000


def command_topic(device_id: str) -> str:
    return f"devices/{device_id}/commands"


def command_payload(command: Command) -> str:
    return json.dumps({"id": str(command.pk), "name": command.name, "args": command.args})


def is_json_object(args: Any) -> bool:
    """Whether ``args`` can be a command's arguments: a dict JSON can encode."""
    try:
        json.dumps(args, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return isinstance(args, dict)


def refusal(thing: Thing, name: str, args: Any, max_bytes: int) -> str | None:
    """Why ``name(args)`` cannot be sent to ``thing`` now, or None when it can."""
    if not NAME.match(name):
        return "a command name is 1-64 letters, digits, '_', '-' or '.'"
    if thing.commands and name not in thing.commands:
        return f"{name!r} is not one of the device's commands ({', '.join(thing.commands)})"
    if not is_json_object(args):
        return "command arguments must be a JSON object (of strings, numbers, lists, ...)"
    size = len(json.dumps({"id": "0" * 36, "name": name, "args": args}).encode())
    if size > max_bytes:
        return f"the command is {size} bytes, more than the limit of {max_bytes}"
    if not thing.online:
        return "the device is offline"
    return None


def publish_message(command: Command) -> PublishMessage:
    """The ``mqtt.publish`` that sends ``command`` to its device, for the MQTT server's
    fixed channel (:data:`gateway.mqtt.events.PUBLISH_CHANNEL`)."""
    return {
        "type": "mqtt.publish",
        "topic": command_topic(command.thing.device_id),
        "payload": command_payload(command),
        "qos": 1,
    }


def record_ack(device_id: str, ack: Ack, at: datetime) -> Command | None:
    """Settle the pending command ``ack`` names, if it is this device's.

    None when the id is unknown, another device's, or no longer pending (a late
    ack after the timeout, a duplicate): nothing changes then.
    """
    updated = Command.objects.filter(
        pk=ack.command_id, thing__device_id=device_id, status=CommandStatus.PENDING
    ).update(
        status=CommandStatus.ACKNOWLEDGED if ack.ok else CommandStatus.FAILED,
        reason="" if ack.ok else ack.reason or "the device reported a failure",
        result=ack.result,
        acked_at=at,
    )
    if not updated:
        return None
    return Command.objects.select_related("thing").get(pk=ack.command_id)


def expire_overdue(now: datetime, timeout: float) -> list[Command]:
    """Time out commands pending for ``timeout`` seconds; the ones this call expired.

    Each is a conditional UPDATE, so when several processes sweep at once every
    command is expired (and announced) by exactly one of them.
    """
    overdue = Command.objects.filter(
        status=CommandStatus.PENDING, created_at__lte=now - timedelta(seconds=timeout)
    ).values_list("pk", flat=True)[:EXPIRE_BATCH]
    expired = [
        pk
        for pk in list(overdue)
        if Command.objects.filter(pk=pk, status=CommandStatus.PENDING).update(
            status=CommandStatus.TIMED_OUT, reason=f"no ack within {timeout:g} s"
        )
    ]
    return list(Command.objects.select_related("thing").filter(pk__in=expired))
