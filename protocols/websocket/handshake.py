"""The usual WebSocket opening handshake, checked and answered without parsing it twice.

The HTTP server has parsed the upgrade request already (httptools). Handing its head
to websockets' sans-I/O protocol means parsing it again, then building and
serializing the 101 response through websockets' general header classes: about a
third of the CPU an accepted connection costs, the limit on how many sockets a
second a process accepts. :func:`open_directly` checks a request of the usual shape
(what browsers and client libraries send) against the same rules websockets applies
(RFC 6455 4.2.1: GET, ``Upgrade: websocket``, ``Connection`` naming ``upgrade``, a
16-byte base64 key, version 13, one ``Origin`` at most; the offered extensions are
still negotiated by websockets) and answers from bytes built here. Anything unusual
(a header sent twice, an offered subprotocol, an odd token, a malformed value)
returns None and takes websockets' road, so every refusal keeps websockets' exact
answer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from websockets.datastructures import Headers
from websockets.exceptions import InvalidHandshake
from websockets.extensions.base import Extension
from websockets.http11 import MAX_LINE_LENGTH, MAX_NUM_HEADERS
from websockets.server import ServerProtocol

from protocols.websocket.response import http_date

#: RFC 6455 1.3: appended to the key before hashing it into ``Sec-WebSocket-Accept``.
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: RFC 9110 5.6.2 (a token) and 5.5 (a field value), as websockets checks them.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VALUE = re.compile(rb"[\x09\x20-\x7e\x80-\xff]*")
#: Shorter than websockets' line limit by more than the request line or a field
#: line adds around the target or the name and value.
_LONGEST = MAX_LINE_LENGTH - 16


@dataclass(slots=True)
class Opening:
    """A valid handshake, waiting for the application's ``websocket.accept``."""

    accept_key: str
    extensions: list[Extension]
    extensions_header: str | None

    def response(self, subprotocol: str | None, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
        """The 101 response, byte for byte what websockets would write for it."""
        lines = [
            "HTTP/1.1 101 Switching Protocols\r\n",
            f"Date: {http_date()}\r\n",
            "Upgrade: websocket\r\nConnection: Upgrade\r\n",
            f"Sec-WebSocket-Accept: {self.accept_key}\r\n",
        ]
        if self.extensions_header is not None:
            lines.append(f"Sec-WebSocket-Extensions: {self.extensions_header}\r\n")
        if subprotocol:
            lines.append(f"Sec-WebSocket-Protocol: {subprotocol}\r\n")
        for name, value in headers:
            lines.append(f"{name.decode('latin-1')}: {value.decode('latin-1')}\r\n")
        lines.append("\r\n")
        return "".join(lines).encode()


def open_directly(
    method: bytes, target: bytes, headers: Sequence[tuple[bytes, bytes]], conn: ServerProtocol
) -> Opening | None:
    """The :class:`Opening` of a usual handshake request; None: let websockets judge it.

    ``headers`` have lowercase names (ASGI). ``conn`` negotiates the extensions
    (its configuration holds the offer this server accepts).
    """
    if method != b"GET" or len(target) > _LONGEST or len(headers) > MAX_NUM_HEADERS:
        return None
    upgrade = connection = key = version = extensions = None
    origins = 0
    for name, value in headers:
        if (
            len(name) + len(value) > _LONGEST
            or not _TOKEN.fullmatch(name)
            or not _VALUE.fullmatch(value)
        ):
            return None  # websockets refuses what its parser refuses
        if name == b"content-length" or name == b"transfer-encoding":
            return None  # an upgrade with a body: websockets refuses it (smuggling's shape)
        if not name.startswith((b"sec-websocket-", b"upgrade", b"connection", b"origin")):
            continue
        if name == b"sec-websocket-protocol" or not value.isascii():
            return None  # a subprotocol offered, or bytes these fields never hold
        if name == b"origin":
            origins += 1
            continue
        if name == b"upgrade" and upgrade is None:
            upgrade = value
        elif name == b"connection" and connection is None:
            connection = value
        elif name == b"sec-websocket-key" and key is None:
            key = value
        elif name == b"sec-websocket-version" and version is None:
            version = value
        elif name == b"sec-websocket-extensions" and extensions is None:
            extensions = value
        elif name in _FIELDS:
            return None  # sent twice
    if (
        origins > 1
        or upgrade is None
        or upgrade.lower() != b"websocket"
        or connection is None
        or version != b"13"
        or key is None
        or not _names_upgrade(connection)
        or not _is_key(key)
    ):
        return None
    header: str | None = None
    accepted: list[Extension] = []
    if extensions is not None:
        try:
            header, accepted = conn.process_extensions(
                Headers([("Sec-WebSocket-Extensions", extensions.decode())])
            )
        except InvalidHandshake:
            return None
    digest = hashlib.sha1(key + GUID).digest()
    return Opening(base64.b64encode(digest).decode(), accepted, header)


_FIELDS = frozenset(
    {
        b"upgrade",
        b"connection",
        b"sec-websocket-key",
        b"sec-websocket-version",
        b"sec-websocket-extensions",
    }
)


def _names_upgrade(connection: bytes) -> bool:
    """``Connection`` is a list of valid tokens and one of them is ``upgrade``."""
    tokens = [token.strip(b" \t") for token in connection.split(b",")]
    if not all(_TOKEN.fullmatch(token) for token in tokens):
        return False
    return any(token.lower() == b"upgrade" for token in tokens)


def _is_key(key: bytes) -> bool:
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except binascii.Error:
        return False
