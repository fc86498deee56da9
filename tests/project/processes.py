"""The starter project's gateway processes, for its end-to-end tests.

``gateway_env`` is a clean environment for ``project.settings`` (no inherited Redis,
database, broker or bot token); ``migrate`` prepares its database; ``GatewayProcess``
runs one ``python -m gateway.cli ...`` and collects its log (stderr) as it comes, so
a chatty process never blocks on a full pipe and a test can wait for a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent

#: Settings a test sets itself when it wants them, never inherited from the shell.
INHERITED_NOT = {"REDIS_URL", "DATABASE_URL", "MQTT_URL", "TELEGRAM_BOT_TOKEN"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def gateway_env(data_dir: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in INHERITED_NOT}
    env.update(
        DJANGO_SETTINGS_MODULE="project.settings",
        GATEWAY_DATA_DIR=str(data_dir),
        PYTHONUNBUFFERED="1",
        **settings,
    )
    return env


async def migrate(env: dict[str, str]) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "manage.py", "migrate", "--noinput",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with asyncio.timeout(60):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


class GatewayProcess:
    """One ``python -m gateway.cli <args>`` process; ``log`` holds its stderr lines."""

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
            cwd=ROOT, env=env, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        return cls(process, f"gateway {args[0]}")

    @property
    def text(self) -> str:
        return "".join(self.log)

    async def _collect(self) -> None:
        assert self.process.stderr is not None
        try:
            while line := await self.process.stderr.readline():
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


@contextlib.asynccontextmanager
async def gateway(env: dict[str, str], *args: str) -> AsyncIterator[GatewayProcess]:
    """A running ``gateway <args>``, killed on the way out if it is still running."""
    process = await GatewayProcess.start(env, *args)
    try:
        yield process
    finally:
        await process.kill()
