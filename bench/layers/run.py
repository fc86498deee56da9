"""Channel layer benchmark: gateway's Redis layers against channels_redis 4.3.

Run (after ``.venv/bin/pip install -e '.[bench]'``), against a Redis at
``BENCH_REDIS_URL`` (default redis://127.0.0.1:6379/0)::

    .venv/bin/python bench/layers/run.py [--quick] [--out bench/layers/RESULTS.md]

All layers run in one process against the same Redis, under key prefixes of their
own (flushed afterwards). Scenarios run one at a time, each over every layer in
turn, so background load on the machine hits all layers alike:

* p2p: one producer, one consumer, on a process-local (``new_channel()``) channel;
* p2p x10: ten such pairs at once;
* request/reply: sequential round trips to a responder task; p50 and p99 latency;
* fan-out: 500 ``group_send`` to a 100-member group, consumers draining meanwhile;
  deliveries per second;
* group_add: cost per call;
* cross-process: a producer in a child process, the consumer here.

The floor is :class:`RawFloor`: a raw redis-py loop moving the same
msgpack-encoded messages under the constraint the layer API sets (each send
awaited): RPUSH / BLPOP per message; a group is a Redis set, and a group message is
SMEMBERS then one pipelined RPUSH per member.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import msgpack
import redis.asyncio as aioredis

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
MESSAGE: dict[str, Any] = {"type": "bench.message", "text": "x" * 100}
CAPACITY = 100_000
FLOOR = "raw redis-py floor"
LAYERS = ["channels_redis", "channels_redis pubsub", "gateway", "gateway pubsub", FLOOR]


class RawFloor:
    """The least a layer could do with redis-py: the same messages, no features."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=None, max_connections=2000)

    async def new_channel(self) -> str:
        return f"{self.prefix}:{uuid.uuid4().hex}"

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        await self.client.rpush(channel, msgpack.packb(message))

    async def receive(self, channel: str) -> dict[str, Any]:
        _, data = await self.client.blpop([channel], 0)
        message: dict[str, Any] = msgpack.unpackb(data)
        return message

    async def group_add(self, group: str, channel: str) -> None:
        await self.client.sadd(f"{self.prefix}:{group}", channel)

    async def group_discard(self, group: str, channel: str) -> None:
        await self.client.srem(f"{self.prefix}:{group}", channel)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        members = await self.client.smembers(f"{self.prefix}:{group}")
        data = msgpack.packb(message)
        async with self.client.pipeline(transaction=False) as pipe:
            for member in members:
                pipe.rpush(member, data)
            await pipe.execute()

    async def flush(self) -> None:
        async for key in self.client.scan_iter(match=f"{self.prefix}:*"):
            await self.client.unlink(key)

    async def close(self) -> None:
        await self.client.aclose()


def make_layer(kind: str, prefix: str) -> Any:
    config: dict[str, Any] = {"hosts": [REDIS_URL], "prefix": prefix, "capacity": CAPACITY}
    if kind == "channels_redis":
        from channels_redis.core import RedisChannelLayer as CRCore

        return CRCore(**config)
    if kind == "channels_redis pubsub":
        from channels_redis.pubsub import RedisPubSubChannelLayer as CRPubSub

        return CRPubSub(**config)
    if kind == "gateway":
        from gateway.layers.redis import RedisChannelLayer

        return RedisChannelLayer(**config)
    if kind == "gateway pubsub":
        from gateway.layers.redis import RedisPubSubChannelLayer

        return RedisPubSubChannelLayer(**config)
    if kind == FLOOR:
        return RawFloor(prefix)
    raise ValueError(kind)


async def close_connections(layer: Any) -> None:
    """``close()``, or channels_redis' core layer's ``close_pools()``."""
    for method in ("close", "close_pools"):
        if hasattr(layer, method):
            await getattr(layer, method)()
            return


async def close_layer(layer: Any) -> None:
    # channels_redis' pub/sub layer closes its connections in flush().
    await layer.flush()
    await close_connections(layer)


@dataclass
class Sizes:
    p2p: int = 5000
    parallel: int = 500  # per channel, ten channels
    round_trips: int = 2000
    group_sends: int = 500
    members: int = 100
    group_adds: int = 1000
    cross: int = 5000


