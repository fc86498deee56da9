"""The bridge role against the machine's Mosquitto (unique topics per test)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.layers import get_channel_layer
from gateway.mqtt.events import Incoming
from gateway.routing import ProtocolTypeRouter, TopicRouter, topic
from gateway.startup import Summary
from protocols.mqtt.bridge import BridgeLink
from protocols.mqtt.config import BridgeConfig
from tests.protocols.mqtt.conftest import WAIT, Device, Event, Recorder, next_event

pytestmark = pytest.mark.mqtt


@pytest.fixture
def port(mosquitto_url: str) -> int:
    return urlsplit(mosquitto_url).port or 1883


@pytest.fixture
def events() -> asyncio.Queue[Event]:
    return asyncio.Queue()


def routes(unique: str, events: asyncio.Queue[Event]) -> Any:
    return ProtocolTypeRouter(
        {
            "mqtt": TopicRouter(
                [topic(f"{unique}/devices/<device_id>/#", Recorder.as_asgi(events=events), qos=1)]
            )
        }
    )


class PauseSignallingLink(BridgeLink):
    """A bridge link that lets the test await the server's backpressure."""

    def __init__(self, config: BridgeConfig) -> None:
        super().__init__(config)
        self.paused = asyncio.Event()

    def pause_reading(self) -> None:
        super().pause_reading()
        self.paused.set()


def link(mosquitto_url: str, query: str = "") -> BridgeLink:
    return BridgeLink(BridgeConfig.from_url(mosquitto_url + query), backoff=(0.05, 0.5))


async def test_device_message_reaches_consumer_and_its_reply_reaches_device(
    unique: str,
    events: asyncio.Queue[Event],
    serve: Any,
    devices: Callable[..., Device],
    mosquitto_url: str,
    port: int,
) -> None:
    server = await serve(routes(unique, events), link(mosquitto_url))
    device = devices(port, v5=True)
    await device.connect()
    assert await device.subscribe(f"{unique}/replies") == [1]
    properties = Properties(PacketTypes.PUBLISH)
    properties.ContentType = "text/plain"
    properties.UserProperty = [("trace", "42")]
    await device.publish(
        f"{unique}/devices/d1/telemetry", f"pub:{unique}/replies", properties=properties
    )

    event = await next_event(events, "message")
    assert event.key == {"device_id": "d1"}
    assert event.data["payload"] == f"pub:{unique}/replies".encode()
    assert event.data["qos"] == 1
    assert event.data["subscription"] == f"{unique}/devices/+/#"
    assert event.data["properties"] == {
        "content_type": "text/plain",
        "user_properties": [["trace", "42"]],
    }
    scope = event.data["scope"]
    assert (scope["role"], scope["mqtt_version"], scope["broker"]["port"]) == (
        "bridge",
        "5.0",
        port,
    )

    ack = await next_event(events, "ack")
    assert (ack.data["request_id"], ack.data["ok"], ack.data["operation"]) == (
        "pub",
        True,
        "publish",
    )
    reply = await device.next_message()
    assert (reply.topic, reply.payload, reply.qos) == (f"{unique}/replies", b"reply", 1)
    assert reply.properties is not None
    received = reply.properties.json()  # paho keeps each property as an attribute of its own
    assert received["ContentType"] == "text/plain"
    assert received["UserProperty"] == [("k", "v")]
    assert server.stats.dispatched == 1


async def test_one_instance_per_route_key_each_in_order(
    unique: str,
    events: asyncio.Queue[Event],
    serve: Any,
    devices: Callable[..., Device],
    mosquitto_url: str,
    port: int,
) -> None:
    await serve(routes(unique, events), link(mosquitto_url, "?version=3.1.1"))
    senders = [devices(port) for _ in range(3)]
    for sender in senders:
        await sender.connect()
    count = 40
    await asyncio.gather(
        *(
            sender.publish(f"{unique}/devices/d{n}/seq", str(i), qos=1)
            for i in range(count)
            for n, sender in enumerate(senders)
        )
    )
    seen: dict[str, list[int]] = {}
    instances: dict[str, set[int]] = {}
    for _ in range(count * len(senders)):
        event = await next_event(events, "message")
        assert event.data["scope"]["mqtt_version"] == "3.1.1"
        seen.setdefault(event.key["device_id"], []).append(int(event.data["payload"]))
        instances.setdefault(event.key["device_id"], set()).add(event.instance)
    assert seen == {f"d{n}": list(range(count)) for n in range(len(senders))}
    assert all(len(ids) == 1 for ids in instances.values())


async def test_failing_consumer_ends_only_its_scope(
    unique: str,
    events: asyncio.Queue[Event],
    serve: Any,
    devices: Callable[..., Device],
    mosquitto_url: str,
    port: int,
) -> None:
    server = await serve(routes(unique, events), link(mosquitto_url))
    device = devices(port)
    await device.connect()
    await device.publish(f"{unique}/devices/d1/x", "first")
    first = await next_event(events, "message")
    # "after" may reach the failing instance's queue before it dies: it is then
    # handed to the fresh instance, not lost.
    await device.publish(f"{unique}/devices/d1/x", "boom")
    await device.publish(f"{unique}/devices/d1/x", "after")
    await next_event(events, "message")
    after = await next_event(events, "message")
    assert after.data["payload"] == b"after"
    assert after.instance != first.instance  # a fresh instance, fresh scope
    assert server.stats.consumer_errors == 1

    server.deliver(Incoming(f"{unique}/nowhere", b""))  # no route: counted, dropped
    await device.publish(f"{unique}/devices/d2/x", "still serving")
    assert (await next_event(events, "message")).key == {"device_id": "d2"}
    assert server.stats.unroutable == 1


