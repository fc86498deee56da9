"""WebSocket connections: websockets' sans-I/O ``ServerProtocol`` does the protocol
(handshake validation, framing, masking, ping/pong, closing handshake,
permessage-deflate, the size limit); this adapter moves bytes between it, the
transport and the ASGI application (www spec 2.4, ``websocket`` scope).

Application-side states, guarded so out-of-order events fail loudly::

    HANDSHAKE --accept--> OPEN --close--> CLOSING --client Close / timeout--> CLOSED
        |--close--> CLOSED (HTTP 403)
        '--http.response.start--> RESPONDING --last body--> CLOSED (denial response)

Incoming messages wait in a queue of at most ``ws_max_queue`` before the socket
stops being read; the application learns of the end through exactly one
``websocket.disconnect`` carrying the close code (1006 if there was none).

Logging: a client's protocol error (a bad frame: 1002, 1007, 1009; a bad handshake)
is not a server error: it goes to the server's ``peer_log`` at INFO, without a
traceback, one line per kind then counts. websockets' own ERROR records (an
unexpected exception in its parser) and any exception escaping this adapter's
``data_received`` are bugs: one traceback per kind, then counts (``failures``).
"""

from __future__ import annotations

import asyncio
import email.utils
import enum
import functools
import logging
import os
import sys
from http import HTTPStatus
from typing import Any

from websockets.datastructures import Headers
from websockets.extensions.base import ServerExtensionFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol

from gateway.failure_log import FailureLog
from protocols.websocket.accesslog import log_websocket
from protocols.websocket.context import ServerContext
from protocols.websocket.deflate import DeflateFactory, encoded_frame, signature
from protocols.websocket.errors import ClientDisconnected, ProtocolViolation
from protocols.websocket.flow import WriteFlow
from protocols.websocket.response import simple_response
from protocols.websocket.scope import ConnectionInfo, websocket_scope
from protocols.websocket.scope import Headers as AsgiHeaders

logger = logging.getLogger("gateway.web")
#: Bugs (ours or websockets'): one traceback per kind, then counts (DESIGN §8).
failures = FailureLog(logger)


class _ProtocolLog(logging.LoggerAdapter[logging.Logger]):
    """The logger handed to websockets' ``ServerProtocol``.

    Its INFO lines ("connection open", "connection rejected") repeat what the access
    log says: they go to DEBUG. Its ERROR lines with a traceback ("parser failed",
    "opening handshake failed") go through :data:`failures`.
    """

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        error = sys.exc_info()[1]
        if level >= logging.ERROR and kwargs.get("exc_info") and error is not None:
            failures.failed(f"websockets: {msg}", error)
        else:
            super().log(logging.DEBUG if level == logging.INFO else level, msg, *args, **kwargs)


protocol_logger = _ProtocolLog(logging.getLogger("gateway.web.wsproto"))
#: Close codes that mean the client broke the protocol (RFC 6455 7.4.1).
PEER_ERRORS = {1002: "protocol error", 1007: "invalid data", 1009: "message too big"}

NO_STATUS = 1005
ABNORMAL = 1006


class AppState(enum.Enum):
    HANDSHAKE = "handshake"
    RESPONDING = "responding"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


@functools.cache
def _extensions(min_size: int) -> list[ServerExtensionFactory]:
    """Shared by every connection: the factory holds configuration only."""
    return [DeflateFactory(min_size)]


