"""The chatbot's whole story over real sockets: a device alerts, a chat commands it.

A device made by the product's services (``create_thing``: the MQTT credentials a
person gets on the fleet page, and a ``reboot`` command), with a threshold set
through them (``set_threshold``), publishes telemetry with ``mosquitto_pub`` that
crosses the threshold. A logged-in headless Chromium on the device's page shows
the alert; a Telegram chat linked with ``/link <code>`` (``issue_link_code``) and
subscribed with ``/subscribe <device>`` gets it on the local Bot API server the test
runs, exactly once. The chat opens the device's card (``/status``) and presses its
command button; a ``mosquitto_sub`` on the device's commands topic receives the
command, the test acknowledges it on ``devices/<id>/commands/ack``, and both the
card (edited in place) and the browser page show it acknowledged. SIGTERM then
stops every gateway process cleanly.

The story runs twice: on the appliance (``gateway run``: one process, in-memory
layer, embedded broker, SQLite), and scaled out (``gateway web``, ``gateway mqtt``
bridging to the local Mosquitto, ``gateway telegram``, ``gateway worker
chatbot.notify``) over a private redis-server and a private PostgreSQL database.
Playwright's sync API is bound to the thread that started it: one browser thread
runs every browser step while the test's loop serves the Bot API and reads logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import psycopg
import pytest
from playwright.sync_api import Page, Playwright, expect, sync_playwright

from gateway.botapi import BotAPIServer
from tests.example.test_browser import CHROMIUM, CHROMIUM_ARGS, LAUNCH_MS, WAIT_MS
from tests.gateway.layers.redis_servers import redis_servers
from tests.ports import free_port
from tests.project.processes import (
    DeviceClients,
    GatewayProcess,
    demo_admin,
    django_script,
    gateway,
    gateway_env,
    migrate,
)

T = TypeVar("T")

#: Seconds any one step of the story may take.
WAIT = WAIT_MS / 1000
#: The private chat (its user has the same id) that links itself to the admin.
CHAT = 4242
METRIC, LIMIT, HOT = "temperature", 30, 35
COMMAND = "reboot"
POSTGRES = "postgres://postgres@127.0.0.1:5432"
ALERT_SIGN = "\u26a0"

#: The device, its threshold and a link code, made by the product's services; prints
#: the device's MQTT secret and the code as JSON.
SETUP = f"""
import json, sys
from django.contrib.auth import get_user_model
from gateway.telegram.accounts import issue_link_code
from project.iot.services import create_thing, set_threshold

