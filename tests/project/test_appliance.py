"""`gateway run` as the README runs it: one process, SQLite, in both MQTT roles.

A device (``mosquitto_pub``, a plain MQTT client) publishes telemetry, either to
the embedded broker (the appliance default) or to Mosquitto that gateway bridges
to (``MQTT_URL``); a browser-style WebSocket client on the live feed sees it; the
Django admin answers over HTTP; SIGTERM stops everything cleanly with nothing
logged at ERROR.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import websockets

ROOT = Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Appliance:
    def __init__(self, process: asyncio.subprocess.Process, web_port: int, mqtt_port: int):
        self.process = process
        self.web_port = web_port
        #: Where devices publish: the embedded broker, or the broker bridged to.
        self.mqtt_port = mqtt_port
        self.log: list[str] = []

    async def wait_for_log(self, needle: str) -> None:
        assert self.process.stderr is not None
        async with asyncio.timeout(30):
            while not any(needle in line for line in self.log):
                line = await self.process.stderr.readline()
                if not line:
                    raise AssertionError("gateway run exited early:\n" + "".join(self.log))
                self.log.append(line.decode())

    async def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        assert self.process.stderr is not None
        async with asyncio.timeout(30):
            rest = await self.process.stderr.read()
            self.log.append(rest.decode())
            return await self.process.wait()


@pytest.fixture(params=["broker", "bridge"])
async def appliance(
    request: pytest.FixtureRequest, tmp_path: Path, mosquitto_url: str
) -> AsyncIterator[Appliance]:
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
    env.update(
        DJANGO_SETTINGS_MODULE="project.settings",
        GATEWAY_DATA_DIR=str(tmp_path),
        PYTHONUNBUFFERED="1",
    )
    env.pop("MQTT_URL", None)
    env.pop("TELEGRAM_BOT_TOKEN", None)
    migrate = await asyncio.create_subprocess_exec(
        sys.executable,
        "manage.py",
        "migrate",
        "--noinput",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
    )
    async with asyncio.timeout(60):
        assert await migrate.wait() == 0
    web_port, mqtt_port = free_port(), free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "run",
        "--port",
        str(web_port),
        "--mqtt-port",
        str(mqtt_port),
        "--mqtt-anonymous",
        cwd=ROOT,
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    running = Appliance(process, web_port, mqtt_port)
    try:
        await running.wait_for_log("web server listening")
        await running.wait_for_log("embedded MQTT broker listening")
        yield running
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_device_telemetry_reaches_the_live_feed(appliance: Appliance, unique: str) -> None:
    origin = f"http://127.0.0.1:{appliance.web_port}"
    url = f"ws://127.0.0.1:{appliance.web_port}/ws/telemetry/"
    device = f"boiler-{unique}"
    async with websockets.connect(url, origin=origin) as feed:
        publish = await asyncio.create_subprocess_exec(
            "mosquitto_pub", "-h", "127.0.0.1", "-p", str(appliance.mqtt_port),
            "-q", "1", "-t", f"devices/{device}/telemetry", "-m", "21.5",
        )  # fmt: skip
        async with asyncio.timeout(10):
            assert await publish.wait() == 0
            reading = json.loads(await feed.recv())
            # On the shared Mosquitto other devices may report too: find ours.
            while reading["device"] != device:
                reading = json.loads(await feed.recv())
    assert reading == {"device": device, "payload": "21.5"}

    async with httpx.AsyncClient(base_url=origin) as client:
        response = await client.get("/admin/login/", timeout=10)
        stylesheet = await client.get("/static/admin/css/base.css", timeout=10)
    assert response.status_code == 200
    assert "Django administration" in response.text
    assert stylesheet.status_code == 200
    assert stylesheet.headers["content-type"].startswith("text/css")

    assert await appliance.stop() == 0
    log = "".join(appliance.log)
    assert "ERROR" not in log, log
    assert "Traceback" not in log, log
