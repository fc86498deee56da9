"""Broker restarts: a private Mosquitto is killed and restarted mid-stream.

The shared Mosquitto on 1883 is never touched: this test runs its own
``mosquitto`` on an ephemeral port, without persistence, so the restarted broker
has no memory of the bridge's subscriptions (they must be re-applied).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from gateway.routing import TopicRouter, topic
from protocols.mqtt.bridge import BridgeLink
from protocols.mqtt.config import BridgeConfig
from protocols.mqtt.server import MqttServer
from tests.ports import free_port
from tests.protocols.mqtt.conftest import WAIT, Device, Event, Recorder, Serve, next_event

pytestmark = pytest.mark.mqtt

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


class Mosquitto:
    """A private mosquitto process that can be killed and started again on its port."""

    def __init__(self, config: Path, port: int) -> None:
        self.config = config
        self.port = port
        self.process: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task[bytes] | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            MOSQUITTO, "-c", str(self.config), stderr=asyncio.subprocess.PIPE
        )
        assert self.process.stderr is not None
        log = []
        try:
            async with asyncio.timeout(WAIT):
                while b"running" not in (line := await self.process.stderr.readline()):
                    log.append(line.decode())
                    if not line:
                        raise RuntimeError("mosquitto did not start:\n" + "".join(log))
        except BaseException:
            if self.process.returncode is None:
                self.process.kill()
            await self.process.wait()
            raise
        self._drain = asyncio.create_task(self.process.stderr.read())  # keep the pipe empty

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        if self._drain is not None:
            await self._drain


@pytest.fixture
async def mosquitto(tmp_path: Path) -> AsyncIterator[Mosquitto]:
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "log_dest stderr\nlog_type error\nlog_type notice\nlog_type information\n"
    )
    broker = Mosquitto(config, port)
    await broker.start()
    yield broker
    await broker.kill()


async def test_messages_after_a_broker_restart_are_delivered(
    unique: str, mosquitto: Mosquitto, serve: Serve, devices: Callable[..., Device]
) -> None:
    events: asyncio.Queue[Event] = asyncio.Queue()
    application = TopicRouter(
        [topic(f"{unique}/d/<device_id>", Recorder.as_asgi(events=events), qos=1)]
    )
    link = BridgeLink(
        BridgeConfig.from_url(f"mqtt://127.0.0.1:{mosquitto.port}"), backoff=(0.05, 0.2)
    )
    await serve(application, link)

    before = devices(mosquitto.port)
    await before.connect()
    await before.publish(f"{unique}/d/d1", "before")
    first = await next_event(events, "message")
    assert first.data["payload"] == b"before"

    await mosquitto.kill()
    down = await next_event(events, "link")
    assert down.data["state"] == "down"
    assert down.instance == first.instance  # not terminal: the scope lives on

    await mosquitto.start()
    up = await next_event(events, "link")
    assert (up.data["state"], up.data["session_present"]) == ("up", False)
    assert link.connections == 2

    after = devices(mosquitto.port)
    await after.connect()
    for i in range(5):
        await after.publish(f"{unique}/d/d1", f"after {i}")
    received = [(await next_event(events, "message")).data["payload"] for _ in range(5)]
    assert received == [f"after {i}".encode() for i in range(5)]


class PauseSignallingLink(BridgeLink):
    def __init__(self, config: BridgeConfig) -> None:
        super().__init__(config)
        self.paused = asyncio.Event()

    def pause_reading(self) -> None:
        super().pause_reading()
        self.paused.set()


async def test_qos1_messages_not_yet_queued_are_redelivered_after_a_gateway_restart(
    unique: str, mosquitto: Mosquitto, serve: Serve, devices: Callable[..., Device]
) -> None:
    """PUBACK is sent only once its instance has handled a message (at-least-once)."""
    url = f"mqtt://127.0.0.1:{mosquitto.port}?client_id={unique}"  # a persistent session
    stuck: asyncio.Queue[Event] = asyncio.Queue()
    never = asyncio.Event()
    first_link = PauseSignallingLink(BridgeConfig.from_url(url))
    first = MqttServer(
        TopicRouter([topic(f"{unique}/d/<id>", Recorder.as_asgi(events=stuck, gate=never), qos=1)]),
        first_link,
        queue_size=1,
        inflight=2,
        channel_layer_alias=None,
    )
    await first.start()
    try:
        device = devices(mosquitto.port)
        await device.connect()
        await device.publish(f"{unique}/d/1", "wait")  # its handler never returns
        await next_event(stuck, "message")
        for name in ("queued", "b", "c", "d"):
            await device.publish(f"{unique}/d/1", name)
        async with asyncio.timeout(WAIT):
            # "queued" is in the instance's queue; "b" waits for room, "c", "d" are pending.
            await first_link.paused.wait()
    finally:
        await first.stop(0.2)  # the gateway goes away having handled none of them

    events: asyncio.Queue[Event] = asyncio.Queue()
    application = TopicRouter([topic(f"{unique}/d/<id>", Recorder.as_asgi(events=events), qos=1)])
    await serve(application, BridgeLink(BridgeConfig.from_url(url)))
    redelivered = [await next_event(events, "message") for _ in range(5)]
    assert [m.data["payload"] for m in redelivered] == [b"wait", b"queued", b"b", b"c", b"d"]
    # The first four had reached the first gateway, unacknowledged: the broker resends them.
    assert [m.data["dup"] for m in redelivered[:4]] == [True, True, True, True]
