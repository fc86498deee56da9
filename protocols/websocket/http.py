"""HTTP/1.1 connections: httptools parses, this moves bytes and runs request cycles.

One :class:`HttpProtocol` per TCP connection. Requests are answered in order
(RFC 9112 9.3.2): a pipelined request waits, with reading paused, until the one
before it is answered. A WebSocket upgrade hands the socket to
:class:`protocols.websocket.websocket.WebSocketProtocol`.

Timers, one at a time, for what the connection waits for from the client:
``timeout_keep_alive`` closes a connection idle between requests;
``timeout_request_head`` bounds how long a request head may take, and
``timeout_body``/``body_min_rate`` how slowly its body may arrive
(:mod:`protocols.websocket.body_deadline`); both answer 408 (RFC 9110 15.5.9) when
no response has started. Over ``limit_concurrency`` open connections, a new
connection's requests are answered 503 and it is closed.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from typing import cast

import httptools

from gateway.failure_log import FailureLog
from gateway.web.events import Headers
from protocols.websocket.body_deadline import BodyDeadline
from protocols.websocket.context import ServerContext
from protocols.websocket.flow import WriteFlow
from protocols.websocket.http_cycle import RequestCycle
from protocols.websocket.request import RequestRefused, inspect_head
from protocols.websocket.response import simple_response
from protocols.websocket.scope import ConnectionInfo, connection_info, http_scope
from protocols.websocket.timer import LazyTimer

logger = logging.getLogger("gateway.web")
#: A bug in this module's parser callbacks: one traceback, then counts (DESIGN §8).
failures = FailureLog(logger)


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


class Waiting(enum.Enum):
    """What the connection's timer waits for from the client."""

    NOTHING = "nothing"  # a request is being answered, or its body is not asked for yet
    REQUEST = "request"  # idle between requests: close quietly
    HEAD = "head"  # a request head is arriving: 408
    BODY = "body"  # a request body is arriving: 408


