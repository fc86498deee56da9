"""The starter project scaled out: ``gateway web`` and ``gateway mqtt``, joined by Redis.

Two processes, as the scaled deployment runs them: the web process serves the
browsers' device page socket (``/ws/devices/<id>/``) and only receives from the
channel layer; the mqtt process runs the embedded broker and only sends (the IoT
app's ``iot.readings`` to the device's group). Both use a Redis layer (``REDIS_LAYER``:
the core layer everywhere, the pub/sub layer too where its path differs: past the
capacity, and across a restart) on a private redis-server, so the test can crash and
restart it, and one SQLite file. A device added on the fleet page (``mosquitto_pub
-l`` with the credentials the page showed: one MQTT connection, one JSON reading per
line) publishes more readings than a channel holds; every one must reach the open
socket, in order, before and after a Redis restart, and SIGTERM must stop both
processes cleanly.

The device mostly trickles, as a sensor does: each reading once the previous one
is on the feed. It also publishes in batches, well under the capacity. The two
paces return capacity to Redis by different paths in the web process (acks carried
by its next pop, or flushed while it waits); either must keep the channel's count
from filling up.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.typing import Origin

from tests.gateway.layers.redis_servers import RedisServer, redis_servers
from tests.ports import free_port
from tests.project.processes import (
    GatewayProcess,
    add_device,
    demo_admin,
    gateway,
    gateway_env,
    log_in,
    migrate,
    next_points,
)

pytestmark = [pytest.mark.redis, pytest.mark.mqtt]

#: More than twice the layer's default channel capacity (100), in batches.
READINGS = 250
#: Trickled, each reading is one channel message (the IoT app sends a device's
#: readings every 100 ms at most): past the capacity, at 0.1 s a reading.
TRICKLE = 120
AFTER_RESTART = 120
#: Readings published at once before awaiting them on the feed, when not trickling:
#: well under the capacity, so a full channel never legitimately drops one.
BATCH = 25
#: Lines of each process's log shown when a reading does not arrive.
LOG_TAIL = 15
#: Seconds one reading may take to reach the feed.
WAIT = 10
#: After a Redis restart: how long the feed may take to get readings again, and
#: how often the device publishes meanwhile.
RECOVERY = 20
PROBE_EVERY = 0.2

Feed = websockets.ClientConnection


@dataclasses.dataclass
class Deployment:
    redis: RedisServer
    web: GatewayProcess
    mqtt: GatewayProcess
    web_port: int
    mqtt_port: int
    #: The admin's session, for the live feed.
    headers: dict[str, str]

    @property
    def processes(self) -> tuple[GatewayProcess, GatewayProcess]:
        return self.web, self.mqtt

    async def stop(self) -> None:
        """SIGTERM both processes: each exits 0 and never logged a traceback."""
        codes = await asyncio.gather(*(process.stop() for process in self.processes))
        for process, code in zip(self.processes, codes, strict=True):
            assert code == 0, f"{process.name} exited {code}:\n{process.text}"
            assert "Traceback" not in process.text, f"{process.name}:\n{process.text}"

    def log_tails(self) -> str:
        return "".join(
            f"\n--- {process.name} (last {LOG_TAIL} log lines):\n"
            + "".join(process.log[-LOG_TAIL:])
            for process in self.processes
        )


#: Run a test on both Redis layers (without it: the core layer only).
BOTH_LAYERS = pytest.mark.parametrize("deployment", ["core", "pubsub"], indirect=True)


@pytest.fixture
async def deployment(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Deployment]:
    layer = getattr(request, "param", "core")
    with redis_servers(tmp_path, 1) as (redis,):
        env = gateway_env(tmp_path, REDIS_URL=redis.url, REDIS_LAYER=layer)
        await migrate(env)
        web_port, mqtt_port = free_port(), free_port()
        mqtt_args = ["--host", "127.0.0.1", "--port", str(mqtt_port)]
        async with (
            gateway(env, "web", "--port", str(web_port), "--demo-admin") as web,
            gateway(env, "mqtt", *mqtt_args) as mqtt,
        ):
            await web.wait_for_log("web server listening")
            await mqtt.wait_for_log("embedded MQTT broker listening")
            headers = await log_in(f"http://127.0.0.1:{web_port}", *await demo_admin(web))
            yield Deployment(redis, web, mqtt, web_port, mqtt_port, headers)


class Device:
    """A device on one MQTT connection: ``mosquitto_pub -l`` publishes each line (QoS 1).

    A reading is named ``<metric>-<n>`` here and published as ``{"<metric>": n}``.
    """

    def __init__(self, process: asyncio.subprocess.Process, name: str) -> None:
        self.process = process
        self.name = name

    async def publish(self, *payloads: str) -> None:
        assert self.process.stdin is not None
        lines = "".join(f"{json.dumps(as_values(payload))}\n" for payload in payloads)
        self.process.stdin.write(lines.encode())
        async with asyncio.timeout(WAIT):
            await self.process.stdin.drain()

    async def disconnect(self) -> int:
        """End of input: mosquitto_pub delivers what is in flight, then exits."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        async with asyncio.timeout(WAIT):
            return await self.process.wait()


def as_values(payload: str) -> dict[str, int]:
    metric, _, number = payload.rpartition("-")
    return {metric: int(number)}


def as_payload(point: list[Any]) -> str:
    [(metric, value)] = point[1].items()
    return f"{metric}-{int(value)}"


