"""Run services in one event loop until SIGINT/SIGTERM, then stop them gracefully."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence

from protocols.service import Service

logger = logging.getLogger("gateway.server")

DEFAULT_SHUTDOWN_TIMEOUT = 10.0
#: How long past its bound a stopping service is waited for before it is cancelled.
STOP_GRACE = 1.0

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
    started: Callable[[], None] | None = None,
) -> None:
    """Run :func:`run_services` to completion on a new event loop of kind ``loop``."""
    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        kind = type(runner.get_loop())
        logger.info("event loop: %s.%s", kind.__module__, kind.__qualname__)
        runner.run(run_services(services, shutdown_timeout, started=started))


class ServiceStartError(Exception):
    """A service could not start: a port is taken, a broker or Bot API is unreachable."""

    def __init__(self, service: str, cause: OSError) -> None:
        super().__init__(f"{service}: {cause}")
        self.service = service


async def run_services(
    services: Sequence[Service],
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
    stop_event: asyncio.Event | None = None,
    started: Callable[[], None] | None = None,
) -> None:
    """Start ``services`` in order, serve until a signal (or ``stop_event``), stop them.

    ``started`` is called once every service has started (the launcher prints its
    summary then, when every port is bound). Services are stopped all at once
    (:func:`stop_all`), so shutdown takes at most ``shutdown_timeout`` seconds in all,
    and every door starts closing at once. A service that fails to start
    stops the ones already started and the error propagates, so the process exits
    non-zero with the reason; an ``OSError`` (address in use, connection refused)
    becomes :class:`ServiceStartError`.
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
    running: list[Service] = []
    try:
        for service in services:
            try:
                await service.start()
            except OSError as exc:
                raise ServiceStartError(service.name, exc) from exc
            running.append(service)
            logger.info("%s started", service.name)
        if started is not None:
            started()
        await stop_event.wait()
        logger.info("shutting down (at most %gs)", shutdown_timeout)
    finally:
        await stop_all(running, shutdown_timeout)
        for sig in installed:
            loop.remove_signal_handler(sig)


async def stop_all(services: Sequence[Service], timeout: float) -> None:
    """Stop ``services`` concurrently, each within ``timeout`` seconds.

    Stopping one after the other made the bound the sum of the services' bounds,
    and the last service's clients (the web server is started first, so stopped
    last) heard of the shutdown only after the others had stopped. A service still
    stopping :data:`STOP_GRACE` seconds after its bound broke its contract: it is
    cancelled, with an error line.
    """
    if not services:
        return
    stopping = {asyncio.ensure_future(service.stop(timeout)): service for service in services}
    done, late = await asyncio.wait(stopping, timeout=timeout + STOP_GRACE)
    for task in late:
        logger.error("%s did not stop within %gs; cancelling it", stopping[task].name, timeout)
        task.cancel()
    await asyncio.gather(*late, return_exceptions=True)
    for task in done:
        error = task.exception()
        if error is not None:
            logger.error("%s failed to stop cleanly", stopping[task].name, exc_info=error)
