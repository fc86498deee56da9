"""The IoT bridge in ``gateway run`` as the appliance runs it: SQLite, embedded broker.

The writer's batches on SQLite (the appliance default), and its last flush at
shutdown: a device made with ``create_thing`` logs in with its generated secret,
publishes readings and one bad payload; after SIGTERM every reading is in the
database, and nothing was logged at ERROR.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.ports import free_port
from tests.project.processes import ROOT, gateway, gateway_env, migrate
from tests.protocols.mqtt.conftest import Device

pytestmark = pytest.mark.mqtt

READINGS = 200

MAKE_DEVICE = """
from django.contrib.auth.models import User
from project.iot.services import create_thing
thing, secret = create_thing(User.objects.create_user("owner"), "meter-1", "Meter")
print(secret)
"""


async def make_device(env: dict[str, str]) -> str:
    """Create the device in the appliance's database; its secret."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "manage.py", "shell", "-c", MAKE_DEVICE,
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        out, _ = await process.communicate()
    assert process.returncode == 0
    return out.decode().split()[-1]


def stored(database: Path) -> tuple[int, dict[str, float], int]:
    with sqlite3.connect(database) as connection:
        (count,) = connection.execute("SELECT count(*) FROM iot_reading").fetchone()
        last, bad = connection.execute("SELECT last_values, bad_payloads FROM iot_thing").fetchone()
    return count, json.loads(last), bad


async def test_readings_reach_sqlite_and_the_last_are_written_at_shutdown(
    tmp_path: Path, devices: Callable[..., Device]
) -> None:
    env = gateway_env(tmp_path)
    await migrate(env)
    secret = await make_device(env)
    web_port, mqtt_port = free_port(), free_port()
    args = ["run", "--port", str(web_port), "--mqtt-host", "127.0.0.1", "--mqtt-port"]
    async with gateway(env, *args, str(mqtt_port)) as process:
        await process.wait_for_log("embedded MQTT broker listening")
        device = devices(mqtt_port, "meter-1", username="meter-1", password=secret)
        assert not (await device.connect()).is_failure
        for n in range(READINGS):
            await device.publish("devices/meter-1/telemetry", json.dumps({"n": n}))
        await device.publish("devices/meter-1/telemetry", b"not json")
        # Logged once its consumer got to it: every reading before it was handled.
        await process.wait_for_log("device 'meter-1': payload on")
        assert await process.stop() == 0

    log = process.text
    assert "ERROR" not in log, log
    assert "Traceback" not in log, log
    count, last_values, bad = stored(tmp_path / "db.sqlite3")
    assert (count, last_values, bad) == (READINGS, {"n": READINGS - 1}, 1)
