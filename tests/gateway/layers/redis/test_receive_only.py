"""A process that only receives and one that only sends, over private Redis servers.

This is how deployments use the layer: a web process whose consumers only receive
their groups' messages, an MQTT or worker process that only sends. Everything that
keeps a receiver going (scripts it runs to acknowledge, its group memberships) must
work without the help of sends from its own process: on a fresh Redis, after
``SCRIPT FLUSH``, and across a Redis restart, for both layers, on one Redis, two
shards and a Cluster. Counts go well past the default capacity (100), which is
where a receiver whose acknowledgements never reach Redis stalls.

The receiving process is a child; this test process is the sender and never
receives.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from gateway.layers.redis import RedisChannelLayer, RedisPubSubChannelLayer
from tests.gateway.layers.redis_servers import (
    RedisServer,
    redis_cluster,
    redis_servers,
    sentinel_group,
    wait_for_promotion,
)

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]

WAIT = 20.0
COUNT = 300  # three times the default capacity
LAYERS = [RedisChannelLayer, RedisPubSubChannelLayer]
#: The ways the sender reaches the receiver: its group, its own channel, a normal channel.
VIAS = ("group", "direct", "work")

#: The receiving process: joins "room" with a new channel, prints the channel's name,
#: then prints "<via> <n>" for every message it receives (via: group, direct, work).
RECEIVER = """
import asyncio, json, sys
from gateway.layers import redis as layers

async def main(config):
    config = json.loads(config)
    layer = getattr(layers, config.pop("backend"))(**config)
    channel = await layer.new_channel()
    await layer.group_add("room", channel)
    print(channel, flush=True)

    async def report(name):
        while True:
            message = await layer.receive(name)
            print(message["via"], message["n"], flush=True)

    await asyncio.gather(report(channel), report("work"))

asyncio.run(main(sys.argv[1]))
"""


class Receiver:
    """The receive-only child process and what it has reported."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.channel = ""
        self.got: dict[str, list[int]] = {"group": [], "direct": [], "work": []}

    async def start(self) -> None:
        self.channel = (await self._line()).strip()

    async def _line(self) -> str:
        assert self.process.stdout is not None
        line = await self.process.stdout.readline()
        if not line:
            raise AssertionError(f"the receiving process exited ({self.process.returncode})")
        return line.decode()

    async def wait_for(self, via: str, n: int) -> None:
        """Read reports until message ``n`` arrived by ``via``."""
        async with asyncio.timeout(WAIT):
            while n not in self.got[via]:
                kind, number = (await self._line()).split()
                self.got[kind].append(int(number))

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()


@pytest.fixture
async def spawn() -> AsyncIterator[Any]:
    started: list[Receiver] = []

    async def spawn(layer_class: type[RedisChannelLayer], **config: Any) -> Receiver:
        config["backend"] = layer_class.__name__
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", RECEIVER, json.dumps(config), stdout=asyncio.subprocess.PIPE
        )
        receiver = Receiver(process)
        started.append(receiver)
        async with asyncio.timeout(WAIT):
            await receiver.start()
        return receiver

    yield spawn
    for receiver in started:
        await receiver.stop()


async def send_all(
    layer: RedisChannelLayer,
    receiver: Receiver,
    numbers: range,
    vias: Sequence[str] = VIAS,
    pace: int = 50,
) -> None:
    """Send ``numbers`` each of the ways ``vias``; every ``pace``, wait until they arrived.

    Pacing keeps the sender within capacity, so anything missing is a real loss.
    """
    for n in numbers:
        for via in vias:
            message = {"type": "test.message", "via": via, "n": n}
            if via == "group":
                await layer.group_send("room", message)
            else:
                await layer.send(receiver.channel if via == "direct" else "work", message)
        if (n + 1) % pace == 0 or n == numbers[-1]:
            for via in vias:
                await receiver.wait_for(via, n)


def assert_in_order(receiver: Receiver, numbers: range, vias: Sequence[str]) -> None:
    for via in vias:
        got = receiver.got[via]
        assert [n for n in got if n in numbers] == list(numbers), via


@pytest.fixture(scope="module")
def cluster_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RedisServer]]:
    with redis_cluster(tmp_path_factory.mktemp("cluster")) as nodes:
        yield nodes


async def across(
    layer_class: type[RedisChannelLayer],
    config: dict[str, Any],
    spawn: Any,
    disrupt: Callable[[], Awaitable[None]],
    *,
    lossless: bool,
    vias: Sequence[str] = VIAS,
) -> None:
    """Past capacity before ``disrupt()`` and after it, from a send-only layer here.

    ``lossless``: nothing may be lost across it (a script flush); else (a restart)
    what Redis held is gone, and the receiver must recover by itself: re-join its
    group, so that everything sent after recovery arrives.
    """
    receiver = await spawn(layer_class, **config)
    layer = layer_class(**config)
    try:
        await send_all(layer, receiver, range(COUNT), vias)
        await disrupt()
        if not lossless:  # recovery takes the receiver a moment
            await send_until_received(layer, receiver, -1)
        await send_all(layer, receiver, range(COUNT, 2 * COUNT), vias)
        assert_in_order(receiver, range(COUNT), vias)
        assert_in_order(receiver, range(COUNT, 2 * COUNT), vias)
    finally:
        if "prefix" in config:  # a server shared with other tests: leave it clean
            await layer.flush()
        await layer.close()


