"""Run a :class:`WebServer` on its own event loop in a background thread.

For synchronous callers such as live-server test cases::

    with ServerThread(application, Config(port=0)) as server:
        urlopen(f"http://127.0.0.1:{server.port}/")

``start()`` returns once the socket is listening (or raises what made startup fail);
``stop()`` shuts down gracefully and joins the thread.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType

from gateway.types import ASGIApp
from protocols.websocket.config import Config
from protocols.websocket.server import WebServer


class ServerThread:
    def __init__(
        self, app: ASGIApp, config: Config | None = None, shutdown_timeout: float = 5.0
    ) -> None:
        self.server = WebServer(app, config or Config(port=0))
        self.shutdown_timeout = shutdown_timeout
        self._thread = threading.Thread(target=self._main, name="gateway-web", daemon=True)
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        return self.server.port

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"web server did not start within {timeout:g}s")
        if self._error is not None:
            self._thread.join(timeout)
            raise self._error

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self.server.start()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self.server.stop(self.shutdown_timeout)

    def __enter__(self) -> ServerThread:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
