"""The starter project's gateway processes, for its end-to-end tests.

``gateway_env`` is a clean environment for ``project.settings`` (no inherited Redis,
database, broker or bot token); ``migrate`` prepares its database and
``django_script`` calls the product's services on it; ``GatewayProcess``
runs one ``python -m gateway.cli ...`` and collects its output (the log on stderr and
the start summary on stdout, in one stream) as it comes, so a chatty process never
blocks on a full pipe and a test can wait for a line. ``demo_admin`` reads the
credentials ``--demo-admin`` printed, and ``log_in`` logs in with them as a browser
does, for the dashboard's pages and sockets; ``add_device`` adds a device through
the fleet page and returns the MQTT secret it shows once; ``next_points`` reads a
device socket (``/ws/devices/<id>/``) up to its next readings; ``DeviceClients`` is a
device as ``mosquitto_pub``/``mosquitto_sub`` processes (telemetry, commands, acks).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import websockets

ROOT = Path(__file__).resolve().parent.parent.parent

#: Settings a test sets itself when it wants them, never inherited from the shell.
INHERITED_NOT = {"REDIS_URL", "REDIS_LAYER", "DATABASE_URL", "MQTT_URL", "TELEGRAM_BOT_TOKEN"}


def gateway_env(data_dir: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in INHERITED_NOT}
    env.update(
        DJANGO_SETTINGS_MODULE="project.settings",
        GATEWAY_DATA_DIR=str(data_dir),
        PYTHONUNBUFFERED="1",
        **settings,
    )
    return env


async def python(env: dict[str, str], *args: str, timeout: float = 60) -> str:
    """``python <args>`` in the project's directory with ``env``; its stdout, once it
    exited 0 (killed if it takes longer than ``timeout`` seconds)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(timeout):
            out, _ = await process.communicate()
        assert process.returncode == 0, f"python {args[0]} exited {process.returncode}"
        return out.decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def migrate(env: dict[str, str]) -> None:
    await python(env, "manage.py", "migrate", "--noinput")


async def django_script(env: dict[str, str], script: str, *args: str) -> str:
    """Run ``script`` (Python, after ``django.setup()``; ``sys.argv[1:]`` is ``args``)
    in a process of the project under ``env``, as the gateway processes see the
    database: the product's services, called from outside. Its stdout."""
    return await python(env, "-c", f"import django\ndjango.setup()\n{script}", *args)


