"""gateway.metrics: real servers' counters, read back from the Prometheus exposition.

Each test runs real servers on ephemeral ports of 127.0.0.1 (web, the embedded MQTT
broker, Telegram against the local Bot API server) and real clients, then parses
``generate_latest`` with prometheus_client's own text parser. The registry is the
process's; servers leave it when they stop, so each test sees only its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import msgpack
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from gateway import metrics
from gateway.botapi import BotAPIServer
from gateway.layers import get_channel_layer
from gateway.layers.stats import LayerStats
from gateway.metrics import (
    HEALTH_TYPE,
    LAYER_HELP,
    MetricsRegistry,
    ProtocolCounters,
    ServerReading,
    health_event,
)
from gateway.routing import ProtocolTypeRouter, TopicRouter, topic
from gateway.types import Receive, Scope, Send
from protocols.mqtt.broker import BrokerLink
from protocols.mqtt.server import MqttServer
from tests.protocols.mqtt.conftest import Device, Recorder, next_event
from tests.protocols.telegram.conftest import serving
from tests.protocols.telegram.test_seed import ChattyBotConsumer
from tests.protocols.websocket.conftest import running

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(registry: MetricsRegistry = metrics.registry) -> Samples:
    """Every sample of the exposition, parsed back: (name, sorted labels) -> value."""
    text = generate_latest(registry.prometheus).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """A WebSocket echo: every message back as it came."""
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": message.get("text")})
        else:
            return


async def test_a_websocket_is_counted_while_open_and_its_messages_both_ways() -> None:
    async with running(echo) as server, connect(f"ws://127.0.0.1:{server.port}/") as client:
        for text in ("one", "two"):
            await client.send(text)
            async with asyncio.timeout(5):
                assert await client.recv() == text
        samples = scrape()
        assert value(samples, "gateway_connections", server="web", protocol="websocket") == 1
        assert value(samples, "gateway_connections", server="web", protocol="http") == 0
        web_ws = {"server": "web", "protocol": "websocket"}
        assert value(samples, "gateway_messages_total", **web_ws, direction="in") == 2
        assert value(samples, "gateway_messages_total", **web_ws, direction="out") == 2
        assert value(samples, "gateway_instances", server="web") == 1
        assert value(samples, "gateway_uptime_seconds") is not None
    # A stopped server leaves the registry.
    assert value(scrape(), "gateway_instances", server="web") is None


async def test_layer_counters_are_exposed_per_alias_and_backend() -> None:
    layer = get_channel_layer()
    assert layer is not None
    labels = {"layer": "default", "backend": type(layer).__name__}
    before = scrape()
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "test.message"})
    async with asyncio.timeout(5):
        await layer.receive(channel)
    after = scrape()
    for name in ("gateway_layer_sent_total", "gateway_layer_received_total"):
        assert (value(after, name, **labels) or 0) - (value(before, name, **labels) or 0) == 1
    for field in dataclasses.fields(LayerStats):
        assert value(after, f"gateway_layer_{field.name}_total", **labels) is not None


async def test_a_device_on_the_embedded_broker_is_a_connection_and_its_message_is_counted(
    unique: str,
) -> None:
    events: asyncio.Queue[Any] = asyncio.Queue()
    router = TopicRouter([topic("devices/<device_id>/telemetry", Recorder.as_asgi(events=events))])
    link = BrokerLink("127.0.0.1", 0, allow_anonymous=True)
    server = MqttServer(ProtocolTypeRouter({"mqtt": router}), link, channel_layer_alias=None)
    await server.start()
    device = Device(link.port, unique)
    try:
        await device.connect()
        await device.publish(f"devices/{unique}/telemetry", b"21.5")
        await next_event(events, "message")
        samples = scrape()
        assert value(samples, "gateway_connections", server="mqtt", protocol="mqtt") == 1
        mqtt_in = {"server": "mqtt", "protocol": "mqtt", "direction": "in"}
        assert value(samples, "gateway_messages_total", **mqtt_in) == 1
        assert value(samples, "gateway_instances", server="mqtt") == 1
        assert value(samples, "gateway_link_up", server="mqtt") == 1
    finally:
        await device.close()
        await server.stop(5)


async def test_a_telegram_conversation_is_a_connection_with_its_update_and_reply() -> None:
    async with BotAPIServer() as api:
        token = api.add_bot("counted_bot")
        app = ProtocolTypeRouter({"telegram": ChattyBotConsumer.as_asgi()})
        async with serving(app, api, token) as server:
            api.user_message(token, "hello", chat_id=7)
            await api.wait_sent(token, 7)
            # Counted when the update is taken and when the call is made: both done now.
            reading = server.reading()
            assert reading == ServerReading({"telegram": ProtocolCounters(1, 1, 1)}, 1)
            assert metrics.registry.servers()["telegram"] == reading


def test_readings_of_one_server_name_add_up_and_unregistering_removes_them() -> None:
    registry = MetricsRegistry()
    first = registry.register("web", lambda: ServerReading({"http": ProtocolCounters(1, 2, 3)}, 1))
    registry.register("web", lambda: ServerReading({"http": ProtocolCounters(1, 1, 1)}, 2))
    registry.register("mqtt", lambda: ServerReading({}, 0, link_up=False))
    assert registry.servers() == {
        "web": ServerReading({"http": ProtocolCounters(2, 3, 4)}, 3),
        "mqtt": ServerReading({}, 0, link_up=False),
    }
    first()
    assert registry.servers()["web"] == ServerReading({"http": ProtocolCounters(1, 1, 1)}, 2)
    samples = scrape(registry)
    assert value(samples, "gateway_link_up", server="mqtt") == 0
    assert value(samples, "gateway_link_up", server="web") is None


def test_the_process_is_named_in_the_snapshot_and_in_gateway_info() -> None:
    registry = MetricsRegistry()
    registry.identify("mqtt")
    info = registry.process
    labels = {"id": info.id, "kind": "mqtt", "host": info.host, "pid": str(info.pid)}
    assert value(scrape(registry), "gateway_info", **labels, version="0.1.0") == 1
    snapshot = registry.snapshot()
    assert {k: snapshot[k] for k in ("id", "kind", "pid", "host")} == {
        "id": info.id,
        "kind": "mqtt",
        "pid": info.pid,
        "host": info.host,
    }


def test_the_snapshot_is_json_and_msgpack_safe_and_sums_protocols_across_servers() -> None:
    registry = MetricsRegistry()
    registry.register(
        "web", lambda: ServerReading({"websocket": ProtocolCounters(3, 10, 20)}, 3, None)
    )
    registry.register("mqtt", lambda: ServerReading({"mqtt": ProtocolCounters(5, 7, 1)}, 2, True))
    snapshot = registry.snapshot()
    assert snapshot["protocols"] == {
        "mqtt": {"connections": 5, "messages_in": 7, "messages_out": 1},
        "websocket": {"connections": 3, "messages_in": 10, "messages_out": 20},
    }
    assert snapshot["servers"] == {
        "mqtt": {"instances": 2, "link_up": True},
        "web": {"instances": 3, "link_up": None},
    }
    message = health_event(snapshot, 2.0, "running")
    assert json.loads(json.dumps(message)) == message
    assert msgpack.unpackb(msgpack.packb(message)) == message
    assert message["type"] == HEALTH_TYPE


def test_every_layer_counter_has_its_help_text() -> None:
    assert set(LAYER_HELP) == {field.name for field in dataclasses.fields(LayerStats)}
