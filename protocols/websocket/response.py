"""HTTP/1.1 response heads from what an application sends (pure functions).

:func:`response_head` turns an ``http.response.start`` message into the bytes of a
status line and header fields, and says what the application decided about framing
and the connection. The server adds only what is its own: ``Date`` (RFC 9110 6.6.1),
and later the framing header it chose and ``connection: close`` when it closes, each
at most once. Header names and values are checked, so an application cannot split a
response in two with a stray CR/LF (response splitting); a bad head raises
:class:`~protocols.websocket.errors.ProtocolViolation` before any byte is written.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Iterable
from http import HTTPStatus
from typing import NamedTuple

from protocols.websocket.errors import ProtocolViolation

#: Every status line with a registered reason phrase, formatted once.
_STATUS_LINES = {
    status.value: b"HTTP/1.1 %d %s\r\n" % (status.value, status.phrase.encode())
    for status in HTTPStatus
}
#: RFC 9110 5.6.2: a field name is a token.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: RFC 9110 5.5: CR, LF and NUL never appear in a field value.
_FORBIDDEN_IN_VALUE = re.compile(rb"[\r\n\x00]")
_DIGITS = re.compile(rb"[0-9]{1,18}")

#: Field names found to be tokens, each with its lower-case form. Applications send
#: the same few names on every response, so each is checked once; past
#: ``_CHECKED_NAMES_MAX`` names (an application echoing what clients send) it starts over.
_checked_names: dict[bytes, bytes] = {}
_CHECKED_NAMES_MAX = 512

#: (second, the Date value, its header line): formatted once a second.
_date_cache: tuple[int, str, bytes] = (0, "", b"")


def _dates() -> tuple[int, str, bytes]:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        value = email.utils.formatdate(now, usegmt=True)
        _date_cache = (now, value, b"date: %s\r\n" % value.encode())
    return _date_cache


def http_date() -> str:
    """RFC 9110 6.6.1: the Date value an origin server with a clock sends."""
    return _dates()[1]


def date_header() -> bytes:
    """The ``date`` header line of :func:`http_date`."""
    return _dates()[2]


def status_line(status: int) -> bytes:
    """RFC 9112 4: the status line; a status without a registered phrase gets none."""
    return _STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status


def simple_response(status: int, text: str) -> bytes:
    """A complete plain-text response that closes the connection, for the answers the
    server gives by itself (400, 408, 431, 503 …)."""
    body = text.encode()
    return b"".join(
        (
            status_line(status),
            date_header(),
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        )
    )


class ResponseHead(NamedTuple):
    """A response head without its final framing header and blank line."""

    status: int
    #: The status line, ``Date`` and the application's header fields, in its order.
    lines: list[bytes]
    #: The application's ``Content-Length``, if it gave one (sent as it gave it).
    content_length: int | None
    #: The application sent ``Connection: close`` (the server must not add another).
    closes: bool


def response_head(status: object, headers: Iterable[tuple[bytes, bytes]]) -> ResponseHead:
    """Check and encode the head of an ``http.response.start`` message.

    ``Transfer-Encoding`` is dropped (the server chooses the framing, RFC 9112 6.1);
    ``Content-Length`` is kept once, and dropped on 1xx and 204 (RFC 9110 8.6).
    """
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise ProtocolViolation(f"response status must be an int from 100 to 599, got {status!r}")
    lines = [status_line(status), date_header()]
    content_length: int | None = None
    closes = False
    for name, value in headers:
        lname = _checked_names.get(name) if type(name) is bytes else None
        if lname is None or type(value) is not bytes or _FORBIDDEN_IN_VALUE.search(value):
            lname = _checked_field(name, value)
        if lname == b"transfer-encoding":
            continue
        if lname == b"content-length":
            if content_length is not None or not _DIGITS.fullmatch(value):
                raise ProtocolViolation(f"invalid or repeated Content-Length: {value!r}")
            content_length = int(value)
            if status < 200 or status == 204:
                continue
        elif lname == b"connection":
            closes = closes or b"close" in (token.strip().lower() for token in value.split(b","))
        lines.append(name + b": " + value + b"\r\n")
    return ResponseHead(status, lines, content_length, closes)


def _checked_field(name: object, value: object) -> bytes:
    """Check a field the fast path did not vouch for; its name, lower-cased."""
    if not isinstance(name, bytes) or not isinstance(value, bytes):
        raise ProtocolViolation(f"header names and values must be bytes, got {name!r}: {value!r}")
    if not _TOKEN.fullmatch(name):
        raise ProtocolViolation(f"invalid header name {name!r}")
    if _FORBIDDEN_IN_VALUE.search(value):
        raise ProtocolViolation(f"invalid header value for {name!r} (CR, LF or NUL)")
    lower = name.lower()
    if type(name) is bytes:
        if len(_checked_names) >= _CHECKED_NAMES_MAX:
            _checked_names.clear()
        _checked_names[name] = lower
    return lower
