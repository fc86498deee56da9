"""Run services: in the foreground until SIGINT/SIGTERM, or in a background thread.

:class:`ServiceGroup` runs the services of a gateway process in its main thread and
stops them gracefully on a signal. :class:`ServiceThread` runs one
service on an event loop of its own thread, for synchronous callers (the
live-server test case, :class:`protocols.websocket.ServerThread`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Self

from gateway.stopping import stop_on_signals
from protocols.service import Service

logger = logging.getLogger("gateway.server")

DEFAULT_SHUTDOWN_TIMEOUT = 10.0
#: How long past its bound a stopping service is waited for before it is cancelled.
STOP_GRACE = 1.0

#: ``--loop`` choices: ``auto`` is uvloop when it is installed, else asyncio's own loop.
LOOPS = ("auto", "asyncio", "uvloop")

#: The cyclic garbage collector's thresholds once a process has started (Python's
#: defaults: 700, 10, 10). A group broadcast makes a few short-lived objects per
#: member at once (the wake-up's handle, the next wait's future), and at the
#: defaults every gen-1 collection moved the ones still alive to the oldest
#: generation: among 3,000 live dashboards a full collection (~150 ms, every
#: 15 broadcasts) followed. Collected 10x less often, the young ones are mostly
#: dead by then, and full collections become rare (bench/web/BROADCAST.md, set G).
COLLECTOR_THRESHOLDS = (10_000, 100, 10)


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


class ServiceStartError(Exception):
    """A service could not start: a port is taken, a broker or Bot API is unreachable."""

    def __init__(self, service: str, cause: OSError) -> None:
        super().__init__(f"{service}: {cause}")
        self.service = service


class ServiceGroup:
    """The services one gateway process runs, in start order, run and stopped together.

    Every way a server starts builds one (:mod:`protocols.launch`). Each web server
    among the services also checks every other one on ``/readyz``.
    """

    def __init__(self, services: Iterable[Service]) -> None:
        self.services: list[Service] = list(services)
        for server in self.services:
            readiness = getattr(server, "readiness", None)
            if readiness is not None:
                for service in self.services:
                    if service is not server:
                        readiness.watch(service)

    def __iter__(self) -> Iterator[Service]:
        return iter(self.services)

    def __len__(self) -> int:
        return len(self.services)

    def run(
        self,
        loop: str = "auto",
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
        started: Callable[[], None] | None = None,
    ) -> None:
        """:meth:`serve` to completion on a new event loop of kind ``loop``."""
        with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
            kind = type(runner.get_loop())
            logger.info("event loop: %s.%s", kind.__module__, kind.__qualname__)
            runner.run(self.serve(shutdown_timeout, started=started))

    async def serve(
        self,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
        stop_event: asyncio.Event | None = None,
        started: Callable[[], None] | None = None,
    ) -> None:
        """Start the services in order, serve until a signal (or ``stop_event``), stop them.

        ``started`` is called once every service has started (the launcher prints its
        summary then, when every port is bound). Services are stopped all at once
        (:func:`stop_all`), so shutdown takes at most ``shutdown_timeout`` seconds in
        all, and every door starts closing at once. A service that fails to start
        stops the ones already started and the error propagates, so the process exits
        non-zero with the reason; an ``OSError`` (address in use, connection refused)
        becomes :class:`ServiceStartError`.
        """
        stop_event = stop_event or asyncio.Event()
        running: list[Service] = []
        with stop_on_signals(stop_event):
            try:
                for service in self.services:
                    try:
                        await service.start()
                    except OSError as exc:
                        raise ServiceStartError(service.name, exc) from exc
                    running.append(service)
                    logger.info("%s started", service.name)
                # What start-up made (Django, the project, the routes: some 350,000
                # objects) lives as long as the process. Left out of every collection
                # from now on, a full collection costs what the traffic made, not the
                # whole process (0.2-0.7 s each among 3,000 live dashboards).
                gc.freeze()
                gc.set_threshold(*COLLECTOR_THRESHOLDS)
                if started is not None:
                    started()
                await stop_event.wait()
                logger.info("shutting down (at most %gs)", shutdown_timeout)
            finally:
                await stop_all(running, shutdown_timeout)


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


class ServiceThread:
    """Runs one :class:`Service` on asyncio's event loop in a background thread.

    :meth:`start` returns once the service serves (or raises what stopped it from
    starting); :meth:`stop` stops it (in-flight work gets ``shutdown_timeout``
    seconds) and joins the thread. A context manager does both::

        with ServiceThread(WebServer(application, Config(port=0))) as running:
            urlopen(f"http://127.0.0.1:{running.service.port}/")
    """

    def __init__(self, service: Service, shutdown_timeout: float = 5.0) -> None:
        self.service = service
        self.shutdown_timeout = shutdown_timeout
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name=f"gateway-{service.name}")
        self._thread.daemon = True

    def start(self, timeout: float = 10.0) -> None:
        """Return once the service is serving; raise what stopped it from starting."""
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError(f"{self.service.name} did not start within {timeout:g}s")
        if self._error is not None:
            self._thread.join(timeout)
            raise self._error

    def stop(self, timeout: float | None = None) -> None:
        """Stop the service and join the thread (``timeout``: the shutdown timeout).

        Raises :class:`TimeoutError` when the thread is still running a second
        past the bound.
        """
        if timeout is not None:
            self.shutdown_timeout = timeout
        if self._loop is not None and self._stopping is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(self.shutdown_timeout + STOP_GRACE)
        if self._thread.is_alive():
            raise TimeoutError(
                f"{self.service.name} did not stop within {self.shutdown_timeout:g}s"
            )

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        try:
            await self.service.start()
        except BaseException as exc:
            self._error = exc
            return
        finally:
            self._started.set()
        try:
            await self._stopping.wait()
        finally:
            await self.service.stop(self.shutdown_timeout)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
