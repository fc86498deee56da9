"""docker-compose.yml, run: every application service from its exact command and
environment, two ``web`` and two ``mqtt`` replicas (:mod:`tests.deploy.stack`).

The story: an admin (made as docs/deploy.md says, ``run --rm migrate
createsuperuser``) adds a device on the fleet page of web-1 and gives Mosquitto its
credentials; a Telegram chat is linked with a code from web-2's Telegram page and
subscribes to the device's alerts; dashboards on web-1 and web-2 watch the device,
one sets a threshold. The device publishes through Mosquitto, whose shared
subscription splits the messages between mqtt-1 and mqtt-2: every reading reaches
both dashboards, each message is handled by exactly one replica (each stored once,
and the replicas' own counters add up to what was published, both non-zero), the
alert reaches the chat on the stack's Bot API server exactly once (through the
worker and the telegram service), and a command from either dashboard reaches the
device. SIGTERM then stops every process cleanly.

Faults: a web and an mqtt replica killed mid-run lose only their connections (the
dashboard reconnects to the other web replica, the other mqtt replica takes every
message); a web replica's ``/readyz`` (its compose health check) turns 503 while
Redis is down and 200 once it is back, and the story goes on after the restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import websockets
from websockets.typing import Origin

from gateway.layers.redis import RedisChannelLayer
from gateway.metrics import HEALTH_GROUP
from tests.deploy.stack import PROBE_EVERY, LocalStack, Replica, eventually, local_stack
from tests.project.processes import DeviceClients, add_device, log_in

pytestmark = [pytest.mark.redis, pytest.mark.mqtt, pytest.mark.postgres, pytest.mark.timeout(180)]

WAIT = 20.0
ADMIN, PASSWORD = "admin", "a-long-admin-password-1"
CHAT = 777
METRIC, LIMIT, HYSTERESIS = "temperature", 50, 5
ALERT, CLEARED = "\u26a0", "\u2714"
#: Seconds between two readings of a device cooling down.
COOL_EVERY = 0.5


@pytest.fixture
async def stack(tmp_path: Path, unique: str) -> AsyncIterator[LocalStack]:
    async with local_stack(tmp_path, unique) as local:
        # The first admin as docs/deploy.md makes it: `run --rm migrate createsuperuser`.
        admin = local.once(
            "migrate", "createsuperuser", "--noinput", "--username", ADMIN,
            "--email", "admin@example.com", DJANGO_SUPERUSER_PASSWORD=PASSWORD,
        )  # fmt: skip
        await local.up(admin)
        yield local


class Device(DeviceClients):
    """A device on Mosquitto with its own credentials: ``online`` (retained, and
    ``offline`` as its Will), then telemetry on one connection (a line a message)."""

    telemetry: asyncio.subprocess.Process

    async def go_online(self) -> None:
        topic = f"devices/{self.device_id}/status"
        will = ["--will-topic", topic, "--will-payload", "offline", "--will-qos", "1"]
        status = await self.start(
            "mosquitto_pub", "status", *will, "-r", "-t", topic, "-m", "online"
        )
        async with asyncio.timeout(WAIT):
            assert await status.wait() == 0
        self.telemetry = await self.connect()

    async def readings(self, *values: float) -> None:
        for value in values:
            await self.publish(self.telemetry, {METRIC: value})


class Dashboard:
    """A device page's socket (``/ws/devices/<id>/``) on one web replica."""

    def __init__(self, feed: websockets.ClientConnection, replica: Replica) -> None:
        self.feed = feed
        self.replica = replica
        self.readings: list[float] = []

    @classmethod
    async def open(cls, replica: Replica, headers: dict[str, str], device_id: str) -> Dashboard:
        url = f"ws://127.0.0.1:{replica.port(8000)}/ws/devices/{device_id}/"
        async with asyncio.timeout(WAIT):
            feed = await websockets.connect(
                url, origin=Origin(replica.base), additional_headers=headers
            )
            assert json.loads(await feed.recv())["type"] == "snapshot"
        return cls(feed, replica)

    async def until(self, what: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The next message ``done`` accepts; readings on the way are collected."""
        try:
            async with asyncio.timeout(WAIT):
                while True:
                    message: dict[str, Any] = json.loads(await self.feed.recv())
                    if message["type"] == "readings":
                        self.readings += [point[1][METRIC] for point in message["points"]]
                    if done(message):
                        return message
        except TimeoutError:
            raise AssertionError(
                f"{what} did not reach the dashboard on {self.replica.name}"
            ) from None

    async def received(self, *values: float) -> list[float]:
        """Every reading so far, once ``values`` are among them, in arrival order.

        Two mqtt replicas handle one device's messages in parallel (a shared
        subscription keeps no order across its members), so the order across
        them is not the device's: compare as sorted lists.
        """
        if not set(values) <= set(self.readings):
            what = f"readings {sorted(set(values) - set(self.readings))}"
            await self.until(what, lambda _: set(values) <= set(self.readings))
        return self.readings

    async def send(self, message: dict[str, Any]) -> None:
        await self.feed.send(json.dumps(message))

    async def close(self) -> None:
        async with asyncio.timeout(WAIT):
            await self.feed.close()


class Chat:
    """A user's chat with the bot, over the stack's Bot API server's user side."""

    def __init__(self, botapi: Replica) -> None:
        self.base = f"http://127.0.0.1:{botapi.port(8081)}/_user/local_bot"

    async def say(self, text: str) -> None:
        async with httpx.AsyncClient(timeout=WAIT) as client:
            answer = await client.post(f"{self.base}/message", data={"chat_id": CHAT, "text": text})
            assert answer.json()["ok"], answer.text

    async def sent(self) -> list[str]:
        async with httpx.AsyncClient(timeout=WAIT) as client:
            answer = await client.get(f"{self.base}/sent", params={"chat_id": CHAT})
        return [message.get("text", "") for message in answer.json()["result"]]

    async def until(self, what: str, done: Callable[[list[str]], bool]) -> list[str]:
        """What the bot sent, once ``done`` accepts it."""
        texts: list[str] = []

        async def arrived() -> bool:
            texts[:] = await self.sent()
            return done(texts)

        await eventually(f"{what} in the chat", arrived, explain=lambda: f": {texts}")
        return texts


