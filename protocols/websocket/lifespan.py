"""The ASGI lifespan protocol 2.0: startup before serving, shutdown after.

The application runs once with a ``lifespan`` scope whose ``state`` dict is then
copied into every connection scope. In ``auto`` mode an application that raises
before its first lifespan message (Django's ASGIHandler does: it serves HTTP only)
is taken not to support lifespan, and the server runs without it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

from gateway.types import ASGIApp
from gateway.web.events import ASGI_VERSION
from protocols.websocket.errors import ProtocolViolation

logger = logging.getLogger("gateway.web")


class LifespanFailed(RuntimeError):
    """The application reported ``lifespan.startup.failed`` (or crashed in ``on`` mode)."""


class Lifespan:
    def __init__(self, app: ASGIApp, mode: Literal["auto", "on", "off"]) -> None:
        self.app = app
        self.mode = mode
        self.state: dict[str, Any] = {}
        self.supported = mode != "off"
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1)
        self._startup_done = asyncio.Event()
        self._shutdown_done = asyncio.Event()
        self._failure: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._spoke = False

    async def startup(self) -> None:
        """Run the application's startup; raise LifespanFailed if it says it failed."""
        if not self.supported:
            return
        self._task = asyncio.get_running_loop().create_task(self._main())
        await self._inbox.put({"type": "lifespan.startup"})
        await self._wait(self._startup_done)
        if self._failure is not None:
            raise LifespanFailed(f"application startup failed: {self._failure}")

    async def shutdown(self, timeout: float) -> None:
        if not self.supported or self._task is None:
            return
        try:
            async with asyncio.timeout(timeout):
                await self._inbox.put({"type": "lifespan.shutdown"})
                await self._wait(self._shutdown_done)
        except TimeoutError:
            logger.warning("lifespan shutdown did not complete within %gs", timeout)
        if self._failure is not None:
            logger.error("application shutdown failed: %s", self._failure)
        if not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _wait(self, event: asyncio.Event) -> None:
        """Wait for ``event``, or for the application task to end without setting it."""
        assert self._task is not None  # started by startup()
        waiter = asyncio.ensure_future(event.wait())
        await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)

    async def _main(self) -> None:
        scope = {
            "type": "lifespan",
            "asgi": {"version": ASGI_VERSION, "spec_version": "2.0"},
            "state": self.state,
        }
        try:
            await self.app(scope, self._receive, self._send)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self.mode == "auto" and not self._spoke:
                logger.info("the application does not support ASGI lifespan (%s)", exc)
                self.supported = False
            else:
                logger.exception("Exception in ASGI lifespan")
                self._failure = self._failure or repr(exc)
        finally:
            self._startup_done.set()
            self._shutdown_done.set()

    async def _receive(self) -> dict[str, Any]:
        self._spoke = True
        return await self._inbox.get()

    async def _send(self, message: dict[str, Any]) -> None:
        self._spoke = True
        kind = message["type"]
        if kind in ("lifespan.startup.complete", "lifespan.startup.failed"):
            if self._startup_done.is_set():
                raise ProtocolViolation(f"{kind!r} sent twice")
            if kind.endswith("failed"):
                self._failure = message.get("message", "") or "no message"
            self._startup_done.set()
        elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            if kind.endswith("failed"):
                self._failure = message.get("message", "") or "no message"
            self._shutdown_done.set()
        else:
            raise ProtocolViolation(f"unexpected lifespan message {kind!r}")
