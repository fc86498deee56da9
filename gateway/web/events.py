"""The ``http`` and ``websocket`` ASGI vocabulary (ASGI HTTP & WebSocket spec 2.4).

Pure, no I/O. The two scopes, every event to the application and every message from
it are :class:`~typing.TypedDict` s; the builders make them (the interface server in
:mod:`protocols.websocket` from what the client sent, the generic consumers from
their ``accept``/``send``/``close``/``send_response`` calls, the test communicators
from a test's arguments) and the readers take a message apart with the spec's
defaults (a missing ``body`` is ``b""``, ``more_body`` false, ``headers`` empty, a
close code 1000), the same for the server, the consumers and the communicators.

They are plain dicts at run time: a builder costs one call, and the servers' hot
paths (a WebSocket frame, an HTTP request) use them directly. Where a signature wants
gateway's untyped :data:`~gateway.types.Message` or :data:`~gateway.types.Scope`
(what an ASGI callable takes), callers ``cast`` rather than copy.

Which message may come in which state, and what is wrong with one that may not, is
the business of the state machines that use these: the server's
(:mod:`protocols.websocket.session`, :mod:`protocols.websocket.http_cycle`) and the
consumers' (:class:`gateway.generic.websocket.WebsocketState`).
"""

# No ``from __future__ import annotations``: TypedDict reads ``NotRequired`` from
# evaluated annotations only, and ``__required_keys__`` must be right at run time.
from collections.abc import Iterable, Mapping
from typing import Any, Literal, NotRequired, TypedDict, Unpack

ASGI_VERSION = "3.0"
#: The version of the HTTP & WebSocket spec this vocabulary (and the server) follows.
SPEC_VERSION = "2.4"
#: The Denial Response extension, advertised in ``scope["extensions"]``: the
#: application may answer a handshake with ``websocket.http.response.*``.
DENIAL_RESPONSE = "websocket.http.response"

#: Header fields as the spec carries them: ``(name, value)`` byte pairs, names lower-case
#: in scopes.
Headers = list[tuple[bytes, bytes]]
#: ``(host, port)`` of the client.
Address = tuple[str, int]
#: ``(host, port)`` of the server, or ``(path, None)`` on a Unix socket.
ServerAddress = tuple[str, int | None]


# --- the scopes ----------------------------------------------------------------------


class AsgiInfo(TypedDict):
    version: str
    spec_version: str


class ConnectionScope(TypedDict):
    """What the ``http`` and ``websocket`` scopes share; ``state`` only when a lifespan
    gave one (a shallow copy of it)."""

    asgi: AsgiInfo
    http_version: str
    scheme: str
    path: str
    raw_path: bytes
    query_string: bytes
    root_path: str
    headers: Headers
    client: Address | None
    server: ServerAddress | None
    state: NotRequired[dict[str, Any]]


class HttpScope(ConnectionScope):
    """The ``http`` connection scope."""

    type: Literal["http"]
    method: str


class WebsocketScope(ConnectionScope):
    """The ``websocket`` connection scope."""

    type: Literal["websocket"]
    subprotocols: list[str]
    extensions: dict[str, dict[str, Any]]


class ConnectionKeys(TypedDict):
    """What a caller gives of a :class:`ConnectionScope`; the builders fill in the rest
    (``asgi``) and the defaults: ``http``/``ws`` scheme, no ``root_path``, HTTP/1.1, no
    client or server address."""

    path: str
    raw_path: bytes
    query_string: bytes
    headers: Headers
    scheme: NotRequired[str]
    root_path: NotRequired[str]
    http_version: NotRequired[str]
    client: NotRequired[Address | None]
    server: NotRequired[ServerAddress | None]


def _connection_scope(
    keys: ConnectionKeys, scheme: str, spec_version: str = SPEC_VERSION
) -> ConnectionScope:
    return {
        "asgi": {"version": ASGI_VERSION, "spec_version": spec_version},
        "http_version": keys.get("http_version", "1.1"),
        "scheme": keys.get("scheme", scheme),
        "path": keys["path"],
        "raw_path": keys["raw_path"],
        "query_string": keys["query_string"],
        "root_path": keys.get("root_path", ""),
        "headers": keys["headers"],
        "client": keys.get("client"),
        "server": keys.get("server"),
    }


def http_scope(*, method: str, **connection: Unpack[ConnectionKeys]) -> HttpScope:
    """The scope of one HTTP request; ``path`` is decoded and includes ``root_path``."""
    return {"type": "http", "method": method, **_connection_scope(connection, "http")}


def websocket_scope(
    *,
    subprotocols: list[str],
    extensions: dict[str, dict[str, Any]] | None = None,
    spec_version: str = SPEC_VERSION,
    **connection: Unpack[ConnectionKeys],
) -> WebsocketScope:
    """The scope of one WebSocket; ``subprotocols`` are the client's offers, in its order."""
    return {
        "type": "websocket",
        "subprotocols": subprotocols,
        "extensions": {} if extensions is None else extensions,
        **_connection_scope(connection, "ws", spec_version),
    }


# --- HTTP ----------------------------------------------------------------------------


class RequestEvent(TypedDict):
    """``http.request``: a chunk of the request body; ``more_body`` false on the last."""

    type: Literal["http.request"]
    body: bytes
    more_body: bool


class HttpDisconnectEvent(TypedDict):
    """``http.disconnect``: the client is gone, or the response is complete."""

    type: Literal["http.disconnect"]


