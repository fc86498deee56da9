"""Configuration, serialization, encryption and sync use of the Redis layers."""

from __future__ import annotations

import asyncio
import json as json_module
import logging
import threading
from typing import Any

import pytest
import redis
from asgiref.sync import async_to_sync

from gateway.layers import get_channel_layer
from gateway.layers.redis import RedisChannelLayer
from gateway.layers.redis.config import decode_hosts, describe_host
from gateway.layers.redis.keys import consistent_hash
from gateway.layers.redis.serializers import (
    BaseMessageSerializer,
    DecryptionError,
    SerializerDoesNotExist,
    registry,
)

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


#: Shard indexes channels_redis 4.3.0 picks (``channels_redis.utils._consistent_hash``)
#: for rings of 2, 3, 7 and 16 hosts: a project moving over keeps its channels on the
#: same Redis hosts.
CHANNELS_REDIS_SHARDS = {
    "a": [1, 2, 6, 14],
    "group.chat": [0, 0, 0, 0],
    "specific.abc!": [1, 2, 6, 14],
    "chat.room-42": [0, 1, 2, 6],
    "mqtt.publish": [0, 0, 1, 2],
    "telegram.send": [0, 1, 2, 5],
    "b": [1, 2, 6, 15],
}


def test_consistent_hash_matches_channels_redis_ring() -> None:
    for name, shards in CHANNELS_REDIS_SHARDS.items():
        assert [consistent_hash(name, ring) for ring in (2, 3, 7, 16)] == shards, name
    assert all(consistent_hash(name, 1) == 0 for name in CHANNELS_REDIS_SHARDS)


def test_msgpack_keeps_bytes_and_json_is_a_registered_format() -> None:
    message = {"type": "mqtt.message", "payload": b"\x00\xff", "topic": "a/b"}
    msgpack = registry.get_serializer("msgpack")
    assert msgpack.deserialize(msgpack.serialize(message)) == message
    json = registry.get_serializer("json")
    assert json.deserialize(json.serialize({"type": "x"})) == {"type": "x"}
    with pytest.raises(SerializerDoesNotExist):
        registry.get_serializer("yaml")
    with pytest.raises(SerializerDoesNotExist):
        RedisChannelLayer(serializer_format="yaml")


class ReversedJSON(BaseMessageSerializer):
    """A custom format written against channels_redis' serializer API."""

    def as_bytes(self, message: Any, *args: Any, **kwargs: Any) -> bytes:
        return json_module.dumps(message).encode()[::-1]

    def from_bytes(self, message: bytes, *args: Any, **kwargs: Any) -> Any:
        return json_module.loads(message[::-1])


def test_a_custom_format_registers_and_gets_encryption_on_top() -> None:
    registry.register_serializer("reversed-json", ReversedJSON)
    plain = registry.get_serializer("reversed-json")
    assert plain.serialize({"type": "x"}) == b'}"x" :"epyt"{'
    sealed = registry.get_serializer("reversed-json", symmetric_encryption_keys=["k"])
    data = sealed.serialize({"type": "x"})
    assert b"epyt" not in data
    assert sealed.deserialize(data) == {"type": "x"}
    layer = RedisChannelLayer(serializer_format="reversed-json")
    assert isinstance(layer._serializer, ReversedJSON)
    with pytest.raises(TypeError, match="serialize"):
        registry.register_serializer("broken", dict)


def test_random_prefix_is_stripped_again() -> None:
    prefixed = registry.get_serializer("msgpack", random_prefix_length=12)
    data = prefixed.serialize({"type": "x"})
    assert len(data) == len(registry.get_serializer("msgpack").serialize({"type": "x"})) + 12
    assert prefixed.deserialize(data) == {"type": "x"}


def test_encryption_rotates_keys_and_refuses_foreign_data() -> None:
    old = registry.get_serializer("msgpack", symmetric_encryption_keys=["old-key"])
    rotated = registry.get_serializer("msgpack", symmetric_encryption_keys=["new-key", "old-key"])
    data = old.serialize({"type": "secret", "payload": b"\x01"})
    assert b"secret" not in data
    assert rotated.deserialize(data) == {"type": "secret", "payload": b"\x01"}
    with pytest.raises(DecryptionError, match="decrypted"):
        registry.get_serializer("msgpack", symmetric_encryption_keys=["other"]).deserialize(data)
    with pytest.raises(ValueError, match="list"):
        registry.get_serializer("msgpack", symmetric_encryption_keys="one-key")


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
        local = await layer.new_channel()
        for member in ("small.a", "big.b", local):
            await layer.group_add("room", member)
        with caplog.at_level(logging.WARNING, logger="gateway.layers.redis"):
            for n in range(2):
                await layer.group_send("room", {"type": "test.message", "n": n})
        assert layer.stats.dropped_full == 2  # the second message, for small.a and local
        (warning,) = [r.getMessage() for r in caplog.records if "group_send" in r.getMessage()]
        assert "small.a" in warning
        assert local in warning
        assert "big.b" not in warning
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
