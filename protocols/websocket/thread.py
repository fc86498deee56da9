"""Run a :class:`WebServer` on its own event loop in a background thread.

For synchronous callers such as live-server test cases::

    with ServerThread(application, Config(port=0)) as server:
        urlopen(f"http://127.0.0.1:{server.port}/")

A :class:`protocols.runner.ServiceThread` (the one background-thread runner) of a
web server: ``start()`` returns once the socket is listening (or raises what made
startup fail); ``stop()`` shuts down gracefully and joins the thread.
"""

from __future__ import annotations

from gateway.types import ASGIApp
from protocols.runner import ServiceThread
from protocols.websocket.config import Config
from protocols.websocket.server import WebServer


class ServerThread(ServiceThread):
    def __init__(
        self, app: ASGIApp, config: Config | None = None, shutdown_timeout: float = 5.0
    ) -> None:
        self.server = WebServer(app, config or Config(port=0))
        super().__init__(self.server, shutdown_timeout)

    @property
    def port(self) -> int:
        return self.server.port
