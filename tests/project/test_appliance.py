"""`gateway run` as the README runs it: one process, SQLite, in both MQTT roles.

A device added on the fleet page (``mosquitto_pub``, a plain MQTT client, with the
credentials the page showed) publishes JSON telemetry, either to the embedded
broker (the appliance default) or to Mosquitto that gateway bridges to
(``MQTT_URL``: that broker has its own logins, so the device publishes there
without); a browser-style WebSocket client, logged in as the admin
``--demo-admin`` created, sees the reading on the device's socket; the Django admin answers over
HTTP; SIGTERM stops everything cleanly with nothing logged at ERROR.
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
from websockets.typing import Origin

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


@dataclasses.dataclass
class Appliance:
    gateway: GatewayProcess
    web_port: int
    #: Where devices publish: the embedded broker, or the broker bridged to.
    mqtt_port: int
    #: The admin's session, for the dashboard's pages and sockets.
    headers: dict[str, str]
    #: Whether devices log in to the embedded broker (else: a bridged broker's rules).
    embedded: bool


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
        options = ["--mqtt-port", str(mqtt_port)]
        ready = "embedded MQTT broker listening"
    await migrate(env)
    async with gateway(env, "run", "--port", str(web_port), "--demo-admin", *options) as process:
        await process.wait_for_log("web server listening")
        await process.wait_for_log(ready)
        headers = await log_in(f"http://127.0.0.1:{web_port}", *await demo_admin(process))
        yield Appliance(process, web_port, mqtt_port, headers, request.param == "broker")


async def test_device_telemetry_reaches_the_device_page(appliance: Appliance, unique: str) -> None:
    origin = f"http://127.0.0.1:{appliance.web_port}"
    device = f"boiler-{unique}"
    secret = await add_device(origin, appliance.headers, device)
    login = ["-i", device, "-u", device, "-P", secret] if appliance.embedded else []
    url = f"ws://127.0.0.1:{appliance.web_port}/ws/devices/{device}/"
    async with websockets.connect(
        url, origin=Origin(origin), additional_headers=appliance.headers
    ) as feed:
        async with asyncio.timeout(10):
            assert json.loads(await feed.recv())["type"] == "snapshot"
            publish = await asyncio.create_subprocess_exec(
                "mosquitto_pub", "-h", "127.0.0.1", "-p", str(appliance.mqtt_port), *login,
                "-q", "1", "-t", f"devices/{device}/telemetry", "-m", '{"temperature": 21.5}',
            )  # fmt: skip
            assert await publish.wait() == 0
            [[_, values]] = await next_points(feed)
    assert values == {"temperature": 21.5}

    async with httpx.AsyncClient(base_url=origin) as client:
        response = await client.get("/admin/login/", timeout=10)
        stylesheet = await client.get("/static/admin/css/base.css", timeout=10)
    assert response.status_code == 200
    assert "Gateway administration" in response.text
    assert stylesheet.status_code == 200
    assert stylesheet.headers["content-type"].startswith("text/css")

    assert await appliance.gateway.stop() == 0
    log = appliance.gateway.text
    assert "ERROR" not in log, log
    assert "Traceback" not in log, log