@dataclass
class Result:
    p2p: float = 0.0
    p2p10: float = 0.0
    rr_p50_us: float = 0.0
    rr_p99_us: float = 0.0
    fanout: float = 0.0
    group_add_us: float = 0.0
    cross: float = 0.0


# Scenarios: each takes (layer, kind, prefix, sizes) and fills part of a Result ----------


async def pump(layer: Any, channel: str, count: int) -> float:
    """Send ``count`` messages while a consumer drains them; messages per second."""

    async def produce() -> None:
        for _ in range(count):
            await layer.send(channel, MESSAGE)

    async def consume() -> None:
        for _ in range(count):
            await layer.receive(channel)

    start = time.perf_counter()
    await asyncio.gather(produce(), consume())
    return count / (time.perf_counter() - start)


async def p2p(layer: Any, kind: str, prefix: str, sizes: Sizes, result: Result) -> None:
    result.p2p = await pump(layer, await layer.new_channel(), sizes.p2p)


async def p2p10(layer: Any, kind: str, prefix: str, sizes: Sizes, result: Result) -> None:
    channels = [await layer.new_channel() for _ in range(10)]
    start = time.perf_counter()
    await asyncio.gather(*(pump(layer, channel, sizes.parallel) for channel in channels))
    result.p2p10 = 10 * sizes.parallel / (time.perf_counter() - start)


async def request_reply(layer: Any, kind: str, prefix: str, sizes: Sizes, result: Result) -> None:
    service, reply = await layer.new_channel(), await layer.new_channel()

    async def responder() -> None:
        while True:
            request = await layer.receive(service)
            await layer.send(request["reply"], MESSAGE)

    task = asyncio.ensure_future(responder())
    request = {**MESSAGE, "reply": reply}
    latencies = []
    for _ in range(sizes.round_trips):
        start = time.perf_counter()
        await layer.send(service, request)
        await layer.receive(reply)
        latencies.append(time.perf_counter() - start)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    quantiles = statistics.quantiles(latencies, n=100)
    result.rr_p50_us, result.rr_p99_us = quantiles[49] * 1e6, quantiles[98] * 1e6


async def fanout(layer: Any, kind: str, prefix: str, sizes: Sizes, result: Result) -> None:
    group = f"fanout{uuid.uuid4().hex[:8]}"
    members = [await layer.new_channel() for _ in range(sizes.members)]
    for member in members:
        await layer.group_add(group, member)

    async def drain(channel: str) -> None:
        for _ in range(sizes.group_sends):
            await layer.receive(channel)

    start = time.perf_counter()
    consumers = [asyncio.ensure_future(drain(member)) for member in members]
    for _ in range(sizes.group_sends):
        await layer.group_send(group, MESSAGE)
    await asyncio.gather(*consumers)
    result.fanout = sizes.members * sizes.group_sends / (time.perf_counter() - start)


async def group_add(layer: Any, kind: str, prefix: str, sizes: Sizes, result: Result) -> None:
    channels = [await layer.new_channel() for _ in range(sizes.group_adds)]
    start = time.perf_counter()
    for channel in channels:
        await layer.group_add("addcost", channel)
    result.group_add_us = (time.perf_counter() - start) / sizes.group_adds * 1e6
    for channel in channels:
        await layer.group_discard("addcost", channel)


async def cross_process(layer: Any, kind: str, prefix: str, sizes: Sizes, result: Result) -> None:
    channel = await layer.new_channel()
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--produce", kind, prefix, channel, str(sizes.cross)
    )
    try:
        await layer.receive(channel)  # the clock starts once the child is sending
        start = time.perf_counter()
        for _ in range(sizes.cross - 1):
            await layer.receive(channel)
        result.cross = (sizes.cross - 1) / (time.perf_counter() - start)
    finally:
        await asyncio.wait_for(child.wait(), 60)


Scenario = Callable[[Any, str, str, Sizes, Result], Awaitable[None]]
SCENARIOS: list[Scenario] = [p2p, p2p10, request_reply, fanout, group_add, cross_process]


async def produce_in_child(kind: str, prefix: str, channel: str, count: int) -> None:
    layer = make_layer(kind, prefix)
    for _ in range(count):
        await layer.send(channel, MESSAGE)
    await close_connections(layer)