class WebSocketProtocol(asyncio.Protocol):
    protocol = "websocket"
    # Slots, a list for the small bounded queue and attributes created only when
    # needed: an idle connection's footprint is what bounds how many a process holds.
    __slots__ = (
        "_abandon_timer",
        "_close_timer",
        "_connect_timer",
        "_denial",
        "_disconnect",
        "_early",
        "_fragment_text",
        "_fragments",
        "_frame_key",
        "_handshake",
        "_headers",
        "_ping_payload",
        "_ping_timer",
        "_queue",
        "_reading",
        "_target",
        "_waiter",
        "closed",
        "config",
        "conn",
        "ctx",
        "flow",
        "info",
        "loop",
        "scope",
        "state",
        "task",
        "transport",
    )

    def __init__(
        self, ctx: ServerContext, transport: asyncio.Transport, info: ConnectionInfo
    ) -> None:
        config = ctx.config
        self.ctx = ctx
        self.config = config
        self.loop = asyncio.get_running_loop()
        self.transport = transport
        self.info = info
        self.flow = WriteFlow(transport, config.timeout_send, config.write_buffer_limit)
        self.conn = ServerProtocol(
            extensions=(
                _extensions(config.ws_compress_min_size) if config.ws_per_message_deflate else None
            ),
            max_size=config.ws_max_size,
            logger=protocol_logger,
        )
        self.state = AppState.HANDSHAKE
        self.scope: dict[str, Any] = {}
        self.task: asyncio.Task[None] | None = None
        self.closed = False
        self._handshake: Response | None = None
        self._headers: AsgiHeaders = []
        self._target = b"/"
        self._denial: tuple[int, list[tuple[str, str]], list[bytes]] | None = None
        self._queue: list[dict[str, Any]] = []
        self._waiter: asyncio.Future[None] | None = None
        self._reading = True
        self._disconnect: dict[str, Any] | None = None
        self._early = b""
        self._fragments: list[bytes] | None = None
        self._fragment_text = False
        #: deflate.signature() of the open connection: frames are shared when not None.
        self._frame_key: tuple[object, ...] | None = None
        self._connect_timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        #: After the client left: cancels an application still running at app_close_timeout.
        self._abandon_timer: asyncio.TimerHandle | None = None
        self._ping_timer: asyncio.TimerHandle | None = None
        self._ping_payload: bytes | None = None

    def start(self, method: bytes, url: bytes, headers: AsgiHeaders, trailing: bytes) -> None:
        """Take over the socket from the HTTP protocol that parsed the upgrade request.

        websockets re-parses the request head (so it alone validates the handshake);
        ``trailing`` is whatever the client sent after it.
        """
        self.ctx.connections.add(self)
        self._headers = headers
        self._target = url
        if not all(value.isascii() for name, value in headers if name.startswith(b"sec-websocket")):
            # RFC 6455 4.2.1: these fields are ASCII tokens and base64; websockets
            # would fail on other bytes with a 500 and a traceback.
            self.ctx.peer_log.repeated(
                "WebSocket handshake 400",
                f"WebSocket handshake from {self.info.client} refused (400): non-ASCII field",
            )
            self._refuse(400, "Invalid WebSocket handshake request")
            return
        head = [method, b" ", url, b" HTTP/1.1\r\n"]
        for name, value in headers:
            head += (name, b": ", value, b"\r\n")
        head.append(b"\r\n")
        self.data_received(b"".join(head))
        if trailing:
            self.data_received(trailing)

    # -- asyncio.Protocol ------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """The error boundary of the wire side: a bug aborts this connection only."""
        try:
            if self.task is not None and self.state in (AppState.HANDSHAKE, AppState.RESPONDING):
                self._hold_early(data)
            else:
                self._received(data)
        except Exception as exc:
            failures.failed(f"error handling WebSocket data from {self.info.client}", exc)
            self.abort()

    def _hold_early(self, data: bytes) -> None:
        """RFC 6455 4.1: a client sends no frame before the 101 response. Frames that
        come early anyway wait (up to ``ws_max_size`` bytes) until the application
        accepts (a refusal drops them); the handshake parser would take them for a
        failed handshake."""
        self._early += data
        if len(self._early) > self.config.ws_max_size:
            self._early = b""
            self.ctx.peer_log.repeated(
                "WebSocket early data", f"WebSocket from {self.info.client}: data before the 101"
            )
            self.abort()

    def _received(self, data: bytes) -> None:
        conn = self.conn
        conn.receive_data(data)
        for event in conn.events_received():
            if isinstance(event, Frame):
                self._on_frame(event)
            elif isinstance(event, Request):
                self._on_request(event)
        if self.state is AppState.HANDSHAKE and conn.handshake_exc is not None and not self.task:
            self._refuse(400, "Invalid WebSocket handshake request")
            return
        self._flush()
        if conn.close_rcvd is not None:
            self._deliver_disconnect(conn.close_rcvd.code)

    def eof_received(self) -> bool | None:
        self.conn.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._early = b""
        self._log_peer_error()
        for timer in (self._connect_timer, self._close_timer, self._ping_timer):
            if timer is not None:
                timer.cancel()
        self.flow.lost()
        conn = self.conn
        if conn.close_rcvd is not None:
            code = conn.close_rcvd.code
        elif conn.close_sent is not None:
            code = conn.close_sent.code
        else:
            code = ABNORMAL
        self._deliver_disconnect(code)
        if self.task is not None and not self.task.done():
            self._abandon_timer = self.loop.call_later(
                self.config.app_close_timeout, self.task.cancel
            )
        self._forget_if_done()

    def pause_writing(self) -> None:
        self.flow.pause()

    def resume_writing(self) -> None:
        self.flow.resume()

    def _log_peer_error(self) -> None:
        """One INFO line (then counts) when we closed because the client broke the protocol."""
        sent = self.conn.close_sent
        if sent is not None and sent.code in PEER_ERRORS:
            self.ctx.peer_log.repeated(
                f"WebSocket {sent.code}",
                f"WebSocket from {self.info.client} closed with {sent.code} "
                f"({PEER_ERRORS[sent.code]}: {sent.reason})",
            )

    # -- from the client ---------------------------------------------------------------

    def _on_request(self, request: Request) -> None:
        response = self.conn.accept(request)
        if response.status_code != 101:
            # Bad upgrade headers: websockets chose the status (400, 426); no app involved.
            self.ctx.peer_log.repeated(
                f"WebSocket handshake {response.status_code}",
                f"WebSocket handshake from {self.info.client} refused "
                f"({response.status_code}): {self.conn.handshake_exc}",
            )
            self.conn.send_response(response)
            self.state = AppState.CLOSED
            return
        self._handshake = response
        self.scope = websocket_scope(
            self._target,
            "1.1",
            self._headers,
            self.info,
            root_path=self.config.root_path,
            state=self.ctx.state,
            proxies=self.ctx.proxies,
        )
        self._queue.append({"type": "websocket.connect"})
        self._connect_timer = self.loop.call_later(
            self.config.ws_connect_timeout, self._connect_timed_out
        )
        self.task = self.loop.create_task(self._run())
        self.task.add_done_callback(self._task_done)

    def _on_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if frame.fin:
                self._deliver(opcode is Opcode.TEXT, frame.data)
            else:
                self._fragment_text = opcode is Opcode.TEXT
                self._fragments = [bytes(frame.data)]
        elif opcode is Opcode.CONT:
            fragments = self._fragments
            if fragments is None:
                return  # websockets already failed the connection (1002)
            fragments.append(bytes(frame.data))
            if frame.fin:
                self._fragments = None
                self._deliver(self._fragment_text, b"".join(fragments))
        elif opcode is Opcode.PONG and frame.data == self._ping_payload:
            self._ping_payload = None
            self._schedule_ping()

    def _deliver(self, text: bool, data: bytes | bytearray | memoryview) -> None:
        if self.state is not AppState.OPEN:
            return  # RFC 6455 7.1.4: after our Close, incoming data is discarded
        if text:
            try:
                message: dict[str, Any] = {"type": "websocket.receive", "text": str(data, "utf-8")}
            except UnicodeDecodeError as exc:
                # RFC 6455 8.1: invalid UTF-8 in a text message fails the connection (1007).
                self.conn.fail(1007, f"invalid UTF-8 at position {exc.start}")
                return
        else:
            message = {"type": "websocket.receive", "bytes": bytes(data)}
        self._push(message)
        self.ctx.counters.ws_received += 1
        if len(self._queue) >= self.config.ws_max_queue and self._reading:
            self._reading = False
            self.transport.pause_reading()

    # -- to the application --------------------------------------------------------------

    def _push(self, message: dict[str, Any]) -> None:
        self._queue.append(message)
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _deliver_disconnect(self, code: int) -> None:
        if self._disconnect is not None or self.task is None:
            return
        reason = self.conn.close_rcvd.reason if self.conn.close_rcvd is not None else ""
        self._disconnect = {"type": "websocket.disconnect", "code": code, "reason": reason}
        if self.state is not AppState.CLOSED and self.state is not AppState.RESPONDING:
            self.state = AppState.CLOSED
        if self.config.access_log:
            log_websocket(self.scope, "disconnect", code)
        self._push(self._disconnect)

    @property
    def queued(self) -> int:
        """Incoming events waiting for the application (bounded by ``ws_max_queue``)."""
        return len(self._queue)

    async def receive(self) -> dict[str, Any]:
        while True:
            if self._queue:
                message = self._queue.pop(0)
                if not self._reading and len(self._queue) < self.config.ws_max_queue // 2:
                    self._reading = True
                    if not self.closed:
                        self.transport.resume_reading()
                return message
            if self._disconnect is not None:
                return self._disconnect
            self._waiter = self.loop.create_future()
            await self._waiter

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        state = self.state
        if state is AppState.OPEN and kind == "websocket.send":
            if self.conn.state is not State.OPEN:
                raise ClientDisconnected("the WebSocket is closing")
            text = message.get("text")
            key = self._frame_key
            if key is not None:
                # Encoded once for every socket sending the same message (a group
                # broadcast); written directly: websockets' protocol keeps no state
                # for a whole data frame the server sends.
                data = message["bytes"] if text is None else text
                frame = encoded_frame(text is not None, data, key, self.conn.extensions)
                if not self.closed:
                    self.transport.write(frame)
                self._flush()
            elif text is not None:
                self.conn.send_text(text.encode())
                self._flush()
            else:
                self.conn.send_binary(message["bytes"])
                self._flush()
            self.ctx.counters.ws_sent += 1
            if self.flow.paused:
                await self.flow.drain()
        elif state is AppState.HANDSHAKE:
            self._send_handshake(kind, message)
        elif state is AppState.RESPONDING and kind == "websocket.http.response.body":
            assert self._denial is not None  # RESPONDING implies it
            self._denial[2].append(message.get("body", b""))
            if not message.get("more_body", False):
                self._send_denial()
        elif state is AppState.OPEN and kind == "websocket.close":
            self._close(message.get("code") or 1000, message.get("reason") or "")
        elif state is AppState.CLOSED or state is AppState.CLOSING:
            # Includes an accept racing a client that already left: not an app bug.
            raise ClientDisconnected(f"{kind!r} on a closed WebSocket")
        else:
            raise ProtocolViolation(f"{kind!r} is not valid while the WebSocket is {state.value}")

    def _send_handshake(self, kind: str, message: dict[str, Any]) -> None:
        if self.closed:
            raise ClientDisconnected("the client left before the handshake completed")
        if kind == "websocket.accept":
            response, self._handshake = self._handshake, None
            assert response is not None  # set before the application starts
            subprotocol = message.get("subprotocol")
            if subprotocol:
                response.headers["Sec-WebSocket-Protocol"] = subprotocol
            for name, value in message.get("headers", ()):
                response.headers[name.decode("latin-1")] = value.decode("latin-1")
            self.conn.send_response(response)
            self._flush()
            self._switch_to_open()
            self.state = AppState.OPEN
            self._cancel_connect_timer()
            self._schedule_ping()
            if self.config.access_log:
                log_websocket(self.scope, "accept", 101)
            early, self._early = self._early, b""
            if early:
                self._received(early)
        elif kind == "websocket.close":
            # ASGI: closing before accepting is an HTTP 403 (www spec, websocket.close),
            # with an empty body as uvicorn sends.
            self._refuse(403, "")
        elif kind == "websocket.http.response.start":
            headers = [
                (k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", ())
            ]
            self._denial = (int(message["status"]), headers, [])
            self.state = AppState.RESPONDING
        else:
            raise ProtocolViolation(
                "expected 'websocket.accept', 'websocket.close' or "
                f"'websocket.http.response.start' before the handshake, got {kind!r}"
            )

    def _switch_to_open(self) -> None:
        """Continue with a protocol created in the OPEN state (websockets' ``state``
        argument) and the negotiated extensions.

        The handshake protocol's parser keeps the parsed request alive for as long as
        it runs; starting afresh saves that on every idle connection. A client sends
        no frames before the 101 response (RFC 6455 4.1), so nothing is left behind.
        """
        handshake = self.conn
        self.conn = ServerProtocol(
            state=State.OPEN, max_size=self.config.ws_max_size, logger=protocol_logger
        )
        self.conn.extensions = handshake.extensions
        self._frame_key = signature(handshake.extensions)

    def _send_denial(self) -> None:
        assert self._denial is not None  # RESPONDING implies it
        status, header_list, parts = self._denial
        body = b"".join(parts)
        headers = Headers(header_list)
        # RFC 9110 6.6.1 (Date), 9112 9.6 (we close after it), 8.6 (its length).
        headers.setdefault("Date", email.utils.formatdate(usegmt=True))
        headers.setdefault("Connection", "close")
        headers.setdefault("Content-Length", str(len(body)))
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        self._respond(Response(status, phrase, headers, body))

    def _refuse(self, status: int, text: str) -> None:
        if self.state is AppState.HANDSHAKE and not self.closed:
            if self.conn.state is State.CONNECTING and self.conn.handshake_exc is None:
                self._respond(self.conn.reject(status, text))
            else:
                self.transport.write(simple_response(status, text))
                self.transport.close()
        self.state = AppState.CLOSED

    def _respond(self, response: Response) -> None:
        self._cancel_connect_timer()
        self.conn.send_response(response)
        self.state = AppState.CLOSED
        if self.config.access_log:
            log_websocket(self.scope, "reject", response.status_code)
        self._flush()

    def _close(self, code: int, reason: str) -> None:
        self.state = AppState.CLOSING
        if self.conn.state is State.OPEN:
            self.conn.send_close(code, reason)
        self._flush()
        if not self._reading and not self.closed:
            # Read again, even if the application is behind: data after our Close is
            # discarded (RFC 6455 7.1.4) and the client's Close ends the handshake now
            # rather than at ws_close_timeout.
            self._reading = True
            self.transport.resume_reading()

    # -- the application's life ------------------------------------------------------------

    async def _run(self) -> None:
        """The error boundary of one WebSocket: log, answer (500 or 1011), never raise."""
        try:
            await self.ctx.app(self.scope, self.receive, self.send)
        except asyncio.CancelledError:
            raise
        except ClientDisconnected:
            pass  # the client left while the application was sending
        except Exception:
            logger.exception("Exception in ASGI application (WebSocket %s)", self.scope["path"])
            self._end_after_app(500, 1011)
        else:
            self._end_after_app(500, 1000)

    def _end_after_app(self, status: int, code: int) -> None:
        if self.state is AppState.HANDSHAKE or self.state is AppState.RESPONDING:
            if self.state is AppState.HANDSHAKE and code == 1000:
                logger.error("ASGI application returned without accepting the WebSocket")
            self.state = AppState.HANDSHAKE
            self._refuse(status, "Internal Server Error")
        elif self.state is AppState.OPEN:
            self._close(code, "")

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if self._abandon_timer is not None:
            self._abandon_timer.cancel()  # it would keep the task alive for nothing
            self._abandon_timer = None
        self._forget_if_done()

    def _forget_if_done(self) -> None:
        if self.done:
            self.ctx.forget(self)

    # -- writing and timers ------------------------------------------------------------------

    def _flush(self) -> None:
        """Write what websockets produced; watch the buffer limit and the close deadline."""
        if self.closed:
            return
        writes = self.conn.data_to_send()
        if not writes:
            return
        for data in writes:
            if data:
                self.transport.write(data)
            else:
                # The protocol sent EOF: a server closes TCP first (RFC 6455 7.1.1).
                self.transport.close()
                self.closed = True
                return
        if self.flow.over_limit():
            logger.warning("dropping %s: it reads nothing and its buffer is full", self.info.client)
            self.transport.abort()
        elif (
            self.conn.state is not State.OPEN
            and self._close_timer is None
            and self.conn.close_expected()
        ):
            self._close_timer = self.loop.call_later(
                self.config.ws_close_timeout, self.transport.abort
            )

    def _cancel_connect_timer(self) -> None:
        if self._connect_timer is not None:
            self._connect_timer.cancel()
            self._connect_timer = None

    def _connect_timed_out(self) -> None:
        self._connect_timer = None
        if self.state is AppState.HANDSHAKE:
            logger.warning(
                "WebSocket %s: the application did not accept within %gs",
                self.scope["path"],
                self.config.ws_connect_timeout,
            )
            self._refuse(504, "Gateway Timeout")

    def _schedule_ping(self) -> None:
        interval = self.config.ws_ping_interval
        if interval is not None and not self.closed:
            self._ping_timer = self.loop.call_later(interval, self._ping)

    def _ping(self) -> None:
        if self.conn.state is not State.OPEN:
            return
        self._ping_payload = os.urandom(4)
        self.conn.send_ping(self._ping_payload)
        self._flush()
        timeout = self.config.ws_ping_timeout
        if timeout is None:
            self._ping_payload = None
            self._schedule_ping()
        else:
            self._ping_timer = self.loop.call_later(timeout, self._ping_timed_out)

    def _ping_timed_out(self) -> None:
        if self._ping_payload is not None and self.conn.state is State.OPEN:
            logger.info("WebSocket %s: no Pong in time, closing with 1011", self.info.client)
            self.conn.fail(1011, "keepalive ping timeout")
            self._flush()

    # -- server shutdown (context.Connection) --------------------------------------------------

    def shutdown(self) -> None:
        if self.state is AppState.HANDSHAKE:
            self._refuse(503, "Service Unavailable")
        elif self.state is AppState.OPEN:
            self._close(1001, "server shutting down")

    def abort(self) -> None:
        if not self.closed:
            self.transport.abort()
        if self.task is not None:
            self.task.cancel()

    @property
    def done(self) -> bool:
        return self.closed and (self.task is None or self.task.done())

    @property
    def running(self) -> int:
        return int(self.task is not None and not self.task.done())
