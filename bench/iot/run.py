"""IoT benchmark: the appliance ingesting telemetry with storage and the live dashboard on.

    .venv/bin/python -m bench.iot.run [--rates 500,1000,2000,4000,6000,8000] [--seconds 5]
        [--dashboards 500] [--fanout-rate 10] [--fanout-seconds 10] [--quick]

One ``gateway run`` process (the appliance: SQLite in a temporary ``GATEWAY_DATA_DIR``,
the embedded broker, the in-memory channel layer, spare 127.0.0.1 ports) and, in this
process, the devices and the browsers:

1. **ingest**: ``--devices`` devices (made with ``project.iot.services.create_thing``,
   each its own MQTT connection with its own token, raw asyncio) publish JSON telemetry
   at QoS 1, round-robin, at each total rate of ``--rates`` in turn for ``--seconds``,
   while one logged-in dashboard watches ``/ws/fleet/`` and one ``/ws/devices/<first
   device>/``. For each rate: messages published (and the rate achieved: the broker's
   backpressure can hold the publishers back), PUBACKs, readings stored (rows counted
   once the writer's flushes stop adding any), the first device's readings seen live and
   their lag (the payload's publish time to the ``readings`` point's arrival, wall
   clock, same machine) p50/p99. Stops after the first rate with a loss or a live p99
   over ``--max-lag``.
2. **fan-out**: ``--dashboards`` logged-in sockets on ``/ws/devices/<first device>/``
   while that device publishes ``--fanout-rate`` messages/s for ``--fanout-seconds``:
   delivery latency p50/p99/max from publish to each socket's receipt, and how many
   sockets got every point.

Prints Markdown tables. Everything is bounded in time (timeouts on every wait) and the
gateway is stopped (SIGTERM, then killed) on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import websockets
from websockets.typing import Origin

from bench.mqtt.connect_storm import cpu_seconds
from protocols.mqtt.codec import Packet, PacketType, encode_string
from protocols.mqtt.connect import Connect, encode_connect
from tests.project.processes import (
    ROOT,
    GatewayProcess,
    free_port,
    gateway,
    gateway_env,
    log_in,
    migrate,
)

USERNAME, PASSWORD = "bench", "bench-only-not-a-secret"
#: Seconds any one wait may take (connects, acks, the last flush, the live feed).
WAIT = 30.0
#: The live feed and the database are settled once nothing new came for this long.
QUIET = 2.0
#: Publishing ticks: each sends what the schedule owes, at most ``BURST`` ticks' worth.
TICK, BURST = 0.01, 10
FANOUT_STEP = 1_000_000

SETUP = """
import json, django
django.setup()
from django.contrib.auth import get_user_model
from project.iot.services import create_thing
user = get_user_model().objects.create_superuser({username!r}, "", {password!r})
print(json.dumps({{name: create_thing(user, name, name)[1] for name in {names!r}}}))
"""


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else float("nan")


class Device:
    """One device on its own MQTT connection, publishing telemetry at QoS 1."""

    def __init__(self, name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.name = name
        self.topic = encode_string(f"devices/{name}/telemetry")
        self.reader, self.writer = reader, writer
        self.published = 0
        self.acked = 0
        self._packet_id = 0
        self.all_acked = asyncio.Event()
        self._acks = asyncio.ensure_future(self._read_acks())

    @classmethod
    async def connect(cls, port: int, name: str, secret: str) -> Device:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        hello = Connect(name, keepalive=60, username=name, password=secret.encode())
        writer.write(encode_connect(hello))
        connack = await reader.readexactly(4)
        if connack[3] != 0:
            raise RuntimeError(f"{name}: CONNACK {connack[3]}")
        return cls(name, reader, writer)

    def publish(self, values: dict[str, float]) -> None:
        self._packet_id = self._packet_id % 65535 + 1
        body = self.topic + self._packet_id.to_bytes(2, "big") + json.dumps(values).encode()
        self.writer.write(Packet(PacketType.PUBLISH << 4 | 0b0010, body).to_bytes())
        self.published += 1
        self.all_acked.clear()

    async def _read_acks(self) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                first = await self.reader.readexactly(4)  # PUBACK: 0x40 0x02 id id
                if first[0] >> 4 == PacketType.PUBACK:
                    self.acked += 1
                    if self.acked >= self.published:
                        self.all_acked.set()

    async def close(self) -> None:
        self._acks.cancel()
        self.writer.write(b"\xe0\x00")  # DISCONNECT
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


@dataclass
class Feed:
    """One dashboard socket: every ``readings`` point's values and arrival time."""

    socket: websockets.ClientConnection
    points: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    snapshot_bytes: int = 0
    messages: int = 0
    dropped: int = 0
    task: asyncio.Task[None] | None = None

    async def read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for frame in self.socket:
                arrived = time.time()
                message = json.loads(frame)
                self.messages += 1
                if message.get("type") == "readings":
                    self.dropped += message.get("dropped", 0)
                    self.points += [(arrived, values) for _, values in message["points"]]

    def of_step(self, step: int) -> list[tuple[float, dict[str, float]]]:
        return [(at, values) for at, values in self.points if values.get("step") == step]