username, device = sys.argv[1:]
user = get_user_model().objects.get(username=username)
thing, secret = create_thing(user, device, device.title(), commands=[{COMMAND!r}])
set_threshold(thing, {METRIC!r}, "above", {LIMIT})
print(json.dumps({{"secret": secret, "code": issue_link_code(user)}}))
"""


@dataclasses.dataclass
class Deployment:
    processes: list[GatewayProcess]
    env: dict[str, str]
    web_port: int
    #: Where devices connect: the embedded broker, or the Mosquitto bridged to.
    mqtt_port: int
    #: Whether devices log in to the embedded broker (Mosquitto has its own logins).
    embedded: bool

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def logs(self) -> str:
        return "".join(f"\n--- {process.name} log:\n{process.text}" for process in self.processes)

    async def stop(self) -> None:
        """SIGTERM each process: each exits 0 and never logged a traceback."""
        codes = await asyncio.gather(*(process.stop() for process in self.processes))
        for process, code in zip(self.processes, codes, strict=True):
            assert code == 0, f"{process.name} exited {code}:\n{process.text}"
            assert "Traceback" not in process.text, f"{process.name}:\n{process.text}"


@contextlib.asynccontextmanager
async def postgres_database(name: str) -> AsyncIterator[str]:
    """A private, empty PostgreSQL database; its URL. Dropped on the way out."""

    def execute(sql: str) -> None:
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as connection:
            connection.execute(sql)

    await asyncio.to_thread(execute, f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        await asyncio.to_thread(execute, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.asynccontextmanager
async def appliance(tmp_path: Path, bot: dict[str, str]) -> AsyncIterator[Deployment]:
    env = gateway_env(tmp_path, **bot)
    await migrate(env)
    web_port, mqtt_port = free_port(), free_port()
    options = ["--port", str(web_port), "--mqtt-port", str(mqtt_port), "--no-flood-control"]
    async with gateway(env, "run", *options, "--demo-admin") as process:
        deployment = Deployment([process], env, web_port, mqtt_port, embedded=True)
        for ready in ("web server listening", "embedded MQTT broker listening", "serving by"):
            await process.wait_for_log(ready)
        yield deployment


@contextlib.asynccontextmanager
async def scaled(
    tmp_path: Path, bot: dict[str, str], mosquitto_url: str, unique: str
) -> AsyncIterator[Deployment]:
    async with postgres_database(f"story_{unique}") as database:
        with redis_servers(tmp_path, 1) as (redis,):
            env = gateway_env(
                tmp_path, **bot, DATABASE_URL=database, REDIS_URL=redis.url, MQTT_URL=mosquitto_url
            )
            await migrate(env)
            web_port = free_port()
            async with (
                gateway(env, "web", "--port", str(web_port), "--demo-admin") as web,
                gateway(env, "mqtt") as mqtt,
                gateway(env, "telegram", "--no-flood-control") as telegram,
                gateway(env, "worker", "chatbot.notify") as worker,
            ):
                processes = [web, mqtt, telegram, worker]
                mqtt_port = urlsplit(mosquitto_url).port or 1883
                deployment = Deployment(processes, env, web_port, mqtt_port, embedded=False)
                await web.wait_for_log("web server listening")
                await mqtt.wait_for_log("mqtt bridge serving")
                await telegram.wait_for_log("serving by")
                await worker.wait_for_log("worker listening on chatbot.notify")
                yield deployment


SCALED = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.mqtt]


# ``api`` (the local Bot API server) and ``token`` (its bot) come from conftest.py.
@pytest.fixture(params=["appliance", pytest.param("redis", marks=SCALED)])
async def deployment(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    api: BotAPIServer,
    token: str,
    mosquitto_url: str,
    unique: str,
) -> AsyncIterator[Deployment]:
    bot = {"TELEGRAM_BOT_TOKEN": token, "TELEGRAM_API_URL": api.base_url}
    if request.param == "appliance":
        context = appliance(tmp_path, bot)
    else:
        context = scaled(tmp_path, bot, mosquitto_url, unique)
    async with context as deployment:
        yield deployment


class Dashboard:
    """A headless Chromium, logged in, on the device's page; every call runs in the one
    thread Playwright's sync API was started from."""

    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="chromium")
        self._playwright: Playwright | None = None
        self.page: Page | None = None

    async def call(self, step: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, step, *args)

    def open(self, base: str, username: str, password: str, device_id: str) -> None:
        self._playwright = sync_playwright().start()
        chromium = self._playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=LAUNCH_MS
        )
        context = chromium.new_context(base_url=base)
        context.set_default_timeout(WAIT_MS)
        self.page = page = context.new_page()
        page.goto(f"/devices/{device_id}/")
        page.fill("#id_username", username)
        page.fill("#id_password", password)
        page.click("button[type=submit]")
        expect(page).to_have_url(f"{base}/devices/{device_id}/", timeout=WAIT_MS)
        expect(page.locator("#live-status")).to_have_text("live", timeout=WAIT_MS)

    def shows_alert(self, text: str) -> None:
        assert self.page is not None
        expect(self.page.locator("#alerts li.open")).to_contain_text(text, timeout=WAIT_MS)

    def shows_command(self, command_id: str, status: str) -> None:
        assert self.page is not None
        command = self.page.locator(f'[data-command="{command_id}"]')
        expect(command).to_have_attribute("data-status", status, timeout=WAIT_MS)
        expect(command).to_contain_text(COMMAND, timeout=WAIT_MS)

    def close(self) -> None:
        if self._playwright is not None:
            self._playwright.stop()  # closes the browser it launched

    async def shutdown(self) -> None:
        try:
            await self.call(self.close)
        finally:
            self._thread.shutdown(wait=True)


