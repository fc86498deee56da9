"""Channel layers: the same calls on Channels' / channels_redis' layers and on gateway's."""

from __future__ import annotations

import asyncio
import importlib
from typing import Any

import pytest

from tests.compat.conftest import assert_same_outcome
from tests.compat.frameworks import CHANNELS, GATEWAY, Framework, on_both, outcome


def memory(fw: Framework, **config: Any) -> Any:
    return fw.layers.InMemoryChannelLayer(**config)


async def send_receive_groups(fw: Framework) -> list[Any]:
    layer = memory(fw)
    a, b = await layer.new_channel(), await layer.new_channel("other")
    await layer.send("work", {"type": "job", "n": 1})
    await layer.group_add("g", a)
    await layer.group_add("g", b)
    await layer.group_send("g", {"type": "note"})
    await layer.group_discard("g", a)
    await layer.group_send("g", {"type": "note", "second": True})
    received = [
        await layer.receive("work"),
        await layer.receive(a),
        await layer.receive(b),
        await layer.receive(b),
    ]
    await layer.flush()
    await layer.send(a, {"type": "after flush"})
    received.append(await layer.receive(a))
    received.append(b.startswith("other") and "!" in b)
    return received


async def test_send_receive_and_group_fan_out() -> None:
    channels, gateway = await on_both(send_receive_groups)
    assert channels == gateway


async def capacity(fw: Framework) -> list[tuple[str, Any]]:
    layer = memory(fw, capacity=2)
    results = [await outcome(layer.send("c", {"type": "m", "n": n})) for n in range(3)]
    results.append(await outcome(layer.receive("c")))
    results.append(await outcome(layer.send("c", {"type": "m", "n": 3})))
    return results


async def test_a_full_channel_raises_channel_full() -> None:
    channels, gateway = await on_both(capacity)
    assert [kind for kind, _ in channels] == ["ok", "ok", "ChannelFull", "ok", "ok"]
    for channels_outcome, gateway_outcome in zip(channels, gateway, strict=True):
        assert_same_outcome(channels_outcome, gateway_outcome)


async def expiry(fw: Framework) -> list[tuple[str, Any]]:
    # "new" has the whole expiry to be received: 10 ms was too little on a loaded
    # machine (it expired too, and the receive timed out on both frameworks).
    layer = memory(fw, expiry=0.5)
    await layer.send("c", {"type": "old"})
    await asyncio.sleep(0.6)
    await layer.send("c", {"type": "new"})
    return [await outcome(asyncio.wait_for(layer.receive("c"), 1))]


async def test_expired_messages_are_never_received() -> None:
    channels, gateway = await on_both(expiry)
    assert channels == gateway == [("ok", {"type": "new"})]


BAD_CHANNELS = ["bad name", "x" * 100, 42, "a!b!c", ""]
BAD_GROUPS = ["bad name", "a!b", "y" * 100, None]


async def names(fw: Framework) -> list[tuple[str, Any]]:
    layer = memory(fw)
    results = [await outcome(layer.send(name, {"type": "m"})) for name in BAD_CHANNELS]
    results += [await outcome(layer.group_add(name, "ok")) for name in BAD_GROUPS]
    results += [await outcome(layer.group_send(name, {"type": "m"})) for name in BAD_GROUPS]
    return results


async def test_invalid_names_are_refused_in_channels_words() -> None:
    channels, gateway = await on_both(names)
    assert all(kind == "TypeError" for kind, _ in channels)
    for channels_outcome, gateway_outcome in zip(channels, gateway, strict=True):
        assert_same_outcome(channels_outcome, gateway_outcome)


async def settings_layer(fw: Framework) -> list[Any]:
    return [
        type(fw.layers.get_channel_layer()).__name__,
        fw.layers.get_channel_layer("nonexistent"),
        fw.layers.get_channel_layer() is fw.layers.channel_layers["default"],
    ]


async def test_get_channel_layer_reads_channel_layers() -> None:
    channels, gateway = await on_both(settings_layer)
    assert channels == gateway == ["InMemoryChannelLayer", None, True]


# Deliberate differences (docs/porting.md) -------------------------------------------


async def channel_name(fw: Framework) -> str:
    name: str = await memory(fw).new_channel()
    return name