@dataclass
class Browser:
    base: str
    headers: dict[str, str]

    async def open(self, path: str) -> Feed:
        url = self.base.replace("http", "ws", 1) + path
        async with asyncio.timeout(WAIT):
            socket = await websockets.connect(
                url, origin=Origin(self.base), additional_headers=self.headers, max_queue=None
            )
            snapshot = await socket.recv()
        if json.loads(snapshot).get("type") != "snapshot":
            raise RuntimeError(f"{path}: first message {snapshot[:200]!r}")
        feed = Feed(socket, snapshot_bytes=len(snapshot))
        feed.task = asyncio.ensure_future(feed.read())
        return feed


async def close_feeds(feeds: Sequence[Feed]) -> None:
    for batch in range(0, len(feeds), 100):
        await asyncio.gather(
            *(feed.socket.close() for feed in feeds[batch : batch + 100]), return_exceptions=True
        )
    await asyncio.gather(*(feed.task for feed in feeds if feed.task), return_exceptions=True)


async def create_devices(env: dict[str, str], names: list[str]) -> dict[str, str]:
    script = SETUP.format(username=USERNAME, password=PASSWORD, names=names)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(120):
        out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError("creating the devices failed")
    secrets: dict[str, str] = json.loads(out.decode().strip().splitlines()[-1])
    return secrets