class HttpProtocol(asyncio.Protocol):
    protocol = "http"

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
        self._timer = LazyTimer(self.loop, self._timed_out)  # what it waits for, timed
        self._abandon: asyncio.TimerHandle | None = None  # cancels what runs after the client left
        self._waiting = Waiting.NOTHING
        self._body: BodyDeadline | None = None
        self.refusing = False  # over the connection limit: every request gets 503
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
            # Answer the request (503, then close) rather than close at once: closing
            # with the request unread would reset the connection, losing the answer.
            self.refusing = True
            self.ctx.overload_log.repeated(
                "limit",
                f"{len(self.ctx.connections) - 1} connections open (limit "
                f"{self.config.limit_concurrency}) or shutting down: answering 503",
            )
        self._wait(Waiting.REQUEST, self.config.timeout_keep_alive)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._wait(Waiting.NOTHING)
        self._timer.cancel()
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
            self._callback_failed(exc.__context__ or exc)
        except httptools.HttpParserError as exc:
            self._reject(RequestRefused(400, "Invalid HTTP request received.", str(exc)))
        else:
            self._update_reading()

    def _callback_failed(self, error: BaseException) -> None:
        """One of our parser callbacks refused the request, or failed (a bug)."""
        if isinstance(error, RequestRefused):
            self._reject(error)
            return
        failures.failed(f"error while parsing a request from {self.info.client}", error)
        self._reject(RequestRefused(500, "Internal Server Error"), quiet=True)

    # -- httptools callbacks -------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._head_size = 0
        self._wait(Waiting.HEAD, self.config.timeout_request_head)

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((_COMMON_NAMES.get(name) or name.lower(), value))
        self._count_head(len(name) + len(value) + 4)

    def _count_head(self, size: int) -> None:
        self._head_size += size
        if self._head_size > self.config.max_header_size:
            raise RequestRefused(431, "Request Header Fields Too Large")

    def on_headers_complete(self) -> None:
        self._wait(Waiting.NOTHING)
        if self.refusing:
            raise RequestRefused(503, "Service Unavailable")
        headers = self._headers
        http_version = self.parser.get_http_version()
        facts = inspect_head(http_version, headers)
        if facts.websocket and self.parser.should_upgrade():
            self._upgrade = (self._url, headers)
            return
        scope = http_scope(
            self.parser.get_method().decode("ascii"),
            self._url,
            http_version,
            headers,
            self.info,
            root_path=self.config.root_path,
            state=self.ctx.state,
            proxies=self.ctx.proxies,
        )
        keep_alive = self.parser.should_keep_alive() and not self.draining
        self.ctx.counters.http_requests += 1
        cycle = RequestCycle(self, scope, keep_alive, facts.expect_continue)
        self.parsing = cycle
        if facts.has_body and not facts.expect_continue:
            self.body_expected()
        if self.cycle is None:
            self._start(cycle)
        else:
            self.pipeline.append(cycle)

    def on_body(self, body: bytes) -> None:
        if self._body is not None:
            self._body.received(len(body), self.loop.time())
        if self.parsing is not None:
            self.parsing.feed_body(body)

    def on_message_complete(self) -> None:
        if self._waiting is Waiting.BODY:
            self._wait(Waiting.NOTHING)
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

    def body_expected(self) -> None:
        """The client sends the body now (after its head, or after ``100 Continue``)."""
        if self.parsing is not None and not self.parsing.body_complete:
            self._body = BodyDeadline(
                self.config.timeout_body, self.config.body_min_rate, self.loop.time()
            )
            self._wait(Waiting.BODY)

    def response_done(self, cycle: RequestCycle) -> None:
        """The response is written: reuse the connection for the next request, or close."""
        self.ctx.counters.http_responses += 1
        if not cycle.keep_alive or not cycle.body_complete or self.draining:
            # An unread request body would be taken for the next request: close instead.
            self.close()
            return
        self.cycle = None
        if self.pipeline:
            self._start(self.pipeline.popleft())
        elif self._waiting is Waiting.NOTHING:  # else the next head is already arriving
            self._wait(Waiting.REQUEST, self.config.timeout_keep_alive)
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
        if not self.tasks and self._abandon is not None:
            self._abandon.cancel()  # the timer would keep this connection alive for nothing
            self._abandon = None
        self._forget_if_done()

    def _bound_tasks(self) -> None:
        """After the client left, the application has ``app_close_timeout`` to return."""
        if self.tasks:
            self._abandon = self.loop.call_later(self.config.app_close_timeout, self._cancel_tasks)

    def _cancel_tasks(self) -> None:
        self._abandon = None
        for task in self.tasks:
            task.cancel()

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
            if self._body is not None:  # the client cannot send while we do not read
                self._pause_body_deadline(not want)

    def _pause_body_deadline(self, paused: bool) -> None:
        assert self._body is not None  # only called while a body is watched
        if paused:
            self._body.pause(self.loop.time())
            self._timer.cancel()
        else:
            self._body.resume(self.loop.time())
            self._wait(Waiting.BODY)

    def _reject(self, refused: RequestRefused, quiet: bool = False) -> None:
        """Answer ``refused`` if no response has started, then close; log it as the
        client's doing (INFO, one line per status then counts: DESIGN §8)."""
        if not quiet:
            self.ctx.peer_log.repeated(
                f"http {refused.status}", f"{refused} (from {self.info.client})"
            )
        if self.cycle is None or not self.cycle.response_started:
            self.write(simple_response(refused.status, refused.reason))
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
        self._timer.cancel()
        self.transport.set_protocol(protocol)
        protocol.start(self.parser.get_method(), url, headers, trailing)
        self.ctx.forget(self)

    def _wait(self, waiting: Waiting, delay: float = 0.0) -> None:
        """Wait for ``waiting`` from the client for ``delay`` seconds (a body: by its
        deadline); NOTHING stops waiting."""
        self._waiting = waiting
        if waiting is Waiting.BODY:
            assert self._body is not None  # set by body_expected()
            self._timer.set(self._body.deadline())
            return
        self._body = None
        if waiting is not Waiting.NOTHING:
            self._timer.set(self.loop.time() + delay)

    def _timed_out(self) -> None:
        waiting = self._waiting
        if waiting is Waiting.NOTHING:
            return
        if waiting is Waiting.BODY:
            assert self._body is not None  # BODY implies it
            if self._body.expired(self.loop.time()):
                self._too_slow("request body", self.config.timeout_body)
            else:
                self._wait(Waiting.BODY)  # more arrived since: wait until the new deadline
        elif waiting is Waiting.REQUEST:
            self.close()  # an idle keep-alive connection
        else:
            self._too_slow("request head", self.config.timeout_request_head)

    def _too_slow(self, what: str, timeout: float) -> None:
        """RFC 9110 15.5.9: 408 when the request did not arrive in time, if no response
        has started; the application, if running, gets ``http.disconnect``."""
        self._wait(Waiting.NOTHING)
        cycle = self.parsing
        if cycle is not None:
            cycle.client_gone()
        if self.cycle is not None and self.cycle is not cycle:
            # A pipelined head is late while a response is going out: finish that, then close.
            self.draining = True
            self.cycle.keep_alive = False
            return
        refused = RequestRefused(408, "Request Timeout", f"{what} too slow (limit {timeout:g}s)")
        self._reject(refused)

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

    @property
    def running(self) -> int:
        return len(self.tasks)

    def __repr__(self) -> str:
        return f"<HttpProtocol client={self.info.client if hasattr(self, 'info') else None}>"
