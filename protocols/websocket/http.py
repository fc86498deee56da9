"""HTTP/1.1 connections: httptools parses, this moves bytes and runs request cycles.

One :class:`HttpProtocol` per TCP connection. Requests are answered in order
(RFC 9112 9.3.2): a pipelined request waits, with reading paused, until the one
before it is answered. A WebSocket upgrade hands the socket to
:class:`protocols.websocket.websocket.WebSocketProtocol`.

Timers: ``timeout_keep_alive`` closes a connection idle between requests;
``timeout_request_head`` bounds how long a client may take to send a request head.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import cast

import httptools

from protocols.websocket.context import ServerContext
from protocols.websocket.flow import WriteFlow
from protocols.websocket.http_cycle import RequestCycle, simple_response
from protocols.websocket.scope import ConnectionInfo, Headers, http_scope

logger = logging.getLogger("gateway.web")


def _common_names(*names: str) -> dict[bytes, bytes]:
    """Each name as clients usually spell it -> one shared lowercase ``bytes``.

    Scopes hold their headers for as long as a WebSocket stays open, so sharing
    the names every client sends saves a few hundred bytes per idle connection.
    """
    table: dict[bytes, bytes] = {}
    for name in names:
        lower = name.lower().encode("latin-1")
        for spelling in (name, name.lower(), "-".join(p.capitalize() for p in name.split("-"))):
            table[spelling.encode("latin-1")] = lower
    return table


_COMMON_NAMES = _common_names(
    "Host", "Connection", "Upgrade", "Origin", "User-Agent", "Accept", "Accept-Encoding",
    "Accept-Language", "Cache-Control", "Pragma", "Cookie", "Content-Type", "Content-Length",
    "Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Extensions",
    "Sec-WebSocket-Protocol",
)  # fmt: skip


class HeadTooLarge(Exception):
    """The request line plus headers passed ``max_header_size``."""


def connection_info(transport: asyncio.BaseTransport) -> ConnectionInfo:
    peer = transport.get_extra_info("peername")
    local = transport.get_extra_info("sockname")
    client = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple | list) and peer else None
    server: tuple[str, int | None] | None = None
    if isinstance(local, tuple | list) and local:
        server = (str(local[0]), int(local[1]))
    elif isinstance(local, str) and local:
        server = (local, None)  # a Unix socket path
    return ConnectionInfo(client, server, transport.get_extra_info("sslcontext") is not None)


class HttpProtocol(asyncio.Protocol):
    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.config = ctx.config
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport
        self.flow: WriteFlow
        self.info: ConnectionInfo
        self.cycle: RequestCycle | None = None  # the request being answered
        self.parsing: RequestCycle | None = None  # the request whose body is arriving
        self.pipeline: deque[RequestCycle] = deque()
        self.tasks: set[asyncio.Task[None]] = set()
        self.closed = False
        self.draining = False  # shutting down: close after the current response
        self._reading = True
        self._timer: asyncio.TimerHandle | None = None
        self._url = b""
        self._headers: Headers = []
        self._head_size = 0
        self._upgrade: tuple[bytes, Headers] | None = None

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream server's transport (uvloop's do not subclass asyncio.Transport).
        self.transport = transport = cast(asyncio.Transport, transport)
        transport.set_write_buffer_limits(high=self.config.write_buffer_high)
        self.flow = WriteFlow(transport, self.config.timeout_send, self.config.write_buffer_limit)
        self.info = connection_info(transport)
        self.ctx.connections.add(self)
        if self.ctx.shutting_down or self.ctx.at_capacity():
            logger.warning("refusing a connection: server at capacity or shutting down")
            self.write(simple_response(503, "Service Unavailable"))
            self.close()
            return
        self._set_timer(self.config.timeout_keep_alive)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timer()
        self.flow.lost()
        for cycle in (self.cycle, self.parsing, *self.pipeline):
            if cycle is not None:
                cycle.client_gone()
        self.pipeline.clear()
        self._bound_tasks()
        self._forget_if_done()

    def eof_received(self) -> bool | None:
        """The client sent FIN: it left, or only half-closed (RFC 9112 9.6).

        The application is told ``http.disconnect`` either way; a complete request
        still gets its response if the application writes one (a half-closed client
        reads it, a gone one makes the write fail). Otherwise the connection closes.
        """
        cycle = self.cycle
        if cycle is not None and cycle.body_complete and not cycle.response_complete:
            self.draining = True
            cycle.keep_alive = False
            cycle.peer_finished()
            return True
        return None

    def pause_writing(self) -> None:
        self.flow.pause()

    def resume_writing(self) -> None:
        self.flow.resume()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._on_upgrade(data[exc.args[0] :] if exc.args else b"")
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, HeadTooLarge):
                self._reject(431, "Request Header Fields Too Large")
            else:
                raise
        except httptools.HttpParserError as exc:
            self._reject(400, f"Invalid HTTP request: {exc}")
        else:
            self._update_reading()

    # -- httptools callbacks -------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._head_size = 0
        self._set_timer(self.config.timeout_request_head)

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((_COMMON_NAMES.get(name) or name.lower(), value))
        self._count_head(len(name) + len(value) + 4)

    def _count_head(self, size: int) -> None:
        self._head_size += size
        if self._head_size > self.config.max_header_size:
            raise HeadTooLarge

    def on_headers_complete(self) -> None:
        self._cancel_timer()
        headers = self._headers
        if self.parser.should_upgrade() and any(
            k == b"upgrade" and v.strip().lower() == b"websocket" for k, v in headers
        ):
            self._upgrade = (self._url, headers)
            return
        scope = http_scope(
            self.parser.get_method().decode("ascii"),
            self._url,
            self.parser.get_http_version(),
            headers,
            self.info,
            root_path=self.config.root_path,
            state=self.ctx.state,
            proxies=self.ctx.proxies,
        )
        expect = any(k == b"expect" and v.lower() == b"100-continue" for k, v in headers)
        keep_alive = self.parser.should_keep_alive() and not self.draining
        cycle = RequestCycle(self, scope, keep_alive, expect)
        self.parsing = cycle
        if self.cycle is None:
            self._start(cycle)
        else:
            self.pipeline.append(cycle)

    def on_body(self, body: bytes) -> None:
        if self.parsing is not None:
            self.parsing.feed_body(body)

    def on_message_complete(self) -> None:
        if self.parsing is not None:
            self.parsing.end_body()
            self.parsing = None

    # -- used by RequestCycle ------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.transport.write(data)
            if self.flow.over_limit():
                self.transport.abort()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.close()

    def body_consumed(self) -> None:
        self._update_reading()

    def response_done(self, cycle: RequestCycle) -> None:
        """The response is written: reuse the connection for the next request, or close."""
        if not cycle.keep_alive or not cycle.body_complete or self.draining:
            # An unread request body would be taken for the next request: close instead.
            self.close()
            return
        self.cycle = None
        if self.pipeline:
            self._start(self.pipeline.popleft())
        else:
            self._set_timer(self.config.timeout_keep_alive)
        self._update_reading()

    def cycle_done(self, cycle: RequestCycle) -> None:
        """The application returned (after :meth:`response_done`, or after a failure)."""
        if cycle is self.cycle and cycle.response_complete and not cycle.keep_alive:
            self.close()

    # -- internals -----------------------------------------------------------------------

    def _start(self, cycle: RequestCycle) -> None:
        self.cycle = cycle
        task = self.loop.create_task(cycle.run())
        self.tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self._forget_if_done()

    def _bound_tasks(self) -> None:
        """After the client left, the application has ``app_close_timeout`` to return."""
        for task in list(self.tasks):
            self.loop.call_later(self.config.app_close_timeout, task.cancel)

    def _update_reading(self) -> None:
        """Pause reading while a request waits in the pipeline or its body buffer is full."""
        parsing = self.parsing
        want = not self.pipeline and (
            parsing is None or parsing.buffered < self.config.max_body_buffer
        )
        if want != self._reading and not self.closed:
            self._reading = want
            if want:
                self.transport.resume_reading()
            else:
                self.transport.pause_reading()

    def _reject(self, status: int, text: str) -> None:
        logger.info("%s from %s: %s", status, self.info.client, text)
        if self.cycle is None or not self.cycle.response_started:
            self.write(simple_response(status, text))
        self.close()

    def _on_upgrade(self, trailing: bytes) -> None:
        request, self._upgrade = self._upgrade, None
        if request is None or self.cycle is not None:
            # A non-WebSocket upgrade (served as plain HTTP, without reuse) or a
            # WebSocket upgrade pipelined behind a request: neither can continue.
            if self.cycle is not None:
                self.cycle.keep_alive = False
            else:
                self.close()
            return
        from protocols.websocket.websocket import WebSocketProtocol

        url, headers = request
        protocol = WebSocketProtocol(self.ctx, self.transport, self.info)
        self.closed = True  # this object no longer owns the transport
        self._cancel_timer()
        self.transport.set_protocol(protocol)
        protocol.start(self.parser.get_method(), url, headers, trailing)
        self.ctx.forget(self)

    def _set_timer(self, delay: float) -> None:
        self._cancel_timer()
        self._timer = self.loop.call_later(delay, self._timed_out)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        if self.cycle is None and self.parsing is None:
            self.close()  # idle keep-alive connection, or a head that never completed

    def _forget_if_done(self) -> None:
        if self.done:
            self.ctx.forget(self)

    # -- server shutdown (context.Connection) ------------------------------------------------

    def shutdown(self) -> None:
        self.draining = True
        if self.cycle is None:
            self.close()
        else:
            self.cycle.keep_alive = False

    def abort(self) -> None:
        if not self.closed:
            self.transport.abort()
        for task in self.tasks:
            task.cancel()

    @property
    def done(self) -> bool:
        return self.closed and not self.tasks

    def __repr__(self) -> str:
        return f"<HttpProtocol client={self.info.client if hasattr(self, 'info') else None}>"