class ResponseStartMessage(TypedDict):
    type: Literal["http.response.start"]
    status: int
    headers: NotRequired[Headers]
    trailers: NotRequired[bool]


class ResponseBodyMessage(TypedDict):
    type: Literal["http.response.body"]
    body: NotRequired[bytes]
    more_body: NotRequired[bool]


def request_event(body: bytes, more_body: bool = False) -> RequestEvent:
    return {"type": "http.request", "body": body, "more_body": more_body}


def http_disconnect_event() -> HttpDisconnectEvent:
    return {"type": "http.disconnect"}


def response_start(status: int, headers: Headers) -> ResponseStartMessage:
    return {"type": "http.response.start", "status": status, "headers": headers}


def response_body(body: bytes, more_body: bool = False) -> ResponseBodyMessage:
    return {"type": "http.response.body", "body": body, "more_body": more_body}


# --- WebSocket -----------------------------------------------------------------------


class ConnectEvent(TypedDict):
    """``websocket.connect``: the handshake is valid, the application decides."""

    type: Literal["websocket.connect"]


class FrameData(TypedDict):
    """One WebSocket message, in ``text`` or in ``bytes`` (:func:`frame_data` reads it)."""

    bytes: NotRequired[bytes | None]
    text: NotRequired[str | None]


class ReceiveEvent(FrameData):
    """``websocket.receive``: one message from the client."""

    type: Literal["websocket.receive"]


class DisconnectEvent(TypedDict):
    """``websocket.disconnect``: the close code (1006 if there was none) and reason."""

    type: Literal["websocket.disconnect"]
    code: int
    reason: NotRequired[str]


class AcceptMessage(TypedDict):
    type: Literal["websocket.accept"]
    subprotocol: NotRequired[str | None]
    headers: NotRequired[Headers]


class SendMessage(FrameData):
    """``websocket.send``: one message to the client."""

    type: Literal["websocket.send"]


class CloseMessage(TypedDict):
    """``websocket.close``: a Close frame once accepted, HTTP 403 before."""

    type: Literal["websocket.close"]
    code: NotRequired[int]
    reason: NotRequired[str]


class DenialStartMessage(TypedDict):
    """``websocket.http.response.start`` (Denial Response extension)."""

    type: Literal["websocket.http.response.start"]
    status: int
    headers: NotRequired[Headers]


class DenialBodyMessage(TypedDict):
    """``websocket.http.response.body`` (Denial Response extension)."""

    type: Literal["websocket.http.response.body"]
    body: NotRequired[bytes]
    more_body: NotRequired[bool]


#: What the server gives a WebSocket application.
WebsocketEvent = ConnectEvent | ReceiveEvent | DisconnectEvent


def connect_event() -> ConnectEvent:
    return {"type": "websocket.connect"}


def receive_event(data: str | bytes) -> ReceiveEvent:
    """The client's message: ``text`` for a str, ``bytes`` for bytes."""
    if isinstance(data, str):
        return {"type": "websocket.receive", "text": data}
    return {"type": "websocket.receive", "bytes": data}


def disconnect_event(code: int, reason: str = "") -> DisconnectEvent:
    return {"type": "websocket.disconnect", "code": code, "reason": reason}


def accept_message(subprotocol: str | None = None, headers: Headers | None = None) -> AcceptMessage:
    """``websocket.accept``; ``headers`` only when there are some."""
    message: AcceptMessage = {"type": "websocket.accept", "subprotocol": subprotocol}
    if headers:
        message["headers"] = headers
    return message


def send_message(data: str | bytes) -> SendMessage:
    """A message to the client: ``text`` for a str, ``bytes`` for bytes."""
    if isinstance(data, str):
        return {"type": "websocket.send", "text": data}
    return {"type": "websocket.send", "bytes": data}


def close_message(code: int | None = None, reason: str | None = None) -> CloseMessage:
    """``websocket.close``; ``code`` and ``reason`` only when given (the server's
    defaults are 1000 and ``""``)."""
    message: CloseMessage = {"type": "websocket.close"}
    if code is not None:
        message["code"] = code
    if reason:
        message["reason"] = reason
    return message


# --- readers: what a message says, with the spec's defaults ---------------------------


def frame_data(message: Mapping[str, Any]) -> str | bytes:
    """The payload of ``websocket.send`` or ``websocket.receive``: ``text`` unless it is
    None, else ``bytes`` (a message with neither raises ``KeyError: 'bytes'``)."""
    text: str | None = message.get("text")
    if text is not None:
        return text
    data: bytes = message["bytes"]
    return data


def body_of(message: Mapping[str, Any]) -> tuple[bytes, bool]:
    """``(body, more_body)`` of ``http.request``, ``http.response.body`` or
    ``websocket.http.response.body``."""
    return message.get("body", b""), message.get("more_body", False)


def headers_of(message: Mapping[str, Any]) -> Iterable[tuple[bytes, bytes]]:
    """The ``headers`` of ``http.response.start``, ``websocket.accept`` or
    ``websocket.http.response.start`` (none if absent)."""
    headers: Iterable[tuple[bytes, bytes]] = message.get("headers", ())
    return headers


def close_of(message: Mapping[str, Any]) -> tuple[int, str]:
    """``(code, reason)`` of ``websocket.close``: 1000 and ``""`` when absent or None."""
    return message.get("code") or 1000, message.get("reason") or ""
