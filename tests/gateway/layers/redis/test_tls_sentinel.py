"""The Redis layers over TLS (``rediss://``) and behind Redis Sentinel, with failover."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.exceptions import ChannelLayerUnavailable
from gateway.layers.redis import RedisChannelLayer, RedisPubSubChannelLayer
from tests.gateway.layers.redis_servers import (
    RedisServer,
    SentinelServer,
    TLSRedisServer,
    running,
    sentinel_group,
    wait_for_promotion,
)

pytestmark = [pytest.mark.redis]

WAIT = 10.0


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[TLSRedisServer]:
    server = TLSRedisServer(tmp_path)
    with running([server]):
        yield server


@pytest.mark.parametrize("layer_class", [RedisChannelLayer, RedisPubSubChannelLayer])
async def test_layers_speak_tls(
    tls_server: TLSRedisServer, layer_class: type[RedisChannelLayer]
) -> None:
    host = {"address": tls_server.url, "ssl_ca_certs": str(tls_server.tls["ca"])}
    layer = layer_class(hosts=[host], prefix="tls")
    try:
        local = await layer.new_channel()
        await layer.group_add("room", local)
        await layer.send("work", {"type": "test.message", "payload": b"\x00"})
        await layer.group_send("room", {"type": "test.message", "to": "room"})
        async with asyncio.timeout(WAIT):
            assert (await layer.receive("work"))["payload"] == b"\x00"
            assert (await layer.receive(local))["to"] == "room"
    finally:
        await layer.close()


async def test_tls_is_required_by_the_server(tls_server: TLSRedisServer) -> None:
    plain = RedisChannelLayer(
        hosts=[f"redis://127.0.0.1:{tls_server.port}/0"], prefix="tls", outage_timeout=0.5
    )
    try:
        with pytest.raises(ChannelLayerUnavailable):
            async with asyncio.timeout(WAIT):
                await plain.send("work", {"type": "test.message"})
    finally:
        await plain.close()


@pytest.fixture
def sentinel_setup(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer, SentinelServer]]:
    with sentinel_group(tmp_path, "gwmaster", WAIT) as servers:
        yield servers


async def test_sentinel_failover_keeps_the_layer_working(
    sentinel_setup: tuple[RedisServer, RedisServer, SentinelServer],
) -> None:
    master, replica, sentinel = sentinel_setup
    host = {"sentinels": [("127.0.0.1", sentinel.port)], "master_name": "gwmaster"}
    layer = RedisChannelLayer(hosts=[host], prefix="sentinel")
    try:
        await layer.send("work", {"type": "test.message", "n": 1})
        async with asyncio.timeout(WAIT):
            assert (await layer.receive("work"))["n"] == 1
        waiting = asyncio.create_task(layer.receive("work"))

        await asyncio.to_thread(master.kill)
        await asyncio.to_thread(wait_for_promotion, replica, WAIT * 2)
        async with asyncio.timeout(WAIT):
            while True:  # sends fail fast until the layer has found the new master
                try:
                    await layer.send("work", {"type": "test.message", "n": 2})
                    break
                except ChannelLayerUnavailable:
                    await asyncio.sleep(0.05)
            assert (await waiting)["n"] == 2
    finally:
        await layer.close()
