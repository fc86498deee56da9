"""The ASGI state machine of one WebSocket, sans I/O: data in, data out.

:class:`WebSocketSession` decides what the application may send in which state,
what each send becomes on the wire, and which events the application receives for
what the client sends. websockets' sans-I/O ``ServerProtocol`` (held as ``conn``)
does the protocol below it (handshake validation, framing, masking, ping/pong, the
closing handshake, permessage-deflate, the size limit). No socket, task or timer
lives here: :class:`protocols.websocket.websocket.WebSocketProtocol` moves the bytes,
runs the application and keeps the clocks.

Application-side states; a send in the wrong one raises
:class:`~protocols.websocket.errors.ProtocolViolation` (the application's bug) or
:class:`~protocols.websocket.errors.ClientDisconnected` (the client left first)::

    HANDSHAKE --accept--> OPEN --close--> CLOSING --client Close / connection lost--> CLOSED
        |--close--> CLOSED (HTTP 403)
        '--http.response.start--> RESPONDING --last body--> CLOSED (denial response)

    state       the application may send            it becomes
    HANDSHAKE   websocket.accept                    101 response (+ subprotocol, headers)
                websocket.close                     HTTP 403, empty body
                websocket.http.response.start       nothing yet (Denial Response extension)
    RESPONDING  websocket.http.response.body        the HTTP response, once the last body came
    OPEN        websocket.send (text or bytes)      a data frame
                websocket.close (code, reason)      a Close frame (code 1000 if none)
    CLOSING     anything                            ClientDisconnected
    CLOSED      anything                            ClientDisconnected

Inputs: :meth:`~WebSocketSession.start` (the upgrade request's head),
:meth:`~WebSocketSession.receive_data`, :meth:`~WebSocketSession.receive_eof` and
:meth:`~WebSocketSession.connection_lost` from the client;
:meth:`~WebSocketSession.send` and :meth:`~WebSocketSession.app_finished` from the
application; :meth:`~WebSocketSession.connect_timeout`,
:meth:`~WebSocketSession.ping`, :meth:`~WebSocketSession.ping_timeout` and
:meth:`~WebSocketSession.shutdown` from the clocks and the server.

Outputs: :meth:`~WebSocketSession.data_to_send` (bytes to write; ``b""`` means
close the TCP connection, and nothing follows it), :meth:`~WebSocketSession.send`'s
return value (a data frame to write now, see there),
:meth:`~WebSocketSession.next_event` (the application's next event), ``reading``
(whether the I/O layer should read from the socket), ``state``, ``scope`` and
:meth:`~WebSocketSession.close_expected`.

The application receives ``websocket.connect`` once the handshake is valid, one
``websocket.receive`` per message (text or bytes), and exactly one
``websocket.disconnect`` carrying the close code (1006 if there was none) and the
client's reason; once delivered, every later receive returns that disconnect again.
Incoming messages wait in a queue of at most ``ws_max_queue`` before ``reading``
turns false; it turns true again when the application has read half of them, or
when the application closes (the client's Close then ends the handshake at once).

Logging: a client's protocol error (a bad frame: 1002, 1007, 1009; a bad handshake)
is not a server error: it goes to ``peer_log`` at INFO, without a traceback, one
line per kind then counts. websockets' own ERROR records (an unexpected exception in
its parser) are bugs: one traceback per kind, then counts (:data:`failures`).
"""

from __future__ import annotations

import enum
import functools
import logging
import sys
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any, Final, cast

from websockets.datastructures import Headers
from websockets.extensions.base import Extension, ServerExtensionFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import Protocol, State
from websockets.server import ServerProtocol

from gateway.failure_log import FailureLog
from gateway.types import Message, Scope
from gateway.web import events
from gateway.web.events import Headers as AsgiHeaders
from protocols.websocket.accesslog import log_websocket
from protocols.websocket.config import Config
from protocols.websocket.context import Counters
from protocols.websocket.deflate import DeflateFactory, encoded_frame, signature
from protocols.websocket.errors import ClientDisconnected, ProtocolViolation
from protocols.websocket.handshake import Opening, open_directly
from protocols.websocket.proxy import TrustedProxies
from protocols.websocket.response import http_date, simple_response
from protocols.websocket.scope import ConnectionInfo, websocket_scope

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

#: :meth:`WebSocketSession.receive_data` results, bit flags (0: nothing to do).
#: Drop the connection now: the client sent too much before the 101 response.
ABORT: Final = 1
#: The awaited Pong arrived: schedule the next Ping.
PONG: Final = 2

