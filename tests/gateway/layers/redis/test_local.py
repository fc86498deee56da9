"""Group messages to process-local channels: admitted by the receiving process.

A ``group_send`` costs Redis one inbox entry per receiving process, whatever its
number of members there; that process gives the message to each member with room
and counts it back in Redis with its acks. These tests pin what that must keep:
each member's capacity, sends accepted against counts that had not seen the group
messages yet, and the inbox bound of a process that does not read. Two layer
instances on one Redis play two processes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest
import redis.asyncio as aioredis

from gateway.exceptions import ChannelFull
from gateway.layers.redis import RedisChannelLayer
from gateway.types import Message

pytestmark = pytest.mark.redis

Processes = Callable[..., Awaitable[RedisChannelLayer]]


@pytest.fixture
async def process(redis_url: str, unique: str) -> AsyncIterator[Processes]:
    """Make layers sharing one Redis and prefix: each one a process of its own."""
    async with AsyncExitStack() as stack:

        async def make(**config: Any) -> RedisChannelLayer:
            layer = RedisChannelLayer(hosts=[redis_url], prefix=unique, **config)
            stack.push_async_callback(layer.close)
            return layer

        yield make
        await (await make()).flush()


@pytest.fixture
def room(unique: str) -> str:
    """A group of its own: the log says a group's first full member once a minute."""
    return f"room-{unique}"


async def receive(layer: RedisChannelLayer, channel: str) -> Message:
    async with asyncio.timeout(5):
        return await layer.receive(channel)


async def assert_empty(layer: RedisChannelLayer, channel: str) -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await layer.receive(channel)


async def test_every_member_of_a_process_gets_a_group_message_from_one_entry(
    process: Processes, unique: str, redis_url: str, room: str
) -> None:
    receiver, sender = await process(), await process()
    members = [await receiver.new_channel() for _ in range(50)]
    for member in members:
        await receiver.group_add(room, member)
    client = aioredis.Redis.from_url(redis_url)
    try:
        await sender.group_send(room, {"type": "room.message", "n": 1})
        inboxes = [key async for key in client.scan_iter(match=f"{unique}:*:q")]
        assert len(inboxes) == 1
        assert await client.llen(inboxes[0]) == 1  # one entry for fifty members
    finally:
        await client.aclose()
    for member in members:
        assert await receive(receiver, member) == {"type": "room.message", "n": 1}


async def test_a_full_member_misses_group_messages_and_the_others_get_them(
    process: Processes, caplog: pytest.LogCaptureFixture, room: str
) -> None:
    receiver, sender = await process(capacity=3), await process(capacity=3)
    slow, fast = await receiver.new_channel(), await receiver.new_channel()
    for member in (slow, fast):
        await receiver.group_add(room, member)
    with caplog.at_level(logging.WARNING, logger="gateway.layers"):
        for n in range(10):
            await sender.group_send(room, {"type": "room.message", "n": n})
            assert (await receive(receiver, fast))["n"] == n
    # The slow member kept what its capacity holds, in order, and nothing after.
    assert [(await receive(receiver, slow))["n"] for _ in range(3)] == [0, 1, 2]
    await assert_empty(receiver, slow)
    assert receiver.stats.dropped_full == 7
    assert any(slow in record.getMessage() for record in caplog.records)
    # Its count in Redis came back to zero: it takes exactly its capacity again.
    for n in range(3):
        await sender.send(slow, {"type": "direct", "n": n})
    with pytest.raises(ChannelFull):
        await sender.send(slow, {"type": "direct", "n": 3})


async def test_a_send_accepted_before_the_group_message_was_counted_is_kept(
    process: Processes, room: str
) -> None:
    """The group message is in the inbox, not yet admitted (the receiver was not
    reading), so Redis accepts a send for the member's last free place. When both
    arrive, the send keeps its place and the group message is the one missed."""
    receiver, sender = await process(capacity=1), await process(capacity=1)
    member, other = await receiver.new_channel(), await receiver.new_channel()
    await receiver.group_add(room, member)
    await sender.group_send(room, {"type": "room.message"})
    await sender.send(member, {"type": "direct"})
    await sender.send(other, {"type": "marker"})
    # Receiving the last one means the receiving process has taken all three in.
    assert await receive(receiver, other) == {"type": "marker"}
    assert await receive(receiver, member) == {"type": "direct"}
    await assert_empty(receiver, member)
    assert receiver.stats.dropped_full == 1
    await sender.send(member, {"type": "direct", "n": 2})  # counts are exact again
    with pytest.raises(ChannelFull):
        await sender.send(member, {"type": "direct", "n": 3})


@pytest.mark.parametrize("patterns", [{}, {"specific.*": 2}], ids=["one-script", "spread"])
async def test_a_process_that_does_not_read_costs_redis_ten_capacities_at_most(
    process: Processes, caplog: pytest.LogCaptureFixture, room: str, patterns: dict[str, int]
) -> None:
    receiver = await process(capacity=2, channel_capacity=patterns)
    sender = await process(capacity=2, channel_capacity=patterns)
    member = await receiver.new_channel()
    await receiver.group_add(room, member)
    with caplog.at_level(logging.WARNING, logger="gateway.layers"):
        for n in range(25):
            await sender.group_send(room, {"type": "room.message", "n": n})
    assert sender.stats.dropped_full == 5  # 20 queued: ten times the capacity
    assert any(member in record.getMessage() for record in caplog.records)
    # Reading, the process applies the member's capacity: the first message goes
    # to the waiting receive, two wait in the buffer, the other seventeen are missed.
    assert [(await receive(receiver, member))["n"] for _ in range(3)] == [0, 1, 2]
    await assert_empty(receiver, member)
    assert receiver.stats.dropped_full == 17
