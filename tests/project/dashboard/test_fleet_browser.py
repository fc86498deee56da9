"""The product's whole story in a headless Chromium, on a real ``gateway run``.

A person logs in, adds a device on the fleet page and takes the secret shown
once; a plain ``mosquitto_pub`` with those credentials is the device (a wrong
password is refused, another device's topic is not delivered). The fleet page
shows it online with its value; its page's chart grows with each reading; a
threshold set on the page opens an alert; a command sent from the page reaches a
``mosquitto_sub`` on the device's commands topic, whose ack (``mosquitto_pub``)
turns it "acknowledged" on the page. SQLite, the embedded broker, ephemeral
ports; Playwright's sync API runs in a worker thread so the test's loop keeps
reading the server's output.

The same story runs twice: on the one-process appliance (``gateway run``), and on
the scaled deployment, ``gateway web`` and ``gateway mqtt`` as separate processes
sharing a private redis-server (``REDIS_URL``) and the SQLite file, with
``MQTT_PUBLIC_ADDRESS`` telling the web process where devices reach the broker.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.example.test_browser import CHROMIUM, CHROMIUM_ARGS, LAUNCH_MS, WAIT_MS
from tests.gateway.layers.redis_servers import redis_servers
from tests.ports import free_port
from tests.project.processes import GatewayProcess, demo_admin, gateway, gateway_env, migrate

WAIT = WAIT_MS / 1000
expect.set_options(timeout=WAIT_MS)


class Device:
    """``mosquitto_*`` clients logged in as one device."""

    def __init__(self, port: int, device_id: str, secret: str) -> None:
        self.port, self.device_id, self.secret = port, device_id, secret

    def args(self, tool: str, client: str, password: str | None = None) -> list[str]:
        return [
            tool, "-h", "127.0.0.1", "-p", str(self.port), "-q", "1", "-i", client,
            "-u", self.device_id, "-P", password or self.secret,
        ]  # fmt: skip

    def publish_once(self, topic: str, payload: str, password: str | None = None) -> int:
        args = self.args("mosquitto_pub", f"{self.device_id}-once", password)
        return subprocess.run([*args, "-t", topic, "-m", payload], timeout=WAIT).returncode

    @contextmanager
    def connected(self) -> Iterator[subprocess.Popen[str]]:
        """One connection publishing each line written to it as a reading."""
        args = self.args("mosquitto_pub", self.device_id)
        topic = f"devices/{self.device_id}/telemetry"
        with subprocess.Popen([*args, "-t", topic, "-l"], stdin=subprocess.PIPE, text=True) as pub:
            try:
                yield pub
            finally:
                assert pub.stdin is not None
                pub.stdin.close()
                pub.wait(WAIT)

    def first_command(self) -> subprocess.Popen[str]:
        """``mosquitto_sub -d`` for one command, once its subscription is acknowledged
        (``stdbuf -oL``: its debug lines are not flushed to a pipe otherwise)."""
        args = ["stdbuf", "-oL", *self.args("mosquitto_sub", f"{self.device_id}-cmd")]
        topic = f"devices/{self.device_id}/commands"
        sub = subprocess.Popen(
            [*args, "-d", "-C", "1", "-W", str(int(WAIT * 2)), "-t", topic],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert sub.stdout is not None
        while "SUBACK" not in (line := sub.stdout.readline()):
            assert line, "mosquitto_sub ended before subscribing"
        return sub


def send(pub: subprocess.Popen[str], reading: dict[str, float]) -> None:
    assert pub.stdin is not None
    pub.stdin.write(json.dumps(reading) + "\n")
    pub.stdin.flush()


def add_device(page: Page, device_id: str, commands: str) -> str:
    """Add a device through the fleet page's dialog; the secret it shows once."""
    page.goto("/")
    page.click("#add-open")
    page.fill("#id_name", device_id.title())
    page.fill("#id_device_id", device_id)
    page.fill("#id_commands", commands)
    page.click("#add-device button[type=submit]")
    expect(page.locator("h1")).to_contain_text("is added")
    return page.locator("#secret").inner_text()


