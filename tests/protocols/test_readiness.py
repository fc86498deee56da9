"""``/healthz`` and ``/readyz`` answered by the server before the application, the
``--health-port`` of processes without a web server, and ``gateway check``.

A web server on an ephemeral port serves a real application; readiness is decided
by its checks (the channel layer and the database in the project: ``tests/deploy``
takes Redis away from real processes) and by the services it watches.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.botapi import BotAPIServer
from gateway.types import Receive, Scope, Send
from protocols.mqtt.bridge import BridgeLink
from protocols.mqtt.config import BridgeConfig
from protocols.mqtt.server import MqttServer
from protocols.readiness import Readiness, probe
from protocols.service import Service
from protocols.websocket import Config, WebServer
from protocols.websocket.server import ProbeServer
from tests.ports import free_port
from tests.project.processes import ROOT
from tests.protocols.mqtt.example import application as mqtt_application
from tests.protocols.telegram.conftest import api, serving

__all__ = ["api"]  # the local Bot API server fixture


async def application(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": f"app {scope['path']}".encode()})


class Dependency(Service):
    """A service whose dependency is up or down, as the test says."""

    name = "broker"

    def __init__(self) -> None:
        self.reason: str | None = None

    async def start(self) -> None:
        return None

    async def stop(self, timeout: float) -> None:
        return None

    async def ready(self) -> str | None:
        return self.reason


@contextlib.asynccontextmanager
async def probing(server: WebServer) -> AsyncIterator[httpx.AsyncClient]:
    """``server`` started, and a client of it; the server stopped afterwards."""
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as client:
            yield client
    finally:
        await server.stop(5)


async def test_the_web_server_answers_the_probes_before_the_application() -> None:
    config = Config(port=0, lifespan="off", access_log=False)
    server = WebServer(application, config, Readiness(layer=False, database=False))
    dependency = Dependency()
    server.readiness.watch(dependency)
    async with probing(server) as client:
        assert (await client.get("/healthz")).text == "ok\n"
        ready = await client.get("/readyz")
        assert (ready.status_code, ready.text) == (200, "ready\n")
        assert ready.headers["cache-control"] == "no-store"

        dependency.reason = "bridge link to mosquitto:1883 is down"
        down = await client.get("/readyz")
        assert down.status_code == 503
        assert down.text == "not ready\nbroker: bridge link to mosquitto:1883 is down\n"
        assert (await client.get("/healthz")).status_code == 200  # alive all the same
        head = await client.head("/readyz")
        assert (head.status_code, head.content) == (503, b"")
        assert (await client.post("/readyz")).status_code == 405

        assert (await client.get("/healthzz")).text == "app /healthzz"
        assert (await client.get("/readyz/x")).text == "app /readyz/x"


async def test_a_check_that_hangs_or_raises_is_a_reason() -> None:
    async def hangs() -> str | None:
        await asyncio.Event().wait()
        return None

    async def raises() -> str | None:
        raise ConnectionError("Redis at 127.0.0.1:1 is unavailable")

    readiness = Readiness(layer=False, database=False, timeout=0.05)
    readiness.checks += [("slow", hangs), ("layer", raises)]
    assert await readiness.reasons() == [
        "slow: no answer within 0.05 s",
        "layer: Redis at 127.0.0.1:1 is unavailable",
    ]


async def test_the_probes_can_be_handed_to_the_application() -> None:
    config = Config(port=0, lifespan="off", access_log=False, health_probes=False)
    server = WebServer(application, config)
    async with probing(server) as client:
        assert (await client.get("/readyz")).text == "app /readyz"


@pytest.mark.django_db
async def test_a_probe_server_serves_only_the_probes_and_gateway_check_reads_it() -> None:
    server = ProbeServer("127.0.0.1", 0)
    dependency = Dependency()
    server.readiness.watch(dependency)
    async with probing(server) as client:
        assert (await client.get("/readyz")).text == "ready\n"
        assert (await client.get("/")).status_code == 404
        ok = await check("--port", str(server.port))
        assert ok == (0, "ready\n")
        dependency.reason = "getUpdates failed"
        assert await check("--port", str(server.port)) == (
            1,
            "503: not ready\nbroker: getUpdates failed\n",
        )
        assert await check("--port", str(server.port), "--live") == (0, "ok\n")
    code, text = await check("--port", str(free_port()), "--timeout", "2")
    assert code == 1
    assert "no answer" in text


async def check(*args: str) -> tuple[int, str]:
    """``gateway check ARGS`` in its own process: exit status and what it printed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "check", *args,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    async with asyncio.timeout(30):
        output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode()


def test_probe_reports_what_answered() -> None:
    assert probe(f"http://127.0.0.1:{free_port()}/readyz", 1)[0] is False


async def until_ready_is(service: Service, ready: bool) -> str | None:
    """``service.ready()`` once it says ready (None) or not (a reason), as asked.

    A server's readiness is state it keeps, with no event to await: look again
    every 10 ms, as an orchestrator's probe would on its interval.
    """
    async with asyncio.timeout(10):
        while ((reason := await service.ready()) is None) != ready:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    return reason


async def test_a_bot_is_not_ready_while_getupdates_fails(api: BotAPIServer) -> None:
    token = api.add_bot("probe_bot")
    async with serving(application, api, token) as server:
        assert await server.ready() is None
        await api.stop()
        reason = await until_ready_is(server, False)
        assert reason is not None
        assert reason.startswith("@probe_bot: getUpdates failed")
        assert token.split(":")[1] not in reason
        await api.start()
        await until_ready_is(server, True)


async def test_the_mqtt_bridge_is_not_ready_while_disconnected(mosquitto_url: str) -> None:
    port = free_port()  # nobody listens: the bridge cannot connect
    server = MqttServer(
        mqtt_application, BridgeLink(BridgeConfig.from_url(f"mqtt://127.0.0.1:{port}"))
    )
    assert await server.ready() == f"bridge link to 127.0.0.1:{port} is down"
    connected = MqttServer(mqtt_application, BridgeLink(BridgeConfig.from_url(mosquitto_url)))
    await connected.start()
    try:
        assert await connected.ready() is None
    finally:
        await connected.stop(5)
