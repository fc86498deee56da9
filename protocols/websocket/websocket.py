"""WebSocket connections on asyncio: this protocol moves bytes between the transport
and :class:`~protocols.websocket.session.WebSocketSession` (the ASGI state machine,
sans I/O: what the application may send when, what each send becomes on the wire,
which events it receives), runs the application (www spec 2.4, ``websocket``
scope) and keeps the clocks: the connect timeout, the keepalive Ping, the close
timeout and the application's grace period after the client left.

Writes go through :class:`~protocols.websocket.flow.WriteFlow`: a sender waits while
the peer reads nothing, up to ``timeout_send``; unawaited writes (Pongs, Close) are
bounded by ``write_buffer_limit``. Reading pauses while the session's queue is full.

Logging: any exception escaping this adapter's ``data_received`` is a bug: one
traceback per kind, then counts (``failures``); clients' protocol errors are the
session's ``peer_log``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, cast

from gateway.types import Receive
from gateway.web.events import Headers as AsgiHeaders
from gateway.web.events import WebsocketEvent
from protocols.websocket.context import ServerContext
from protocols.websocket.errors import ClientDisconnected
from protocols.websocket.flow import WriteFlow
from protocols.websocket.scope import ConnectionInfo
from protocols.websocket.session import ABORT, AppState, WebSocketSession, failures

logger = logging.getLogger("gateway.web")


class WebSocketProtocol(asyncio.Protocol):
    protocol = "websocket"
    # Slots and attributes created only when needed: an idle connection's footprint
    # is what bounds how many a process holds.
    __slots__ = (
        "_abandon_timer",
        "_close_timer",
        "_connect_timer",
        "_paused",
        "_ping_timer",
        "_waiter",
        "ctx",
        "flow",
        "loop",
        "session",
        "task",
        "transport",
    )

    def __init__(
        self, ctx: ServerContext, transport: asyncio.Transport, info: ConnectionInfo
    ) -> None:
        config = ctx.config
        self.ctx = ctx
        self.loop = asyncio.get_running_loop()
        self.transport = transport
        self.flow = WriteFlow(transport, config.timeout_send, config.write_buffer_limit)
        self.session = WebSocketSession(
            config,
            info,
            counters=ctx.counters,
            peer_log=ctx.peer_log,
            lifespan_state=ctx.state,
            proxies=ctx.proxies,
        )
        self.task: asyncio.Task[None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        #: Whether reading is paused on the transport (the session's queue was full).
        self._paused = False
        self._connect_timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        #: After the client left: cancels an application still running at app_close_timeout.
        self._abandon_timer: asyncio.TimerHandle | None = None
        self._ping_timer: asyncio.TimerHandle | None = None

    def start(self, method: bytes, url: bytes, headers: AsgiHeaders, trailing: bytes) -> None:
        """Take over the socket from the HTTP protocol that parsed the upgrade request;
        ``trailing`` is whatever the client sent after it."""
        self.ctx.connections.add(self)
        try:
            valid = self.session.start(method, url, headers)
            if valid:
                self._connect_timer = self.loop.call_later(
                    self.ctx.config.ws_connect_timeout, self._connect_timed_out
                )
                self.task = self.loop.create_task(self._run())
                self.task.add_done_callback(self._task_done)
            self._flush()
        except Exception as exc:
            failures.failed(f"error handling WebSocket data from {self.session.info.client}", exc)
            self.abort()
        if trailing:
            self.data_received(trailing)

    # -- asyncio.Protocol ------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """The error boundary of the wire side: a bug aborts this connection only."""
        try:
            signals = self.session.receive_data(data)
            if signals:
                if signals & ABORT:
                    self.abort()
                    return
                self._schedule_ping()  # PONG: the awaited Pong came
            self._sync()
        except Exception as exc:
            failures.failed(f"error handling WebSocket data from {self.session.info.client}", exc)
            self.abort()

    def eof_received(self) -> bool | None:
        self.session.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._connect_timer, self._close_timer, self._ping_timer):
            if timer is not None:
                timer.cancel()
        self.flow.lost()
        self.session.connection_lost()
        self._wake()
        if self.task is not None and not self.task.done():
            self._abandon_timer = self.loop.call_later(
                self.ctx.config.app_close_timeout, self.task.cancel
            )
        self._forget_if_done()

    def pause_writing(self) -> None:
        self.flow.pause()

    def resume_writing(self) -> None:
        self.flow.resume()

    # -- the application's receive and send ------------------------------------------------

    @property
    def queued(self) -> int:
        """Incoming events waiting for the application (bounded by ``ws_max_queue``)."""
        return self.session.queued

    async def receive(self) -> WebsocketEvent:
        session = self.session
        while True:
            event = session.next_event()
            if event is not None:
                if self._paused and session.reading:
                    self._resume_reading()
                return event
            self._waiter = self.loop.create_future()
            await self._waiter

    async def send(self, message: dict[str, Any]) -> None:
        session = self.session
        frame = session.send(message)
        if frame is None:  # not a data frame: the handshake, a denial or a close
            if message["type"] == "websocket.accept":
                self._schedule_ping()
            self._after_control()
            return
        if frame:
            self.transport.write(frame)  # a shared frame: ``conn`` holds nothing new
        else:
            self._flush()
        if self.flow.paused:
            await self.flow.drain()

    # -- the application's life ------------------------------------------------------------

    async def _run(self) -> None:
        """The error boundary of one WebSocket: log, answer (500 or 1011), never raise."""
        scope = self.session.scope
        try:
            # The events are typed (gateway.web.events); ASGI's receive is untyped.
            await self.ctx.app(scope, cast(Receive, self.receive), self.send)
        except asyncio.CancelledError:
            raise
        except ClientDisconnected:
            pass  # the client left while the application was sending
        except Exception:
            logger.exception("Exception in ASGI application (WebSocket %s)", scope["path"])
            self.session.app_finished(failed=True)
            self._after_control()
        else:
            self.session.app_finished(failed=False)
            self._after_control()

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if self._abandon_timer is not None:
            self._abandon_timer.cancel()  # it would keep the task alive for nothing
            self._abandon_timer = None
        self._forget_if_done()

    def _forget_if_done(self) -> None:
        if self.done:
            self.ctx.forget(self)

    # -- moving bytes and timers -------------------------------------------------------------

    def _sync(self) -> None:
        """Carry out what the session decided: write, wake the application, pause or
        resume reading."""
        self._flush()
        session = self.session
        if session.events:
            self._wake()
        if session.reading is self._paused:
            if self._paused:
                self._resume_reading()
            elif not session.closed:
                self._paused = True
                self.transport.pause_reading()

    def _after_control(self) -> None:
        """After the application or the server changed the session's state: the
        connect timeout ends with the handshake."""
        timer = self._connect_timer
        if timer is not None and self.session.state is not AppState.HANDSHAKE:
            timer.cancel()
            self._connect_timer = None
        self._sync()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _resume_reading(self) -> None:
        self._paused = False
        if not self.session.closed:
            self.transport.resume_reading()

    def _flush(self) -> None:
        """Write what the session produced; watch the buffer limit and the close deadline."""
        writes = self.session.data_to_send()
        if not writes:
            return
        for data in writes:
            if data:
                self.transport.write(data)
            else:
                self.transport.close()
                return
        if self.flow.over_limit():
            logger.warning(
                "dropping %s: it reads nothing and its buffer is full", self.session.info.client
            )
            self.transport.abort()
        elif self._close_timer is None and self.session.close_expected():
            self._close_timer = self.loop.call_later(
                self.ctx.config.ws_close_timeout, self.transport.abort
            )

    def _connect_timed_out(self) -> None:
        self._connect_timer = None
        self.session.connect_timeout()
        self._sync()

    def _schedule_ping(self) -> None:
        interval = self.ctx.config.ws_ping_interval
        if interval is not None and not self.session.closed:
            self._ping_timer = self.loop.call_later(interval, self._ping)

    def _ping(self) -> None:
        timeout = self.ctx.config.ws_ping_timeout
        if not self.session.ping(os.urandom(4), awaited=timeout is not None):
            return
        self._flush()
        if timeout is None:
            self._schedule_ping()
        else:
            self._ping_timer = self.loop.call_later(timeout, self._ping_timed_out)

    def _ping_timed_out(self) -> None:
        self.session.ping_timeout()
        self._flush()

    # -- server shutdown (context.Connection) --------------------------------------------------

    def shutdown(self) -> None:
        self.session.shutdown()
        self._after_control()

    def abort(self) -> None:
        if not self.session.closed:
            self.transport.abort()
        if self.task is not None:
            self.task.cancel()

    @property
    def done(self) -> bool:
        return self.session.closed and (self.task is None or self.task.done())

    @property
    def running(self) -> int:
        return int(self.task is not None and not self.task.done())
