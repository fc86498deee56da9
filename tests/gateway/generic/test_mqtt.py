"""gateway.generic.mqtt consumers, driven by MqttCommunicator (no broker)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from gateway.generic.mqtt import (
    AsyncJsonMqttConsumer,
    AsyncMqttConsumer,
    JsonMqttConsumer,
    MqttConsumer,
)
from gateway.layers import get_channel_layer
from gateway.routing import ProtocolTypeRouter, TopicRouter, topic
from gateway.testing import MqttCommunicator


class EchoConsumer(AsyncMqttConsumer):
    async def receive(self, topic: str, payload: bytes, **details: Any) -> None:
        device = self.scope["route"]["kwargs"]["device_id"]
        await self.publish(f"devices/{device}/echo", payload + b"!", qos=details["qos"])

    async def presence(self, client_id: str, connected: bool, **details: Any) -> None:
        await self.publish(f"presence/{client_id}", "up" if connected else details["reason"])

    async def link(self, state: str, **details: Any) -> None:
        await self.publish("link", state)

    async def ack(self, request_id: Any, ok: bool, **details: Any) -> None:
        await self.publish("acked", f"{request_id}:{ok}")

    async def disconnect(self, reason: str) -> None:
        await self.publish("bye", reason)


class SyncEchoConsumer(MqttConsumer):
    def receive(self, topic: str, payload: bytes, **details: Any) -> None:
        self.subscribe("extra/#", qos=1, request_id="s1")
        self.publish(topic + "/echo", payload, retain=True, properties={"content_type": "x"})


class AsyncJsonEcho(AsyncJsonMqttConsumer):
    async def receive_json(self, topic: str, content: Any, **details: Any) -> None:
        await self.publish_json("out", {"got": content})


class SyncJsonEcho(JsonMqttConsumer):
    def receive_json(self, topic: str, content: Any, **details: Any) -> None:
        self.publish_json("out", {"got": content}, qos=1)


def application(consumer: Any) -> Any:
    return ProtocolTypeRouter(
        {"mqtt": TopicRouter([topic("devices/<device_id>/#", consumer.as_asgi())])}
    )


async def test_async_consumer_receives_and_publishes() -> None:
    communicator = MqttCommunicator(application(EchoConsumer), "devices/d1/telemetry")
    assert communicator.scope["route"] == {
        "pattern": "devices/<device_id>/#",
        "kwargs": {"device_id": "d1"},
    }
    await communicator.send_message(b"hi", qos=1)
    published = await communicator.receive_publish()
    assert published == {
        "type": "mqtt.publish",
        "topic": "devices/d1/echo",
        "payload": b"hi!",
        "qos": 1,
        "retain": False,
    }
    await communicator.send_presence("d1", False, reason="keepalive")
    assert (await communicator.receive_publish())["payload"] == "keepalive"
    await communicator.send_link("down")
    assert (await communicator.receive_publish())["payload"] == "down"
    await communicator.send_input(
        {
            "type": "mqtt.ack",
            "request_id": 5,
            "operation": "publish",
            "ok": True,
            "reason_codes": [],
        }
    )
    assert (await communicator.receive_publish())["payload"] == "5:True"
    await communicator.send_input({"type": "mqtt.disconnect", "reason": "idle"})
    assert (await communicator.receive_publish())["payload"] == "idle"
    await communicator.wait()


async def test_sync_consumer_publishes_and_subscribes() -> None:
    communicator = MqttCommunicator(application(SyncEchoConsumer), "devices/d2/x")
    await communicator.send_message("payload")
    assert await communicator.receive_output() == {
        "type": "mqtt.subscribe",
        "filter": "extra/#",
        "qos": 1,
        "request_id": "s1",
    }
    assert await communicator.receive_publish() == {
        "type": "mqtt.publish",
        "topic": "devices/d2/x/echo",
        "payload": b"payload",
        "qos": 0,
        "retain": True,
        "properties": {"content_type": "x"},
    }
    await communicator.disconnect()


@pytest.mark.parametrize("consumer", [AsyncJsonEcho, SyncJsonEcho])
async def test_json_consumer_skips_undecodable_payloads(
    consumer: Any, caplog: pytest.LogCaptureFixture
) -> None:
    before = consumer.decode_errors
    communicator = MqttCommunicator(application(consumer), "devices/d3/j")
    with caplog.at_level(logging.WARNING, logger="gateway.consumer"):
        await communicator.send_message(b"{not json")
        await communicator.send_message(b"\xff\xfe")
        await communicator.send_message(b'{"a": 1}')
        published = await communicator.receive_publish()
    assert published["payload"] == '{"got": {"a": 1}}'
    assert consumer.decode_errors == before + 2
    assert "is not JSON" in caplog.text
    await communicator.disconnect()


async def test_consumer_without_disconnect_hook_ends_on_disconnect() -> None:
    communicator = MqttCommunicator(
        TopicRouter([topic("a/<x>", AsyncMqttConsumer.as_asgi())]), "a/1"
    )
    await communicator.send_message(b"ignored")
    await communicator.disconnect("evicted")
    assert communicator.future.done()


async def test_communicator_refuses_unroutable_topic() -> None:
    with pytest.raises(ValueError, match="no route"):
        MqttCommunicator(application(EchoConsumer), "other/topic")


class CommandedDevice(AsyncMqttConsumer):
    """Joins a group; commands sent to the group are published to the device."""

    groups = ["fleet-commands"]

    async def receive(self, topic: str, payload: bytes, **details: Any) -> None:
        await self.publish("joined", payload)  # groups are joined before any event

    async def fleet_command(self, message: dict[str, Any]) -> None:
        device = self.scope["route"]["kwargs"]["device_id"]
        await self.publish(f"devices/{device}/cmd", message["command"], qos=1)


async def test_group_messages_reach_the_device_consumer() -> None:
    communicator = MqttCommunicator(application(CommandedDevice), "devices/d7/x")
    await communicator.send_message(b"hello")
    assert (await communicator.receive_publish())["topic"] == "joined"
    layer = get_channel_layer()
    assert layer is not None
    await layer.group_send("fleet-commands", {"type": "fleet.command", "command": "reboot"})
    published = await communicator.receive_publish()
    assert (published["topic"], published["payload"]) == ("devices/d7/cmd", "reboot")
    await communicator.disconnect()