def story(base: str, mqtt: int, username: str, password: str) -> None:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=LAUNCH_MS
        )
        try:
            context = chromium.new_context(base_url=base)
            context.set_default_timeout(WAIT_MS)
            page = context.new_page()
            page.goto("/")
            page.fill("#id_username", username)
            page.fill("#id_password", password)
            page.click("button[type=submit]")
            expect(page).to_have_url(f"{base}/")

            boiler = Device(mqtt, "boiler-1", add_device(page, "boiler-1", "reboot"))
            assert f"-h 127.0.0.1 -p {mqtt} -i boiler-1 -u boiler-1" in page.inner_text("#cmd-pub")
            add_device(page, "other-1", "")
            assert boiler.publish_once("devices/boiler-1/telemetry", "{}", password="wrong") != 0

            # The threshold before the device's first connection, which loads it with the
            # device (a change to a loaded device applies within 5 s).
            page.goto("/devices/boiler-1/")
            expect(page.locator("#live-status")).to_have_text("live")
            page.fill("#threshold-metric", "temperature")
            page.fill("#threshold-limit", "30")
            page.click("#threshold-form button[type=submit]")
            expect(page.locator('[data-threshold="temperature-above"]')).to_be_visible()
            # On a phone the threshold's Edit and Delete buttons are in view, not past
            # the card's edge.
            phone = chromium.new_context(base_url=base, viewport={"width": 390, "height": 844})
            small = phone.new_page()
            small.set_default_timeout(WAIT_MS)
            small.goto(page.url)
            small.fill("#id_username", username)
            small.fill("#id_password", password)
            small.click("button[type=submit]")
            delete = small.locator('[data-threshold="temperature-above"] button.danger')
            expect(delete).to_be_visible()
            box = delete.bounding_box()
            assert box is not None
            assert box["x"] + box["width"] <= 390, box
            phone.close()

            fleet = context.new_page()
            fleet.goto("/")
            expect(fleet.locator("#live-status")).to_have_text("live")
            with boiler.connected() as telemetry:
                send(telemetry, {"temperature": 21.5})
                card = fleet.locator('[data-device="boiler-1"]')
                expect(card).to_have_attribute("data-online", "true")
                expect(card).to_contain_text("21.5")

                chart = page.locator('[data-metric="temperature"] svg')
                expect(chart).to_have_attribute("data-points", "1")
                send(telemetry, {"temperature": 22})
                expect(chart).to_have_attribute("data-points", "2")
                # A device heard from for seconds fills its chart from the left edge of
                # the plot (x = 44), not a sliver at the right edge of an empty hour.
                line = chart.locator("path.line").get_attribute("d")
                assert line is not None
                assert line.startswith("M44.0,")
                send(telemetry, {"temperature": 35})
                expect(page.locator("#alerts li.open")).to_contain_text("temperature 35 above 30")
                expect(card.locator(".badge.bad")).to_have_text("1 alert")

                commands = boiler.first_command()
                page.click("#command-form button[type=submit]")
                expect(page.locator('#commands [data-status="pending"]')).to_contain_text("reboot")
                out, _ = commands.communicate(timeout=WAIT)
                [payload] = [line for line in out.splitlines() if line.startswith("{")]
                command = json.loads(payload)
                assert (command["name"], command["args"]) == ("reboot", {})
                ack = json.dumps({"id": command["id"], "ok": True, "result": {"up": 1}})
                assert boiler.publish_once("devices/boiler-1/commands/ack", ack) == 0
                expect(page.locator(f'[data-command="{command["id"]}"]')).to_have_attribute(
                    "data-status", "acknowledged"
                )

            # Another device's topic: refused by the broker, never delivered.
            boiler.publish_once("devices/other-1/telemetry", '{"temperature": 99}')
            boiler.publish_once("devices/boiler-1/telemetry", '{"temperature": 23}')
            expect(card).to_contain_text("23")
            expect(fleet.locator('[data-device="other-1"]')).to_contain_text("no readings yet")
        finally:
            chromium.close()


async def tell(base: str, mqtt: int, processes: Sequence[GatewayProcess]) -> None:
    """The story against ``processes`` (the first printed the demo admin); then each
    stops cleanly on SIGTERM, with no traceback in its log."""
    username, password = await demo_admin(processes[0])
    try:
        await asyncio.to_thread(story, base, mqtt, username, password)
    except AssertionError as exc:
        logs = "".join(f"\n--- {process.name} log:\n{process.text}" for process in processes)
        raise AssertionError(f"{exc}{logs}") from None
    for process in processes:
        assert await process.stop() == 0, process.text
        assert "Traceback" not in process.text, process.text


async def test_add_a_device_watch_it_alert_and_command_it(tmp_path: Path) -> None:
    web, mqtt = free_port(), free_port()
    env = gateway_env(tmp_path, MQTT_PUBLIC_ADDRESS=f"127.0.0.1:{mqtt}")
    await migrate(env)
    options = ["--port", str(web), "--mqtt-port", str(mqtt), "--demo-admin"]
    async with gateway(env, "run", *options) as process:
        await process.wait_for_log("embedded MQTT broker listening")
        await tell(f"http://127.0.0.1:{web}", mqtt, [process])


@pytest.mark.redis
async def test_the_same_story_with_web_and_mqtt_processes_over_redis(tmp_path: Path) -> None:
    web, mqtt = free_port(), free_port()
    with redis_servers(tmp_path, 1) as (redis,):
        env = gateway_env(tmp_path, REDIS_URL=redis.url)
        await migrate(env)
        web_env = {**env, "MQTT_PUBLIC_ADDRESS": f"127.0.0.1:{mqtt}"}
        async with (
            gateway(web_env, "web", "--port", str(web), "--demo-admin") as web_process,
            gateway(env, "mqtt", "--host", "127.0.0.1", "--port", str(mqtt)) as mqtt_process,
        ):
            await web_process.wait_for_log("web server listening")
            await mqtt_process.wait_for_log("embedded MQTT broker listening")
            await tell(f"http://127.0.0.1:{web}", mqtt, [web_process, mqtt_process])
