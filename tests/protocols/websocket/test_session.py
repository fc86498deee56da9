"""The WebSocket ASGI state machine (protocols/websocket/session.py), data in and data
out: a client's bytes and the application's messages go in; bytes for the wire and
the application's events come out. No socket, no event loop.

The unit tests walk each state's sends and the client's events; the properties run
random sequences of both and check what must always hold: only the documented
errors, a well-formed wire (one response; after a 101 only frames, at most one
Close, nothing after it; nothing after the end of stream), exactly one disconnect,
and round trips of every message either way.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.streams import StreamReader
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from gateway.web.events import WebsocketEvent
from protocols.websocket.config import Config
from protocols.websocket.errors import ClientDisconnected, ProtocolViolation
from protocols.websocket.scope import ConnectionInfo
from protocols.websocket.session import ABORT, PONG, AppState, WebSocketSession

INFO = ConnectionInfo(("127.0.0.1", 50000), ("127.0.0.1", 8000), False)
CONFIG = Config(access_log=False)
T = TypeVar("T")


def drive(parser: Generator[None, None, T]) -> T:
    """Run one of websockets' parsers over a reader that holds all its data."""
    try:
        while True:
            next(parser)
    except StopIteration as stop:
        value: T = stop.value
        return value


@dataclass
class Wire:
    """What the server wrote, parsed as a client reads it."""

    response: Response | None
    frames: list[Frame]
    eof: bool

    @property
    def data(self) -> list[str | bytes]:
        return [
            str(f.data, "utf-8") if f.opcode is Opcode.TEXT else bytes(f.data)
            for f in self.frames
            if f.opcode in (Opcode.TEXT, Opcode.BINARY)
        ]

    @property
    def closes(self) -> list[Close]:
        return [Close.parse(bytes(f.data)) for f in self.frames if f.opcode is Opcode.CLOSE]


@dataclass
class Harness:
    """The test's I/O layer: what WebSocketProtocol does with a session, minus the socket."""

    config: Config = CONFIG
    subprotocols: list[str] | None = None
    deflate: bool = False
    target: str = "/ws/chat?x=1"
    extra_headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    session: WebSocketSession = field(init=False)
    client: ClientProtocol = field(init=False)
    headers: list[tuple[bytes, bytes]] = field(init=False)
    written: bytearray = field(default_factory=bytearray)
    eof: bool = False

    def __post_init__(self) -> None:
        self.session = WebSocketSession(self.config, INFO)
        self.client = ClientProtocol(
            parse_uri(f"ws://example.com{self.target}"),
            subprotocols=[Subprotocol(p) for p in self.subprotocols or ()] or None,
            extensions=[ClientPerMessageDeflateFactory()] if self.deflate else None,
        )
        request = self.client.connect()
        self.headers = [
            (name.lower().encode(), value.encode()) for name, value in request.headers.raw_items()
        ] + self.extra_headers

    def start(self) -> bool:
        valid = self.session.start(b"GET", self.target.encode(), self.headers)
        self.flush()
        return valid

    def flush(self) -> None:
        for data in self.session.data_to_send():
            assert not self.eof, "nothing is written after the end of stream"
            if data:
                self.written += data
            else:
                self.eof = True

    def send(self, message: dict[str, Any]) -> bytes | None:
        frame = self.session.send(message)
        if frame:
            assert not self.eof
            self.written += frame
        self.flush()
        return frame

    def receive(self, data: bytes) -> int:
        signals = self.session.receive_data(data)
        self.flush()
        return signals

    def frame(self, opcode: Opcode, data: bytes, fin: bool = True) -> int:
        """A client frame, masked (RFC 6455 5.3) and uncompressed (RFC 7692 6)."""
        return self.receive(Frame(opcode, data, fin).serialize(mask=True))

    def close(self, code: int = 1000, reason: str = "") -> int:
        return self.frame(Opcode.CLOSE, Close(code, reason).serialize())

    def events(self) -> list[WebsocketEvent]:
        """Every event the application can read now, up to the first disconnect."""
        events: list[WebsocketEvent] = []
        while (event := self.session.next_event()) is not None:
            events.append(event)
            if event["type"] == "websocket.disconnect":
                break
        return events

    def wire(self) -> Wire:
        reader = StreamReader()
        reader.feed_data(bytes(self.written))
        reader.feed_eof()
        if not reader.buffer:
            return Wire(None, [], self.eof)
        response = drive(Response.parse(reader.read_line, reader.read_exact, reader.read_to_eof))
        frames = []
        if response.status_code == 101:
            self.client.process_response(response)  # a valid handshake response
            while reader.buffer:
                frame = drive(
                    Frame.parse(reader.read_exact, mask=False, extensions=self.client.extensions)
                )
                frames.append(frame)
        assert not reader.buffer, "nothing but the response"
        return Wire(response, frames, self.eof)

    def accepted(self, **accept: Any) -> Harness:
        assert self.start()
        assert self.events() == [{"type": "websocket.connect"}]
        self.send({"type": "websocket.accept", **accept})
        return self