@dataclasses.dataclass
class Chat:
    """The private chat with the bot, on the local Bot API server."""

    api: BotAPIServer
    token: str

    def say(self, text: str) -> None:
        self.api.user_message(self.token, text, chat_id=CHAT)

    def sent(self) -> list[dict[str, Any]]:
        return self.api.sent(self.token, CHAT)

    async def nth(self, count: int) -> dict[str, Any]:
        """The ``count``-th message the bot sent here (1-based), once it is there."""
        return (await self.api.wait_sent(self.token, CHAT, count, timeout=WAIT))[count - 1]

    async def until(self, predicate: Callable[[], Any]) -> None:
        await self.api.wait_for(self.token, predicate, timeout=WAIT)

    def alerts(self) -> list[dict[str, Any]]:
        return [message for message in self.sent() if message["text"].startswith(ALERT_SIGN)]

    def current(self, message_id: int) -> dict[str, Any]:
        """Message ``message_id`` as it reads now (edits show)."""
        [message] = [message for message in self.sent() if message["message_id"] == message_id]
        return message


def buttons(message: dict[str, Any]) -> dict[str, str]:
    """A message's inline buttons: label -> callback data."""
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return {button["text"]: button["callback_data"] for row in rows for button in row}


async def test_an_alert_reaches_the_chat_once_and_its_command_button_is_acknowledged(
    deployment: Deployment, api: BotAPIServer, token: str, unique: str
) -> None:
    username, password = await demo_admin(deployment.processes[0])
    device_id = f"boiler-{unique}"
    made = json.loads(await django_script(deployment.env, SETUP, username, device_id))
    secret = made["secret"] if deployment.embedded else None  # Mosquitto: its own logins
    device = DeviceClients(deployment.mqtt_port, device_id, secret, wait=WAIT)
    dashboard = Dashboard()
    chat = Chat(api, token)
    try:
        await dashboard.call(dashboard.open, deployment.base, username, password, device_id)

        chat.say(f"/link {made['code']}")
        assert (await chat.nth(1))["text"].startswith(f"Linked to {username}")
        chat.say(f"/subscribe {device_id}")
        assert (await chat.nth(2))["text"] == f"Alerts of {device_id.title()} come here now."
        assert "Alerts come to this chat" in (await chat.nth(3))["text"]

        # The device connects (and stays connected: online) and crosses the threshold.
        commands = await device.subscribe_commands()
        telemetry = await device.connect()
        await device.publish(telemetry, {METRIC: HOT})

        await chat.until(chat.alerts)
        [alert] = chat.alerts()
        assert alert["text"] == f"{ALERT_SIGN} {device_id.title()}: {METRIC} {HOT} > {LIMIT}"
        await dashboard.call(dashboard.shows_alert, f"{METRIC} {HOT} above {LIMIT}")

        # The chat opens the device's card and presses its command button.
        chat.say(f"/status {device_id}")
        card = await chat.nth(len(chat.sent()) + 1)
        assert card["text"].startswith(f"{device_id.title()} ({device_id})"), card["text"]
        api.press_button(token, card, buttons(card)[f"\u25b6 {COMMAND}"])

        command = await device.command(commands)
        assert (command["name"], command["args"]) == (COMMAND, {})
        [toast] = await api.wait_calls(token, "answerCallbackQuery", timeout=WAIT)
        assert toast["text"] == f"{COMMAND}: sent, waiting for the device"
        pending = f"Last command: {COMMAND}: sent, waiting for the device"
        await chat.until(lambda: pending in chat.current(card["message_id"])["text"])
        await dashboard.call(dashboard.shows_command, command["id"], "pending")

        await device.ack(command["id"])
        acknowledged = f"Last command: {COMMAND}: acknowledged"
        await chat.until(lambda: acknowledged in chat.current(card["message_id"])["text"])
        await dashboard.call(dashboard.shows_command, command["id"], "acknowledged")

        # The acknowledgement took the alert's path (IoT side -> chatbot.notify -> Telegram)
        # after the alert did: a second copy of the alert would be here by now.
        assert len(chat.alerts()) == 1, chat.sent()
        assert [message["message_id"] for message in chat.sent()].count(card["message_id"]) == 1
    except (AssertionError, TimeoutError) as exc:
        raise AssertionError(f"{exc!r}\nchat: {chat.sent()}{deployment.logs()}") from exc
    finally:
        await dashboard.shutdown()
        await device.close()
    await deployment.stop()
