"""project.traffic: batches on a real (in-memory) channel layer, bounds, and the tap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.consumer import AsyncConsumer
from gateway.layers import get_channel_layer
from gateway.testing import ApplicationCommunicator, WebsocketCommunicator
from gateway.types import Message
from project.traffic import TEXT_LIMIT, TrafficEmitter, TrafficTap, entry

WAIT = 5.0


class Group:
    """A channel in a group of its own, to read what an emitter sends there."""

    def __init__(self, name: str, channel: str) -> None:
        self.name = name
        self.channel = channel

    async def next(self) -> Message:
        layer = get_channel_layer()
        assert layer is not None
        async with asyncio.timeout(WAIT):
            return await layer.receive(self.channel)


@pytest.fixture
async def group(unique: str) -> AsyncIterator[Group]:
    layer = get_channel_layer()
    assert layer is not None
    channel = await layer.new_channel()
    await layer.group_add(unique, channel)
    yield Group(unique, channel)
    await layer.group_discard(unique, channel)


async def test_entries_go_out_in_one_batch_with_the_contracts_shape(group: Group) -> None:
    emitter = TrafficEmitter(group.name, interval=60)  # only drain() sends
    emitter.emit("mqtt", "in", "devices/d1/telemetry", '{"t": 21.5}', device="d1")
    emitter.emit("mqtt", "out", "devices/d1/commands", "reboot", device="d1")
    await emitter.drain()
    message = await group.next()
    assert message["type"] == "iot.traffic"
    assert message["dropped"] == 0
    first, second = message["entries"]
    assert set(first) == {"at", "protocol", "direction", "device", "topic", "summary"}
    assert (first["direction"], first["device"], first["summary"]) == ("in", "d1", '{"t": 21.5}')
    assert (second["direction"], second["topic"]) == ("out", "devices/d1/commands")
    assert first["at"].endswith("+00:00")


async def test_the_batch_goes_out_after_the_interval_without_being_asked(group: Group) -> None:
    emitter = TrafficEmitter(group.name, interval=0.01)
    emitter.emit("telegram", "in", "chat 1", "hi")
    assert [e["summary"] for e in (await group.next())["entries"]] == ["hi"]


async def test_past_the_limit_the_oldest_are_dropped_and_counted(group: Group) -> None:
    emitter = TrafficEmitter(group.name, interval=60, limit=3)
    for n in range(5):
        emitter.emit("mqtt", "in", f"t/{n}", str(n))
    await emitter.drain()
    message = await group.next()
    assert [e["summary"] for e in message["entries"]] == ["2", "3", "4"]
    assert message["dropped"] == 2


def test_long_texts_are_cut() -> None:
    made = entry("mqtt", "in", "t" * 500, "s" * 500)
    assert len(made["topic"]) == len(made["summary"]) == TEXT_LIMIT


class Bot(AsyncConsumer):
    """Answers each message, as the seed bot does."""

    async def telegram_message(self, message: dict[str, Any]) -> None:
        await self.send({"type": "telegram.message", "text": f"You said: {message['text']}"})


async def test_the_tap_reports_a_conversation_both_ways(group: Group) -> None:
    emitter = TrafficEmitter(group.name, interval=60)
    scope = {"type": "telegram", "chat": {"id": 42, "username": "ann"}, "conversation": []}
    bot = ApplicationCommunicator(TrafficTap(Bot.as_asgi(), emitter), scope)
    await bot.send_input({"type": "telegram.message", "text": "hello"})
    assert (await bot.receive_output(WAIT))["text"] == "You said: hello"
    await bot.send_input({"type": "telegram.disconnect", "reason": "idle"})
    await bot.wait(WAIT)
    await emitter.drain()
    entries = (await group.next())["entries"]
    assert [(e["protocol"], e["direction"], e["topic"], e["summary"]) for e in entries] == [
        ("telegram", "in", "chat 42 (ann)", "message: hello"),
        ("telegram", "out", "chat 42 (ann)", "message: You said: hello"),
    ]


async def refuse(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.close", "code": 4401, "reason": "login required"})
    await receive()


async def test_the_tap_reports_a_sockets_connect_and_close_not_its_frames(group: Group) -> None:
    emitter = TrafficEmitter(group.name, interval=60)
    socket = WebsocketCommunicator(TrafficTap(refuse, emitter), "/ws/health/")
    connected, code = await socket.connect(WAIT)
    assert (connected, code) == (False, 4401)
    await socket.disconnect(code=4401)
    await emitter.drain()
    entries = (await group.next())["entries"]
    assert [(e["direction"], e["topic"], e["summary"]) for e in entries] == [
        ("in", "/ws/health/", "connect (anonymous)"),
        ("out", "/ws/health/", "close 4401 login required"),
        ("in", "/ws/health/", "disconnect 4401"),
    ]
