"""Group broadcasts to browser sockets through the in-memory layer (issue 17), over real
sockets: every member gets every message once and in order, whatever its compression;
a member that stops reading fills only its own channel (capacity), and never delays
the others."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
from django.test import override_settings
from websockets.asyncio.client import ClientConnection, connect

from gateway.generic.websocket import AsyncWebsocketConsumer
from gateway.layers import InMemoryChannelLayer, get_channel_layer
from gateway.types import Message
from protocols.websocket import Config, WebServer
from tests.protocols.websocket.conftest import raw, wait_until

GROUP = "dashboards"


class Dashboard(AsyncWebsocketConsumer):
    groups = [GROUP]

    async def dash_update(self, event: Message) -> None:
        await self.send(text_data=event["text"])


@pytest.fixture
def layer_config() -> dict[str, Any]:
    return {}


@pytest.fixture
def layer(layer_config: dict[str, Any]) -> Iterator[InMemoryChannelLayer]:
    backend = {"BACKEND": "gateway.layers.InMemoryChannelLayer", "CONFIG": layer_config}
    with override_settings(CHANNEL_LAYERS={"default": backend}):
        channel_layer = get_channel_layer()
        assert isinstance(channel_layer, InMemoryChannelLayer)
        yield channel_layer


@asynccontextmanager
async def dashboard_server() -> AsyncIterator[WebServer]:
    server = WebServer(
        Dashboard.as_asgi(), Config(port=0, access_log=False, lifespan="off", ws_max_size=2**24)
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop(5.0)


async def members(stack: AsyncExitStack, port: int, count: int, **options: Any) -> list[Any]:
    return [
        await stack.enter_async_context(
            connect(f"ws://127.0.0.1:{port}/", max_size=None, **options)
        )
        for _ in range(count)
    ]


async def received(ws: ClientConnection, count: int) -> list[str]:
    async with asyncio.timeout(20):
        return [str(await ws.recv()) for _ in range(count)]


def texts(count: int) -> list[str]:
    """Sizes on both sides of the compression threshold, each message unique."""
    return [f"{i}:" + "abc" * (i % 7) ** 4 for i in range(count)]


async def test_every_member_gets_every_message_once_in_order(layer: InMemoryChannelLayer) -> None:
    sent = texts(200)
    async with AsyncExitStack() as stack:
        server = await stack.enter_async_context(dashboard_server())
        browsers = await members(stack, server.port, 12)  # offer permessage-deflate
        plain = await members(stack, server.port, 6, compression=None)
        for index, text in enumerate(sent):
            await layer.group_send(GROUP, {"type": "dash.update", "text": text})
            if index % 50 == 49:  # within capacity (100): a burst, then the members drain
                await wait_until(lambda: layer.occupancy()["messages"] == 0, timeout=20)
        await layer.group_send(GROUP, {"type": "dash.update", "text": "end"})
        results = await asyncio.gather(*(received(ws, len(sent) + 1) for ws in browsers + plain))
    for result in results:
        assert result == [*sent, "end"]  # nothing lost, duplicated or reordered
    assert layer.stats.dropped_full == 0


@pytest.mark.parametrize("layer_config", [{"capacity": 4}])
async def test_a_member_that_stops_reading_delays_no_one(layer: InMemoryChannelLayer) -> None:
    # Random text does not compress: 40 x 256 KiB is more than the slow socket's
    # kernel buffers and the server's write buffer hold.
    sent = [base64.b64encode(os.urandom(192 * 1024)).decode() for _ in range(40)]
    async with AsyncExitStack() as stack:
        server = await stack.enter_async_context(dashboard_server())
        slow = await stack.enter_async_context(raw(server.port))
        await slow.send(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        assert (await slow.read_head())[0] == 101  # then it reads nothing more
        fast = await members(stack, server.port, 4, compression=None)
        await wait_until(lambda: layer.occupancy()["memberships"] == 5)

        async def reader(ws: ClientConnection) -> list[str]:
            return await received(ws, len(sent))

        readers = [asyncio.ensure_future(reader(ws)) for ws in fast]
        for index, text in enumerate(sent):
            await layer.group_send(GROUP, {"type": "dash.update", "text": text})
            if index % 4 == 3:  # let the fast members keep up with capacity 4
                await wait_until(lambda: layer.occupancy()["messages"] <= 4, timeout=20)
        results = await asyncio.gather(*readers)
        # The fast members have everything while the slow one is still stuck ...
        for result in results:
            assert result == sent
        # ... and it cost only the slow member's channel: full at capacity, the rest
        # of the broadcasts skipped for it (counted), nothing queued beyond that.
        assert layer.stats.dropped_full > 0
        assert layer.occupancy()["messages"] <= 4
