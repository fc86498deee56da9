"""The ``mqtt.publish`` channel over the Redis layer survives a Redis restart.

A private ``redis-server`` on an ephemeral port (the shared Redis is never touched)
is killed and started again; publishing through the fixed channel works after it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

from gateway.exceptions import ChannelLayerUnavailable
from gateway.layers import get_channel_layer
from gateway.routing import TopicRouter, topic
from protocols.mqtt.bridge import BridgeLink
from protocols.mqtt.config import BridgeConfig
from tests.protocols.mqtt.conftest import WAIT, Device, Recorder
from tests.protocols.mqtt.test_restart import free_port

pytestmark = [pytest.mark.mqtt, pytest.mark.redis]


class RedisServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            stdout=asyncio.subprocess.PIPE,
        )
        assert self.process.stdout is not None
        try:
            async with asyncio.timeout(WAIT):
                while b"Ready to accept connections" not in (
                    line := await self.process.stdout.readline()
                ):
                    if not line:
                        raise RuntimeError("redis-server did not start")
        except BaseException:
            if self.process.returncode is None:
                self.process.kill()
            await self.process.wait()
            raise
        self.drain = asyncio.create_task(self.process.stdout.read())

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
            await self.drain


@pytest.fixture
async def redis_server() -> AsyncIterator[RedisServer]:
    server = RedisServer(free_port())
    await server.start()
    yield server
    await server.kill()


async def send_when_up(layer: Any, message: dict[str, Any]) -> None:
    """Send, retrying while the layer reports Redis unavailable (bounded)."""
    for _ in range(100):
        with contextlib.suppress(ChannelLayerUnavailable):
            await layer.send("mqtt.publish", message)
            return
        await asyncio.sleep(0.05)
    raise AssertionError("Redis did not come back")


async def test_fixed_channel_survives_a_redis_restart(
    redis_server: RedisServer,
    settings: Any,
    unique: str,
    serve: Callable[..., Any],
    devices: Callable[..., Device],
    mosquitto_url: str,
) -> None:
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "gateway.layers.redis.RedisChannelLayer",
            "CONFIG": {"hosts": [f"redis://127.0.0.1:{redis_server.port}/0"], "prefix": unique},
        }
    }
    events: asyncio.Queue[Any] = asyncio.Queue()
    application = TopicRouter([topic(f"{unique}/in/<n>", Recorder.as_asgi(events=events))])
    link = BridgeLink(BridgeConfig.from_url(mosquitto_url))
    await serve(application, link, channel_layer_alias="default")
    device = devices(urlsplit(mosquitto_url).port or 1883)
    await device.connect()
    await device.subscribe(f"{unique}/cmd")
    layer = get_channel_layer()
    command = {"type": "mqtt.publish", "topic": f"{unique}/cmd", "qos": 1}

    await send_when_up(layer, {**command, "payload": "before"})
    assert (await device.next_message()).payload == b"before"

    await redis_server.kill()
    await redis_server.start()
    await send_when_up(layer, {**command, "payload": "after"})
    assert (await device.next_message()).payload == b"after"
    await layer.close()
