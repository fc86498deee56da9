"""`gateway run` as the README runs it: one process, SQLite, in both MQTT roles.

A device (``mosquitto_pub``, a plain MQTT client) publishes telemetry, either to
the embedded broker (the appliance default) or to Mosquitto that gateway bridges
to (``MQTT_URL``); a browser-style WebSocket client on the live feed sees it; the
Django admin answers over HTTP; SIGTERM stops everything cleanly with nothing
logged at ERROR.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import websockets

from tests.project.processes import GatewayProcess, free_port, gateway, gateway_env, migrate


@dataclasses.dataclass
class Appliance:
    gateway: GatewayProcess
    web_port: int
    #: Where devices publish: the embedded broker, or the broker bridged to.
    mqtt_port: int


@pytest.fixture(params=["broker", "bridge"])
async def appliance(
    request: pytest.FixtureRequest, tmp_path: Path, mosquitto_url: str
) -> AsyncIterator[Appliance]:
    web_port = free_port()
    if request.param == "bridge":
        env = gateway_env(tmp_path, MQTT_URL=mosquitto_url)
        mqtt_port = urlsplit(mosquitto_url).port or 1883
        options = []
        ready = "mqtt bridge serving"
    else:
        env = gateway_env(tmp_path)
        mqtt_port = free_port()
        options = ["--mqtt-port", str(mqtt_port), "--mqtt-anonymous"]
        ready = "embedded MQTT broker listening"
    await migrate(env)
    async with gateway(env, "run", "--port", str(web_port), *options) as process:
        await process.wait_for_log("web server listening")
        await process.wait_for_log(ready)
        yield Appliance(process, web_port, mqtt_port)


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

    assert await appliance.gateway.stop() == 0
    log = appliance.gateway.text
    assert "ERROR" not in log, log
    assert "Traceback" not in log, log