async def test_new_channel_names_are_well_formed_on_gateway() -> None:
    """docs/porting.md, "Channels 4.3.2 defects": ``new_channel()``."""
    channels, gateway = await on_both(channel_name)
    assert ".." in channels
    assert ".." not in gateway
    assert gateway.startswith("specific.")
    assert "!" in gateway


async def pattern_capacity(fw: Framework) -> tuple[str, Any]:
    layer = memory(fw, channel_capacity={"small*": 1})
    await outcome(layer.send("small.one", {"type": "m"}))
    return await outcome(layer.send("small.one", {"type": "m"}))


async def test_channel_capacity_patterns_work_on_gateway() -> None:
    """docs/porting.md, "Channels 4.3.2 defects": ``InMemoryChannelLayer(channel_capacity=...)``."""
    channels, gateway = await on_both(pattern_capacity)
    assert channels[0] != "ChannelFull"  # Channels crashed on the first send instead
    assert gateway[0] == "ChannelFull"


# Redis ------------------------------------------------------------------------------


def redis_layer(fw: Framework, kind: str, prefix: str, redis_url: str) -> Any:
    if fw is CHANNELS:
        module = importlib.import_module(f"channels_redis.{'core' if kind == 'core' else 'pubsub'}")
    else:
        module = importlib.import_module("gateway.layers.redis")
    name = "RedisChannelLayer" if kind == "core" else "RedisPubSubChannelLayer"
    return getattr(module, name)(hosts=[redis_url], prefix=prefix, capacity=2)


@pytest.mark.redis
@pytest.mark.parametrize("kind", ["core", "pubsub"])
async def test_redis_layers_behave_alike(kind: str, redis_url: str, unique: str) -> None:
    async def scenario(fw: Framework) -> list[Any]:
        layer = redis_layer(fw, kind, f"{unique}{fw.name[0]}", redis_url)
        other = redis_layer(fw, kind, f"{unique}{fw.name[0]}", redis_url)
        try:
            a, b = await layer.new_channel(), await layer.new_channel()
            await layer.group_add("g", a)
            await layer.group_add("g", b)
            await layer.group_send("g", {"type": "note", "n": 1})
            results: list[Any] = [await layer.receive(a), await layer.receive(b)]
            if kind == "core":  # channels_redis' pub/sub layer drops what nobody awaits yet
                await layer.send("plain", {"type": "m", "n": 2})
            results.append(await layer.receive("plain") if kind == "core" else None)
            results.append(await outcome(layer.send("bad name", {"type": "m"})))
            # Another process's local channel; channels_redis' pub/sub layer would
            # subscribe and wait (docs/porting.md, "Receiving someone else's
            # process-local channel"), so it gets a short deadline.
            results.append(await outcome(asyncio.wait_for(other.receive(a), 0.2)))
            if kind == "core":
                for n in range(2):
                    await layer.send("full", {"type": "m", "n": n})
                results.append(await outcome(layer.send("full", {"type": "m"})))
            await layer.flush()
            return results
        finally:
            if kind == "core" or fw is GATEWAY:  # channels_redis' pub/sub: flush() closed it
                await layer.close_pools()
                await other.close_pools()

    channels, gateway = await on_both(scenario)
    assert channels[:3] == gateway[:3]
    assert channels[4][0] == ("AssertionError" if kind == "core" else "TimeoutError")
    assert gateway[4][0] == "AssertionError"
    assert gateway[4][1].startswith("Wrong client prefix")
    if kind == "pubsub":
        # docs/porting.md, gateway.layers.redis: the pub/sub layer validates names.
        assert channels[3] == ("ok", None)
        assert gateway[3][0] == "TypeError"
    for channels_outcome, gateway_outcome in zip(channels[3:], gateway[3:], strict=True):
        if kind == "core" and channels_outcome is not channels[4]:
            assert_same_outcome(channels_outcome, gateway_outcome)


@pytest.mark.redis
async def test_redis_serializers_round_trip_alike() -> None:
    """The serializer API of channels_redis 4.3, ported by the rename."""
    from channels_redis import serializers as theirs

    from gateway.layers.redis import serializers as ours

    message = {"type": "m", "bytes": b"\x00", "n": [1, 2]}
    for module in (theirs, ours):
        serializer = module.registry.get_serializer("msgpack")
        assert serializer.deserialize(serializer.serialize(message)) == message
        with pytest.raises(module.SerializerDoesNotExist):
            module.registry.get_serializer("nope")
    assert GATEWAY.name == "gateway"
