"""One HTTP request/response exchange between a connection and the ASGI application.

ASGI HTTP spec 2.4: the body reaches the application as ``http.request`` chunks
while it arrives (at most ``max_body_buffer`` bytes are held before the connection
stops reading), the response is written as ``http.response.body`` chunks arrive
(Content-Length when known, else chunked), and ``http.disconnect`` is delivered when
the client goes away or once the response is complete.

:meth:`RequestCycle.run` is the error boundary: an application that fails before
starting its response gets a 500; one that fails mid-response has its connection
closed, so the client sees a truncated message rather than a wrong one.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, cast

from gateway.types import Message, Receive, Scope
from gateway.web.events import (
    HttpDisconnectEvent,
    HttpScope,
    RequestEvent,
    body_of,
    headers_of,
    http_disconnect_event,
    request_event,
)
from protocols.readiness import PROBE_PATHS
from protocols.websocket.accesslog import log_http
from protocols.websocket.errors import ProtocolViolation
from protocols.websocket.response import response_head, simple_response

if TYPE_CHECKING:
    from protocols.websocket.http import HttpProtocol

logger = logging.getLogger("gateway.web")

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class RequestCycle:
    __slots__ = (
        "_body",
        "_body_delivered",
        "_body_size",
        "_bytes_sent",
        "_chunked",
        "_closes",
        "_conn",
        "_continue_pending",
        "_head",
        "_length_left",
        "_no_body",
        "_peer_finished",
        "_status",
        "_waiter",
        "body_complete",
        "disconnected",
        "keep_alive",
        "response_complete",
        "response_started",
        "scope",
    )

    def __init__(
        self, conn: HttpProtocol, scope: HttpScope, keep_alive: bool, expect_continue: bool
    ) -> None:
        self._conn = conn
        self.scope = scope
        self.keep_alive = keep_alive
        self._continue_pending = expect_continue
        self._body: deque[bytes] = deque()
        self._body_size = 0
        self._body_delivered = False
        self._waiter: asyncio.Future[None] | None = None
        self.body_complete = False
        self.disconnected = False
        self.response_started = False
        self.response_complete = False
        self._head: list[bytes] = []
        self._status = 0
        self._chunked = False
        self._closes = False
        self._no_body = False
        self._length_left: int | None = None
        self._bytes_sent = 0
        self._peer_finished = False

    # -- fed by the connection -------------------------------------------------------

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def feed_body(self, chunk: bytes) -> None:
        self._body.append(chunk)
        self._body_size += len(chunk)
        self._wake()

    def end_body(self) -> None:
        self.body_complete = True
        self._wake()

    def peer_finished(self) -> None:
        """The client sent FIN after its request: tell the app, but keep writing."""
        self._peer_finished = True
        self._wake()

    def client_gone(self) -> None:
        self.disconnected = True
        self._wake()

    @property
    def buffered(self) -> int:
        return self._body_size

    # -- the application side ------------------------------------------------------------

    async def run(self) -> None:
        """Run the application for this request; never raises (but lets cancellation out)."""
        ctx = self._conn.ctx
        app = ctx.app
        if ctx.probes is not None and self.scope["path"] in PROBE_PATHS:
            app = ctx.probes
        try:
            # Scope and events are typed (gateway.web.events); ASGI's callables are not.
            await app(cast(Scope, self.scope), cast(Receive, self.receive), self.send)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("Exception in ASGI application (%s %s)", *self._request_line())
            if not self.response_started:
                self._fail(500, "Internal Server Error")
            else:
                self._conn.close()
        else:
            if self.disconnected:
                pass  # the client left: whatever the application sent went nowhere
            elif not self.response_started:
                logger.error(
                    "ASGI application returned without a response (%s %s)", *self._request_line()
                )
                self._fail(500, "Internal Server Error")
            elif not self.response_complete:
                logger.error(
                    "ASGI application returned mid-response (%s %s)", *self._request_line()
                )
                self._conn.close()
        finally:
            self._conn.cycle_done(self)

    def _request_line(self) -> tuple[str, str]:
        return self.scope["method"], self.scope["path"]

    def _fail(self, status: int, text: str) -> None:
        self.response_started = self.response_complete = True
        self.keep_alive = False
        if not self.disconnected:
            self._conn.write(simple_response(status, text))
        if self._conn.ctx.config.access_log:
            log_http(self.scope, status, len(text))

    async def receive(self) -> RequestEvent | HttpDisconnectEvent:
        while True:
            if self._body or (self.body_complete and not self._body_delivered):
                body = b"".join(self._body) if len(self._body) != 1 else self._body[0]
                self._body.clear()
                self._body_size = 0
                self._body_delivered = self.body_complete
                self._conn.body_consumed()
                return request_event(body, not self.body_complete)
            if self.disconnected or self.response_complete or self._peer_finished:
                return http_disconnect_event()
            if self._continue_pending and not self.body_complete:
                # RFC 9110 10.1.1: the client waits for this before sending the body.
                self._continue_pending = False
                if not self.response_started:
                    self._conn.write(CONTINUE)
                    self._conn.body_expected()
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if not self.response_started:
            if kind != "http.response.start":
                raise ProtocolViolation(f"expected 'http.response.start', got {kind!r}")
            self._start(message)
            return
        if kind != "http.response.body":
            raise ProtocolViolation(f"expected 'http.response.body', got {kind!r}")
        if self.response_complete:
            raise ProtocolViolation("'http.response.body' after the response completed")
        if self.disconnected:
            return  # the client is gone; Django and others learn it from http.disconnect
        body, more_body = body_of(message)
        self._write_body(body, more_body)
        if not more_body:
            self.response_complete = True
            if self._conn.ctx.config.access_log:
                log_http(self.scope, self._status, self._bytes_sent)
            self._wake()
            self._conn.response_done(self)
        elif self._conn.flow.paused:
            await self._conn.flow.drain()

    def _start(self, message: Message) -> None:
        head = response_head(message.get("status"), headers_of(message))
        self.response_started = True
        self._status = head.status
        self._length_left = head.content_length
        self._head = head.lines
        self._closes = head.closes
        if head.closes:
            self.keep_alive = False
        # RFC 9110 9.3.2, 15.3.5, 15.4.5, 15.2: these responses carry no content.
        self._no_body = (
            self.scope["method"] == "HEAD" or head.status in (204, 304) or head.status < 200
        )

    def _write_body(self, body: bytes, more_body: bool) -> None:
        no_body = self._no_body
        out: list[bytes] = []
        if self._head:
            head = self._head
            self._head = []
            if not self.keep_alive and not self._closes:
                head.append(b"connection: close\r\n")
            if self._length_left is None and not no_body:
                if more_body:
                    self._chunked = True
                    head.append(b"transfer-encoding: chunked\r\n")
                else:
                    head.append(b"content-length: %d\r\n" % len(body))
                    self._length_left = len(body)
            head.append(b"\r\n")
            out.extend(head)
        if not no_body:
            if self._chunked:
                if body:
                    out.append(b"%x\r\n%s\r\n" % (len(body), body))
                if not more_body:
                    out.append(b"0\r\n\r\n")
            else:
                if self._length_left is not None and len(body) > self._length_left:
                    raise ProtocolViolation("response body longer than its Content-Length")
                if self._length_left is not None:
                    self._length_left -= len(body)
                out.append(body)
            self._bytes_sent += len(body)
        if not more_body and not self._chunked and self._length_left and not no_body:
            # The body ended short of its Content-Length: the connection cannot be reused.
            self.keep_alive = False
        self._conn.write(b"".join(out))
