"""protocols.websocket.handshake against websockets' own judgement of the same request.

Whatever :func:`open_directly` accepts, websockets accepts too, with the same 101
response byte for byte (its ``Date`` aside); whatever websockets refuses,
:func:`open_directly` leaves to it (returns None). Requests of the usual shape are
accepted directly, which is what makes it worth having.
"""

from __future__ import annotations

import re

from hypothesis import event, given
from hypothesis import strategies as st
from websockets.http11 import Request
from websockets.server import ServerProtocol
from websockets.streams import StreamReader

from protocols.websocket.deflate import DeflateFactory
from protocols.websocket.handshake import open_directly

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
BROWSER = [
    (b"host", b"127.0.0.1"),
    (b"upgrade", b"websocket"),
    (b"connection", b"Upgrade"),
    (b"sec-websocket-key", KEY),
    (b"sec-websocket-version", b"13"),
    (b"origin", b"http://127.0.0.1"),
    (b"sec-websocket-extensions", b"permessage-deflate; client_max_window_bits"),
]
DATE = re.compile(rb"Date: [^\r]*\r\n")


def server() -> ServerProtocol:
    return ServerProtocol(extensions=[DeflateFactory(128)])


def websockets_answer(method: bytes, headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """websockets' 101 response to the same request, or None when it refuses it."""
    if method != b"GET":
        return None  # its request parser takes GET only
    head = b"".join([b"GET /ws HTTP/1.1\r\n", *(n + b": " + v + b"\r\n" for n, v in headers)])
    reader = StreamReader()
    reader.feed_data(head + b"\r\n")
    parser = Request.parse(reader.read_line)
    try:
        next(parser)
    except StopIteration as done:
        request = done.value
    except Exception:
        return None
    response = server().accept(request)
    return response.serialize() if response.status_code == 101 else None


def direct_answer(
    method: bytes, headers: list[tuple[bytes, bytes]], subprotocol: str | None = None
) -> bytes | None:
    opening = open_directly(method, b"/ws", headers, server())
    return None if opening is None else opening.response(subprotocol, [])


def same(ours: bytes, theirs: bytes) -> bool:
    return DATE.sub(b"", ours) == DATE.sub(b"", theirs)


def test_a_browser_request_is_answered_directly_as_websockets_would() -> None:
    ours, theirs = direct_answer(b"GET", BROWSER), websockets_answer(b"GET", BROWSER)
    assert ours is not None
    assert theirs is not None
    assert same(ours, theirs)
    assert b"server_max_window_bits=12" in ours


def test_the_subprotocol_and_headers_the_application_chose_follow_in_order() -> None:
    opening = open_directly(b"GET", b"/ws", BROWSER[:5], server())
    assert opening is not None
    response = opening.response("chat", [(b"X-Name", b"value")])
    assert response.endswith(b"Sec-WebSocket-Protocol: chat\r\nX-Name: value\r\n\r\n"), response


def test_unusual_requests_are_left_to_websockets() -> None:
    def without(name: bytes) -> list[tuple[bytes, bytes]]:
        return [(n, v) for n, v in BROWSER if n != name]

    cases = {
        "POST": (b"POST", BROWSER),
        "a subprotocol offered": (b"GET", [*BROWSER, (b"sec-websocket-protocol", b"chat")]),
        "two keys": (b"GET", [*BROWSER, (b"sec-websocket-key", KEY)]),
        "two origins": (b"GET", [*BROWSER, (b"origin", b"http://evil.example")]),
        "no key": (b"GET", without(b"sec-websocket-key")),
        "a short key": (b"GET", [*without(b"sec-websocket-key"), (b"sec-websocket-key", b"YQ==")]),
        "version 8": (
            b"GET",
            [*without(b"sec-websocket-version"), (b"sec-websocket-version", b"8")],
        ),
        "keep-alive only": (b"GET", [*without(b"connection"), (b"connection", b"keep-alive")]),
        "another upgrade": (b"GET", [*without(b"upgrade"), (b"upgrade", b"h2c")]),
        "a body (Content-Length)": (b"GET", [*BROWSER, (b"content-length", b"5")]),
        "a body (chunked)": (b"GET", [*BROWSER, (b"transfer-encoding", b"chunked")]),
        "an empty body": (b"GET", [*BROWSER, (b"content-length", b"0")]),
        "a malformed offer": (
            b"GET",
            [*without(b"sec-websocket-extensions"), (b"sec-websocket-extensions", b";;")],
        ),
    }
    for case, (method, headers) in cases.items():
        assert direct_answer(method, headers) is None, case


TOKENS = st.sampled_from(
    [b"websocket", b"WebSocket", b"Upgrade", b"upgrade", b"keep-alive", b"h2c"]
)
FIELDS = st.sampled_from(
    [
        b"upgrade",
        b"connection",
        b"sec-websocket-key",
        b"sec-websocket-version",
        b"sec-websocket-extensions",
        b"sec-websocket-protocol",
        b"origin",
        b"upgrade-insecure-requests",
        b"content-length",
        b"transfer-encoding",
    ]
)
VALUES = st.one_of(
    TOKENS,
    st.sampled_from(
        [
            KEY,
            b"YQ==",
            b"13",
            b"8",
            b"Upgrade, keep-alive",
            b"keep-alive,Upgrade",
            b"Upgrade,,x",
            b"permessage-deflate",
            b"permessage-deflate; client_max_window_bits",
            b"permessage-deflate; server_max_window_bits=8",
            b"x-unknown, permessage-deflate",
            b";;",
            b"http://127.0.0.1",
        ]
    ),
    # Mostly printable (a field the HTTP server lets through), sometimes not.
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1).map(str.encode),
    st.binary(min_size=1, max_size=4),
)


@given(
    st.sampled_from([b"GET", b"GET", b"GET", b"POST"]),
    st.sets(st.sampled_from([name for name, _ in BROWSER[1:]]), max_size=2),
    st.dictionaries(st.sampled_from([name for name, _ in BROWSER[1:]]), VALUES, max_size=2),
    st.lists(st.tuples(FIELDS, VALUES), max_size=2),
)
def test_never_accepts_what_websockets_refuses_nor_answers_differently(
    method: bytes,
    dropped: set[bytes],
    changed: dict[bytes, bytes],
    extra: list[tuple[bytes, bytes]],
) -> None:
    # A browser's request, some fields dropped, some values changed, some fields added.
    headers = [(n, changed.get(n, v)) for n, v in BROWSER if n not in dropped] + extra
    ours = direct_answer(method, headers)
    event("left to websockets" if ours is None else "answered directly")
    if ours is None:
        return
    theirs = websockets_answer(method, headers)
    assert theirs is not None, headers
    assert same(ours, theirs), (ours, theirs)
