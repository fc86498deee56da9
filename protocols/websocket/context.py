"""What every connection of one server shares: the application, the options, the
lifespan state, the registry of open connections (for limits, shutdown and metrics)
and the message counters."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.failure_log import FailureLog
from gateway.types import ASGIApp
from protocols.websocket.config import Config
from protocols.websocket.proxy import TrustedProxies


class Connection(Protocol):
    """An open connection as the server sees it during shutdown and in its metrics."""

    #: The ASGI scope type it serves: ``"http"`` or ``"websocket"``.
    protocol: str

    def shutdown(self) -> None:
        """Stop after in-flight work: WebSockets close with 1001, idle HTTP closes now,
        busy HTTP closes after the current response."""
        ...

    def abort(self) -> None:
        """Drop the connection and cancel its application now."""
        ...

    @property
    def done(self) -> bool:
        """Whether the socket is closed and the application has returned."""
        ...

    @property
    def running(self) -> int:
        """Application instances running for it (pipelined HTTP requests wait unstarted)."""
        ...


@dataclass(slots=True)
class Counters:
    """Messages since the server started, bumped on the hot path (a plain integer
    increment; :mod:`gateway.metrics` reads them only when asked)."""

    http_requests: int = 0
    http_responses: int = 0
    ws_received: int = 0
    ws_sent: int = 0


@dataclass
class ServerContext:
    app: ASGIApp
    config: Config
    #: What answers HTTP requests for the probe paths (:data:`PROBE_PATHS`); None when
    #: probes are off. Chosen per request rather than wrapped around ``app``, so other
    #: requests and every WebSocket reach ``app`` without an extra call.
    probes: ASGIApp | None = None
    #: Lifespan ``state`` copied into each scope (None when lifespan did not run).
    state: dict[str, Any] | None = None
    connections: set[Connection] = field(default_factory=set)
    counters: Counters = field(default_factory=Counters)
    shutting_down: bool = False
    #: Clients' protocol errors (bad requests, bad frames, timeouts): not the server's
    #: fault, so INFO without a traceback, one line per kind then counts (DESIGN §8).
    peer_log: FailureLog = field(
        default_factory=lambda: FailureLog(logging.getLogger("gateway.web"), level=logging.INFO)
    )
    #: Connections refused over ``limit_concurrency``: what an operator must see.
    overload_log: FailureLog = field(
        default_factory=lambda: FailureLog(logging.getLogger("gateway.web"), level=logging.WARNING)
    )
    _emptied: asyncio.Event = field(default_factory=asyncio.Event)

    def forget(self, connection: Connection) -> None:
        """A connection finished (socket closed and application returned)."""
        self.connections.discard(connection)
        if not self.connections:
            self._emptied.set()

    async def wait_empty(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every connection to finish."""
        if not self.connections:
            return True
        self._emptied.clear()
        try:
            async with asyncio.timeout(max(timeout, 0)):
                await self._emptied.wait()
        except TimeoutError:
            return not self.connections
        return True

    @property
    def proxies(self) -> TrustedProxies | None:
        return self.config.forwarded_allow_ips if self.config.proxy_headers else None

    def at_capacity(self) -> bool:
        limit = self.config.limit_concurrency
        return limit is not None and len(self.connections) > limit
