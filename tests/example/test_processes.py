"""The example chat project as separate processes linked by the Redis channel layer.

Two ``gateway web`` processes and one ``gateway worker chat.log`` process share
one Redis (under a key prefix unique to the test) and this test's PostgreSQL
database. Alice logs in through the admin form of one web process, Bob through
the other's; each opens the chat room on the process they logged in to, so every
message crosses processes through Redis groups, and every message reaches the
worker process through the ``chat.log`` channel.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin

from gateway.layers.redis import RedisChannelLayer
from tests.example.consumers import LOG_CHANNEL
from tests.protocols.websocket.test_example import log_in

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent.parent

#: Seconds any one wait may take: a process starting, a message arriving, a clean exit.
WAIT = 20.0


async def spawn(
    *args: str, env: dict[str, str], pass_fds: tuple[int, ...] = ()
) -> asyncio.subprocess.Process:
    """``gateway ARGS...`` as users run it, its log (stderr) readable on stdout."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "--log-level", "info", *args,
        cwd=ROOT, env=env, pass_fds=pass_fds, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip


class GatewayProcess:
    """One ``gateway`` command in its own process; its log is read as it is written."""

    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.process = process
        self.lines: list[str] = []
        self._ended = False
        self._grew = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    @property
    def log(self) -> str:
        return "".join(self.lines)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            async with self._grew:
                self.lines.append(line.decode(errors="replace"))
                self._grew.notify_all()
        async with self._grew:
            self._ended = True
            self._grew.notify_all()

    async def wait_for(self, text: str) -> str:
        """The first log line containing ``text``, once the process has written it."""
        try:
            async with asyncio.timeout(WAIT), self._grew:
                while True:
                    for line in self.lines:
                        if text in line:
                            return line
                    if self._ended:
                        break
                    await self._grew.wait()
        except TimeoutError:
            raise AssertionError(f"{self.name} did not log {text!r}:\n{self.log}") from None
        raise AssertionError(f"{self.name} ended before logging {text!r}:\n{self.log}")

    async def stop(self) -> int:
        """SIGTERM, then the exit code once the process has exited and its log is read."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(WAIT):
            code = await self.process.wait()
            await self._reader
        return code

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()
        await self._reader


def database_url() -> str:
    """The URL of the test database pytest-django created, for the other processes."""
    db = connection.settings_dict
    assert connection.vendor == "postgresql", "processes share only a server database"
    user = quote(db["USER"] or "", safe="")
    password = f":{quote(str(db['PASSWORD']), safe='')}" if db["PASSWORD"] else ""
    return f"postgres://{user}{password}@{db['HOST']}:{db['PORT']}/{quote(db['NAME'], safe='')}"


@pytest.fixture
async def example_env(redis_url: str, unique: str) -> AsyncIterator[dict[str, str]]:
    """The environment of the example's processes; their Redis keys are deleted after."""
    yield dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="tests.example.settings_redis",
        GATEWAY_TEST_DATABASE_URL=database_url(),
        GATEWAY_TEST_REDIS_URL=redis_url,
        GATEWAY_TEST_REDIS_PREFIX=unique,
    )
    layer = RedisChannelLayer(hosts=[redis_url], prefix=unique)
    await layer.flush()  # only this test's prefix
    await layer.close()


class WebProcess(GatewayProcess):
    def __init__(self, name: str, process: asyncio.subprocess.Process, port: int) -> None:
        super().__init__(name, process)
        self.base = f"http://127.0.0.1:{port}"
        self.room_url = f"ws://127.0.0.1:{port}/ws/chat"


async def start_web(name: str, env: dict[str, str]) -> WebProcess:
    """``gateway web`` serving the example on a listening socket it inherits."""
    with socket.create_server(("127.0.0.1", 0)) as listening:
        fd = listening.fileno()
        process = await spawn(
            "web", "tests.example.asgi:application", f"--fd={fd}", env=env, pass_fds=(fd,)
        )
        return WebProcess(name, process, listening.getsockname()[1])


@asynccontextmanager
async def example_processes(
    env: dict[str, str],
) -> AsyncIterator[tuple[WebProcess, WebProcess, GatewayProcess]]:
    """Web processes A and B and the chat log worker, ready; killed if still running after."""
    started: list[GatewayProcess] = []
    try:
        web_a = await start_web("web A", env)
        started.append(web_a)
        web_b = await start_web("web B", env)
        started.append(web_b)
        worker = GatewayProcess("worker", await spawn("worker", LOG_CHANNEL, env=env))
        started.append(worker)
        await asyncio.gather(
            web_a.wait_for("web server listening on"),
            web_b.wait_for("web server listening on"),
            worker.wait_for(f"worker listening on {LOG_CHANNEL}"),
        )
        yield web_a, web_b, worker
    finally:
        for process in started:
            await process.kill()


async def enter_room(
    stack: AsyncExitStack, web: WebProcess, room: str, session: str
) -> ClientConnection:
    """A browser tab with ``session``'s cookie in ``room`` on ``web``."""
    return await stack.enter_async_context(
        connect(
            f"{web.room_url}/{room}/",
            origin=Origin(web.base),
            additional_headers={"Cookie": f"{settings.SESSION_COOKIE_NAME}={session}"},
            open_timeout=WAIT,
        )
    )


async def test_users_on_two_web_processes_chat_and_a_worker_process_logs(
    example_env: dict[str, str], unique: str
) -> None:
    async with example_processes(example_env) as (web_a, web_b, worker):
        alice = await log_in(web_a.base, "alice")
        bob = await log_in(web_b.base, "bob")
        async with AsyncExitStack() as stack:
            alices_tab = await enter_room(stack, web_a, unique, alice)
            bobs_tab = await enter_room(stack, web_b, unique, bob)

            await alices_tab.send(json.dumps({"message": "hello bob"}))
            async with asyncio.timeout(WAIT):
                for tab in (alices_tab, bobs_tab):
                    assert json.loads(await tab.recv()) == {
                        "username": "alice",
                        "message": "hello bob",
                    }
            await bobs_tab.send(json.dumps({"message": "hi alice"}))
            async with asyncio.timeout(WAIT):
                for tab in (alices_tab, bobs_tab):
                    assert json.loads(await tab.recv()) == {
                        "username": "bob",
                        "message": "hi alice",
                    }

        for said in ("alice: hello bob", "bob: hi alice"):  # in either order
            await worker.wait_for(f"tests.example.chat: [{unique}] {said}")
        codes = await asyncio.gather(web_a.stop(), web_b.stop(), worker.stop())

    assert list(codes) == [0, 0, 0], "\n".join(p.log for p in (web_a, web_b, worker))
    for process in (web_a, web_b, worker):
        assert "ERROR" not in process.log, process.log
        assert "Traceback" not in process.log, process.log
    for web in (web_a, web_b):  # each user was served by their own process...
        assert web.log.count('"POST /admin/login/ HTTP/1.1" 302') == 1, web.log
        assert web.log.count(f"WebSocket /ws/chat/{unique}/ accept") == 1, web.log
        assert "tests.example.chat" not in web.log  # ...and the worker process alone logs
