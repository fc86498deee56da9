"""Two real processes talking over the Redis layers: a worker process and this one."""

from __future__ import annotations

import asyncio
import sys

import pytest

from gateway.layers.redis import RedisChannelLayer, RedisPubSubChannelLayer

pytestmark = pytest.mark.redis

WAIT = 20.0

#: The other process: answers requests on ``echo`` and announces itself to a group.
WORKER = """
import asyncio, sys
from gateway.layers import redis as layers

async def main(backend, url, prefix):
    layer = getattr(layers, backend)(hosts=[url], prefix=prefix)
    await layer.group_send("watchers", {"type": "worker.started"})
    while True:
        request = await layer.receive("echo")
        if request["type"] == "worker.stop":
            break
        await layer.send(request["reply"], {"type": "echo.reply", "body": request["body"]})
    await layer.close()

asyncio.run(main(*sys.argv[1:]))
"""


@pytest.mark.parametrize("layer_class", [RedisChannelLayer, RedisPubSubChannelLayer])
async def test_request_reply_and_groups_across_processes(
    layer_class: type[RedisChannelLayer], redis_url: str, unique: str
) -> None:
    layer = layer_class(hosts=[redis_url], prefix=unique)
    watcher, replies = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("watchers", watcher)
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WORKER, layer_class.__name__, redis_url, unique
    )
    try:
        async with asyncio.timeout(WAIT):
            assert await layer.receive(watcher) == {"type": "worker.started"}
            for n in range(20):
                await layer.send("echo", {"type": "echo", "reply": replies, "body": b"%d" % n})
            bodies = [(await layer.receive(replies))["body"] for _ in range(20)]
            assert bodies == [b"%d" % n for n in range(20)]
            await layer.send("echo", {"type": "worker.stop"})
            assert await worker.wait() == 0
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
        await layer.flush()
        await layer.close()


@pytest.mark.parametrize("layer_class", [RedisChannelLayer, RedisPubSubChannelLayer])
async def test_receiving_another_processes_local_channel_fails_at_once(
    layer_class: type[RedisChannelLayer], redis_url: str, unique: str
) -> None:
    """As channels_redis: only the process that made a ``!`` channel receives from it."""
    mine, theirs = (
        layer_class(hosts=[redis_url], prefix=unique),
        layer_class(hosts=[redis_url], prefix=unique),
    )
    try:
        channel = await theirs.new_channel()
        with pytest.raises(AssertionError, match="Wrong client prefix"):
            async with asyncio.timeout(WAIT):
                await mine.receive(channel)
        with pytest.raises(AssertionError, match="Wrong client prefix"):
            async with asyncio.timeout(WAIT):
                await mine.receive("specific.nobody!x")
        await mine.send(channel, {"type": "test.message"})  # sending to it is fine
        async with asyncio.timeout(WAIT):
            assert await theirs.receive(channel) == {"type": "test.message"}
    finally:
        await mine.close_pools()  # channels_redis' name, for shutdown code and fixtures
        await theirs.close_pools()
