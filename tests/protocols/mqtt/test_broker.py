"""The broker role: the embedded amqtt broker on an ephemeral port."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from gateway.devices.models import Device as DeviceModel
from gateway.routing import TopicRouter, topic
from protocols.mqtt.bridge import BridgeLink
from protocols.mqtt.broker import BrokerLink
from protocols.mqtt.config import BridgeConfig
from tests.protocols.mqtt.conftest import WAIT, Device, Event, Recorder, next_event

pytestmark = pytest.mark.mqtt


def application(events: asyncio.Queue[Event]) -> Any:
    consumer = Recorder.as_asgi(events=events)
    return TopicRouter(
        [
            topic("devices/<device_id>/telemetry", consumer, qos=1),
            topic("$presence/<device_id>", consumer),
        ]
    )


@pytest.fixture
def events() -> asyncio.Queue[Event]:
    return asyncio.Queue()


@pytest.mark.django_db(transaction=True)
async def test_devices_authenticate_and_are_confined_to_their_topics(
    events: asyncio.Queue[Event], serve: Any, devices: Callable[..., Device]
) -> None:
    await asyncio.to_thread(DeviceModel.objects.create_device, "d1", "pw-d1")
    server = await serve(application(events), BrokerLink("127.0.0.1", 0))
    port = server.link.port

    intruder = devices(port, "intruder", username="d1", password="wrong")
    assert (await intruder.connect()).is_failure

    device = devices(port, "d1-client", username="d1", password="pw-d1")
    assert not (await device.connect()).is_failure
    presence = await next_event(events, "presence")
    assert (presence.key, presence.data["connected"]) == ({"device_id": "d1-client"}, True)

    assert await device.subscribe("devices/d2/#") == [0x80]  # not its own topics
    assert await device.subscribe("devices/d1/cmd") == [1]
    await device.publish("devices/d2/telemetry", "spoofed")  # dropped by the ACL
    await device.publish("devices/d1/telemetry", "pub:devices/d1/cmd")

    message = await next_event(events, "message")
    assert message.data["payload"] == b"pub:devices/d1/cmd"
    assert message.data["client"] == {"client_id": "d1-client", "username": "d1"}
    scope = message.data["scope"]
    assert (scope["role"], scope["mqtt_version"], scope["client"]["username"]) == (
        "broker",
        "3.1.1",
        "d1",
    )
    command = await device.next_message()  # the consumer's publish reaches the device
    assert (command.topic, command.payload) == ("devices/d1/cmd", b"reply")
    assert (await next_event(events, "ack")).data["ok"] is True

    await device.close()
    gone = await next_event(events, "presence")
    assert (gone.data["connected"], gone.data["reason"]) == (False, "disconnect")
    assert server.stats.dispatched >= 1


def connect_packet(client_id: bytes, keepalive: int, will_topic: bytes, will: bytes) -> bytes:
    """An MQTT 3.1.1 CONNECT with a Last Will (§3.1), built by hand."""

    def field(value: bytes) -> bytes:
        return len(value).to_bytes(2, "big") + value

    flags = 0x02 | 0x04  # clean session, will flag
    body = (
        field(b"MQTT")
        + bytes([4, flags])
        + keepalive.to_bytes(2, "big")
        + field(client_id)
        + field(will_topic)
        + field(will)
    )
    return bytes([0x10, len(body)]) + body


async def test_silent_device_goes_offline_and_its_will_fires(
    events: asyncio.Queue[Event], serve: Any, devices: Callable[..., Device]
) -> None:
    link = BrokerLink("127.0.0.1", 0, allow_anonymous=True, keepalive_check_interval=0.1)
    server = await serve(application(events), link)
    watcher = devices(server.link.port, "watcher")
    await watcher.connect()
    await watcher.subscribe("devices/silent/status")

    reader, writer = await asyncio.open_connection("127.0.0.1", server.link.port)
    try:
        writer.write(connect_packet(b"silent", 1, b"devices/silent/status", b"offline"))
        async with asyncio.timeout(WAIT):
            assert await reader.readexactly(4) == b"\x20\x02\x00\x00"  # CONNACK accepted
            # ... then the device says nothing: no PINGREQ within 1.5 x keep-alive.
            will = await watcher.next_message()
            assert (will.topic, will.payload) == ("devices/silent/status", b"offline")
            assert await reader.read() == b""  # the broker closed the connection
    finally:
        writer.close()
        await writer.wait_closed()
    while True:
        presence = await next_event(events, "presence")
        if presence.key == {"device_id": "silent"} and not presence.data["connected"]:
            break
    assert presence.data["reason"] == "keepalive"


async def test_bridge_to_the_embedded_broker_falls_back_to_mqtt_311(
    unique: str, events: asyncio.Queue[Event], serve: Any, devices: Callable[..., Device]
) -> None:
    broker = await serve(TopicRouter([]), BrokerLink("127.0.0.1", 0, allow_anonymous=True))
    bridged = TopicRouter([topic(f"{unique}/<n>", Recorder.as_asgi(events=events), qos=1)])
    link = BridgeLink(BridgeConfig.from_url(f"mqtt://127.0.0.1:{broker.link.port}"))
    await serve(bridged, link)
    assert link.mqtt_version == "3.1.1"
    device = devices(broker.link.port)
    await device.connect()
    await device.publish(f"{unique}/7", "via amqtt")
    message = await next_event(events, "message")
    assert (message.key, message.data["payload"]) == ({"n": "7"}, b"via amqtt")
    assert message.data["scope"]["role"] == "bridge"


async def test_browsers_reach_the_embedded_broker_over_websocket(
    events: asyncio.Queue[Event], serve: Any
) -> None:
    link = BrokerLink("127.0.0.1", 0, ws_port=0, allow_anonymous=True)
    await serve(application(events), link)
    assert link.ws_port not in (None, 0)
    browser = Device(link.ws_port, "browser", transport="websockets")
    try:
        await browser.connect()
        await browser.publish("devices/b1/telemetry", "over ws")
        message = await next_event(events, "message")
        assert (message.key, message.data["payload"]) == ({"device_id": "b1"}, b"over ws")
    finally:
        await browser.close()


@pytest.mark.django_db(transaction=True)
async def test_bridge_with_refused_credentials_is_a_configuration_error(serve: Any) -> None:
    broker = await serve(TopicRouter([]), BrokerLink("127.0.0.1", 0))
    url = f"mqtt://nobody:wrong@127.0.0.1:{broker.link.port}?version=3.1.1"
    with pytest.raises(ImproperlyConfigured, match="refused the credentials") as refused:
        await serve(TopicRouter([]), BridgeLink(BridgeConfig.from_url(url)))
    assert "wrong" not in str(refused.value)  # the password never reaches a message


async def test_unreachable_broker_fails_start_with_the_address(serve: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        link = BridgeLink(BridgeConfig.from_url(f"mqtt://127.0.0.1:{port}"), start_timeout=0.5)
        with pytest.raises(ConnectionError, match=f"127.0.0.1:{port}"):
            await serve(TopicRouter([]), link)


class PauseSignallingBroker(BrokerLink):
    """An embedded broker link that lets the test await the server's backpressure."""

    def __init__(self) -> None:
        super().__init__("127.0.0.1", 0, allow_anonymous=True)
        self.paused = asyncio.Event()

    def pause_reading(self) -> None:
        super().pause_reading()
        self.paused.set()


async def test_slow_consumer_pauses_the_devices_and_order_is_kept(
    serve: Any, devices: Callable[..., Device]
) -> None:
    events: asyncio.Queue[Event] = asyncio.Queue()
    gate = asyncio.Event()
    consumer = Recorder.as_asgi(events=events, gate=gate)
    link = PauseSignallingBroker()
    server = await serve(
        TopicRouter([topic("devices/<device_id>/telemetry", consumer)]),
        link,
        queue_size=2,
        inflight=4,
    )
    device = devices(link.port, "slowpoke")
    await device.connect()
    await device.publish("devices/s1/telemetry", "wait")
    await next_event(events, "message")
    for i in range(30):
        await device.publish("devices/s1/telemetry", str(i), qos=0)
    async with asyncio.timeout(WAIT):
        await link.paused.wait()  # the device's socket is no longer read
    gate.set()
    received = [(await next_event(events, "message")).data["payload"] for _ in range(30)]
    assert received == [str(i).encode() for i in range(30)]
    assert server.stats.pauses >= 1
