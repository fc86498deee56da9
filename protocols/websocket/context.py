"""What every connection of one server shares: the application, the options, the
lifespan state and the registry of open connections (for limits and shutdown)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.types import ASGIApp
from protocols.websocket.config import Config
from protocols.websocket.proxy import TrustedProxies


class Connection(Protocol):
    """An open connection as the server sees it during shutdown."""

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


@dataclass
class ServerContext:
    app: ASGIApp
    config: Config
    #: Lifespan ``state`` copied into each scope (None when lifespan did not run).
    state: dict[str, Any] | None = None
    connections: set[Connection] = field(default_factory=set)
    shutting_down: bool = False
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