def stored(database: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        db.execute("PRAGMA busy_timeout = 5000")
        count: int = db.execute("SELECT COUNT(*) FROM iot_reading").fetchone()[0]
        return count


async def settled(probe: Callable[[], int], target: int) -> int:
    """``probe()`` once it reaches ``target`` or stops changing for ``QUIET`` s."""
    last, since = -1, time.monotonic()
    async with asyncio.timeout(WAIT):
        while True:
            value = await asyncio.to_thread(probe)
            if value >= target:
                return value
            if value != last:
                last, since = value, time.monotonic()
            elif time.monotonic() - since > QUIET:
                return value
            await asyncio.sleep(0.2)


async def publish_at(
    devices: Sequence[Device], rate: float, seconds: float, step: int
) -> tuple[int, float]:
    """Publish at ``rate`` messages/s round-robin for ``seconds``: (sent, achieved rate)."""
    loop = asyncio.get_running_loop()
    start, sent = loop.time(), 0
    while (elapsed := loop.time() - start) < seconds:
        owed = min(int(rate * elapsed) - sent, int(rate * TICK * BURST) + 1)
        for _ in range(owed):
            devices[sent % len(devices)].publish({"step": step, "seq": sent, "sent": time.time()})
            sent += 1
        async with asyncio.timeout(WAIT):
            await asyncio.gather(*(device.writer.drain() for device in devices))
        await asyncio.sleep(TICK)
    return sent, sent / (loop.time() - start)


async def acked(devices: Sequence[Device]) -> int:
    """PUBACKs received so far, once every publish has one (or ``WAIT`` passed)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(WAIT):
            await asyncio.gather(*(device.all_acked.wait() for device in devices))
    return sum(device.acked for device in devices)


@dataclass
class Step:
    rate: int
    published: int
    achieved: float
    acked: int
    stored: int
    live_expected: int
    live_seen: int
    lags: list[float]
    fleet_messages: int
    cpu: float
    bench_cpu: float

    @property
    def ok(self) -> bool:
        complete = self.stored == self.published and self.live_seen == self.live_expected
        return complete and percentile(self.lags, 0.99) < ARGS.max_lag

    def row(self) -> str:
        p50, p99 = (1000 * percentile(self.lags, q) for q in (0.5, 0.99))
        return (
            f"| {self.rate:,} | {self.achieved:,.0f} | {self.published:,} | {self.acked:,} "
            f"| {self.stored:,} | {self.live_seen:,} / {self.live_expected:,} "
            f"| {p50:,.0f} | {p99:,.0f} | {self.fleet_messages:,} "
            f"| {self.cpu:.1f} | {self.bench_cpu:.1f} "
            f"| {'yes' if self.ok else '**no**'} |"
        )


@dataclass
class Ingest:
    """What the ingest steps drive and watch."""

    devices: list[Device]
    database: Path
    device_feed: Feed
    fleet_feed: Feed
    pid: int


async def ingest_step(rate: int, step: int, run: Ingest) -> Step:
    devices, database, device_feed, fleet_feed, pid = (
        run.devices,
        run.database,
        run.device_feed,
        run.fleet_feed,
        run.pid,
    )
    before, fleet_before, cpu_before = stored(database), fleet_feed.messages, cpu_seconds(pid)
    bench_before = cpu_seconds(os.getpid())
    acks_before = await acked(devices)
    sent, achieved = await publish_at(devices, rate, ARGS.seconds, step)
    pubacks = await acked(devices) - acks_before
    rows = await settled(lambda: stored(database) - before, sent)
    first_device = len(range(0, sent, len(devices)))
    await settled(lambda: len(device_feed.of_step(step)), first_device)
    points = device_feed.of_step(step)
    lags = [at - values["sent"] for at, values in points]
    seen = len({values["seq"] for _, values in points})
    fleet = fleet_feed.messages - fleet_before
    cpu, bench_cpu = cpu_seconds(pid) - cpu_before, cpu_seconds(os.getpid()) - bench_before
    return Step(
        rate, sent, achieved, pubacks, rows, first_device, seen, lags, fleet, cpu, bench_cpu
    )


async def fanout(browser: Browser, device: Device, pid: int) -> list[str]:
    path = f"/ws/devices/{device.name}/"
    feeds: list[Feed] = []
    opened = time.monotonic()
    try:
        for _ in range(0, ARGS.dashboards, 50):
            count = min(50, ARGS.dashboards - len(feeds))
            feeds += await asyncio.gather(*(browser.open(path) for _ in range(count)))
        opening = time.monotonic() - opened
        cpu_before = cpu_seconds(pid)
        sent, _ = await publish_at([device], ARGS.fanout_rate, ARGS.fanout_seconds, FANOUT_STEP)
        await acked([device])
        total = sent * len(feeds)
        await settled(lambda: sum(len(f.of_step(FANOUT_STEP)) for f in feeds), total)
        cpu = cpu_seconds(pid) - cpu_before
    finally:
        await close_feeds(feeds)
    lags, complete, delivered = [], 0, 0
    for feed in feeds:
        points = feed.of_step(FANOUT_STEP)
        lags += [at - values["sent"] for at, values in points]
        seqs = {values["seq"] for _, values in points}
        delivered += len(seqs)
        complete += len(seqs) == sent
    p50, p99, worst = (1000 * percentile(lags, q) for q in (0.5, 0.99, 1.0))
    return [
        "| dashboards | opened in (snapshot each) | published | deliveries "
        "| sockets with every point | p50 ms | p99 ms | max ms | gateway CPU s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {len(feeds)} | {opening:.1f} s ({feeds[0].snapshot_bytes / 1024:,.0f} KiB) "
        f"| {sent} ({ARGS.fanout_rate:g}/s) "
        f"| {delivered:,} / {total:,} | {complete} / {len(feeds)} "
        f"| {p50:,.1f} | {p99:,.1f} | {worst:,.1f} | {cpu:.1f} |",
    ]


@contextlib.asynccontextmanager
async def appliance(
    directory: Path,
) -> AsyncIterator[tuple[GatewayProcess, str, int, dict[str, str]]]:
    """The running appliance, its web address, its MQTT port, its devices' secrets."""
    web, mqtt = free_port(), free_port()
    env = gateway_env(directory, MQTT_PUBLIC_ADDRESS=f"127.0.0.1:{mqtt}")
    await migrate(env)
    secrets = await create_devices(env, [f"dev-{n:04d}" for n in range(ARGS.devices)])
    ports = ["--host", "127.0.0.1", "--port", str(web), "--mqtt-port", str(mqtt)]
    async with gateway(env, "run", *ports, "--mqtt-host", "127.0.0.1", "--no-access-log") as gw:
        await gw.wait_for_log("embedded MQTT broker listening")
        yield gw, f"http://127.0.0.1:{web}", mqtt, secrets
        code = await gw.stop()
        if code != 0:
            print(f"gateway exited {code}", file=sys.stderr)


def log_report(process: GatewayProcess) -> list[str]:
    notable = [line.rstrip() for line in process.log if any(
        word in line for word in ("WARNING", "ERROR", "CRITICAL", "Traceback")
    )]  # fmt: skip
    lines = [f"gateway log: {len(process.log)} lines, {len(notable)} warnings or errors"]
    return lines + [f"    {line}" for line in notable[:20]]


async def run() -> list[str]:
    load = os.getloadavg()
    out = [
        f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} CPUs)"
    ]
    with tempfile.TemporaryDirectory(prefix="bench-iot-") as tmp:
        directory = Path(tmp)
        async with appliance(directory) as (process, base, mqtt, secrets):
            pid = process.process.pid
            browser = Browser(base, await log_in(base, USERNAME, PASSWORD))
            async with asyncio.timeout(WAIT):
                devices = [
                    await Device.connect(mqtt, name, secret) for name, secret in secrets.items()
                ]
            fleet_feed = await browser.open("/ws/fleet/")
            device_feed = await browser.open(f"/ws/devices/{devices[0].name}/")
            ingest = Ingest(devices, directory / "db.sqlite3", device_feed, fleet_feed, pid)
            steps: list[Step] = []
            try:
                for step, rate in enumerate(ARGS.rates):
                    steps.append(await ingest_step(rate, step, ingest))
                    print(steps[-1].row(), file=sys.stderr)
                    if not steps[-1].ok:
                        break
                await close_feeds([fleet_feed, device_feed])
                fan = await fanout(browser, devices[0], pid)
            finally:
                await asyncio.gather(*(device.close() for device in devices))
        load = os.getloadavg()
    good = [s.rate for s in steps if s.ok]
    out += [
        "",
        f"### Ingest: {ARGS.devices} devices, QoS 1 JSON telemetry, {ARGS.seconds:g} s per rate,"
        " storage and 2 dashboard sockets on",
        "",
        "| offered msg/s | achieved msg/s | published | PUBACKs | stored | live on the device "
        "socket | live lag p50 ms | live lag p99 ms | fleet socket messages | gateway CPU s "
        "| bench CPU s | no lag or loss |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        *(s.row() for s in steps),
        "",
        f"messages/s until the first lag or loss: {max(good) if good else 'none'}"
        f" (stored == published and live p99 < {ARGS.max_lag:g} s)",
        "",
        f"### Fan-out: one device, {ARGS.dashboards} dashboards on its page socket",
        "",
        *fan,
        "",
        f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        *log_report(process),
    ]
    return out


ARGS = argparse.Namespace()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="500,1000,2000,4000,6000,8000")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--max-lag", type=float, default=1.0, help="live p99 bound, seconds")
    parser.add_argument("--dashboards", type=int, default=500)
    parser.add_argument("--fanout-rate", type=float, default=10.0)
    parser.add_argument("--fanout-seconds", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="500,2000 msg/s, 100 dashboards")
    parser.parse_args(namespace=ARGS)
    if ARGS.quick:
        ARGS.rates, ARGS.seconds, ARGS.dashboards, ARGS.fanout_seconds = "500,2000", 2, 100, 3
    ARGS.rates = [int(rate) for rate in str(ARGS.rates).split(",")]
    print("\n".join(asyncio.run(run())))


if __name__ == "__main__":
    main()
