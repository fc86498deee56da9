"""The IoT bridge over real MQTT, in both roles: the embedded broker (the device logs
in with the credentials the app made) and a bridge to Mosquitto (presence from the
device's status and Last Will). A paho device sends telemetry, receives a command
on ``devices/<id>/commands`` and acknowledges it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

from gateway.types import ASGIApp
from project.iot.events import COMMANDS_GROUP, device_group
from project.iot.ingest import current_ingest
from project.iot.models import Thing
from project.iot.services import asend_command
from protocols.mqtt.bridge import BridgeLink
from protocols.mqtt.broker import BrokerLink
from protocols.mqtt.config import BridgeConfig
from tests.project.iot.conftest import WAIT, Listener, in_thread
from tests.protocols.mqtt.conftest import Device

pytestmark = [pytest.mark.mqtt, pytest.mark.django_db(transaction=True)]


async def online(thing: Thing, events: Listener, state: bool) -> Thing:
    """Wait until ``thing`` is shown and stored ``online`` (or not); the fresh row."""
    await events.until("iot.device", lambda e: e["device"]["online"] is state)
    writer = current_ingest().writer
    await writer.flush()  # presence is written at once; make sure it is done
    fresh: Thing = await in_thread(Thing.objects.get, pk=thing.pk)
    assert fresh.online is state
    return fresh


async def command_round_trip(thing: Thing, device: Device, commands: Listener) -> None:
    """Send ``reboot``; the device gets it on its commands topic and acks it."""
    command = await asend_command(thing, "reboot", {"delay": 1}, via="api")
    assert command.status == "pending", command.reason
    message = await device.next_message()
    assert message.topic == f"devices/{thing.device_id}/commands"
    assert message.qos == 1
    payload = json.loads(message.payload)
    assert payload == {"id": str(command.pk), "name": "reboot", "args": {"delay": 1}}
    ack = {"id": payload["id"], "ok": True, "result": {"uptime": 0}}
    await device.publish(f"devices/{thing.device_id}/commands/ack", json.dumps(ack))
    info = await commands.until(
        "iot.command", lambda e: e["command"]["status"] in ("acknowledged", "failed")
    )
    assert (info["command"]["status"], info["command"]["result"]) == (
        "acknowledged",
        {"uptime": 0},
    )


async def test_embedded_broker(
    application: ASGIApp,
    serve: Any,
    devices: Callable[..., Device],
    make_thing: Callable[..., Any],
    listen: Any,
) -> None:
    thing, secret = await in_thread(make_thing, commands=["reboot"])
    server = await serve(application, BrokerLink("127.0.0.1", 0), channel_layer_alias="default")
    events = await listen(device_group(thing.device_id))
    commands = await listen(COMMANDS_GROUP)
    topic = f"devices/{thing.device_id}"

    client_id, port = f"{thing.device_id}-1", server.link.port
    intruder = devices(port, client_id, username=thing.device_id, password="gwd_" + "x" * 43)
    assert (await intruder.connect()).is_failure
    device = devices(port, client_id, username=thing.device_id, password=secret)
    assert not (await device.connect()).is_failure
    thing = await online(thing, events, True)  # the broker's presence event

    assert await device.subscribe(f"{topic}/commands") == [1]
    assert await device.subscribe(f"{topic}/telemetry") == [0x80]  # its ACL: commands only
    await device.publish(f"{topic}/telemetry", '{"temperature": 21.5}')
    readings = await events.next("iot.readings")
    assert readings["points"][0][1] == {"temperature": 21.5}

    await command_round_trip(thing, device, commands)
    await device.close()
    await online(thing, events, False)


async def test_bridge_to_mosquitto(
    application: ASGIApp,
    serve: Any,
    devices: Callable[..., Device],
    make_thing: Callable[..., Any],
    listen: Any,
    mosquitto_url: str,
) -> None:
    thing, _ = await in_thread(make_thing, commands=["reboot"])
    link = BridgeLink(BridgeConfig.from_url(mosquitto_url), backoff=(0.05, 0.5))
    await serve(application, link, channel_layer_alias="default")
    events = await listen(device_group(thing.device_id))
    commands = await listen(COMMANDS_GROUP)
    topic = f"devices/{thing.device_id}"

    device = devices(urlsplit(mosquitto_url).port or 1883, f"{thing.device_id}-1", keepalive=5)
    device.client.will_set(f"{topic}/status", "offline", qos=1)  # the broker says it for us
    assert not (await device.connect()).is_failure
    assert await device.subscribe(f"{topic}/commands") == [1]
    await device.publish(f"{topic}/status", "online")
    thing = await online(thing, events, True)

    await device.publish(f"{topic}/telemetry", '{"temperature": 19}')
    assert (await events.next("iot.readings", timeout=WAIT))["points"][0][1] == {"temperature": 19}
    await command_round_trip(thing, device, commands)

    # The device dies without a DISCONNECT: Mosquitto publishes its Last Will.
    device.client.loop_stop()
    sock = device.client.socket()
    assert sock is not None
    sock.close()
    await online(thing, events, False)
