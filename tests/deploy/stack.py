"""The compose stack as local processes: every application service from its exact
``command`` and ``environment``, no Docker.

What Docker would give each container, this gives each process:

- **the image**: the Dockerfile's ``ENV``, ``ENTRYPOINT`` and ``CMD``
  (:mod:`tests.deploy.compose`); ``gateway`` is this checkout's ``python -m
  gateway.cli`` and ``/app`` (``PYTHONPATH``, the working directory) the checkout;
  each replica gets a ``GATEWAY_DATA_DIR`` of its own, as each container has its own
  file system;
- **its network**: a container listens on every interface of its own; a process
  here listens on 127.0.0.1 (``--host 0.0.0.0`` becomes 127.0.0.1) on a spare port
  for each port it names (``--port``, ``--health-port``, ``BOTAPI_PORT``);
- **service names**: ``redis:6379``, ``mosquitto:1883``, ``botapi:8081`` and
  ``postgres:5432`` in its environment become the local address of that service;
- **the infrastructure services**: a private ``redis-server`` run with the
  compose ``redis`` command (its password), a private ``mosquitto`` with the
  repository's config file, password file and ACL (device authentication on), and a
  private database on the local PostgreSQL (whose superuser, with trust
  authentication, stands in for the compose's ``gateway`` role).

The ``proxy`` (nginx) is not started: clients connect to each web replica directly,
which is what the tests need (a dashboard on either replica).

A ``.env`` for the run comes from ``.env.example`` with fresh secrets and a private
shared-subscription group. :meth:`LocalStack.up` starts the services in their
``depends_on`` order and waits for each to pass its own compose health check;
:meth:`LocalStack.down` kills whatever still runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis

from tests.deploy.compose import ENV_EXAMPLE, ROOT, Stack, read_env_file
from tests.gateway.layers.redis_servers import RedisServer
from tests.ports import free_port
from tests.project.chatbot.test_story import postgres_database
from tests.project.processes import GatewayProcess

#: Seconds a service may take to start and pass its health check, and any one step.
WAIT = 30.0
#: Seconds a service may take to start, on a busy 2-core machine.
START = 60.0
#: How often state without events is looked at (see :func:`eventually`).
PROBE_EVERY = 0.1
#: How often a health check is run again while it fails (each is a new process).
CHECK_EVERY = 0.5
#: What each service logs once it serves.
READY = {
    "botapi": "local Bot API server",
    **{name: "is ready (pid" for name in ("web", "mqtt", "telegram", "worker")},
}
#: Host environment a process needs on this machine (Docker images bring their own).
HOST_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
#: Where each service's port is reached, as "<service>:<container port>".
ADDRESS = re.compile(r"\b(redis|mosquitto|botapi|postgres):(\d+)\b")
#: Application services started, in depends_on order (migrate runs to completion first).
APPLICATION = ("botapi", "web", "mqtt", "worker", "telegram")


async def eventually(
    what: str,
    probe: Callable[[], Awaitable[bool]],
    every: float = PROBE_EVERY,
    timeout: float = WAIT,
    explain: Callable[[], str] = str,
) -> None:
    """Until ``probe()`` says yes, asking every ``every`` seconds: for state that sends
    no event (a health check, as Docker runs it on an interval; a table; what the Bot
    API server has received). AssertionError naming ``what`` after ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            while not await probe():  # noqa: ASYNC110 - nothing to await but the next look
                await asyncio.sleep(every)
    except TimeoutError:
        raise AssertionError(f"{what} not within {timeout:g} s{explain()}") from None


def test_variables(unique: str) -> dict[str, str]:
    """``.env.example`` with fresh secrets, as an operator's ``.env`` would be."""
    variables = read_env_file(ENV_EXAMPLE)
    for key in ("SECRET_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD", "MQTT_GATEWAY_PASSWORD"):
        variables[key] = secrets.token_urlsafe(24)
    variables["TELEGRAM_BOT_TOKEN"] = f"424242:{secrets.token_urlsafe(24)}"
    variables["MQTT_SHARE_GROUP"] = unique
    return variables