class GatewayProcess:
    """One ``python -m gateway.cli <args>`` process; ``log`` holds its output lines."""

    def __init__(self, process: asyncio.subprocess.Process, name: str) -> None:
        self.process = process
        self.name = name
        self.log: list[str] = []
        self._more = asyncio.Event()
        self._reader = asyncio.ensure_future(self._collect())

    @classmethod
    async def start(cls, env: dict[str, str], *args: str) -> GatewayProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.cli", *args,
            cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        return cls(process, f"gateway {args[0]}")

    @property
    def text(self) -> str:
        return "".join(self.log)

    async def _collect(self) -> None:
        assert self.process.stdout is not None
        try:
            while line := await self.process.stdout.readline():
                self.log.append(line.decode())
                self._more.set()
        finally:
            self._more.set()

    async def wait_for_log(self, needle: str, timeout: float = 30) -> None:
        async with asyncio.timeout(timeout):
            while not any(needle in line for line in self.log):
                if self._reader.done():
                    raise AssertionError(f"{self.name} exited early:\n{self.text}")
                self._more.clear()
                await self._more.wait()

    async def stop(self) -> int:
        """SIGTERM, then the exit status once the process and its log have ended."""
        self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            await self._reader
            return await self.process.wait()

    async def kill(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()
        async with asyncio.timeout(10):
            await asyncio.gather(self._reader, return_exceptions=True)


class DeviceClients:
    """A device as ``mosquitto_pub``/``mosquitto_sub`` processes on the broker at ``port``
    (127.0.0.1): logged in with its MQTT ``secret`` when given (the embedded broker),
    anonymous otherwise; each wait takes at most ``wait`` seconds. ``close`` kills them."""

    def __init__(self, port: int, device_id: str, secret: str | None, wait: float = 10) -> None:
        self.device_id = device_id
        self.port = port
        self.login = ["-u", device_id, "-P", secret] if secret is not None else []
        self.wait = wait
        self.processes: list[asyncio.subprocess.Process] = []

    async def start(self, tool: str, client: str, *args: str) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            *(["stdbuf", "-oL"] if tool == "mosquitto_sub" else []),
            tool, "-h", "127.0.0.1", "-p", str(self.port), "-q", "1",
            "-i", f"{self.device_id}-{client}", *self.login, *args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        self.processes.append(process)
        return process

    async def connect(self) -> asyncio.subprocess.Process:
        """One connection that stays open (the device is online while it is), and
        publishes each line written to it as telemetry."""
        topic = f"devices/{self.device_id}/telemetry"
        return await self.start("mosquitto_pub", "telemetry", "-t", topic, "-l")

    async def publish(self, telemetry: asyncio.subprocess.Process, values: dict[str, Any]) -> None:
        assert telemetry.stdin is not None
        telemetry.stdin.write(f"{json.dumps(values)}\n".encode())
        async with asyncio.timeout(self.wait):
            await telemetry.stdin.drain()

    async def subscribe_commands(self) -> asyncio.subprocess.Process:
        """``mosquitto_sub -d`` for one command, once its subscription is acknowledged."""
        topic = f"devices/{self.device_id}/commands"
        args = ["-d", "-C", "1", "-W", str(int(self.wait * 3)), "-t", topic]
        process = await self.start("mosquitto_sub", "commands", *args)
        assert process.stdout is not None
        async with asyncio.timeout(self.wait):
            while b"SUBACK" not in (line := await process.stdout.readline()):
                assert line, "mosquitto_sub ended before subscribing"
        return process

    async def command(self, subscriber: asyncio.subprocess.Process) -> dict[str, Any]:
        """The command ``subscriber`` received."""
        assert subscriber.stdout is not None
        async with asyncio.timeout(self.wait):
            while not (line := await subscriber.stdout.readline()).startswith(b"{"):
                assert line, "mosquitto_sub ended without a command"
        command: dict[str, Any] = json.loads(line)
        return command

    async def ack(self, command_id: str) -> None:
        ack = json.dumps({"id": command_id, "ok": True, "result": {"uptime": 0}})
        topic = f"devices/{self.device_id}/commands/ack"
        process = await self.start("mosquitto_pub", "ack", "-t", topic, "-m", ack)
        async with asyncio.timeout(self.wait):
            assert await process.wait() == 0

    async def close(self) -> None:
        for process in self.processes:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            await process.wait()


async def demo_admin(process: GatewayProcess) -> tuple[str, str]:
    """The user name and password ``--demo-admin`` printed in ``process``'s summary."""
    await process.wait_for_log("First admin")
    found = re.search(r"created user '([^']+)' with password (\S+)", process.text)
    assert found is not None, process.text
    return found[1], found[2]


async def log_in(base: str, username: str, password: str) -> dict[str, str]:
    """Log in through the login page, as a browser does; the headers (the session
    cookie) that make a request or a socket this user's."""
    async with httpx.AsyncClient(base_url=base, timeout=10) as browser:
        form = await browser.get("/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        assert token is not None, form.text[:500]
        answer = await browser.post(
            "/accounts/login/",
            data={"csrfmiddlewaretoken": token[1], "username": username, "password": password},
            headers={"origin": base},
        )
        assert answer.status_code == 302, answer.text[:500]
        cookies = "; ".join(f"{name}={value}" for name, value in browser.cookies.items())
    return {"Cookie": cookies}


async def add_device(base: str, headers: dict[str, str], device_id: str) -> str:
    """Add ``device_id`` on the fleet page as the session in ``headers``; its secret."""
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as browser:
        page = await browser.get("/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token is not None, page.text[:500]
        answer = await browser.post(
            "/devices/add/",
            data={"csrfmiddlewaretoken": token[1], "name": device_id, "device_id": device_id},
            headers={"origin": base},
        )
    secret = re.search(r'id="secret">([^<]+)<', answer.text)
    assert secret is not None, answer.text[:500]
    return secret[1]


async def next_points(feed: websockets.ClientConnection) -> list[list[Any]]:
    """The points of the device socket's next ``readings`` message (others skipped)."""
    while True:
        message = json.loads(await feed.recv())
        if message["type"] == "readings":
            points: list[list[Any]] = message["points"]
            return points


@contextlib.asynccontextmanager
async def gateway(env: dict[str, str], *args: str) -> AsyncIterator[GatewayProcess]:
    """A running ``gateway <args>``, killed on the way out if it is still running."""
    process = await GatewayProcess.start(env, *args)
    try:
        yield process
    finally:
        await process.kill()
