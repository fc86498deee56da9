"""RedisChannelLayer beyond one Redis: sharding over two servers, a real Redis Cluster."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gateway.layers.redis import RedisChannelLayer, RedisPubSubChannelLayer
from gateway.layers.redis.keys import consistent_hash
from tests.gateway.layers.redis_servers import RedisServer, redis_cluster, redis_servers

pytestmark = [pytest.mark.redis]

WAIT = 5.0


async def receive(layer: RedisChannelLayer, channel: str) -> dict[str, object]:
    async with asyncio.timeout(WAIT):
        return await layer.receive(channel)


def names_on_each_shard(count: int) -> list[str]:
    """Channel names that consistent hashing places on shard 0 and on shard 1."""
    found: dict[int, str] = {}
    n = 0
    while len(found) < count:
        name = f"shard.test{n}"
        found.setdefault(consistent_hash(name, count), name)
        n += 1
    return [found[index] for index in range(count)]


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[list[RedisServer]]:
    with redis_servers(tmp_path, 2) as servers:
        yield servers


@pytest.fixture
async def sharded(two_servers: list[RedisServer]) -> AsyncIterator[RedisChannelLayer]:
    layer = RedisChannelLayer(hosts=[server.url for server in two_servers], prefix="shard")
    yield layer
    await layer.close()


async def test_channels_are_spread_over_the_hosts_by_consistent_hashing(
    sharded: RedisChannelLayer, two_servers: list[RedisServer]
) -> None:
    on_first, on_second = names_on_each_shard(2)
    await sharded.send(on_first, {"type": "test.message", "to": on_first})
    await sharded.send(on_second, {"type": "test.message", "to": on_second})
    for server, channel in zip(two_servers, (on_first, on_second), strict=True):
        with server.client() as client:
            assert client.exists(f"shard:{{{channel}}}") == 1
    assert (await receive(sharded, on_second))["to"] == on_second
    assert (await receive(sharded, on_first))["to"] == on_first


async def test_group_send_reaches_members_on_every_shard(sharded: RedisChannelLayer) -> None:
    members = [*names_on_each_shard(2), await sharded.new_channel()]
    for member in members:
        await sharded.group_add("room", member)
    await sharded.group_send("room", {"type": "chat.message"})
    for member in members:
        assert await receive(sharded, member) == {"type": "chat.message"}
    assert sharded.stats.sent == 3


async def test_a_second_layer_process_shards_the_same_way(
    sharded: RedisChannelLayer, two_servers: list[RedisServer]
) -> None:
    """Two processes configured with the same hosts agree on where each name lives."""
    other = RedisChannelLayer(hosts=[server.url for server in two_servers], prefix="shard")
    try:
        for channel in names_on_each_shard(2):
            await other.send(channel, {"type": "test.message", "via": "other"})
            assert (await receive(sharded, channel))["via"] == "other"
    finally:
        await other.close()


# Redis Cluster -----------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RedisServer]]:
    with redis_cluster(tmp_path_factory.mktemp("cluster")) as nodes:
        yield nodes


@pytest.fixture
async def clustered(
    cluster_nodes: list[RedisServer], unique: str
) -> AsyncIterator[RedisChannelLayer]:
    layer = RedisChannelLayer(
        hosts=[node.url for node in cluster_nodes], prefix=unique, cluster=True, capacity=2
    )
    yield layer
    await layer.flush()
    await layer.close()


def keys_per_node(nodes: list[RedisServer], prefix: str) -> list[int]:
    counts = []
    for node in nodes:
        with node.client() as client:
            counts.append(sum(1 for _ in client.scan_iter(match=f"{prefix}:*")))
    return counts


async def test_cluster_send_and_receive_on_many_slots(
    clustered: RedisChannelLayer, cluster_nodes: list[RedisServer], unique: str
) -> None:
    channels = [f"work.{n}" for n in range(12)]
    for channel in channels:
        await clustered.send(channel, {"type": "test.message", "to": channel})
    assert all(count > 0 for count in keys_per_node(cluster_nodes, unique)), (
        "twelve channels should land on every master"
    )
    for channel in reversed(channels):
        assert (await receive(clustered, channel))["to"] == channel


async def test_cluster_capacity_and_process_local_channels(clustered: RedisChannelLayer) -> None:
    from gateway.exceptions import ChannelFull

    busy, quiet = await clustered.new_channel(), await clustered.new_channel()
    await clustered.send(busy, {"type": "test.message", "n": 0})
    await clustered.send(busy, {"type": "test.message", "n": 1})
    with pytest.raises(ChannelFull):
        await clustered.send(busy, {"type": "test.message", "n": 2})
    await clustered.send(quiet, {"type": "test.message", "n": 9})
    assert (await receive(clustered, quiet))["n"] == 9
    assert [(await receive(clustered, busy))["n"] for _ in range(2)] == [0, 1]


async def test_cluster_group_send_crosses_slots(clustered: RedisChannelLayer) -> None:
    members = [f"member.{n}" for n in range(8)] + [await clustered.new_channel()]
    for member in members:
        await clustered.group_add("room", member)
    await clustered.group_send("room", {"type": "chat.message", "text": "hi"})
    for member in members:
        assert await receive(clustered, member) == {"type": "chat.message", "text": "hi"}
    assert clustered.stats.sent == len(members)


async def test_cluster_cancelled_receive_loses_nothing(clustered: RedisChannelLayer) -> None:
    waiting = asyncio.create_task(clustered.receive("idle.channel"))
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await clustered.send("idle.channel", {"type": "test.message"})
    assert await receive(clustered, "idle.channel") == {"type": "test.message"}


async def test_cluster_receive_cancelled_while_finding_the_nodes_ends() -> None:
    """A receive cancelled while the layer still asks for the cluster's slots ends.

    The node accepts and never answers. redis-py turns a cancel that lands while it
    waits into a connection error, retries, and would keep the cancelled receive
    until its 30 s socket timeout; the layer's discovery runs apart from its callers.
    """
    asked = asyncio.Event()
    hang_up = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        asked.set()
        await hang_up.wait()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    layer = RedisChannelLayer(
        hosts=[{"address": f"redis://127.0.0.1:{port}", "socket_timeout": 30}], cluster=True
    )
    try:
        waiting = asyncio.create_task(layer.receive("idle.channel"))
        async with asyncio.timeout(WAIT):
            await asked.wait()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            async with asyncio.timeout(WAIT):
                await waiting
    finally:
        hang_up.set()  # the discovery fails at once, so the layer closes
        async with asyncio.timeout(WAIT):
            await layer.close()
        server.close()
        await server.wait_closed()


async def test_cluster_flush_removes_keys_on_every_node(
    clustered: RedisChannelLayer, cluster_nodes: list[RedisServer], unique: str
) -> None:
    for n in range(12):
        await clustered.send(f"flush.{n}", {"type": "test.message"})
    await clustered.flush()
    assert keys_per_node(cluster_nodes, unique) == [0, 0, 0]


async def test_cluster_pubsub_layer(cluster_nodes: list[RedisServer], unique: str) -> None:
    layer = RedisPubSubChannelLayer(
        hosts=[node.url for node in cluster_nodes], prefix=unique, cluster=True
    )
    try:
        members = [await layer.new_channel(), "worker.a", "worker.b"]
        for member in members:
            await layer.group_add("room", member)
        await layer.group_send("room", {"type": "chat.message"})
        await layer.send(members[0], {"type": "direct"})
        assert await receive(layer, members[0]) == {"type": "chat.message"}
        assert await receive(layer, members[0]) == {"type": "direct"}
        for member in members[1:]:
            assert await receive(layer, member) == {"type": "chat.message"}
    finally:
        await layer.flush()
        await layer.close()