class Process(GatewayProcess):
    """A process whose output lines can be counted and waited for."""

    def count(self, needle: str) -> int:
        return sum(needle in line for line in self.log)

    async def wait_for_count(self, needle: str, count: int, timeout: float = WAIT) -> None:
        """Until ``count`` lines contain ``needle``."""
        async with asyncio.timeout(timeout):
            while self.count(needle) < count:
                if self._reader.done():
                    raise AssertionError(f"{self.name} exited:\n{self.text}")
                self._more.clear()
                await self._more.wait()


class ComposeRedis(RedisServer):
    """The compose ``redis`` service's command, on a spare port of 127.0.0.1."""

    def __init__(self, directory: Path, command: list[str], password: str) -> None:
        super().__init__(directory, extra_args=command[1:])
        self.password = password

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, password=self.password, socket_timeout=5)


class Mosquitto:
    """The compose ``mosquitto`` service: the repository's config, with the password
    file its entrypoint writes (the ``gateway`` user), on a spare port."""

    def __init__(self, directory: Path, gateway_password: str) -> None:
        self.directory = directory
        self.port = free_port()
        self.passwd = directory / "passwd"
        self.gateway_password = gateway_password
        self.process: Process | None = None

    def config(self) -> str:
        text = (ROOT / "deploy/mosquitto/mosquitto.conf").read_text()
        text = text.replace("listener 1883", f"listener {self.port} 127.0.0.1")
        text = text.replace("/mosquitto/config/", f"{ROOT}/deploy/mosquitto/")
        text = text.replace("/mosquitto/data/", f"{self.directory}/")
        if os.geteuid() == 0:  # as root, mosquitto would drop to its own user
            text += "user root\n"
        return text

    async def start(self) -> None:
        self.directory.mkdir(exist_ok=True)
        (self.directory / "mosquitto.conf").write_text(self.config())
        await run(
            "mosquitto_passwd", "-c", "-b", str(self.passwd), "gateway", self.gateway_password
        )
        process = await asyncio.create_subprocess_exec(
            "mosquitto", "-c", str(self.directory / "mosquitto.conf"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        self.process = Process(process, "mosquitto")
        await self.process.wait_for_log("running", WAIT)

    async def add_device(self, device_id: str, secret: str) -> None:
        """What docs/deploy.md tells an operator to do for a new device."""
        assert self.process is not None
        await run("mosquitto_passwd", "-b", str(self.passwd), device_id, secret)
        reloads = self.process.count("Reloading config")
        self.process.process.send_signal(signal.SIGHUP)
        await self.process.wait_for_count("Reloading config", reloads + 1)

    async def kill(self) -> None:
        if self.process is not None:
            await self.process.kill()


async def run(*argv: str) -> None:
    process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.DEVNULL)
    try:
        async with asyncio.timeout(WAIT):
            assert await process.wait() == 0, argv
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@dataclass
class Replica:
    """One process of a service; ``ports`` maps its container ports to local ones."""

    service: str
    index: int
    process: Process
    ports: dict[str, int]

    @property
    def name(self) -> str:
        return f"{self.service}-{self.index}"

    def port(self, container_port: str | int) -> int:
        return self.ports[str(container_port)]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port(8000)}"


