"""RedisPubSubChannelLayer's own promises for process-local channels.

The shared contract suite covers everything it has in common with the other
layers; here: subscription before ``new_channel()`` returns, capacity enforced by
the receiving process for messages from other processes, expiry, fan-out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
import redis

from gateway.exceptions import ChannelFull
from gateway.layers.redis import RedisPubSubChannelLayer

pytestmark = pytest.mark.redis

WAIT = 5.0


@pytest.fixture
async def layer(redis_url: str, unique: str) -> AsyncIterator[RedisPubSubChannelLayer]:
    layer = RedisPubSubChannelLayer(hosts=[redis_url], prefix=unique, capacity=2)
    yield layer
    await layer.flush()
    await layer.close()


async def receive(layer: RedisPubSubChannelLayer, channel: str) -> dict[str, object]:
    async with asyncio.timeout(WAIT):
        return await layer.receive(channel)


async def test_new_channel_is_subscribed_before_it_is_returned(
    layer: RedisPubSubChannelLayer, redis_url: str, unique: str
) -> None:
    other = RedisPubSubChannelLayer(hosts=[redis_url], prefix=unique)
    try:
        channel = await layer.new_channel()
        await other.send(channel, {"type": "test.message", "payload": b"\x00\xff"})
        assert await receive(layer, channel) == {"type": "test.message", "payload": b"\x00\xff"}
    finally:
        await other.close()


async def test_group_send_fans_out_to_local_members_in_order(
    layer: RedisPubSubChannelLayer,
) -> None:
    members = [await layer.new_channel() for _ in range(3)]
    for member in members:
        await layer.group_add("room", member)
    await layer.group_discard("room", members[2])
    for n in range(2):
        await layer.group_send("room", {"type": "chat.message", "n": n})
    await layer.send(members[2], {"type": "chat.message", "n": "direct"})
    for member in members[:2]:
        assert [(await receive(layer, member))["n"] for _ in range(2)] == [0, 1]
    assert (await receive(layer, members[2]))["n"] == "direct"


async def test_a_full_channel_drops_messages_from_other_processes_counts_and_logs(
    layer: RedisPubSubChannelLayer, redis_url: str, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    other = RedisPubSubChannelLayer(hosts=[redis_url], prefix=unique)  # another process
    try:
        channel, probe = await layer.new_channel(), await layer.new_channel()
        with caplog.at_level(logging.WARNING, logger="gateway.layers.redis"):
            for n in range(3):
                await other.send(channel, {"type": "test.message", "n": n})
            # One subscriber connection delivers in publish order: once the probe is
            # here, all three were delivered to (or refused by) the full mailbox.
            await other.send(probe, {"type": "test.probe"})
            await receive(layer, probe)
        assert layer.stats.dropped_full == 1
        assert any("at capacity" in record.getMessage() for record in caplog.records)
        assert [(await receive(layer, channel))["n"] for _ in range(2)] == [0, 1]
    finally:
        await other.close()


async def test_a_send_from_the_receiving_process_raises_channel_full(
    layer: RedisPubSubChannelLayer,
) -> None:
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "test.message", "n": 0})
    await layer.send(channel, {"type": "test.message", "n": 1})
    with pytest.raises(ChannelFull):
        await layer.send(channel, {"type": "test.message", "n": 2})
    assert (await receive(layer, channel))["n"] == 0
    await layer.send(channel, {"type": "test.message", "n": 3})
    assert [(await receive(layer, channel))["n"] for _ in range(2)] == [1, 3]


async def test_nothing_for_a_local_channel_is_stored_in_redis(
    layer: RedisPubSubChannelLayer, redis_url: str, unique: str
) -> None:
    channel = await layer.new_channel()
    await layer.group_add("room", channel)
    await layer.send(channel, {"type": "test.message"})
    await layer.group_send("room", {"type": "test.message"})
    for _ in range(2):
        await receive(layer, channel)
    with redis.Redis.from_url(redis_url) as client:
        stored = sorted(client.scan_iter(match=f"{unique}:*"))
    # Only the group's membership (sorted set and family index), no message.
    assert stored == [f"{unique}:{{room}}:f".encode(), f"{unique}:{{room}}:g".encode()]


async def test_expired_messages_are_not_delivered(redis_url: str, unique: str) -> None:
    now = [1000.0]
    layer = RedisPubSubChannelLayer(
        hosts=[redis_url], prefix=unique, expiry=10, clock=lambda: now[0]
    )
    try:
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "test.message", "n": "old"})
        now[0] += 11
        await layer.send(channel, {"type": "test.message", "n": "new"})
        assert (await receive(layer, channel))["n"] == "new"
        assert layer.stats.expired == 1
    finally:
        await layer.close()


async def test_cancelled_receive_keeps_the_message(layer: RedisPubSubChannelLayer) -> None:
    channel = await layer.new_channel()
    waiting = asyncio.create_task(layer.receive(channel))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await layer.send(channel, {"type": "test.message"})
    assert await receive(layer, channel) == {"type": "test.message"}