async def admin_on(replica: Replica) -> dict[str, str]:
    return await log_in(replica.base, ADMIN, PASSWORD)


async def new_device(stack: LocalStack, headers: dict[str, str], device_id: str) -> Device:
    """Added on web-1's fleet page; Mosquitto told its credentials (docs/deploy.md)."""
    secret = await add_device(stack.replicas["web"][0].base, headers, device_id)
    await stack.mosquitto.add_device(device_id, secret)
    device = Device(stack.mosquitto.port, device_id, secret, WAIT)
    await device.go_online()
    return device


async def link_chat(web: Replica, headers: dict[str, str], chat: Chat, device_id: str) -> None:
    """A link code from the Telegram page, redeemed in the chat; then /subscribe."""
    async with httpx.AsyncClient(base_url=web.base, headers=headers, timeout=WAIT) as browser:
        page = await browser.get("/telegram/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token is not None, page.text[:500]
        await browser.post(
            "/telegram/link/", data={"csrfmiddlewaretoken": token[1]}, headers={"origin": web.base}
        )
        page = await browser.get("/telegram/")
    code = re.search(r'<pre id="link-command">/link ([^<]+)</pre>', page.text)
    assert code is not None, page.text[:2000]
    await chat.say(f"/link {code[1]}")
    await chat.until("the link", lambda texts: any(t.startswith("Linked to") for t in texts))
    await chat.say(f"/subscribe {device_id}")
    await chat.until(
        "the subscription", lambda texts: any("alerts" in t.lower() for t in texts[1:])
    )


class Counters:
    """What each gateway process says it handled: its health heartbeats
    (``gateway.health``), read from the stack's Redis like the dashboard does."""

    def __init__(self, layer: RedisChannelLayer, channel: str) -> None:
        self.layer = layer
        self.channel = channel
        self.latest: dict[str, dict[str, Any]] = {}

    async def mqtt_messages(self, pids: set[int], expected: int) -> dict[int, int]:
        """MQTT messages in per process of ``pids``, once they add up to ``expected``."""
        try:
            async with asyncio.timeout(WAIT):
                while True:
                    counts = {
                        process["pid"]: process["protocols"].get("mqtt", {}).get("messages_in", 0)
                        for process in self.latest.values()
                        if process["pid"] in pids
                    }
                    if len(counts) == len(pids) and sum(counts.values()) >= expected:
                        return counts
                    beat = await self.layer.receive(self.channel)
                    self.latest[beat["process"]["id"]] = beat["process"]
        except TimeoutError:
            raise AssertionError(f"mqtt counters stayed at {self.latest}") from None


@contextlib.asynccontextmanager
async def counters(stack: LocalStack) -> AsyncIterator[Counters]:
    url = f"redis://:{stack.variables['REDIS_PASSWORD']}@127.0.0.1:{stack.redis.port}/0"
    layer = RedisChannelLayer(hosts=[url])
    channel = await layer.new_channel()
    await layer.group_add(HEALTH_GROUP, channel)
    try:
        yield Counters(layer, channel)
    finally:
        await layer.group_discard(HEALTH_GROUP, channel)
        await layer.close_pools()


def stored_readings(stack: LocalStack, device_id: str) -> int:
    with psycopg.connect(stack.database) as connection:
        row = connection.execute(
            "SELECT count(*) FROM iot_reading r JOIN iot_thing t ON r.thing_id = t.id "
            "WHERE t.device_id = %s",
            (device_id,),
        ).fetchone()
    assert row is not None
    return int(row[0])


async def until_stored(stack: LocalStack, device_id: str, count: int) -> int:
    """Stored readings of ``device_id`` once there are ``count`` (batched writes)."""
    stored = [0]

    async def enough() -> bool:
        stored[0] = await asyncio.to_thread(stored_readings, stack, device_id)
        return stored[0] >= count

    await eventually(f"{count} stored readings", enough, explain=lambda: f" ({stored[0]})")
    return stored[0]


async def send_command(dashboard: Dashboard, device: Device) -> None:
    """A command from ``dashboard`` reaches the device, whose ack the dashboard sees."""
    subscriber = await device.subscribe_commands()
    await dashboard.send({"type": "command", "name": "reboot", "args": {}})
    command = await device.command(subscriber)
    assert command["name"] == "reboot"
    await device.ack(command["id"])
    await dashboard.until(
        "the command's ack",
        lambda m: (
            m["type"] == "command"
            and m["command"]["id"] == command["id"]
            and m["command"]["status"] == "acknowledged"
        ),
    )


async def test_the_story_across_replicas(stack: LocalStack, unique: str) -> None:
    web1, web2 = stack.replicas["web"]
    headers = await admin_on(web1)
    device = await new_device(stack, headers, f"boiler-{unique}")
    chat = Chat(stack.replicas["botapi"][0])
    await link_chat(web2, headers, chat, device.device_id)
    first, second = [await Dashboard.open(web, headers, device.device_id) for web in (web1, web2)]
    threshold = {"metric": METRIC, "direction": "above", "limit": LIMIT, "hysteresis": HYSTERESIS}
    await second.send({"type": "threshold", **threshold})
    await second.until("the threshold", lambda m: m["type"] == "thresholds" and m["thresholds"])
    try:
        async with counters(stack) as counted:
            # Normal readings; then hot ones (the alert opens once, however many and
            # on whichever replica); then, once the chat has the alert, back to normal
            # until the alert clears. A replica decides with its own copy of the
            # device, reloaded every few seconds: the one that takes the first cool
            # reading may not know of the alert yet, so the device keeps reporting,
            # as a sensor does, until one that knows takes a reading.
            normal = [20 + n / 10 for n in range(30)]
            hot = [60.0, 61.0, 62.0, 63.0]
            await device.readings(*normal)
            for dashboard in (first, second):
                assert sorted(await dashboard.received(*normal)) == normal
            await device.readings(*hot)
            await chat.until("the alert", lambda texts: any(t.startswith(ALERT) for t in texts))
            cool: list[float] = []
            cleared = asyncio.ensure_future(
                chat.until(
                    "the alert's end", lambda texts: any(t.startswith(CLEARED) for t in texts)
                )
            )
            try:
                while not cleared.done():
                    cool.append(30 + len(cool) / 10)
                    await device.readings(cool[-1])
                    await asyncio.wait({cleared}, timeout=COOL_EVERY)
            finally:
                cleared.cancel()
                await asyncio.gather(cleared, return_exceptions=True)
            texts = cleared.result()
            values = [*normal, *hot, *cool]
            for dashboard in (first, second):
                assert sorted(await dashboard.received(*values)) == sorted(values)
            alerts = [text for text in texts if text.startswith(ALERT)]
            assert len(alerts) == 1, texts
            assert re.search(r": temperature 6[0-3] > 50$", alerts[0]), texts

            assert await until_stored(stack, device.device_id, len(values)) == len(values)
            mqtt = {replica.process.process.pid for replica in stack.replicas["mqtt"]}
            # The device's status message and every reading, nothing twice.
            handled = await counted.mqtt_messages(mqtt, len(values) + 1)
            assert sum(handled.values()) == len(values) + 1, handled
            assert all(handled.values()), f"one replica took everything: {handled}"

        await send_command(first, device)
        await send_command(second, device)
        await stack.stop()
    finally:
        await first.close()
        await second.close()
        await device.close()


async def test_replicas_and_redis_go_away_and_the_rest_carries_on(
    stack: LocalStack, unique: str
) -> None:
    web1, web2 = stack.replicas["web"]
    mqtt1, mqtt2 = stack.replicas["mqtt"]
    headers = await admin_on(web2)
    device = await new_device(stack, headers, f"pump-{unique}")
    first, second = [await Dashboard.open(web, headers, device.device_id) for web in (web1, web2)]
    try:
        await device.readings(1, 2, 3)
        assert sorted(await first.received(1, 2, 3)) == [1, 2, 3]
        assert sorted(await second.received(1, 2, 3)) == [1, 2, 3]

        # A web and an mqtt replica crash. The dashboard on web-1 loses its socket
        # and opens another on web-2; Mosquitto gives mqtt-2 every message once it
        # has seen mqtt-1 go.
        gone = stack.mosquitto.process
        assert gone is not None
        closed = gone.count("closed its connection")
        await asyncio.gather(web1.process.kill(), mqtt1.process.kill())
        await gone.wait_for_count("closed its connection", closed + 1)
        with pytest.raises(websockets.ConnectionClosed):
            async with asyncio.timeout(WAIT):
                await first.feed.recv()
        first = await Dashboard.open(web2, headers, device.device_id)
        await device.readings(4, 5, 6)
        assert sorted(await first.received(4, 5, 6)) == [4, 5, 6]
        assert sorted(await second.received(4, 5, 6)) == [1, 2, 3, 4, 5, 6]
        assert (await stack.check(web2))[0] == 0

        # Redis crashes: web-2 is not ready while it is down, ready once it is back.
        await asyncio.to_thread(stack.redis.kill)
        await until_check(stack, web2, 1, "channel layer")
        await asyncio.to_thread(stack.redis.start)
        await until_check(stack, web2, 0, "ready")
        await until_check(stack, mqtt2, 0, "ready")

        # Readings published before the web replica has rejoined its groups are lost
        # (Redis forgot them): publish until one gets through, then none is lost.
        probe = 100
        arrived = asyncio.ensure_future(second.until("a probe", lambda m: m["type"] == "readings"))
        try:
            async with asyncio.timeout(WAIT):
                while not arrived.done():
                    probe += 1
                    await device.readings(probe)
                    await asyncio.wait({arrived}, timeout=PROBE_EVERY * 2)
        finally:
            arrived.cancel()
            await asyncio.gather(arrived, return_exceptions=True)
        await device.readings(1000, 1001, 1002)
        after = await second.received(1000, 1001, 1002)
        assert sorted(after[-3:]) == [1000, 1001, 1002]
        await stack.stop()
    finally:
        await first.close()
        await second.close()
        await device.close()


async def until_check(stack: LocalStack, replica: Replica, status: int, says: str) -> None:
    """Run the replica's compose health check until it exits ``status`` saying ``says``."""
    last: tuple[int, str] = (-1, "")

    async def answers() -> bool:
        nonlocal last
        last = await stack.check(replica)
        return last[0] == status and says in last[1]

    await eventually(
        f"{replica.name}'s health check {status}", answers, explain=lambda: f": {last}"
    )