@dataclass
class LocalStack:
    tmp_path: Path
    variables: dict[str, str]
    stack: Stack
    redis: ComposeRedis
    mosquitto: Mosquitto
    database: str
    replicas: dict[str, list[Replica]] = field(default_factory=dict)
    #: Processes started per service (replicas, and one-shot runs), for their names.
    started: dict[str, int] = field(default_factory=dict)

    # --- mapping a container to a process ------------------------------------------

    def addresses(self) -> dict[str, str]:
        local = {
            "redis:6379": f"127.0.0.1:{self.redis.port}",
            "mosquitto:1883": f"127.0.0.1:{self.mosquitto.port}",
            "postgres:5432": "127.0.0.1:5432",
        }
        for replica in self.replicas.get("botapi", []):
            local["botapi:8081"] = f"127.0.0.1:{replica.port(8081)}"
        return local

    def environment(self, service: str, data_dir: Path, ports: dict[str, int]) -> dict[str, str]:
        env = {key: os.environ[key] for key in HOST_ENV if key in os.environ}
        addresses = self.addresses()
        for key, value in self.stack.environment(service).items():
            value = ADDRESS.sub(lambda match: addresses[match[0]], value)
            if key == "DATABASE_URL":
                value = self.local_database(value)
            env[key] = value
        env.update(PYTHONPATH=str(ROOT), GATEWAY_DATA_DIR=str(data_dir))
        if "BOTAPI_PORT" in env:
            env["BOTAPI_HOST"] = "127.0.0.1"
            env["BOTAPI_PORT"] = str(ports.setdefault(env["BOTAPI_PORT"], free_port()))
        return env

    def local_database(self, url: str) -> str:
        """The compose's ``postgres://gateway:<password>@<postgres>/gateway`` as this
        machine's PostgreSQL superuser, on the private database."""
        parts = urlsplit(url)
        netloc = f"postgres:{parts.password}@{parts.hostname}:{parts.port}"
        return urlunsplit(
            parts._replace(netloc=netloc, path=f"/{urlsplit(self.database).path[1:]}")
        )

    def argv(self, service: str, ports: dict[str, int], extra: tuple[str, ...] = ()) -> list[str]:
        argv = [*self.stack.argv(service), *extra]
        for flag in ("--port", "--health-port"):
            if flag in argv:
                at = argv.index(flag) + 1
                argv[at] = str(ports.setdefault(argv[at], free_port()))
        if "--host" in argv and argv[argv.index("--host") + 1] == "0.0.0.0":
            argv[argv.index("--host") + 1] = "127.0.0.1"
        return local_command(argv)

    # --- running services -----------------------------------------------------------

    async def start(self, service: str, *extra: str) -> Replica:
        """One more replica of ``service``, once it passes its compose health check."""
        index = self.started[service] = self.started.get(service, 0) + 1
        ports: dict[str, int] = {}
        data_dir = self.tmp_path / f"{service}-{index}"
        data_dir.mkdir()
        env = self.environment(service, data_dir, ports)
        argv = self.argv(service, ports, extra)
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=ROOT, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        replica = Replica(service, index, Process(process, f"{service}-{index}"), ports)
        self.replicas.setdefault(service, []).append(replica)
        if "healthcheck" in self.stack.services[service]:
            await self.healthy(replica)
        return replica

    async def once(self, service: str, *command: str, **extra_env: str) -> str:
        """Run ``service`` to completion (``migrate``, or ``run --rm`` with ``command``)."""
        ports: dict[str, int] = {}
        self.started[service] = self.started.get(service, 0) + 1
        data_dir = self.tmp_path / f"{service}-{self.started[service]}"
        data_dir.mkdir()
        env = {**self.environment(service, data_dir, ports), **extra_env}
        argv = self.argv(service, ports)
        if command:
            argv = [*local_command(self.stack.services[service]["entrypoint"]), *command]
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=ROOT, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            async with asyncio.timeout(WAIT * 2):
                output, _ = await process.communicate()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert process.returncode == 0, f"{service} {command} failed:\n{output.decode()}"
        return output.decode()

    def health_check(self, replica: Replica) -> list[str]:
        test = self.stack.services[replica.service]["healthcheck"]["test"]
        assert test[0] == "CMD", test
        argv = list(test[1:])
        if "--port" in argv:
            at = argv.index("--port") + 1
            argv[at] = str(replica.port(argv[at]))
        if "urllib" in " ".join(argv):  # the botapi check names its port in its code
            argv[-1] = argv[-1].replace(":8081/", f":{replica.port(8081)}/")
        return local_command(argv)

    async def check(self, replica: Replica) -> tuple[int, str]:
        """The replica's compose health check, run once: its exit status and output."""
        process = await asyncio.create_subprocess_exec(
            *self.health_check(replica), cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            async with asyncio.timeout(WAIT):
                output, _ = await process.communicate()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert process.returncode is not None
        return process.returncode, output.decode()

    async def healthy(self, replica: Replica) -> None:
        """Once the replica says it serves, its health check passes (run again every
        :data:`CHECK_EVERY` seconds, as Docker does on an interval, while it does not)."""
        await replica.process.wait_for_log(READY[replica.service], START)

        async def passes() -> bool:
            if replica.process.process.returncode is not None:
                raise AssertionError(f"{replica.name} exited:\n{replica.process.text}")
            return (await self.check(replica))[0] == 0

        await eventually(
            f"{replica.name} healthy", passes, CHECK_EVERY, START, lambda: replica.process.text
        )

    async def up(self, *then: Awaitable[Any]) -> None:
        """Every application service, as many replicas as the compose file says, started
        as Compose would: each once what it depends on is healthy (or, for
        ``migrate``, completed); ``then`` runs once ``migrate`` has completed."""

        async def service(name: str) -> None:
            await asyncio.gather(*(self.start(name) for _ in range(self.stack.replicas(name))))

        botapi = asyncio.ensure_future(service("botapi"))
        try:
            await self.once("migrate")
            others = [service(name) for name in APPLICATION if name not in ("botapi", "telegram")]
            await asyncio.gather(*others, *then, self.after(botapi, service("telegram")))
        finally:
            botapi.cancel()
            await asyncio.gather(botapi, return_exceptions=True)

    @staticmethod
    async def after(first: Awaitable[None], then: Awaitable[None]) -> None:
        await first
        await then

    def processes(self) -> Iterator[Replica]:
        for replicas in self.replicas.values():
            yield from replicas

    def logs(self, tail: int = 20) -> str:
        return "".join(
            f"\n--- {replica.name} (last {tail} lines):\n" + "".join(replica.process.log[-tail:])
            for replica in self.processes()
        )

    async def stop(self) -> None:
        """SIGTERM every running replica: each exits 0 without a traceback."""
        running = [r for r in self.processes() if r.process.process.returncode is None]
        codes = await asyncio.gather(*(replica.process.stop() for replica in running))
        for replica, code in zip(running, codes, strict=True):
            assert code == 0, f"{replica.name} exited {code}:\n{replica.process.text}"
            assert "Traceback" not in replica.process.text, replica.process.text

    async def down(self) -> None:
        await asyncio.gather(*(replica.process.kill() for replica in self.processes()))


def local_command(argv: list[str]) -> list[str]:
    """A container's argv as a process of this checkout."""
    if argv[0] == "gateway":
        return [sys.executable, "-m", "gateway.cli", *argv[1:]]
    if argv[0] == "python":
        return [sys.executable, *argv[1:]]
    return argv


@contextlib.asynccontextmanager
async def local_stack(tmp_path: Path, unique: str) -> AsyncIterator[LocalStack]:
    """The infrastructure up, nothing else yet (see :meth:`LocalStack.up`)."""
    variables = test_variables(unique)
    stack = Stack.load(variables)
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    redis_server = ComposeRedis(
        redis_dir, stack.services["redis"]["command"], variables["REDIS_PASSWORD"]
    )
    mosquitto = Mosquitto(tmp_path / "mosquitto", variables["MQTT_GATEWAY_PASSWORD"])
    async with postgres_database(f"deploy_{unique}") as database:
        await asyncio.to_thread(redis_server.start)
        try:
            await mosquitto.start()
            local = LocalStack(tmp_path, variables, stack, redis_server, mosquitto, database)
            try:
                yield local
            finally:
                await local.down()
        finally:
            await mosquitto.kill()
            await asyncio.to_thread(redis_server.kill)