@pytest.fixture
async def device(deployment: Deployment, unique: str) -> AsyncIterator[Device]:
    name = f"boiler-{unique}"
    base = f"http://127.0.0.1:{deployment.web_port}"
    secret = await add_device(base, deployment.headers, name)
    process = await asyncio.create_subprocess_exec(
        "mosquitto_pub", "-h", "127.0.0.1", "-p", str(deployment.mqtt_port), "-q", "1",
        "-i", name, "-u", name, "-P", secret, "-t", f"devices/{name}/telemetry", "-l",
        stdin=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        yield Device(process, name)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@dataclasses.dataclass
class Browser:
    feed: Feed
    device: str
    #: What the gateway processes logged lately, for failure messages.
    logs: Callable[[], str]
    #: Readings of ``device`` seen on the feed so far.
    seen: int = 0
    #: Readings received in a batch and not yet looked at (a batch per 100 ms).
    waiting: list[str] = dataclasses.field(default_factory=list)

    async def next_reading(self, what: str, timeout: float = WAIT) -> str:
        try:
            async with asyncio.timeout(timeout):
                while not self.waiting:
                    self.waiting = [as_payload(point) for point in await next_points(self.feed)]
        except TimeoutError:
            raise AssertionError(
                f"{what} did not reach the feed within {timeout} s "
                f"({self.seen} readings of {self.device} received so far)" + self.logs()
            ) from None
        self.seen += 1
        return self.waiting.pop(0)

    async def expect(self, payloads: Sequence[str], stragglers: Sequence[str] = ()) -> None:
        """``payloads`` arrive in order, after none, some or all of ``stragglers`` (in order)."""
        late = list(stragglers)
        for number, payload in enumerate(payloads, 1):
            what = f"reading {number} of {len(payloads)} ({payload!r})"
            reading = await self.next_reading(what)
            while reading in late:
                del late[: late.index(reading) + 1]
                reading = await self.next_reading(what)
            late.clear()
            assert reading == payload, (what, reading)


@pytest.fixture
async def browser(deployment: Deployment, device: Device) -> AsyncIterator[Browser]:
    url = f"ws://127.0.0.1:{deployment.web_port}/ws/devices/{device.name}/"
    origin = f"http://127.0.0.1:{deployment.web_port}"
    async with asyncio.timeout(WAIT):
        feed = await websockets.connect(
            url, origin=Origin(origin), additional_headers=deployment.headers
        )
        assert json.loads(await feed.recv())["type"] == "snapshot"
    try:
        yield Browser(feed, device.name, deployment.log_tails)
    finally:
        async with asyncio.timeout(WAIT):
            await feed.close()


async def publish_paced(
    device: Device, browser: Browser, payloads: Sequence[str], batch: int = 1
) -> None:
    """Publish ``batch`` readings at a time, each batch once the previous one arrived."""
    for start in range(0, len(payloads), batch):
        readings = payloads[start : start + batch]
        await device.publish(*readings)
        await browser.expect(readings)


@pytest.mark.parametrize(
    ("batch", "count"), [(1, TRICKLE), (BATCH, READINGS)], ids=["trickle", "batches"]
)
async def test_feed_keeps_up_beyond_the_channel_capacity(
    deployment: Deployment, device: Device, browser: Browser, batch: int, count: int
) -> None:
    await feed_beyond_capacity(deployment, device, browser, batch, count)


@pytest.mark.parametrize("deployment", ["pubsub"], indirect=True)
async def test_feed_keeps_up_beyond_the_channel_capacity_on_the_pubsub_layer(
    deployment: Deployment, device: Device, browser: Browser
) -> None:
    await feed_beyond_capacity(deployment, device, browser, BATCH, READINGS)


async def feed_beyond_capacity(
    deployment: Deployment, device: Device, browser: Browser, batch: int, count: int
) -> None:
    await publish_paced(device, browser, [f"n-{n}" for n in range(1, count + 1)], batch)
    assert browser.seen == count

    assert await device.disconnect() == 0
    await deployment.stop()


@BOTH_LAYERS
async def test_feed_resumes_after_a_redis_restart(
    deployment: Deployment, device: Device, browser: Browser
) -> None:
    await publish_paced(device, browser, [f"before-{n}" for n in range(1, BATCH + 1)])

    # A crash: nothing persisted, so the group membership and every count are gone.
    await asyncio.to_thread(deployment.redis.kill)
    await asyncio.to_thread(deployment.redis.start)

    # Readings sent before the web process has rejoined the group are lost: publish
    # one every PROBE_EVERY seconds until one gets through.
    probes = 0
    arrival = asyncio.ensure_future(browser.next_reading("a probe", timeout=RECOVERY + WAIT))
    try:
        async with asyncio.timeout(RECOVERY):
            while not arrival.done():
                probes += 1
                await device.publish(f"probe-{probes}")
                await asyncio.wait({arrival}, timeout=PROBE_EVERY)
    except TimeoutError:
        raise AssertionError(
            f"no reading reached the feed within {RECOVERY} s of the Redis restart "
            f"({probes} published)" + deployment.log_tails()
        ) from None
    finally:
        arrival.cancel()
        await asyncio.gather(arrival, return_exceptions=True)
    first = int(arrival.result().removeprefix("probe-"))

    # Probes published after the first one to arrive may still be on their way.
    stragglers = [f"probe-{n}" for n in range(first + 1, probes + 1)]
    after = [f"after-{n}" for n in range(1, AFTER_RESTART + 1)]
    await device.publish(after[0])
    await browser.expect(after[:1], stragglers)
    # Redis lost every count and script: more than a channel's capacity again.
    await publish_paced(device, browser, after[1:])

    assert await device.disconnect() == 0
    await deployment.stop()