async def test_dynamic_subscription_is_delivered_to_its_instance(
    unique: str,
    events: asyncio.Queue[Event],
    serve: Any,
    devices: Callable[..., Device],
    mosquitto_url: str,
    port: int,
) -> None:
    await serve(routes(unique, events), link(mosquitto_url))
    device = devices(port)
    await device.connect()
    await device.publish(f"{unique}/devices/d1/x", f"sub:{unique}/extra/#")
    first = await next_event(events, "message")
    ack = await next_event(events, "ack")
    assert (ack.data["request_id"], ack.data["ok"], ack.data["reason_codes"]) == ("sub", True, [1])
    await device.publish(f"{unique}/extra/y", "hello")
    extra = await next_event(events, "message")
    assert extra.instance == first.instance
    assert (extra.data["topic"], extra.data["subscription"]) == (
        f"{unique}/extra/y",
        f"{unique}/extra/#",
    )

    await device.publish(f"{unique}/devices/d1/x", f"unsub:{unique}/extra/#")
    await next_event(events, "message")
    assert (await next_event(events, "ack")).data["ok"] is True


async def test_publish_from_any_process_through_the_fixed_channel(
    unique: str,
    events: asyncio.Queue[Event],
    serve: Any,
    devices: Callable[..., Device],
    mosquitto_url: str,
    port: int,
) -> None:
    server = await serve(routes(unique, events), link(mosquitto_url), channel_layer_alias="default")
    device = devices(port)
    await device.connect()
    await device.subscribe(f"{unique}/cmd")
    layer = get_channel_layer()
    assert layer is not None
    await layer.send("mqtt.publish", {"type": "mqtt.publish", "topic": "a/+", "payload": "bad"})
    await layer.send(
        "mqtt.publish",
        {"type": "mqtt.publish", "topic": f"{unique}/cmd", "payload": "on", "qos": 1},
    )
    message = await device.next_message()
    assert (message.topic, message.payload) == (f"{unique}/cmd", b"on")
    assert server.stats.bad_channel_messages == 1


async def test_idle_scopes_get_disconnect_and_lru_is_evicted(
    unique: str,
    events: asyncio.Queue[Event],
    serve: Any,
    devices: Callable[..., Device],
    mosquitto_url: str,
    port: int,
) -> None:
    await serve(routes(unique, events), link(mosquitto_url), idle_timeout=0.2, max_instances=1)
    device = devices(port)
    await device.connect()
    await device.publish(f"{unique}/devices/d1/x", "one")
    await next_event(events, "message")
    await device.publish(f"{unique}/devices/d2/x", "two")
    evicted = await next_event(events, "disconnect")
    assert (evicted.key, evicted.data["reason"]) == ({"device_id": "d1"}, "evicted")
    idle = await next_event(events, "disconnect")
    assert (idle.key, idle.data["reason"]) == ({"device_id": "d2"}, "idle")


async def test_slow_consumer_pauses_reading_and_loses_nothing(
    unique: str,
    serve: Any,
    devices: Callable[..., Device],
    mosquitto_url: str,
    port: int,
) -> None:
    events: asyncio.Queue[Event] = asyncio.Queue()
    gate = asyncio.Event()
    application = TopicRouter(
        [
            topic(
                f"{unique}/devices/<device_id>/#", Recorder.as_asgi(events=events, gate=gate), qos=1
            )
        ]
    )
    bridge = PauseSignallingLink(BridgeConfig.from_url(mosquitto_url))
    server = await serve(application, bridge, queue_size=2, inflight=4)
    device = devices(port)
    await device.connect()
    await device.publish(f"{unique}/devices/d1/x", "wait")
    await next_event(events, "message")
    for i in range(30):
        await device.publish(f"{unique}/devices/d1/x", str(i), qos=0)
    await device.publish(f"{unique}/devices/d1/x", "last", qos=1)
    async with asyncio.timeout(WAIT):
        await bridge.paused.wait()  # the server stopped reading the broker socket
    gate.set()
    received = [(await next_event(events, "message")).data["payload"] for _ in range(31)]
    assert received == [str(i).encode() for i in range(30)] + [b"last"]
    assert server.stats.max_pending <= 4


async def test_shared_subscription_splits_the_load(
    unique: str,
    serve: Any,
    devices: Callable[..., Device],
    mosquitto_url: str,
    port: int,
) -> None:
    events: asyncio.Queue[Event] = asyncio.Queue()
    application = TopicRouter([topic(f"{unique}/s/<n>", Recorder.as_asgi(events=events))])
    first = await serve(application, link(mosquitto_url, f"?share={unique}"))
    second = await serve(application, link(mosquitto_url, f"?share={unique}"))
    device = devices(port)
    await device.connect()
    for i in range(20):
        await device.publish(f"{unique}/s/{i}", "x", qos=1)
    payloads = sorted([(await next_event(events, "message")).key["n"] for _ in range(20)], key=int)
    assert payloads == [str(i) for i in range(20)]
    assert first.stats.dispatched + second.stats.dispatched == 20
    assert first.stats.dispatched > 0
    assert second.stats.dispatched > 0


@pytest.mark.parametrize(
    ("url", "warned"),
    [("mqtt://gw:pw@broker.example:1883", True), ("mqtts://gw:pw@broker.example", False)],
    ids=["plain", "tls"],
)
def test_the_summary_shows_the_broker_without_its_password(url: str, warned: bool) -> None:
    summary = Summary("test")
    BridgeLink(BridgeConfig.from_url(url)).describe(summary)
    ((label, text),) = summary.lines
    assert label == "MQTT devices"
    assert text.startswith(("mqtt://gw@broker.example:1883 ", "mqtts://gw@broker.example:8883 "))
    assert "pw" not in text
    assert bool(summary.warnings) is warned
