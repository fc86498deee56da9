"""The first start of the appliance, as ``scripts/run`` does it: migrate, then ``gateway run``.

What a person reads once it is up: how to get a first admin (or the admin
``--demo-admin`` created, whose printed password logs in, and is printed only that
once), the pages to open, where devices connect, which channel layer and database
are in use, a warning for each risky setting, and never a secret.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import httpx
import pytest

from tests.ports import free_port
from tests.project.processes import ROOT, demo_admin, gateway, gateway_env, log_in, migrate

pytestmark = pytest.mark.mqtt

TOKEN = "metrics-t0ken-never-shown"
BROKER_PASSWORD = "br0ker-password-never-shown"


async def test_without_an_admin_the_summary_says_how_to_create_one(tmp_path: Path) -> None:
    env = gateway_env(tmp_path, DEBUG="1", METRICS_TOKEN=TOKEN)
    await migrate(env)
    web, mqtt = free_port(), free_port()
    options = ["--port", str(web), "--mqtt-host", "0.0.0.0", "--mqtt-port", str(mqtt)]
    options.append("--mqtt-anonymous")
    async with gateway(env, "run", *options) as process:
        await process.wait_for_log("WARNING: DEBUG is on")
        assert await process.stop() == 0
    summary = process.text.split("gateway run is ready", 1)[1].splitlines()
    python = Path(sys.executable).relative_to(ROOT)  # .venv/bin/python, or .venv-django6's
    lines = [" ".join(line.split()) for line in summary]
    for expected in [
        f"Dashboard http://127.0.0.1:{web}/",
        f"Admin http://127.0.0.1:{web}/admin/",
        f"Metrics http://127.0.0.1:{web}/metrics",
        f"MQTT devices mqtt://{socket.gethostname()}:{mqtt} (embedded broker, on every interface)",
        "Channel layer in-memory (this process only)",
        f"Database SQLite {tmp_path / 'db.sqlite3'}",
        f"First admin none yet: create one with `{python} manage.py createsuperuser` "
        "(or start once with --demo-admin)",
    ]:
        assert expected in lines, process.text
    warnings = [line for line in lines if line.startswith("WARNING: ")]
    assert len(warnings) == 3, process.text
    assert "(--mqtt-anonymous)" in warnings[0]
    assert "embedded broker listens on 0.0.0.0 without TLS" in warnings[1]
    assert "DEBUG is on" in warnings[2]
    assert TOKEN not in process.text
    assert (tmp_path / "secret_key").read_text().strip() not in process.text


async def test_demo_admin_logs_in_with_the_password_printed_once(
    tmp_path: Path, mosquitto_url: str
) -> None:
    bridged = mosquitto_url.replace("mqtt://", f"mqtt://gw:{BROKER_PASSWORD}@", 1)
    env = gateway_env(tmp_path, MQTT_URL=bridged, METRICS_TOKEN=TOKEN)
    await migrate(env)
    web = free_port()
    base = f"http://127.0.0.1:{web}"
    async with gateway(env, "run", "--port", str(web), "--demo-admin") as process:
        username, password = await demo_admin(process)
        headers = await log_in(base, username, password)
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as browser:
            fleet = await browser.get("/")
            metrics = await browser.get("/metrics")
        async with httpx.AsyncClient(base_url=base, timeout=10) as prometheus:
            scraped = await prometheus.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert await process.stop() == 0
    assert fleet.status_code == 200
    assert username in fleet.text
    assert metrics.status_code == scraped.status_code == 200
    assert 'gateway_info{host="' in scraped.text
    host = mosquitto_url.removeprefix("mqtt://")
    assert f"MQTT devices   mqtt://gw@{host} (bridged broker)" in process.text
    assert BROKER_PASSWORD not in process.text
    assert TOKEN not in process.text

    # The next start finds the admin: no password, no note.
    async with gateway(env, "run", "--port", str(web), "--demo-admin") as again:
        await again.wait_for_log("gateway run is ready")
        await again.wait_for_log("Database")
        assert await again.stop() == 0
    assert "First admin" not in again.text
    assert password not in again.text
