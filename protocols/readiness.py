"""Liveness and readiness of a gateway process, for orchestrators (docs/deploy.md).

Two probes, answered by gateway's web server itself before the application sees the
request (:class:`HealthRoutes`), so a project needs no URL for them:

- ``/healthz`` (alive): the process's event loop answers. ``200 ok``.
- ``/readyz`` (ready for traffic): everything the process needs answers now: the
  channel layer (Redis layers are PINGed), the database (``SELECT 1``) and each
  service's own dependency (:meth:`protocols.service.Service.ready`: the MQTT
  broker link, the Bot API). ``200 ready``, else ``503`` with one line per reason.

Processes without a web server (``gateway mqtt``, ``telegram``, ``worker``) serve
the same two paths on ``--health-port``; ``gateway check`` asks either and exits
non-zero with the reason, for health checks run inside a container.

Every check has :data:`CHECK_TIMEOUT` seconds; a check that does not answer in time
is a reason, not a hang. The database is asked in one thread of its own, and a
probe arriving while the previous database check still runs (a database that does
not answer) waits for that one instead of starting another, so an outage cannot
pile up threads or connections. Reasons never contain a secret: they are built from
the layer's and the links' own errors, which name hosts, never passwords.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.client
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from typing import cast

from gateway import DEFAULT_CHANNEL_LAYER
from gateway.types import Message, Receive, Scope, Send
from gateway.web.events import close_message, response_body, response_start
from protocols.service import Service

#: Seconds each check may take before it counts as failed.
CHECK_TIMEOUT = 2.0
LIVE_PATH = "/healthz"
READY_PATH = "/readyz"
#: The paths :class:`HealthRoutes` answers itself (with an empty ``root_path``).
PROBE_PATHS = (LIVE_PATH, READY_PATH)

#: A check: None when fine, else the reason in a few words.
Check = Callable[[], Awaitable[str | None]]


class Readiness:
    """The checks behind ``/readyz``: the layer, the database and ``services``' own.

    ``layer``/``database`` False leave those out (a server running an application
    that is not a Django project's, in tests). Services are added as the process
    builds them (:meth:`watch`), so one ``Readiness`` covers a whole ``gateway run``.
    """

    def __init__(
        self,
        services: Sequence[Service] = (),
        *,
        layer: bool = True,
        database: bool = True,
        timeout: float = CHECK_TIMEOUT,
    ) -> None:
        self.services = list(services)
        self.timeout = timeout
        self.checks: list[tuple[str, Check]] = []
        if layer:
            self.checks.append(("channel layer", check_layer))
        if database:
            self.checks.append(("database", self._check_database))
        self._db_thread: concurrent.futures.ThreadPoolExecutor | None = None
        self._db_check: asyncio.Future[None] | None = None

    def watch(self, service: Service) -> None:
        if service not in self.services:
            self.services.append(service)

    async def reasons(self) -> list[str]:
        """Why the process is not ready, one line per failed check; empty when ready."""
        checks = [*self.checks, *((service.name, service.ready) for service in self.services)]
        results = await asyncio.gather(*(self._run(name, check) for name, check in checks))
        return [reason for reason in results if reason is not None]

    async def _run(self, name: str, check: Check) -> str | None:
        try:
            async with asyncio.timeout(self.timeout):
                reason = await check()
        except TimeoutError:
            reason = f"no answer within {self.timeout:g} s"
        except Exception as exc:  # a check's failure is its reason
            reason = str(exc) or type(exc).__name__
        return None if reason is None else f"{name}: {reason}"

    async def _check_database(self) -> str | None:
        check = self._db_check
        if check is None or check.done():
            if check is not None and not check.cancelled():
                check.exception()  # seen (by a probe that gave up on it): not logged
            if self._db_thread is None:
                self._db_thread = concurrent.futures.ThreadPoolExecutor(
                    1, thread_name_prefix="readiness"
                )
            check = asyncio.get_running_loop().run_in_executor(self._db_thread, _select_one)
            self._db_check = check
        await asyncio.shield(check)
        return None

    def close(self) -> None:
        """Let the database thread go (a check still running finishes on its own)."""
        if self._db_thread is not None:
            self._db_thread.shutdown(wait=False)
            self._db_thread = None


async def check_layer() -> str | None:
    """The default channel layer answers (``ping()`` where the layer has one)."""
    from gateway.layers import get_channel_layer

    layer = get_channel_layer(DEFAULT_CHANNEL_LAYER)
    ping = getattr(layer, "ping", None)
    if ping is not None:
        await ping()
    return None


def _select_one() -> None:
    """``SELECT 1`` on the default database, in the readiness thread; then disconnect,
    so the probe holds no connection between checks."""
    from django.db import connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()


class HealthRoutes:
    """ASGI app: ``GET``/``HEAD`` ``/healthz`` and ``/readyz`` answered here, anything
    else passed to ``app`` unchanged (with ``app`` None: 404, for a process whose web
    server serves only the probes)."""

    def __init__(self, app: Callable[..., Awaitable[None]] | None, readiness: Readiness) -> None:
        self.app = app
        self.readiness = readiness

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path") if scope["type"] == "http" else None
        if path in PROBE_PATHS and scope.get("root_path", "") == "":
            await self._answer(scope, send, path == READY_PATH)
        elif self.app is not None:
            await self.app(scope, receive, send)
        elif scope["type"] == "http":
            await _respond(send, 404, "not found: this server answers /healthz and /readyz\n")
        elif scope["type"] == "websocket":
            await send(cast(Message, close_message(1000)))

    async def _answer(self, scope: Scope, send: Send, ready: bool) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            await _respond(send, 405, "use GET or HEAD\n", [(b"allow", b"GET, HEAD")])
            return
        if not ready:
            await _respond(send, 200, "ok\n", head=scope["method"] == "HEAD")
            return
        reasons = await self.readiness.reasons()
        if reasons:
            body = "not ready\n" + "".join(f"{reason}\n" for reason in reasons)
            await _respond(send, 503, body, head=scope["method"] == "HEAD")
        else:
            await _respond(send, 200, "ready\n", head=scope["method"] == "HEAD")


async def _respond(
    send: Send,
    status: int,
    text: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
    head: bool = False,
) -> None:
    body = text.encode()
    fields = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *headers,
    ]
    await send(cast(Message, response_start(status, fields)))
    await send(cast(Message, response_body(b"" if head else body)))


def probe(url: str, timeout: float) -> tuple[bool, str]:
    """GET ``url`` (a probe path); whether it answered 200, and its text or the error."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status == 200, answer.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        with error:
            return False, f"{error.code}: {error.read().decode(errors='replace')}"
    except (OSError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", error)
        return False, f"{url}: no answer ({reason})"
