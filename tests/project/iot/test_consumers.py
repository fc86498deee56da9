"""The MQTT consumers end to end in one process: communicators, the in-memory layer,
PostgreSQL. What a device sends becomes readings, presence, alerts, command
outcomes and live events; what it gets wrong is counted and never stalls it."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from gateway.layers.base import BaseChannelLayer
from gateway.mqtt.events import PUBLISH_CHANNEL
from gateway.testing import MqttCommunicator
from gateway.types import ASGIApp
from project.iot.events import ALERTS_GROUP, COMMANDS_GROUP, FLEET_GROUP, device_group
from project.iot.ingest import Ingest, current_ingest
from project.iot.models import Alert, Command, Reading, Thing
from project.iot.services import asend_command, set_threshold
from tests.project.iot.conftest import WAIT, in_thread

pytestmark = pytest.mark.django_db(transaction=True)

Make = Callable[..., tuple[Thing, str]]


def topic(thing: Thing, suffix: str) -> str:
    return f"devices/{thing.device_id}/{suffix}"


async def test_a_reading_is_stored_and_shown_live(
    application: ASGIApp, thing: Thing, ingest: Ingest, listen: Any
) -> None:
    device = await listen(device_group(thing.device_id), FLEET_GROUP)
    telemetry = MqttCommunicator(application, topic(thing, "telemetry"))
    await telemetry.send_message(b'{"temperature": 21.5, "humidity": 40}', qos=1)

    readings = await device.next("iot.readings")
    [[at, values]] = readings["points"]
    assert (readings["device"], values, readings["dropped"]) == (
        thing.device_id,
        {"temperature": 21.5, "humidity": 40},
        0,
    )
    summary = (await device.next("iot.device"))["device"]
    assert summary == {
        "device_id": thing.device_id,
        "name": thing.name,
        "owner_id": thing.owner_id,
        "online": True,
        "last_seen": at,
        "last_values": {"temperature": 21.5, "humidity": 40},
        "last_reading_at": at,
        "bad_payloads": 0,
        "open_alerts": 0,
    }
    await telemetry.send_message(b'{"temperature": 22}')
    await device.until("iot.readings", lambda e: e["points"][-1][1] == {"temperature": 22})
    await telemetry.disconnect()  # "shutdown": the writer flushes

    stored = await in_thread(lambda: list(Reading.objects.filter(thing=thing).order_by("at")))
    assert [reading.values for reading in stored] == [
        {"temperature": 21.5, "humidity": 40},
        {"temperature": 22},
    ]
    row = await in_thread(Thing.objects.get, pk=thing.pk)
    assert (row.online, row.last_values) == (True, {"temperature": 22, "humidity": 40})
    assert row.last_seen == row.last_reading_at == stored[-1].at


async def test_500_readings_take_few_transactions_and_few_summaries(
    application: ASGIApp, thing: Thing, ingest: Ingest, listen: Any
) -> None:
    fleet = await listen(device_group(thing.device_id))
    device = await listen(device_group(thing.device_id))
    telemetry = MqttCommunicator(application, topic(thing, "telemetry"))
    for n in range(500):
        await telemetry.send_message(json.dumps({"n": n}).encode())
    points: list[Any] = []
    while len(points) < 500:
        points += (await device.next("iot.readings"))["points"]
    assert [values["n"] for _, values in points] == list(range(500))  # none lost, in order
    async with asyncio.timeout(WAIT):
        await ingest.writer.wait_for(lambda stats: stats.readings_written == 500)

    assert ingest.writer.stats.flushes <= 10
    assert ingest.writer.stats.state_updates <= 10
    summaries = [await fleet.next("iot.device")]
    while summaries[-1]["device"]["last_values"] != {"n": 499}:
        summaries.append(await fleet.next("iot.device"))  # the last state always comes
    assert len(summaries) < 100
    assert await in_thread(Reading.objects.filter(thing=thing).count) == 500
    await telemetry.disconnect()


BAD = [
    (b"21.5", "not a JSON object of metrics (got number)"),
    (b"\xff\xfe", "not UTF-8"),
    (b"{'t': 1}", "not JSON"),
    (b'{"t": true}', "metric 't' is not a number (got boolean)"),
    (b'{"t": NaN}', "NaN is not a number JSON allows"),
    (b'{"t": 1e999}', "metric 't' is not a finite number"),
    (b"{}", "no metrics"),
    (json.dumps({f"m{i}": i for i in range(33)}).encode(), "33 metrics exceed the limit of 32"),
    (b"[" * 5000, "payload of 5000 bytes exceeds the limit of 4096"),
]


async def test_bad_payloads_are_counted_shown_and_never_stall_the_device(
    application: ASGIApp,
    thing: Thing,
    ingest: Ingest,
    listen: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    device = await listen(device_group(thing.device_id))
    telemetry = MqttCommunicator(application, topic(thing, "telemetry"))
    with caplog.at_level(logging.WARNING, "project.iot"):
        for payload, _ in BAD:
            await telemetry.send_message(payload)
        await telemetry.send_message(b'{"t": 20}')
        readings = await device.next("iot.readings")  # handled after every bad one
    assert readings["points"][0][1] == {"t": 20}
    notice = await device.until("iot.bad_payload", lambda e: e["reason"] == BAD[-1][1])
    assert (notice["device"], notice["sample"]) == (thing.device_id, "[" * 200)

    assert ingest.stats.refused == len(BAD)
    assert len([m for m in caplog.messages if "refused" in m]) == 1  # then counted
    await telemetry.disconnect()
    row = await in_thread(Thing.objects.get, pk=thing.pk)
    assert row.bad_payloads == len(BAD)
    assert (row.last_bad_reason, row.last_bad_sample) == (BAD[-1][1], "[" * 200)
    assert row.last_bad_at is not None
    assert row.last_values == {"t": 20}


async def test_each_kind_of_bad_payload_gets_its_reason(
    application: ASGIApp, thing: Thing, ingest: Ingest, listen: Any
) -> None:
    device = await listen(device_group(thing.device_id))
    telemetry = MqttCommunicator(application, topic(thing, "telemetry"))
    for payload, reason in BAD:
        await telemetry.send_message(payload)
        assert reason in (await device.next("iot.bad_payload"))["reason"]
    await telemetry.disconnect()


async def test_an_unknown_device_is_ignored_and_logged_once(
    application: ASGIApp, ingest: Ingest, listen: Any, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    telemetry = MqttCommunicator(application, f"devices/ghost-{unique}/telemetry")
    with caplog.at_level(logging.WARNING, "project.iot"):
        for n in range(3):
            await telemetry.send_message(json.dumps({"t": n}).encode())
        # The instance handles its messages in order: once it has ended, all three were.
        await telemetry.disconnect(timeout=WAIT)
    assert ingest.stats.unknown_devices == 3
    assert [m for m in caplog.messages if f"ghost-{unique}" in m] == [
        f"message on 'devices/ghost-{unique}/telemetry' ignored: "
        f"no device 'ghost-{unique}' (create it in the IoT admin)"
    ]
    assert ingest.writer.stats.readings_written == 0


async def test_a_threshold_opens_one_alert_and_clears_it_once(
    application: ASGIApp, thing: Thing, ingest: Ingest, listen: Any
) -> None:
    await in_thread(set_threshold, thing, "temperature", "above", 30, hysteresis=2)
    alerts = await listen(ALERTS_GROUP)
    device = await listen(device_group(thing.device_id))
    telemetry = MqttCommunicator(application, topic(thing, "telemetry"))
    for value in [25, 31, 35, 29, 28.5, 31, 28, 27]:
        await telemetry.send_message(json.dumps({"temperature": value}).encode())

    opened = (await alerts.next("iot.alert"))["alert"]
    cleared = (await alerts.next("iot.alert"))["alert"]
    assert {k: opened[k] for k in ("device_id", "metric", "direction", "limit", "value")} == {
        "device_id": thing.device_id,
        "metric": "temperature",
        "direction": "above",
        "limit": 30.0,
        "value": 31.0,
    }
    assert (opened["state"], opened["device_name"], opened["owner_id"]) == (
        "opened",
        thing.name,
        thing.owner_id,
    )
    assert (cleared["id"], cleared["state"], cleared["value"]) == (opened["id"], "cleared", 28.0)
    assert (await device.next("iot.alert"))["alert"] == opened  # the device group too
    await device.until("iot.readings", lambda e: e["points"][-1][1] == {"temperature": 27})
    await telemetry.disconnect()

    assert await alerts.nothing_more("iot.alert")
    rows = await in_thread(lambda: list(Alert.objects.filter(thing=thing)))
    assert len(rows) == 1
    assert (rows[0].value, rows[0].clear_value) == (31.0, 28.0)
    assert ingest.stats.alerts_opened == ingest.stats.alerts_cleared == 1


async def test_status_and_presence_mark_the_device_online_and_offline(
    application: ASGIApp, thing: Thing, ingest: Ingest, listen: Any
) -> None:
    fleet = await listen(device_group(thing.device_id))
    status = MqttCommunicator(application, topic(thing, "status"))
    await status.send_message(b"online", retain=True)
    assert (await fleet.next("iot.device"))["device"]["online"] is True
    await status.send_message(b'{"status": "offline"}')
    await fleet.until("iot.device", lambda e: e["device"]["online"] is False)
    await status.send_message(b"rebooting")  # not a status: counted as a bad payload
    await fleet.until("iot.device", lambda e: e["device"]["bad_payloads"] == 1)
    await status.disconnect()

    presence = MqttCommunicator(application, f"$presence/{thing.device_id}-client", role="broker")
    await presence.send_presence(f"{thing.device_id}-client", True, username=thing.device_id)
    await fleet.until("iot.device", lambda e: e["device"]["online"] is True)
    await presence.send_presence(f"{thing.device_id}-client", False, "keepalive", thing.device_id)
    summary = await fleet.until("iot.device", lambda e: e["device"]["online"] is False)
    await presence.disconnect()

    row = await in_thread(Thing.objects.get, pk=thing.pk)
    assert (row.online, row.bad_payloads) == (False, 1)
    assert row.presence_changed is not None
    assert summary["device"]["last_seen"] == row.last_seen.isoformat()


async def command_sent(thing: Thing, layer: BaseChannelLayer) -> tuple[Command, dict[str, Any]]:
    """A command sent to ``thing`` (online) and the payload the MQTT server would publish."""
    command = await asend_command(thing, "reboot", {"delay": 1})
    assert command.status == "pending", command.reason
    async with asyncio.timeout(WAIT):
        published = await layer.receive(PUBLISH_CHANNEL)
    assert (published["topic"], published["qos"]) == (topic(thing, "commands"), 1)
    return command, json.loads(published["payload"])


async def test_a_device_acks_its_command(
    application: ASGIApp, make_thing: Make, ingest: Ingest, listen: Any, layer: BaseChannelLayer
) -> None:
    thing, _ = await in_thread(make_thing, online=True)
    commands = await listen(COMMANDS_GROUP)
    command, payload = await command_sent(thing, layer)
    assert payload == {"id": str(command.pk), "name": "reboot", "args": {"delay": 1}}
    assert (await commands.next("iot.command"))["command"]["status"] == "pending"

    ack = MqttCommunicator(application, topic(thing, "commands/ack"))
    await ack.send_message(json.dumps({"id": str(command.pk), "ok": True, "result": {"up": 3}}))
    info = (await commands.next("iot.command"))["command"]
    assert (info["id"], info["status"], info["result"]) == (
        str(command.pk),
        "acknowledged",
        {"up": 3},
    )
    assert info["acked_at"] is not None

    failing, _ = await command_sent(thing, layer)
    await commands.next("iot.command")
    await ack.send_message(json.dumps({"id": str(failing.pk), "ok": False, "reason": "busy"}))
    info = (await commands.next("iot.command"))["command"]
    assert (info["status"], info["reason"]) == ("failed", "busy")
    await ack.disconnect()
    assert ingest.stats.commands_acked == 2


async def test_unknown_foreign_and_late_acks_are_ignored(
    application: ASGIApp,
    make_thing: Make,
    ingest: Ingest,
    listen: Any,
    layer: BaseChannelLayer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    thing, _ = await in_thread(make_thing, online=True)
    command, _ = await command_sent(thing, layer)
    late, _ = await command_sent(thing, layer)
    await in_thread(Command.objects.filter(pk=late.pk).update, status="timed_out")
    other, _ = await in_thread(make_thing, "d2", online=True)
    device = await listen(device_group(other.device_id))
    ack = MqttCommunicator(application, topic(other, "commands/ack"))
    with caplog.at_level(logging.WARNING, "project.iot"):
        await ack.send_message(json.dumps({"id": str(command.pk), "ok": True}))  # not its own
        await ack.send_message(json.dumps({"id": str(uuid.uuid4()), "ok": True}))  # unknown
        await ack.send_message(b'{"id": "x", "ok": true}')  # malformed: a bad payload
        await device.until("iot.device", lambda e: e["device"]["bad_payloads"] == 1)
    await ack.disconnect()
    late_ack = MqttCommunicator(application, topic(thing, "commands/ack"))
    await late_ack.send_message(json.dumps({"id": str(late.pk), "ok": True}))
    await late_ack.disconnect()

    assert ingest.stats.unknown_acks == 3
    assert len([m for m in caplog.messages if "no longer pending" in m]) == 2  # one per device
    statuses = await in_thread(lambda: {c.pk: c.status for c in Command.objects.all()})
    assert statuses == {command.pk: "pending", late.pk: "timed_out"}


async def test_a_command_nobody_acks_times_out(
    make_thing: Make, listen: Any, layer: BaseChannelLayer, settings: Any
) -> None:
    settings.IOT_COMMAND_TIMEOUT = 0.2
    ingest = current_ingest()  # the ingest side sweeps pending commands
    thing, _ = await in_thread(make_thing, online=True)
    commands = await listen(COMMANDS_GROUP)
    command, _ = await command_sent(thing, layer)
    assert (await commands.next("iot.command"))["command"]["status"] == "pending"
    info = (await commands.next("iot.command"))["command"]
    assert (info["id"], info["status"], info["reason"]) == (
        str(command.pk),
        "timed_out",
        "no ack within 0.2 s",
    )
    assert ingest.stats.commands_expired == 1


async def test_a_command_to_an_offline_device_is_refused(
    thing: Thing, listen: Any, layer: BaseChannelLayer
) -> None:
    commands = await listen(COMMANDS_GROUP)
    command = await asend_command(thing, "reboot", via="telegram")
    assert (command.status, command.reason) == ("refused", "the device is offline")
    info = (await commands.next("iot.command"))["command"]
    assert (info["status"], info["via"]) == ("refused", "telegram")

    await in_thread(Thing.objects.filter(pk=thing.pk).update, online=True)
    await in_thread(thing.refresh_from_db)
    sent, payload = await command_sent(thing, layer)  # the first thing published
    assert payload["id"] == str(sent.pk)


async def test_a_device_stays_online_while_any_of_its_connections_is_open(
    application: ASGIApp, thing: Thing, ingest: Ingest, listen: Any
) -> None:
    """A publisher and a command listener: the publisher leaving must not take it offline."""
    fleet = await listen(device_group(thing.device_id))
    listener, publisher = f"{thing.device_id}-sub", f"{thing.device_id}-pub"
    presence = MqttCommunicator(application, f"$presence/{listener}", role="broker")
    await presence.send_presence(listener, True, username=thing.device_id)
    await fleet.until("iot.device", lambda e: e["device"]["online"] is True)
    await presence.send_presence(publisher, True, username=thing.device_id)
    await presence.send_presence(publisher, False, "disconnect", thing.device_id)
    await presence.send_presence(listener, True, username=thing.device_id)  # a takeover
    await presence.send_presence(listener, False, "takeover", thing.device_id)
    await presence.disconnect()  # the consumer has handled every event by now
    live = await ingest.things.get(thing.device_id)
    assert live is not None
    assert live.online  # one connection is still open

    closing = MqttCommunicator(application, f"$presence/{listener}", role="broker")
    await closing.send_presence(listener, False, "disconnect", thing.device_id)
    await fleet.until("iot.device", lambda e: e["device"]["online"] is False)
    await closing.disconnect()