# -- the handshake ------------------------------------------------------------------------


def test_a_valid_handshake_queues_connect_and_writes_nothing_yet() -> None:
    harness = Harness()
    assert harness.start()
    session = harness.session
    assert session.state is AppState.HANDSHAKE
    assert session.scope["type"] == "websocket"
    assert session.scope["path"] == "/ws/chat"
    assert session.scope["query_string"] == b"x=1"
    assert session.events == [{"type": "websocket.connect"}]
    assert not harness.written


def test_accept_answers_101_with_the_subprotocol_and_headers() -> None:
    harness = Harness(subprotocols=["v2", "v1"]).accepted(
        subprotocol="v1", headers=[(b"x-served-by", b"gateway")]
    )
    response = harness.wire().response
    assert response is not None
    assert response.status_code == 101
    assert response.headers["Sec-WebSocket-Protocol"] == "v1"
    assert response.headers["X-Served-By"] == "gateway"
    assert harness.session.state is AppState.OPEN
    assert harness.client.subprotocol == "v1"


def test_close_before_accept_is_403_with_an_empty_body() -> None:
    harness = Harness()
    harness.start()
    assert harness.send({"type": "websocket.close"}) is None
    wire = harness.wire()
    assert wire.response is not None
    assert (wire.response.status_code, wire.response.body) == (403, b"")
    assert wire.eof
    assert harness.session.state is AppState.CLOSED
    assert harness.session.closed


def test_a_denial_response_is_written_after_its_last_body() -> None:
    harness = Harness()
    harness.start()
    headers = [(b"content-type", b"text/plain")]
    harness.send({"type": "websocket.http.response.start", "status": 401, "headers": headers})
    assert harness.session.state is AppState.RESPONDING
    harness.send({"type": "websocket.http.response.body", "body": b"who ", "more_body": True})
    assert not harness.written
    harness.send({"type": "websocket.http.response.body", "body": b"are you?"})
    response = harness.wire().response
    assert response is not None
    assert (response.status_code, response.reason_phrase, response.body) == (
        401,
        "Unauthorized",
        b"who are you?",
    )
    assert response.headers["Content-Length"] == "12"
    assert response.headers["Connection"] == "close"
    assert "Date" in response.headers
    assert harness.eof
    with pytest.raises(ClientDisconnected):
        harness.send({"type": "websocket.http.response.body", "body": b"more"})


def test_a_denial_after_the_client_ended_the_stream_is_dropped_quietly() -> None:
    """Regression: websockets had already ended the stream, so writing the response
    failed its assertion inside the application's send (logged as an app error)."""
    harness = Harness()
    harness.start()
    harness.send({"type": "websocket.http.response.start", "status": 403})
    harness.session.receive_eof()
    harness.flush()
    assert harness.eof
    assert harness.send({"type": "websocket.http.response.body", "body": b"no"}) is None
    assert harness.session.state is AppState.CLOSED
    assert not harness.written


