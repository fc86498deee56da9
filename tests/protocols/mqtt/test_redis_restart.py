"""The ``mqtt.publish`` channel over the Redis layer survives a Redis restart.

A private ``redis-server`` on an ephemeral port (the shared Redis is never touched)
is killed and started again; publishing through the fixed channel works after it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from gateway.exceptions import ChannelLayerUnavailable
from gateway.generic.mqtt import AsyncMqttConsumer
from gateway.layers import get_channel_layer
from gateway.routing import TopicRouter, topic
from protocols.mqtt.bridge import BridgeLink
from protocols.mqtt.config import BridgeConfig
from tests.gateway.layers.redis_servers import RedisServer
from tests.protocols.mqtt.conftest import WAIT, Device, Recorder

pytestmark = [pytest.mark.mqtt, pytest.mark.redis]


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A private redis-server; tests kill and restart it (in a thread: it blocks)."""
    server = RedisServer(tmp_path)
    await asyncio.to_thread(server.start)
    yield server
    await asyncio.to_thread(server.kill)


class Forwarder(AsyncMqttConsumer):
    """Forwards each message to the group "readings"; reports every attempt and success."""

    attempts: asyncio.Queue[bytes] | None = None
    forwarded: asyncio.Queue[bytes] | None = None

    async def receive(self, topic: str, payload: bytes, **details: Any) -> None:
        assert self.attempts is not None
        self.attempts.put_nowait(payload)
        assert self.channel_layer is not None  # served with channel_layer_alias="default"
        await self.channel_layer.group_send(
            "readings", {"type": "test.reading", "payload": payload}
        )
        if self.forwarded is not None:
            self.forwarded.put_nowait(payload)


def forwarding(
    unique: str, attempts: asyncio.Queue[bytes], forwarded: asyncio.Queue[bytes] | None = None
) -> TopicRouter:
    """QoS 1 messages on ``<unique>/in/<n>`` to a Forwarder reporting on the queues."""
    consumer = Forwarder.as_asgi(attempts=attempts, forwarded=forwarded)
    return TopicRouter([topic(f"{unique}/in/<n>", consumer, qos=1)])


def redis_layer_settings(settings: Any, port: int, prefix: str) -> None:
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "gateway.layers.redis.RedisChannelLayer",
            "CONFIG": {
                "hosts": [f"redis://127.0.0.1:{port}/0"],
                "prefix": prefix,
                "outage_timeout": 0.2,
            },
        }
    }


async def when_up(call: Callable[[], Awaitable[None]]) -> None:
    """``await call()``, retrying while the layer reports Redis unavailable (bounded).

    A restarted Redis answers before the layer has noticed (its probe backs off), and
    these tests give the layer an outage_timeout of 0.2 s.
    """
    for _ in range(100):
        with contextlib.suppress(ChannelLayerUnavailable):
            await call()
            return
        await asyncio.sleep(0.05)
    raise AssertionError("Redis did not come back")


async def send_when_up(layer: Any, message: dict[str, Any]) -> None:
    await when_up(lambda: layer.send("mqtt.publish", message))


async def test_fixed_channel_survives_a_redis_restart(
    redis_server: RedisServer,
    settings: Any,
    unique: str,
    serve: Callable[..., Any],
    devices: Callable[..., Device],
    mosquitto_url: str,
) -> None:
    redis_layer_settings(settings, redis_server.port, unique)
    events: asyncio.Queue[Any] = asyncio.Queue()
    application = TopicRouter([topic(f"{unique}/in/<n>", Recorder.as_asgi(events=events))])
    link = BridgeLink(BridgeConfig.from_url(mosquitto_url))
    await serve(application, link, channel_layer_alias="default")
    device = devices(urlsplit(mosquitto_url).port or 1883)
    await device.connect()
    await device.subscribe(f"{unique}/cmd")
    layer = get_channel_layer()
    assert layer is not None
    command = {"type": "mqtt.publish", "topic": f"{unique}/cmd", "qos": 1}

    await send_when_up(layer, {**command, "payload": "before"})
    assert (await device.next_message()).payload == b"before"

    await asyncio.to_thread(redis_server.kill)
    await asyncio.to_thread(redis_server.start)
    await send_when_up(layer, {**command, "payload": "after"})
    assert (await device.next_message()).payload == b"after"
    await layer.close()


async def test_a_message_that_failed_on_a_down_layer_is_retried_until_it_is_back(
    redis_server: RedisServer,
    settings: Any,
    unique: str,
    serve: Callable[..., Any],
    devices: Callable[..., Device],
    mosquitto_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    redis_layer_settings(settings, redis_server.port, unique)
    layer = get_channel_layer()
    assert layer is not None
    watcher = await layer.new_channel()
    await layer.group_add("readings", watcher)
    attempts: asyncio.Queue[bytes] = asyncio.Queue()
    forwarded: asyncio.Queue[bytes] = asyncio.Queue()
    application = forwarding(unique, attempts, forwarded)
    await serve(application, BridgeLink(BridgeConfig.from_url(mosquitto_url)))
    device = devices(urlsplit(mosquitto_url).port or 1883)
    await device.connect()
    try:
        async with asyncio.timeout(WAIT):
            await device.publish(f"{unique}/in/1", "before", qos=1)
            assert (await layer.receive(watcher))["payload"] == b"before"
            assert await attempts.get() == b"before"
            # Kill Redis only once the consumer has the reply: a kill racing it would
            # lose the reply, and the message would rightly be tried again (QoS 1).
            assert await forwarded.get() == b"before"

            await asyncio.to_thread(redis_server.kill)
            await device.publish(f"{unique}/in/1", "during", qos=1)
            for _ in range(3):  # it fails, and is tried again, and again
                assert await attempts.get() == b"during"
            await asyncio.to_thread(redis_server.start)
            assert (await layer.receive(watcher))["payload"] == b"during"
        # One traceback at most for all those failures, however many there were.
        tracebacks = [r for r in caplog.records if r.exc_info and r.name == "gateway.server"]
        assert len(tracebacks) <= 1
    finally:
        await layer.close()


async def test_a_message_that_failed_on_a_down_layer_is_not_acknowledged(
    redis_server: RedisServer,
    settings: Any,
    unique: str,
    serve: Callable[..., Any],
    devices: Callable[..., Device],
    mosquitto_url: str,
) -> None:
    """The gateway stops while Redis is down: the broker resends the message to the next."""
    redis_layer_settings(settings, redis_server.port, unique)
    url = f"{mosquitto_url}?client_id={unique}"  # a persistent session
    attempts: asyncio.Queue[bytes] = asyncio.Queue()
    application = forwarding(unique, attempts)
    first = await serve(application, BridgeLink(BridgeConfig.from_url(url)))
    device = devices(urlsplit(mosquitto_url).port or 1883)
    await device.connect()
    await asyncio.to_thread(redis_server.kill)
    await device.publish(f"{unique}/in/1", "during", qos=1)
    async with asyncio.timeout(WAIT):
        assert await attempts.get() == b"during"
    await first.stop(1.0)
    await asyncio.to_thread(redis_server.start)

    layer = get_channel_layer()
    assert layer is not None
    watcher = await layer.new_channel()
    await when_up(lambda: layer.group_add("readings", watcher))
    try:
        await serve(application, BridgeLink(BridgeConfig.from_url(url)))
        async with asyncio.timeout(WAIT):
            assert (await layer.receive(watcher))["payload"] == b"during"
    finally:
        await layer.close()
