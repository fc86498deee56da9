"""Run services in one event loop until SIGINT/SIGTERM, then stop them gracefully."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence

from protocols.service import Service

logger = logging.getLogger("gateway.server")

DEFAULT_SHUTDOWN_TIMEOUT = 10.0

#: ``--loop`` choices: ``auto`` is uvloop when it is installed, else asyncio's own loop.
LOOPS = ("auto", "asyncio", "uvloop")


class EventLoopUnavailable(RuntimeError):
    """The event loop asked for cannot be used here (``uvloop`` is not installed)."""


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """What creates the event loop named ``name`` (one of :data:`LOOPS`).

    None means asyncio's default loop. uvloop (a libuv-based loop, what uvicorn
    uses by default) is an optional dependency: ``auto`` falls back to asyncio's
    loop without it, ``uvloop`` refuses to start.
    """
    if name not in LOOPS:
        raise ValueError(f"unknown event loop {name!r}; choose from {', '.join(LOOPS)}")
    if name == "asyncio":
        return None
    try:
        import uvloop
    except ImportError as exc:
        if name == "auto":
            return None
        raise EventLoopUnavailable(f"--loop uvloop: uvloop is not installed ({exc})") from exc
    return uvloop.new_event_loop


def serve(
    services: Sequence[Service],
    loop: str = "auto",
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
) -> None:
    """Run :func:`run_services` to completion on a new event loop of kind ``loop``."""
    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        kind = type(runner.get_loop())
        logger.info("event loop: %s.%s", kind.__module__, kind.__qualname__)
        runner.run(run_services(services, shutdown_timeout))


class ServiceStartError(Exception):
    """A service could not start: a port is taken, a broker or Bot API is unreachable."""

    def __init__(self, service: str, cause: OSError) -> None:
        super().__init__(f"{service}: {cause}")
        self.service = service


async def run_services(
    services: Sequence[Service],
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
    stop_event: asyncio.Event | None = None,
) -> None:
    """Start ``services`` in order, serve until a signal (or ``stop_event``), stop them.

    Services are stopped in reverse start order, each within ``shutdown_timeout``
    seconds. A service that fails to start stops the ones already started and the
    error propagates, so the process exits non-zero with the reason; an ``OSError``
    (address in use, connection refused) becomes :class:`ServiceStartError`.
    """
    stop_event = stop_event or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop_event.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # not the main thread, or Windows
            pass
    started: list[Service] = []
    try:
        for service in services:
            try:
                await service.start()
            except OSError as exc:
                raise ServiceStartError(service.name, exc) from exc
            started.append(service)
            logger.info("%s started", service.name)
        await stop_event.wait()
        logger.info("shutting down (at most %.0fs per service)", shutdown_timeout)
    finally:
        for service in reversed(started):
            try:
                await service.stop(shutdown_timeout)
            except Exception:
                logger.exception("%s failed to stop cleanly", service.name)
        for sig in installed:
            loop.remove_signal_handler(sig)