# Report ------------------------------------------------------------------------------

ROWS = [
    ("p2p throughput, 1 producer / 1 consumer (msg/s)", "p2p", True),
    ("p2p throughput, 10 channels in parallel (msg/s)", "p2p10", True),
    ("request/reply latency p50 (µs)", "rr_p50_us", False),
    ("request/reply latency p99 (µs)", "rr_p99_us", False),
    ("fan-out, 500 group_send x 100 members (deliveries/s)", "fanout", True),
    ("group_add cost (µs per call)", "group_add_us", False),
    ("cross-process throughput (msg/s)", "cross", True),
]


NOTES = [
    "- Messages are `{'type': 'bench.message', 'text': 100 x 'x'}`, msgpack-encoded, to"
    " `new_channel()` channels (the consumer path); capacity 100,000 so nothing is refused.",
    "- The floor moves the same messages with raw redis-py and no features (RPUSH/BLPOP"
    " per message, one awaited send at a time); layers that batch their receives or"
    " fan out in the receiving process can beat it.",
    "- channels_redis' pub/sub `group_add` only touches a dict in the process; gateway's"
    " layers store memberships in Redis (needed for normal-channel members, group_expiry"
    " and memberships made by other processes), so theirs costs a round trip.",
    "- One run on a shared 2-CPU machine: expect +-20 % between runs; ratios within a run"
    " are what the targets compare.",
]


def report(results: dict[str, Result], command: str, elapsed: float) -> str:
    lines = [
        "# Channel layer benchmark",
        "",
        f"Command: `{command}` (one run, {elapsed:.0f} s, same Redis for every layer, "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs shared with other work).",
        "",
        "## Absolute",
        "",
        "| scenario | " + " | ".join(LAYERS) + " |",
        "|---" * (len(LAYERS) + 1) + "|",
    ]
    for label, attr, _ in ROWS:
        cells = [f"{getattr(results[name], attr):,.0f}" for name in LAYERS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    def ratio(ours: str, theirs: str, attr: str, higher_is_better: bool) -> str:
        a, b = getattr(results[ours], attr), getattr(results[theirs], attr)
        return f"{(a / b if higher_is_better else b / a):.2f}x"

    pairs = [
        ("gateway", "channels_redis"),
        ("gateway", "channels_redis pubsub"),
        ("gateway pubsub", "channels_redis pubsub"),
        ("gateway pubsub", "channels_redis"),
        ("gateway", FLOOR),
        ("gateway pubsub", FLOOR),
    ]
    lines += [
        "",
        "## Ratios (>1 means gateway is better: faster, or lower latency/cost)",
        "",
        "| scenario | " + " | ".join(f"{a} vs {b}" for a, b in pairs) + " |",
        "|---" * (len(pairs) + 1) + "|",
    ]
    for label, attr, higher in ROWS:
        cells = [ratio(a, b, attr, higher) for a, b in pairs]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "## Notes", "", *NOTES]
    return "\n".join(lines) + "\n"


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the script")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    args = parser.parse_args()
    sizes = Sizes(200, 50, 200, 20, 100, 100, 200) if args.quick else Sizes()
    started = time.perf_counter()
    prefixes = {kind: f"bench{uuid.uuid4().hex[:8]}" for kind in LAYERS}
    layers = {kind: make_layer(kind, prefixes[kind]) for kind in LAYERS}
    results = {kind: Result() for kind in LAYERS}
    try:
        for scenario in SCENARIOS:
            for kind in LAYERS:
                await scenario(layers[kind], kind, prefixes[kind], sizes, results[kind])
            print(scenario.__name__, flush=True)
            for kind in LAYERS:
                values = {f.name: round(getattr(results[kind], f.name)) for f in fields(Result)}
                print(f"  {kind}: {values}", flush=True)
    finally:
        for layer in layers.values():
            await close_layer(layer)
    command = ".venv/bin/python bench/layers/run.py" + (" --quick" if args.quick else "")
    text = report(results, command, time.perf_counter() - started)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--produce":
        _, _, kind, prefix, channel, count = sys.argv
        asyncio.run(produce_in_child(kind, prefix, channel, int(count)))
    else:
        asyncio.run(main())
