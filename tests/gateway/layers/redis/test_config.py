"""gateway.layers.redis.config: hosts and options as channels_redis takes them, and the layers
they configure: encryption, capacities, use from sync code, closing."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest
import redis
from asgiref.sync import async_to_sync

from gateway.layers import get_channel_layer
from gateway.layers.redis import RedisChannelLayer
from gateway.layers.redis.config import decode_hosts, describe_host

WAIT = 5.0


def test_hosts_are_decoded_like_channels_redis() -> None:
    assert decode_hosts(None) == [{"address": "redis://localhost:6379"}]
    assert decode_hosts(["redis://h:1/2", ("h", 3), {"host": "x", "port": 4}]) == [
        {"address": "redis://h:1/2"},
        {"host": "h", "port": 3},
        {"host": "x", "port": 4},
    ]
    with pytest.raises(ValueError, match="list"):
        decode_hosts("redis://localhost")


def test_host_descriptions_never_show_passwords() -> None:
    assert describe_host({"address": "rediss://:s3cret@h:6380/0"}) == "rediss://h:6380/0"
    assert describe_host({"sentinels": [("h", 1)], "master_name": "m", "password": "p"}) == (
        "sentinel master 'm'"
    )


@pytest.mark.redis
async def test_encrypted_layer_stores_only_ciphertext(redis_url: str, unique: str) -> None:
    layer = RedisChannelLayer(hosts=[redis_url], prefix=unique, symmetric_encryption_keys=["k"])
    try:
        await layer.send("vault", {"type": "secret.message", "text": "plaintext-marker"})
        with redis.Redis.from_url(redis_url) as client:
            (stored,) = client.lrange(f"{unique}:{{vault}}", 0, -1)
        assert b"plaintext-marker" not in stored
        async with asyncio.timeout(WAIT):
            assert (await layer.receive("vault"))["text"] == "plaintext-marker"
    finally:
        await layer.flush()
        await layer.close()


@pytest.mark.redis
def test_group_send_from_sync_code_in_a_loop(redis_url: str, unique: str) -> None:
    """A management command calling async_to_sync(group_send) many times (channels_redis#332)."""
    layer = RedisChannelLayer(hosts=[redis_url], prefix=unique, capacity=100)
    async_to_sync(layer.group_add)("alerts", "alerts.worker")
    for n in range(30):
        async_to_sync(layer.group_send)("alerts", {"type": "alert", "n": n})
    received = [async_to_sync(layer.receive)("alerts.worker")["n"] for _ in range(30)]
    assert received == list(range(30))
    assert layer.stats.group_sent == 30
    async_to_sync(layer.flush)()
    assert threading.active_count() < 50  # nothing piles up per call


@pytest.mark.redis
async def test_group_send_honours_capacity_patterns_per_member(
    redis_url: str, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    layer = RedisChannelLayer(
        hosts=[redis_url],
        prefix=unique,
        capacity=5,
        channel_capacity={"small.*": 1, "specific.*": 1},
    )
    try:
        local, other = await layer.new_channel(), await layer.new_channel()
        for member in ("small.a", "big.b", local):
            await layer.group_add("room", member)
        with caplog.at_level(logging.WARNING, logger="gateway.layers"):
            for n in range(2):
                await layer.group_send("room", {"type": "test.message", "n": n})
            # The sender skips the normal channel ...
            assert layer.stats.dropped_full == 1
            (warning,) = [r.getMessage() for r in caplog.records if "group_send" in r.getMessage()]
            assert "small.a" in warning
            assert local not in warning
            assert "big.b" not in warning
            # ... the local channel's own process (this one) skips it as the message
            # arrives: all have once a later message to the same process is received.
            await layer.send(other, {"type": "test.message", "n": "marker"})
            assert (await layer.receive(other))["n"] == "marker"
        assert layer.stats.dropped_full == 2  # the second message, for small.a and local
        assert any(local in r.getMessage() for r in caplog.records)
        async with asyncio.timeout(WAIT):
            assert (await layer.receive("small.a"))["n"] == 0
            assert [(await layer.receive("big.b"))["n"] for _ in range(2)] == [0, 1]
            assert (await layer.receive(local))["n"] == 0
    finally:
        await layer.flush()
        await layer.close()


@pytest.mark.redis
def test_local_channel_received_from_sync_code_keeps_buffered_messages(
    redis_url: str, unique: str
) -> None:
    """Each async_to_sync call is a new event loop; what one popped, the next receives."""
    layer = RedisChannelLayer(hosts=[redis_url], prefix=unique)
    channel = async_to_sync(layer.new_channel)()
    for n in range(5):
        async_to_sync(layer.send)(channel, {"type": "test.message", "n": n})
    assert [async_to_sync(layer.receive)(channel)["n"] for _ in range(5)] == list(range(5))
    async_to_sync(layer.send)(channel, {"type": "test.message", "n": 5})
    assert async_to_sync(layer.receive)(channel)["n"] == 5
    async_to_sync(layer.flush)()


@pytest.mark.redis
@pytest.mark.parametrize("backend", ["RedisChannelLayer", "RedisPubSubChannelLayer"])
async def test_a_channels_redis_config_works_unchanged(
    settings: Any, redis_url: str, unique: str, backend: str
) -> None:
    """Porting is a BACKEND change: every channels_redis CONFIG key is accepted."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": f"gateway.layers.redis.{backend}",
            "CONFIG": {
                "hosts": [redis_url],
                "prefix": unique,
                "expiry": 30,
                "group_expiry": 600,
                "capacity": 50,
                "channel_capacity": {"http.request": 10},
                "symmetric_encryption_keys": ["secret"],
                "random_prefix_length": 12,
                "serializer_format": "msgpack",
            },
        }
    }
    layer = get_channel_layer()
    assert layer is not None
    assert type(layer).__name__ == backend
    try:
        channel = await layer.new_channel()
        await layer.group_add("room", channel)
        await layer.group_send("room", {"type": "hello"})
        async with asyncio.timeout(WAIT):
            assert await layer.receive(channel) == {"type": "hello"}
    finally:
        await layer.flush()
        await layer.close()


@pytest.mark.redis
async def test_closing_gives_popped_messages_back_to_redis_with_a_ttl(
    redis_url: str, unique: str
) -> None:
    layer = RedisChannelLayer(hosts=[redis_url], prefix=unique, expiry=30)
    channel = await layer.new_channel()
    for n in range(3):
        await layer.send(channel, {"type": "test.message", "n": n})
    async with asyncio.timeout(WAIT):
        assert (await layer.receive(channel))["n"] == 0  # one pop took all three
    await layer.close()
    inbox = f"{unique}:{{{channel[: channel.index('!') + 1]}}}:q"
    with redis.Redis.from_url(redis_url) as client:
        assert client.llen(inbox) == 2
        assert 0 < client.pttl(inbox) <= 30_000
    try:
        async with asyncio.timeout(WAIT):
            assert [(await layer.receive(channel))["n"] for _ in range(2)] == [1, 2]
    finally:
        await layer.flush()
        await layer.close()
    with redis.Redis.from_url(redis_url) as client:
        assert list(client.scan_iter(match=f"{unique}:*")) == []