def flush_scripts(servers: list[RedisServer]) -> Callable[[], Awaitable[None]]:
    """What a restart or failover does to the script cache, without losing data."""

    async def disrupt() -> None:
        for server in servers:
            with server.client() as client:
                client.script_flush()

    return disrupt


def restart(servers: list[RedisServer]) -> Callable[[], Awaitable[None]]:
    """Each server killed and started again, empty (no persistence)."""

    async def disrupt() -> None:
        for server in servers:
            await asyncio.to_thread(server.kill)
            await asyncio.to_thread(server.start)

    return disrupt


async def send_until_received(layer: RedisChannelLayer, receiver: Receiver, n: int) -> None:
    """After a restart: send ``n`` to the group until the receiver has it (bounded)."""
    async with asyncio.timeout(WAIT):
        while n not in receiver.got["group"]:
            await layer.group_send("room", {"type": "test.message", "via": "group", "n": n})
            try:
                await asyncio.wait_for(receiver.wait_for("group", n), 0.2)
            except TimeoutError:
                continue


@pytest.mark.parametrize("layer_class", LAYERS)
@pytest.mark.parametrize("shards", [1, 2])
async def test_receive_only_process_on_a_fresh_redis_and_after_script_flush(
    layer_class: type[RedisChannelLayer], shards: int, tmp_path: Path, spawn: Any
) -> None:
    with redis_servers(tmp_path, shards) as servers:
        config = {"hosts": [server.url for server in servers]}
        await across(layer_class, config, spawn, flush_scripts(servers), lossless=True)


@pytest.mark.parametrize("layer_class", LAYERS)
@pytest.mark.parametrize("shards", [1, 2])
async def test_receive_only_process_across_a_redis_restart(
    layer_class: type[RedisChannelLayer], shards: int, tmp_path: Path, spawn: Any
) -> None:
    with redis_servers(tmp_path, shards) as servers:
        config = {"hosts": [server.url for server in servers]}
        await across(layer_class, config, spawn, restart(servers), lossless=False)


@pytest.mark.parametrize("layer_class", LAYERS)
@pytest.mark.parametrize("disruption", ["script-flush", "restart"])
async def test_receive_only_process_fed_only_by_group_send(
    layer_class: type[RedisChannelLayer], disruption: str, tmp_path: Path, spawn: Any
) -> None:
    """The reported setup: the sender only calls ``group_send``, on one Redis.

    With one Redis and no ``channel_capacity`` patterns a group_send runs only its own
    script, never the one a receiver acknowledges with: nobody but the receiver loads
    that one, on a fresh Redis and again after the disruption. A receiver whose acks
    fail on NOSCRIPT stalls at the capacity (100), its channel counted full forever.
    """
    with redis_servers(tmp_path, 1) as servers:
        lossless = disruption == "script-flush"
        disrupt = flush_scripts(servers) if lossless else restart(servers)
        config = {"hosts": [servers[0].url]}
        await across(layer_class, config, spawn, disrupt, lossless=lossless, vias=["group"])


@pytest.mark.parametrize("layer_class", LAYERS)
async def test_receive_only_process_on_a_cluster_after_script_flush(
    layer_class: type[RedisChannelLayer], cluster_nodes: list[RedisServer], spawn: Any, unique: str
) -> None:
    config: dict[str, Any] = {
        "hosts": [node.url for node in cluster_nodes],
        "cluster": True,
        "prefix": unique,
    }
    await across(layer_class, config, spawn, flush_scripts(cluster_nodes), lossless=True)


@pytest.mark.parametrize("layer_class", LAYERS)
async def test_receive_only_process_on_a_cluster_across_restarts(
    layer_class: type[RedisChannelLayer], tmp_path: Path, spawn: Any
) -> None:
    """Every node restarts empty (keeping its slots)."""
    with redis_cluster(tmp_path) as nodes:
        config: dict[str, Any] = {"hosts": [node.url for node in nodes], "cluster": True}
        await across(layer_class, config, spawn, restart(nodes), lossless=False)


@pytest.mark.parametrize("layer_class", LAYERS)
@pytest.mark.parametrize("vias", [VIAS, ["group"]], ids=["three-ways", "group-only"])
async def test_receive_only_process_across_a_sentinel_failover(
    layer_class: type[RedisChannelLayer], vias: Sequence[str], tmp_path: Path, spawn: Any
) -> None:
    """The promoted replica has the data but maybe not the scripts: both keep working.

    Group-only, the sender never loads the receiver's ack script (one master, as in
    :func:`test_receive_only_process_fed_only_by_group_send`), before or after.
    """
    with sentinel_group(tmp_path, "soakmaster", WAIT) as (master, replica, sentinel):
        host = {"sentinels": [["127.0.0.1", sentinel.port]], "master_name": "soakmaster"}

        async def fail_over() -> None:
            await asyncio.to_thread(master.kill)
            await asyncio.to_thread(wait_for_promotion, replica, 2 * WAIT)

        config = {"hosts": [host]}
        await across(layer_class, config, spawn, fail_over, lossless=False, vias=vias)