def test_a_bad_upgrade_is_refused_by_websockets_without_the_application() -> None:
    harness = Harness()
    harness.headers = [(n, v) for n, v in harness.headers if n != b"sec-websocket-key"]
    assert not harness.start()
    response = harness.wire().response
    assert response is not None
    assert response.status_code == 400
    assert harness.session.events == []
    assert harness.session.state is AppState.CLOSED


def test_a_non_ascii_field_is_refused_with_400_even_with_the_access_log_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Regression: the refusal logged an access line with a scope not built yet
    (KeyError 'path' out of the HTTP server's upgrade, the client left hanging)."""
    caplog.set_level(logging.INFO, logger="gateway.web")
    harness = Harness(
        config=Config(access_log=True), extra_headers=[(b"sec-websocket-protocol", b"\xe9")]
    )
    assert not harness.start()
    response = harness.wire().response
    assert response is not None
    assert response.status_code == 400
    assert harness.eof
    assert any("non-ASCII field" in r.getMessage() for r in caplog.records)


def test_sends_before_the_handshake_other_than_its_three_are_violations() -> None:
    harness = Harness()
    harness.start()
    for kind in ("websocket.send", "websocket.http.response.body", "websocket.bogus"):
        with pytest.raises(ProtocolViolation, match="before the handshake"):
            harness.send({"type": kind, "text": "x"})
    assert harness.session.state is AppState.HANDSHAKE


def test_accept_after_the_client_left_is_a_disconnect_not_a_violation() -> None:
    harness = Harness()
    harness.start()
    harness.session.connection_lost()
    with pytest.raises(ClientDisconnected):
        harness.send({"type": "websocket.accept"})
    assert harness.events()[-1] == {"type": "websocket.disconnect", "code": 1006, "reason": ""}


def test_data_before_the_101_waits_for_accept() -> None:
    harness = Harness()
    harness.start()
    early = Frame(Opcode.TEXT, b"early").serialize(mask=True)
    assert harness.receive(early[:3]) == 0
    assert harness.receive(early[3:]) == 0
    assert harness.events() == [{"type": "websocket.connect"}]
    harness.send({"type": "websocket.accept"})
    assert harness.events() == [{"type": "websocket.receive", "text": "early"}]


def test_too_much_data_before_the_101_aborts() -> None:
    harness = Harness(config=Config(access_log=False, ws_max_size=10))
    harness.start()
    assert harness.receive(b"x" * 10) == 0
    assert harness.receive(b"x") == ABORT


# -- an open WebSocket ---------------------------------------------------------------------


def test_text_and_bytes_round_trip_both_ways() -> None:
    harness = Harness().accepted()
    harness.frame(Opcode.TEXT, "héllo".encode())
    harness.frame(Opcode.BINARY, b"\x00\x01")
    harness.frame(Opcode.TEXT, b"")
    assert harness.events() == [
        {"type": "websocket.receive", "text": "héllo"},
        {"type": "websocket.receive", "bytes": b"\x00\x01"},
        {"type": "websocket.receive", "text": ""},
    ]
    assert harness.send({"type": "websocket.send", "text": "héllo"})
    assert harness.send({"type": "websocket.send", "bytes": b"\x00\x01"})
    assert harness.wire().data == ["héllo", b"\x00\x01"]
    assert (harness.session.counters.ws_received, harness.session.counters.ws_sent) == (3, 2)


def test_compressed_frames_round_trip_with_permessage_deflate() -> None:
    harness = Harness(deflate=True).accepted()
    big = "compress me " * 100
    harness.send({"type": "websocket.send", "text": big})
    harness.send({"type": "websocket.send", "text": "short"})
    wire = harness.wire()
    assert wire.data == [big, "short"]
    assert harness.client.extensions  # negotiated
    frames = harness.written.split(b"\r\n\r\n", 1)[1]
    assert frames[0] & 0x40  # RSV1: the long message went compressed
    assert len(frames) < len(big) // 4


def test_a_fragmented_message_is_delivered_whole() -> None:
    harness = Harness().accepted()
    harness.frame(Opcode.TEXT, b"frag", fin=False)
    harness.frame(Opcode.CONT, b"ment", fin=False)
    assert harness.events() == []
    harness.frame(Opcode.CONT, b"ed")
    assert harness.events() == [{"type": "websocket.receive", "text": "fragmented"}]


def test_invalid_utf8_fails_the_connection_with_1007() -> None:
    harness = Harness().accepted()
    harness.frame(Opcode.TEXT, b"\xff\xfe")
    assert harness.events() == []
    assert [c.code for c in harness.wire().closes] == [1007]
    assert harness.session.close_expected()


def test_the_application_closes_then_the_client_answers() -> None:
    harness = Harness().accepted()
    assert harness.send({"type": "websocket.close", "code": 4002, "reason": "bye"}) is None
    assert harness.session.state is AppState.CLOSING
    assert [(c.code, c.reason) for c in harness.wire().closes] == [(4002, "bye")]
    assert harness.session.close_expected()
    for message in ({"type": "websocket.send", "text": "late"}, {"type": "websocket.close"}):
        with pytest.raises(ClientDisconnected):
            harness.send(message)
    harness.frame(Opcode.TEXT, b"discarded")  # RFC 6455 7.1.4
    harness.close(4002, "bye")
    assert harness.events() == [{"type": "websocket.disconnect", "code": 4002, "reason": "bye"}]
    assert harness.eof  # the server closes TCP first (RFC 6455 7.1.1)
    assert harness.session.state.value == "closed"


def test_close_without_a_code_sends_1000() -> None:
    harness = Harness().accepted()
    harness.send({"type": "websocket.close"})
    assert [c.code for c in harness.wire().closes] == [1000]


def test_the_client_closes_and_the_application_learns_it_once() -> None:
    harness = Harness().accepted()
    harness.close(4001, "leaving")
    assert [(c.code, c.reason) for c in harness.wire().closes] == [(4001, "leaving")]
    disconnect = {"type": "websocket.disconnect", "code": 4001, "reason": "leaving"}
    assert harness.events() == [disconnect]
    harness.session.connection_lost()
    assert harness.session.events == []
    assert harness.session.next_event() == disconnect  # again, for a late receive
    with pytest.raises(ClientDisconnected):
        harness.send({"type": "websocket.send", "text": "late"})


def test_a_lost_connection_is_a_1006_disconnect() -> None:
    harness = Harness().accepted()
    harness.session.connection_lost()
    assert harness.events() == [{"type": "websocket.disconnect", "code": 1006, "reason": ""}]
    assert harness.session.data_to_send() == ()


def test_unknown_messages_on_an_open_websocket_are_violations() -> None:
    harness = Harness().accepted()
    for kind in ("websocket.accept", "websocket.http.response.start", "websocket.bogus"):
        with pytest.raises(ProtocolViolation, match="while the WebSocket is open"):
            harness.send({"type": kind})


def test_a_full_queue_stops_reading_until_half_is_read_or_the_application_closes() -> None:
    harness = Harness(config=Config(access_log=False, ws_max_queue=4)).accepted()
    session = harness.session
    for i in range(4):
        assert session.reading
        harness.frame(Opcode.TEXT, b"%d" % i)
    assert not session.reading
    assert session.queued == 4
    session.next_event()
    session.next_event()
    assert not session.reading  # 2 left: not below half yet
    session.next_event()
    assert session.reading
    harness.frame(Opcode.TEXT, b"4")
    harness.frame(Opcode.TEXT, b"5")
    harness.frame(Opcode.TEXT, b"6")
    assert not session.reading
    harness.send({"type": "websocket.close"})
    assert session.reading  # the client's Close must get through


# -- the application's end, the clocks, the server ------------------------------------------


@pytest.mark.parametrize(
    ("accept", "failed", "expected"),
    [(False, False, 500), (False, True, 500), (True, False, 1000), (True, True, 1011)],
)
def test_what_the_application_leaves_open_when_it_ends(
    accept: bool, failed: bool, expected: int, caplog: pytest.LogCaptureFixture
) -> None:
    harness = Harness()
    if accept:
        harness.accepted()
    else:
        harness.start()
    harness.session.app_finished(failed=failed)
    harness.flush()
    wire = harness.wire()
    assert wire.response is not None
    if accept:
        assert [c.code for c in wire.closes] == [expected]
    else:
        assert wire.response.status_code == expected
        assert wire.eof
    returned_early = not accept and not failed
    assert ("without accepting" in caplog.text) is returned_early


def test_an_unfinished_denial_becomes_a_500() -> None:
    harness = Harness()
    harness.start()
    harness.send({"type": "websocket.http.response.start", "status": 403})
    harness.session.app_finished(failed=True)
    harness.flush()
    response = harness.wire().response
    assert response is not None
    assert response.status_code == 500


@pytest.mark.parametrize(
    ("clock", "status", "closes"),
    [
        ("connect_timeout", 504, []),  # after accepting: nothing
        ("shutdown", 503, [(1001, "server shutting down")]),
    ],
)
def test_the_server_side_refuses_a_handshake_and_closes_an_open_websocket(
    clock: str, status: int, closes: list[tuple[int, str]]
) -> None:
    handshaking = Harness()
    handshaking.start()
    for harness in (handshaking, Harness().accepted()):
        getattr(harness.session, clock)()
        harness.flush()
        wire = harness.wire()
        assert wire.response is not None
        if wire.response.status_code == 101:
            assert [(c.code, c.reason) for c in wire.closes] == closes
        else:
            assert wire.response.status_code == status


def test_keepalive_pings_their_pong_and_the_timeout() -> None:
    harness = Harness().accepted()
    session = harness.session
    assert session.ping(b"abcd", awaited=True)
    harness.flush()
    assert [(f.opcode, f.data) for f in harness.wire().frames] == [(Opcode.PING, b"abcd")]
    assert harness.frame(Opcode.PONG, b"other") == 0
    assert harness.frame(Opcode.PONG, b"abcd") == PONG
    session.ping_timeout()  # answered: nothing happens
    assert session.ping(b"efgh", awaited=True)
    session.ping_timeout()
    harness.flush()
    assert [c.code for c in harness.wire().closes] == [1011]
    assert not session.ping(b"ijkl", awaited=True)  # not open any more


def test_an_unawaited_ping_expects_no_pong() -> None:
    harness = Harness().accepted()
    assert harness.session.ping(b"abcd", awaited=False)
    harness.flush()
    assert harness.frame(Opcode.PONG, b"abcd") == 0


def test_eof_from_the_client_ends_the_stream() -> None:
    harness = Harness().accepted()
    harness.session.receive_eof()
    harness.flush()
    assert harness.eof
    assert harness.session.closed


# -- properties -----------------------------------------------------------------------------

TEXTS = st.text(max_size=40)
BYTES = st.binary(max_size=40)
CLOSE_CODES = st.sampled_from([1000, 1001, 1002, 1003, 1007, 1008, 1011, 3000, 4000, 4999])
#: Sends an application may try at any time, in any state.
APP_MESSAGES = st.one_of(
    st.builds(
        lambda sub, h: {"type": "websocket.accept", "subprotocol": sub, "headers": h},
        st.sampled_from([None, "v1"]),
        st.lists(st.tuples(st.sampled_from([b"x-a", b"x-b"]), st.sampled_from([b"1", b""]))),
    ),
    st.builds(lambda t: {"type": "websocket.send", "text": t}, TEXTS),
    st.builds(lambda b: {"type": "websocket.send", "bytes": b}, BYTES),
    st.builds(
        lambda c, r: {"type": "websocket.close", "code": c, "reason": r},
        st.one_of(st.none(), CLOSE_CODES),
        st.one_of(st.none(), st.text(max_size=10)),
    ),
    st.builds(
        lambda s: {"type": "websocket.http.response.start", "status": s, "headers": []},
        st.sampled_from([200, 401, 403, 404, 418, 500, 599]),
    ),
    st.builds(
        lambda b, m: {"type": "websocket.http.response.body", "body": b, "more_body": m},
        BYTES,
        st.booleans(),
    ),
    st.sampled_from([{"type": "websocket.bogus"}, {"type": "http.response.start"}]),
)
#: Whole messages a client may send; "frag" messages go in three frames.
CLIENT_MESSAGES = st.tuples(st.sampled_from(["text", "bytes", "frag"]), TEXTS)
SENDS = st.one_of(
    st.builds(lambda t: {"type": "websocket.send", "text": t}, TEXTS),
    st.builds(lambda b: {"type": "websocket.send", "bytes": b}, BYTES),
)
CLOCKS = st.sampled_from(
    ["read"] * 6 + ["ping", "pong", "ping timeout", "eof", "lost", "connect timeout", "shutdown",
     "app returned", "app raised"]
)  # fmt: skip
#: One step of an exchange: mostly messages either way and reads, sometimes anything.
STEP = st.one_of(
    *[st.tuples(st.just("app"), SENDS)] * 3,
    st.tuples(st.just("app"), APP_MESSAGES),
    *[st.tuples(st.just("client"), CLIENT_MESSAGES)] * 3,
    st.tuples(st.just("client close"), st.tuples(CLOSE_CODES, st.text(max_size=10))),
    st.tuples(st.just("garbage"), st.binary(min_size=1, max_size=12)),
    *[st.tuples(CLOCKS, st.none())] * 2,
)
#: What the application does first: mostly accept, else each other way out.
OPENING = st.sampled_from(
    [{"type": "websocket.accept", "subprotocol": "v1", "headers": []}] * 5
    + [
        {"type": "websocket.close"},
        {"type": "websocket.http.response.start", "status": 403, "headers": []},
        {"type": "websocket.send", "text": "too early"},
    ]
).map(lambda message: ("app", message))
#: State changes the application can see (RESPONDING -> HANDSHAKE happens only inside
#: app_finished, on its way to CLOSED).
MOVES = {
    AppState.HANDSHAKE: {AppState.OPEN, AppState.RESPONDING, AppState.CLOSED},
    AppState.RESPONDING: {AppState.CLOSED},
    AppState.OPEN: {AppState.CLOSING, AppState.CLOSED},
    AppState.CLOSING: {AppState.CLOSED},
    AppState.CLOSED: set(),
}


@dataclass
class Run:
    """One random exchange, and what the checks need to know about it."""

    harness: Harness
    events: list[WebsocketEvent] = field(default_factory=list)
    sent: list[str | bytes] = field(default_factory=list)
    client_sent: list[str | bytes] = field(default_factory=list)
    #: Client messages that must reach the application (sent while both sides were
    #: open and the framing intact).
    must_arrive: list[str | bytes] = field(default_factory=list)
    app_close: int | None = None
    garbled: bool = False
    lost: bool = False
    held: list[bytes] = field(default_factory=list)

    eof: bool = False

    def feed(self, data: bytes) -> None:
        """Bytes from the client, as a socket delivers them: not while paused, and
        never after the end of stream either way or the server's close."""
        self.held.append(data)
        self.pump()

    def pump(self) -> None:
        session = self.harness.session
        while self.held and session.reading and not (self.lost or self.eof or session.closed):
            self.harness.receive(self.held.pop(0))

    def read(self) -> None:
        event = self.harness.session.next_event()
        if event is not None:
            self.events.append(event)
        self.pump()


def payload(message: Mapping[str, Any]) -> str | bytes:
    """What a ``websocket.receive`` or ``websocket.send`` message carries."""
    text: str | None = message.get("text")
    return message["bytes"] if text is None else text


def is_subsequence(part: list[T], whole: list[T]) -> bool:
    rest = iter(whole)
    return all(any(item == other for other in rest) for item in part)


def client_frames(kind: str, text: str) -> tuple[str | bytes, list[bytes]]:
    data = text.encode()
    if kind == "bytes":
        return data, [Frame(Opcode.BINARY, data).serialize(mask=True)]
    if kind == "text":
        return text, [Frame(Opcode.TEXT, data).serialize(mask=True)]
    third = len(data) // 3
    parts = [data[:third], data[third : 2 * third], data[2 * third :]]
    opcodes = [Opcode.BINARY, Opcode.CONT, Opcode.CONT]
    return data, [
        Frame(op, part, fin=i == 2).serialize(mask=True)
        for i, (op, part) in enumerate(zip(opcodes, parts, strict=True))
    ]


def step(run: Run, kind: str, arg: Any) -> None:
    harness, session = run.harness, run.harness.session
    both_open = session.state is AppState.OPEN and session.conn.state is State.OPEN
    if kind == "app":
        conn_open = session.conn.state is State.OPEN
        try:
            frame = harness.send(arg)
        except (ProtocolViolation, ClientDisconnected):
            return
        if frame is not None:
            run.sent.append(payload(arg))
            assert frame or session.closed
            if session.closed:
                run.sent.pop()  # the I/O layer writes nothing on a closed connection
        elif arg["type"] == "websocket.close" and conn_open and session.state is AppState.CLOSING:
            run.app_close = arg.get("code") or 1000
    elif kind == "client":
        message, frames = client_frames(*arg)
        run.client_sent.append(message)
        if both_open and not run.garbled and not run.held and session.reading:
            run.must_arrive.append(message)
        for data in frames:
            run.feed(data)
    elif kind == "client close":
        run.feed(Frame(Opcode.CLOSE, Close(*arg).serialize()).serialize(mask=True))
    elif kind == "garbage":
        run.garbled = True
        run.feed(arg)
    elif kind == "pong":
        run.feed(Frame(Opcode.PONG, b"ping").serialize(mask=True))
    elif kind == "read":
        run.read()
    elif kind == "eof" and not run.eof:
        run.eof = True
        session.receive_eof()
    elif kind == "lost" and not run.lost:
        run.lost = True
        session.connection_lost()
    elif kind == "ping":
        session.ping(b"ping", awaited=True)
    elif kind == "ping timeout":
        session.ping_timeout()
    elif kind == "connect timeout" and session.scope:
        session.connect_timeout()
    elif kind == "shutdown":
        session.shutdown()
    elif kind in ("app returned", "app raised"):
        session.app_finished(failed=kind == "app raised")
    harness.flush()


@given(
    st.booleans(),
    st.sampled_from([[], ["v1"]]),
    st.integers(2, 6),
    st.sampled_from([True] * 4 + [False]),
    st.lists(STEP, max_size=3),
    OPENING,
    st.lists(STEP, max_size=30),
)
def test_any_exchange_keeps_the_wire_and_the_events_well_formed(
    deflate: bool,
    subprotocols: list[str],
    max_queue: int,
    valid_handshake: bool,
    early: list[tuple[str, Any]],
    opening: tuple[str, Any],
    later: list[tuple[str, Any]],
) -> None:
    """Random sequences of application sends, client frames (and garbage), reads and
    clocks: only the documented errors, and everything below holds."""
    steps = [*early, opening, *later]
    config = Config(access_log=False, ws_max_queue=max_queue, ws_compress_min_size=8)
    harness = Harness(config=config, deflate=deflate, subprotocols=subprotocols)
    if not valid_handshake:
        harness.headers = [(n, v) for n, v in harness.headers if n != b"sec-websocket-version"]
    run = Run(harness)
    session = harness.session
    assert harness.start() is valid_handshake
    for kind, arg in steps:
        before = session.state
        if kind == "app" and arg["type"] == "websocket.accept" and arg["subprotocol"]:
            arg = {**arg, "subprotocol": subprotocols[0] if subprotocols else None}  # offered
        step(run, kind, arg)
        assert session.state is before or session.state in MOVES[before]
        # Reading stops when the queue is full, and resumes once half of it is read.
        if session.state is AppState.OPEN and session.queued >= max_queue:
            assert not session.reading
        assert session.reading or session.queued >= max_queue // 2
        if session.closed:
            assert session.data_to_send() == ()
    if not run.lost:
        run.lost = True
        session.connection_lost()
    while session.events:
        run.read()
    events = run.events

    # The application's events: connect first, receives, then one disconnect, which
    # every later receive returns again.
    if not session.scope:
        assert events == []
        return
    assert events[0] == {"type": "websocket.connect"}
    types = [e["type"] for e in events]
    first = types.index("websocket.disconnect")
    assert types[1:first] == ["websocket.receive"] * (first - 1)
    disconnect = events[first]
    assert disconnect["type"] == "websocket.disconnect"
    assert all(e is disconnect for e in events[first:])
    assert session.next_event() is disconnect
    assert isinstance(disconnect["code"], int)
    assert isinstance(disconnect["reason"], str)
    received = [payload(e) for e in events[1:first]]
    if not run.garbled:  # (garbage and the frames after it make messages of their own)
        assert is_subsequence(received, run.client_sent)  # in order, none invented or twice
    assert is_subsequence(run.must_arrive, received)

    # The wire: one response; after a 101 only frames, one Close at most, then nothing.
    wire = harness.wire()
    event(f"response {wire.response and wire.response.status_code}")
    event(f"messages out {bool(run.sent)}, in {bool(received)}, must {bool(run.must_arrive)}")
    event(f"disconnect {disconnect['code']}")
    if wire.response is None:
        return
    if wire.response.status_code != 101:
        assert wire.eof
        assert wire.frames == []
        return
    assert wire.data == run.sent  # every frame sent is what the application sent
    kinds = [f.opcode for f in wire.frames]
    if Opcode.CLOSE in kinds:  # one Close, then no message and no Ping
        assert kinds.count(Opcode.CLOSE) == 1
        after = kinds[kinds.index(Opcode.CLOSE) + 1 :]
        assert not {Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.PING} & set(after)
    if run.app_close is not None:
        assert [c.code for c in wire.closes] == [run.app_close]


@given(st.lists(CLIENT_MESSAGES, max_size=10), st.lists(st.one_of(TEXTS, BYTES), max_size=10))
def test_messages_round_trip_both_ways(
    incoming: list[tuple[str, str]], outgoing: list[str | bytes]
) -> None:
    harness = Harness(config=Config(access_log=False, ws_max_queue=100)).accepted()
    expected: list[str | bytes] = []
    for kind, text in incoming:
        message, frames = client_frames(kind, text)
        expected.append(message)
        for data in frames:
            harness.receive(data)
    assert [payload(e) for e in harness.events()] == expected
    for item in outgoing:
        key = "text" if isinstance(item, str) else "bytes"
        harness.send({"type": "websocket.send", key: item})
    assert harness.wire().data == outgoing


@given(st.binary(max_size=200))
def test_any_client_bytes_after_accept_never_raise(data: bytes) -> None:
    harness = Harness().accepted()
    assert harness.receive(data) in (0, PONG)
    harness.session.connection_lost()
    events = harness.events()
    assert events[-1]["type"] == "websocket.disconnect"
    assert [e["type"] for e in events].count("websocket.disconnect") == 1
