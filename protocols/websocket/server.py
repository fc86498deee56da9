"""The HTTP/1.1 + WebSocket server as a :class:`protocols.service.Service`.

Example, serving on an ephemeral port and reading it back::

    server = WebServer(application, Config(port=0))
    await server.start()          # lifespan startup, then the socket is listening
    print(server.port)            # the bound port
    ...
    await server.stop(timeout=5)  # graceful: see stop()

To run it from synchronous code (live-server tests), use
:class:`protocols.websocket.thread.ServerThread`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable

from gateway import metrics
from gateway.metrics import ProtocolCounters, ServerReading
from gateway.startup import Summary, all_interfaces, is_loopback
from gateway.types import ASGIApp
from protocols.fd_limit import ensure_fd_limit
from protocols.readiness import HealthRoutes, Readiness
from protocols.service import Service
from protocols.websocket.config import Config
from protocols.websocket.context import ServerContext
from protocols.websocket.http import HttpProtocol
from protocols.websocket.lifespan import Lifespan

logger = logging.getLogger("gateway.web")


class WebServer(Service):
    """Serve any ASGI 3 application over HTTP/1.1 and WebSocket."""

    name = "web"

    def __init__(
        self, app: ASGIApp, config: Config | None = None, readiness: Readiness | None = None
    ) -> None:
        self.config = config or Config()
        #: What ``/readyz`` checks (default: the channel layer and the database);
        #: ``ServiceGroup`` adds the process's other services.
        self.readiness = readiness or Readiness()
        probes = HealthRoutes(app, self.readiness) if self.config.health_probes else None
        self.ctx = ServerContext(app, self.config, probes=probes)
        self.lifespan = Lifespan(app, self.config.lifespan)
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self._unregister: Callable[[], None] | None = None

    @property
    def sockets(self) -> list[socket.socket]:
        return list(self._server.sockets) if self._server is not None else []

    @property
    def port(self) -> int:
        """The TCP port bound by :meth:`start` (useful with ``port=0``)."""
        if self._port is None:
            raise RuntimeError("the server has not started on a TCP socket")
        return self._port

    @property
    def url(self) -> str:
        scheme = "https" if self.config.is_ssl else "http"
        return f"{scheme}://{self.config.host}:{self.port}"

    async def start(self) -> None:
        """Run lifespan startup, then bind and listen; return once serving."""
        await self.lifespan.startup()
        if self.lifespan.supported:
            self.ctx.state = self.lifespan.state
        loop = asyncio.get_running_loop()
        config = self.config
        ctx = self.ctx

        def factory() -> HttpProtocol:
            return HttpProtocol(ctx)

        if config.limit_concurrency is not None:
            ensure_fd_limit(config.limit_concurrency, "web server")
        ssl = config.ssl_context()
        if config.uds is not None:
            _remove_socket_file(config.uds)
            self._server = await loop.create_unix_server(
                factory, path=config.uds, ssl=ssl, backlog=config.backlog
            )
            where = f"unix:{config.uds}"
        elif config.fd is not None:
            sock = socket.socket(fileno=config.fd)
            self._server = await loop.create_server(
                factory, sock=sock, ssl=ssl, backlog=config.backlog
            )
            name = sock.getsockname()
            self._port = int(name[1]) if isinstance(name, tuple) else None
            where = f"fd {config.fd} ({name})"
        else:
            self._server = await loop.create_server(
                factory, config.host, config.port, ssl=ssl, backlog=config.backlog
            )
            self._port = int(self._server.sockets[0].getsockname()[1])
            where = self.url
        self._unregister = metrics.registry.register(self.name, self.reading)
        logger.info("web server listening on %s", where)

    async def stop(self, timeout: float) -> None:
        """Graceful shutdown, returning within ``timeout`` seconds.

        Stop accepting; close idle HTTP connections; let in-flight HTTP responses
        finish (their connections then close); close WebSockets with 1001 at once,
        which the applications see as ``websocket.disconnect`` (a client that does not
        answer our Close is dropped after ``ws_close_timeout``, RFC 6455 7.1.1). At
        ``timeout`` less a reserve (a tenth, at most 1 s) whatever still runs is
        aborted and its application cancelled; lifespan shutdown gets what is left.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        reserve = min(timeout / 10, 1.0)
        ctx = self.ctx
        ctx.shutting_down = True
        if self._server is not None:
            self._server.close()
        for conn in list(ctx.connections):
            conn.shutdown()
        if not await ctx.wait_empty(deadline - reserve - loop.time()):
            logger.warning(
                "%d connection(s) still busy after %gs; aborting them",
                len(ctx.connections),
                timeout - reserve,
            )
            for conn in list(ctx.connections):
                conn.abort()
            await ctx.wait_empty(reserve / 2)
        await self.lifespan.shutdown(max(deadline - loop.time(), 0.0))
        if self._server is not None:
            try:
                async with asyncio.timeout(max(deadline - loop.time(), 0.0)):
                    await self._server.wait_closed()
            except TimeoutError:
                pass
            self._server = None
        if self.config.uds is not None:
            _remove_socket_file(self.config.uds)
        if self._unregister is not None:
            self._unregister()
        self.readiness.close()

    def describe(self, summary: Summary) -> None:
        """Where browsers connect; a warning when logins would cross a network in clear."""
        if not self.sockets or self._port is None:
            summary.add("Web", f"{self.config.uds} (Unix socket)")
            return
        host = str(self.sockets[0].getsockname()[0])
        shown = "127.0.0.1" if all_interfaces(host) else f"[{host}]" if ":" in host else host
        summary.web_url = f"{'https' if self.config.is_ssl else 'http'}://{shown}:{self._port}"
        config = self.config
        if not (config.is_ssl or config.proxy_headers or is_loopback(host)):
            summary.warn(
                f"the web server listens on {host} without TLS: passwords and session "
                "cookies cross the network in clear (use --ssl-certfile, or a TLS proxy "
                "in front with --proxy-headers)"
            )

    def reading(self) -> ServerReading:
        """Open connections and running applications per protocol, and message counts."""
        open_by_protocol = {"http": 0, "websocket": 0}
        instances = 0
        for connection in self.ctx.connections:
            open_by_protocol[connection.protocol] += 1
            instances += connection.running
        counters = self.ctx.counters
        return ServerReading(
            {
                "http": ProtocolCounters(
                    open_by_protocol["http"], counters.http_requests, counters.http_responses
                ),
                "websocket": ProtocolCounters(
                    open_by_protocol["websocket"], counters.ws_received, counters.ws_sent
                ),
            },
            instances,
        )


class ProbeServer(WebServer):
    """Only ``/healthz`` and ``/readyz``: the ``--health-port`` of a process without a
    web server (``gateway mqtt``, ``telegram``, ``worker``); other paths get 404.
    ``ServiceGroup`` has its ``readiness`` watch the process's services."""

    name = "health probes"

    def __init__(self, host: str, port: int) -> None:
        readiness = Readiness()
        config = Config(host=host, port=port, lifespan="off", access_log=False, health_probes=False)
        super().__init__(HealthRoutes(None, readiness), config, readiness)

    def describe(self, summary: Summary) -> None:
        summary.add("Probes", f"{self.url}/healthz (alive) and {self.url}/readyz (ready)")


def _remove_socket_file(path: str) -> None:
    """A stale socket file from an earlier run would make bind() fail."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