_NOTHING: Sequence[bytes] = ()


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


class WebSocketSession:
    """One WebSocket between a client and an ASGI application (module docstring)."""

    # Slots and attributes created only when needed: an idle connection's footprint
    # is what bounds how many a process holds.
    __slots__ = (
        "_denial",
        "_early",
        "_fragment_text",
        "_fragments",
        "_frame_key",
        "_handshake",
        "_headers",
        "_lifespan_state",
        "_pending",
        "_ping_payload",
        "_proxies",
        "_target",
        "closed",
        "config",
        "conn",
        "counters",
        "disconnect",
        "events",
        "info",
        "peer_log",
        "reading",
        "scope",
        "state",
    )

    def __init__(
        self,
        config: Config,
        info: ConnectionInfo,
        *,
        counters: Counters | None = None,
        peer_log: FailureLog | None = None,
        lifespan_state: dict[str, Any] | None = None,
        proxies: TrustedProxies | None = None,
    ) -> None:
        self.config = config
        self.info = info
        #: The server's message counters (``ws_received``, ``ws_sent``).
        self.counters = counters if counters is not None else Counters()
        #: Where clients' protocol errors go (INFO, one line per kind then counts).
        self.peer_log = peer_log if peer_log is not None else FailureLog(logger, level=logging.INFO)
        self._lifespan_state = lifespan_state
        self._proxies = proxies
        self.conn = ServerProtocol(
            extensions=(
                _extensions(config.ws_compress_min_size) if config.ws_per_message_deflate else None
            ),
            max_size=config.ws_max_size,
            logger=protocol_logger,
        )
        self.state = AppState.HANDSHAKE
        #: The ASGI scope, built once the handshake is valid (empty before: the
        #: application never runs for a connection whose scope is empty).
        self.scope: Scope = {}
        #: Whether the TCP connection is closed (lost, or closed after our EOF).
        self.closed = False
        #: Whether the I/O layer should read from the socket (False: the queue is full).
        self.reading = True
        #: Events waiting for the application (bounded by ``ws_max_queue``).
        self.events: list[events.WebsocketEvent] = []
        #: The ``websocket.disconnect`` event, once delivered.
        self.disconnect: events.DisconnectEvent | None = None
        self._handshake: Response | Opening | None = None
        self._headers: AsgiHeaders = []
        self._target = b"/"
        self._denial: tuple[int, list[tuple[str, str]], list[bytes]] | None = None
        self._early = b""
        self._fragments: list[bytes] | None = None
        self._fragment_text = False
        #: deflate.signature() of the open connection: frames are shared when not None.
        self._frame_key: tuple[object, ...] | None = None
        self._ping_payload: bytes | None = None
        #: Bytes to write before whatever ``conn`` has pending.
        self._pending: list[bytes] | None = None

    # -- from the client -----------------------------------------------------------------

    def start(self, method: bytes, url: bytes, headers: AsgiHeaders) -> bool:
        """The upgrade request the HTTP server parsed; True when it is a valid
        handshake, so the application must now run (``websocket.connect`` is queued).

        A request of the usual shape is checked and later answered directly
        (:mod:`protocols.websocket.handshake`); any other is re-parsed by
        websockets, which then judges it and answers refusals itself.
        """
        self._headers = headers
        self._target = url
        if not all(value.isascii() for name, value in headers if name.startswith(b"sec-websocket")):
            # RFC 6455 4.2.1: these fields are ASCII tokens and base64; websockets
            # would fail on other bytes with a 500 and a traceback.
            self.peer_log.repeated(
                "WebSocket handshake 400",
                f"WebSocket handshake from {self.info.client} refused (400): non-ASCII field",
            )
            self._refuse(400, "Invalid WebSocket handshake request")
            return False
        opening = open_directly(method, url, headers, self.conn)
        if opening is not None:
            # The state websockets' parser would be in after reading this request.
            self.conn.parser = Protocol.parse(self.conn)
            next(self.conn.parser)
            self._handshake_valid(opening)
            return True
        head = [method, b" ", url, b" HTTP/1.1\r\n"]
        for name, value in headers:
            head += (name, b": ", value, b"\r\n")
        head.append(b"\r\n")
        self.receive_data(b"".join(head))
        return bool(self.scope)

    def receive_data(self, data: bytes) -> int:
        """Bytes from the client; returns :data:`ABORT` and/or :data:`PONG`, or 0."""
        state = self.state
        if (state is AppState.HANDSHAKE or state is AppState.RESPONDING) and self.scope:
            return self._hold_early(data)
        return self._receive(data)

    def _hold_early(self, data: bytes) -> int:
        """RFC 6455 4.1: a client sends no frame before the 101 response. Frames that
        come early anyway wait (up to ``ws_max_size`` bytes) until the application
        accepts (a refusal drops them); the handshake parser would take them for a
        failed handshake."""
        self._early += data
        if len(self._early) > self.config.ws_max_size:
            self._early = b""
            self.peer_log.repeated(
                "WebSocket early data", f"WebSocket from {self.info.client}: data before the 101"
            )
            return ABORT
        return 0

    def _receive(self, data: bytes) -> int:
        conn = self.conn
        awaited = self._ping_payload
        conn.receive_data(data)
        for event in conn.events_received():
            if isinstance(event, Frame):
                self._on_frame(event)
            elif isinstance(event, Request):
                self._on_request(event)
        if self.state is AppState.HANDSHAKE and conn.handshake_exc is not None and not self.scope:
            self._refuse(400, "Invalid WebSocket handshake request")
            return 0
        if conn.close_rcvd is not None:
            self._deliver_disconnect(conn.close_rcvd.code)
        return PONG if awaited is not None and self._ping_payload is None else 0

    def receive_eof(self) -> None:
        """The client half-closed the connection."""
        self.conn.receive_eof()

    def connection_lost(self) -> None:
        """The TCP connection is gone: the application learns it (once)."""
        self.closed = True
        self._early = b""
        self._log_peer_error()
        conn = self.conn
        if conn.close_rcvd is not None:
            code = conn.close_rcvd.code
        elif conn.close_sent is not None:
            code = conn.close_sent.code
        else:
            code = ABNORMAL
        self._deliver_disconnect(code)

    def _log_peer_error(self) -> None:
        """One INFO line (then counts) when we closed because the client broke the protocol."""
        sent = self.conn.close_sent
        if sent is not None and sent.code in PEER_ERRORS:
            self.peer_log.repeated(
                f"WebSocket {sent.code}",
                f"WebSocket from {self.info.client} closed with {sent.code} "
                f"({PEER_ERRORS[sent.code]}: {sent.reason})",
            )

    def _on_request(self, request: Request) -> None:
        response = self.conn.accept(request)
        if response.status_code != 101:
            # Bad upgrade headers: websockets chose the status (400, 426); no app involved.
            self.peer_log.repeated(
                f"WebSocket handshake {response.status_code}",
                f"WebSocket handshake from {self.info.client} refused "
                f"({response.status_code}): {self.conn.handshake_exc}",
            )
            self.conn.send_response(response)
            self.state = AppState.CLOSED
            return
        self._handshake_valid(response)

    def _handshake_valid(self, handshake: Response | Opening) -> None:
        """Build the scope and queue ``websocket.connect``: the application decides."""
        self._handshake = handshake
        self.scope = cast(
            Scope,
            websocket_scope(
                self._target,
                "1.1",
                self._headers,
                self.info,
                root_path=self.config.root_path,
                state=self._lifespan_state,
                proxies=self._proxies,
            ),
        )
        self.events.append(events.connect_event())

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

    def _deliver(self, text: bool, data: bytes | bytearray | memoryview) -> None:
        if self.state is not AppState.OPEN:
            return  # RFC 6455 7.1.4: after our Close, incoming data is discarded
        if text:
            try:
                message = events.receive_event(str(data, "utf-8"))
            except UnicodeDecodeError as exc:
                # RFC 6455 8.1: invalid UTF-8 in a text message fails the connection (1007).
                self.conn.fail(1007, f"invalid UTF-8 at position {exc.start}")
                return
        else:
            message = events.receive_event(bytes(data))
        queue = self.events
        queue.append(message)
        self.counters.ws_received += 1
        if len(queue) >= self.config.ws_max_queue:
            self.reading = False

    def _deliver_disconnect(self, code: int) -> None:
        if self.disconnect is not None or not self.scope:
            return
        reason = self.conn.close_rcvd.reason if self.conn.close_rcvd is not None else ""
        self.disconnect = events.disconnect_event(code, reason)
        if self.state is not AppState.CLOSED and self.state is not AppState.RESPONDING:
            self.state = AppState.CLOSED
        if self.config.access_log:
            log_websocket(self.scope, "disconnect", code)
        self.events.append(self.disconnect)

    # -- to the application ----------------------------------------------------------------

    def next_event(self) -> events.WebsocketEvent | None:
        """The application's next event; None while there is none yet."""
        queue = self.events
        if queue:
            event = queue.pop(0)
            if not self.reading and len(queue) < self.config.ws_max_queue // 2:
                self.reading = True
            return event
        return self.disconnect

    @property
    def queued(self) -> int:
        """Incoming events waiting for the application (bounded by ``ws_max_queue``)."""
        return len(self.events)

    # -- from the application --------------------------------------------------------------

    def send(self, message: Message) -> bytes | None:
        """Take a message from the application, or raise if it may not send it now.

        A ``websocket.send`` returns the bytes to write at once: its encoded frame,
        shared by every socket sending the same message (:func:`encoded_frame`), or
        ``b""`` when the frame went through ``conn`` (:meth:`data_to_send`). Any
        other message returns None; what it produced is in :meth:`data_to_send`.
        """
        kind = message["type"]
        state = self.state
        if state is AppState.OPEN and kind == "websocket.send":
            conn = self.conn
            if conn.state is not State.OPEN:
                raise ClientDisconnected("the WebSocket is closing")
            data = events.frame_data(message)
            key = self._frame_key
            if key is not None:
                # Encoded once for every socket sending the same message (a group
                # broadcast); written directly: websockets' protocol keeps no state
                # for a whole data frame the server sends.
                frame = encoded_frame(isinstance(data, str), data, key, conn.extensions)
                self.counters.ws_sent += 1
                return b"" if self.closed else frame
            if isinstance(data, str):
                conn.send_text(data.encode())
            else:
                conn.send_binary(data)
            self.counters.ws_sent += 1
            return b""
        if state is AppState.HANDSHAKE:
            self._send_handshake(kind, message)
        elif state is AppState.RESPONDING and kind == "websocket.http.response.body":
            assert self._denial is not None  # RESPONDING implies it
            body, more_body = events.body_of(message)
            self._denial[2].append(body)
            if not more_body:
                self._send_denial()
        elif state is AppState.OPEN and kind == "websocket.close":
            self._close(*events.close_of(message))
        elif state is AppState.CLOSED or state is AppState.CLOSING:
            # Includes an accept racing a client that already left: not an app bug.
            raise ClientDisconnected(f"{kind!r} on a closed WebSocket")
        else:
            raise ProtocolViolation(f"{kind!r} is not valid while the WebSocket is {state.value}")
        return None

    def _send_handshake(self, kind: str, message: Message) -> None:
        if self.closed:
            raise ClientDisconnected("the client left before the handshake completed")
        if kind == "websocket.accept":
            handshake, self._handshake = self._handshake, None
            assert handshake is not None  # set before the application starts
            subprotocol = message.get("subprotocol")
            if isinstance(handshake, Opening):
                self._write_first([handshake.response(subprotocol, events.headers_of(message))])
                self._switch_to_open(handshake.extensions)
            else:
                if subprotocol:
                    handshake.headers["Sec-WebSocket-Protocol"] = subprotocol
                for name, value in events.headers_of(message):
                    handshake.headers[name.decode("latin-1")] = value.decode("latin-1")
                self.conn.send_response(handshake)
                self._switch_to_open(self.conn.extensions)
            self.state = AppState.OPEN
            if self.config.access_log:
                log_websocket(self.scope, "accept", 101)
            early, self._early = self._early, b""
            if early:
                self._receive(early)
        elif kind == "websocket.close":
            # ASGI: closing before accepting is an HTTP 403 (www spec, websocket.close),
            # with an empty body as uvicorn sends.
            self._refuse(403, "")
        elif kind == "websocket.http.response.start":
            headers = [
                (k.decode("latin-1"), v.decode("latin-1")) for k, v in events.headers_of(message)
            ]
            self._denial = (int(message["status"]), headers, [])
            self.state = AppState.RESPONDING
        else:
            raise ProtocolViolation(
                "expected 'websocket.accept', 'websocket.close' or "
                f"'websocket.http.response.start' before the handshake, got {kind!r}"
            )

    def _switch_to_open(self, extensions: list[Extension]) -> None:
        """Continue with a protocol created in the OPEN state (websockets' ``state``
        argument) and the negotiated extensions; the 101 response it wrote goes first.

        The handshake protocol's parser keeps the parsed request alive for as long as
        it runs; starting afresh saves that on every idle connection. A client sends
        no frames before the 101 response (RFC 6455 4.1), so nothing is left behind.
        """
        self._write_first(self.conn.data_to_send())
        self.conn = ServerProtocol(
            state=State.OPEN, max_size=self.config.ws_max_size, logger=protocol_logger
        )
        self.conn.extensions = extensions
        self._frame_key = signature(extensions)

    def _send_denial(self) -> None:
        assert self._denial is not None  # RESPONDING implies it
        status, header_list, parts = self._denial
        body = b"".join(parts)
        headers = Headers(header_list)
        # RFC 9110 6.6.1 (Date), 9112 9.6 (we close after it), 8.6 (its length).
        headers.setdefault("Date", http_date())
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
                # websockets already answered or gave up: a response of our own, then
                # close (what it has pending, at most its end of stream, is dropped).
                self._write_first([simple_response(status, text), b""])
        self.state = AppState.CLOSED

    def _respond(self, response: Response) -> None:
        if not self.conn.eof_sent:  # else the client ended the stream first: no one to answer
            self.conn.send_response(response)
        self.state = AppState.CLOSED
        if self.config.access_log and self.scope:
            log_websocket(self.scope, "reject", response.status_code)

    def _close(self, code: int, reason: str) -> None:
        self.state = AppState.CLOSING
        if self.conn.state is State.OPEN:
            self.conn.send_close(code, reason)
        # Read again, even if the application is behind: data after our Close is
        # discarded (RFC 6455 7.1.4) and the client's Close ends the handshake now
        # rather than at ws_close_timeout.
        self.reading = True

    def app_finished(self, failed: bool) -> None:
        """The application returned (or raised, ``failed``): answer what it left open,
        HTTP 500 before the handshake completed, else a Close (1000, or 1011 if failed)."""
        state = self.state
        if state is AppState.HANDSHAKE or state is AppState.RESPONDING:
            if state is AppState.HANDSHAKE and not failed:
                logger.error("ASGI application returned without accepting the WebSocket")
            self.state = AppState.HANDSHAKE
            self._refuse(500, "Internal Server Error")
        elif state is AppState.OPEN:
            self._close(1011 if failed else 1000, "")

    # -- from the clocks and the server ------------------------------------------------------

    def connect_timeout(self) -> None:
        """``ws_connect_timeout`` passed since the application started: HTTP 504 if it
        has neither accepted nor refused."""
        if self.state is AppState.HANDSHAKE:
            logger.warning(
                "WebSocket %s: the application did not accept within %gs",
                self.scope["path"],
                self.config.ws_connect_timeout,
            )
            self._refuse(504, "Gateway Timeout")

    def ping(self, payload: bytes, awaited: bool) -> bool:
        """Send a keepalive Ping; False if the connection is not open. An ``awaited``
        Ping's Pong makes :meth:`receive_data` return :data:`PONG`."""
        conn = self.conn
        if conn.state is not State.OPEN:
            return False
        conn.send_ping(payload)
        self._ping_payload = payload if awaited else None
        return True

    def ping_timeout(self) -> None:
        """The awaited Pong did not come in time: fail the connection with 1011."""
        if self._ping_payload is not None and self.conn.state is State.OPEN:
            logger.info("WebSocket %s: no Pong in time, closing with 1011", self.info.client)
            self.conn.fail(1011, "keepalive ping timeout")

    def shutdown(self) -> None:
        """The server stops: HTTP 503 before the handshake completed, Close 1001 after."""
        if self.state is AppState.HANDSHAKE:
            self._refuse(503, "Service Unavailable")
        elif self.state is AppState.OPEN:
            self._close(1001, "server shutting down")

    # -- to the wire -------------------------------------------------------------------------

    def data_to_send(self) -> Sequence[bytes]:
        """Bytes to write, in order; a last ``b""`` means: close the TCP connection
        (a server closes TCP first, RFC 6455 7.1.1). Nothing after that."""
        if self.closed:
            return _NOTHING
        writes = self.conn.data_to_send()
        pending = self._pending
        if pending is not None:
            self._pending = None
            writes = pending + writes
        if writes and b"" in writes:
            del writes[writes.index(b"") + 1 :]
            self.closed = True
        return writes

    def _write_first(self, data: list[bytes]) -> None:
        self._pending = data if self._pending is None else self._pending + data

    def close_expected(self) -> bool:
        """Whether the TCP connection should close soon (our Close or a failure was
        sent): the I/O layer then bounds the wait with ``ws_close_timeout``."""
        conn = self.conn
        return conn.state is not State.OPEN and conn.close_expected()
