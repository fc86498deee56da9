"""What the server checks in a parsed request head before any application sees it
(pure functions).

httptools enforces the message syntax; this adds the rules of RFC 9112 that are
about meaning: Host (3.2), and what the server needs to know about the body and an
upgrade. A failed check raises :class:`RequestRefused`, which the connection answers
with its status and closes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

#: RFC 9110 7.2 / RFC 3986 3.2.2-3.2.3: ``uri-host [ ":" port ]``; empty is allowed.
_HOST = re.compile(rb"(\[[0-9A-Za-z.:]*\]|[A-Za-z0-9\-._~%!$&'()*+,;=]*)(:[0-9]*)?")
#: Host values found valid: every request of every client names the same few, so
#: each is matched once; past ``_VALID_HOSTS_MAX`` values (a client making them up)
#: it starts over.
_valid_hosts: set[bytes] = set()
_VALID_HOSTS_MAX = 256


class RequestRefused(Exception):
    """The server answers this request itself with ``status`` and closes the connection."""

    def __init__(self, status: int, reason: str, detail: str = "") -> None:
        super().__init__(f"{status} {reason}{': ' + detail if detail else ''}")
        self.status = status
        self.reason = reason
        self.detail = detail


class HeadFacts(NamedTuple):
    """What the connection needs to know about a request before running it."""

    #: ``Expect: 100-continue``: the client waits for ``100 Continue`` (RFC 9110 10.1.1).
    expect_continue: bool
    #: A body follows: a non-zero Content-Length, or a Transfer-Encoding (RFC 9112 6.3).
    has_body: bool
    #: ``Upgrade: websocket`` (RFC 6455 4.1).
    websocket: bool


def inspect_head(http_version: str, headers: Iterable[tuple[bytes, bytes]]) -> HeadFacts:
    """Check ``headers`` (lower-case names) and sum up what matters; raise RequestRefused.

    RFC 9112 3.2: "A server MUST respond with a 400 (Bad Request) status code to any
    HTTP/1.1 request message that lacks a Host header field and to any request message
    that contains more than one Host header field line or a Host header field with an
    invalid field value." An HTTP/1.0 request may omit Host.
    """
    hosts = 0
    expect_continue = has_body = websocket = False
    for name, value in headers:
        if name == b"host":
            hosts += 1
            if hosts > 1:
                raise RequestRefused(400, "Bad Request", "more than one Host header")
            if value not in _valid_hosts:
                _check_host(value)
        elif name == b"content-length":
            has_body = has_body or value.strip(b" \t") not in (b"0", b"")
        elif name == b"transfer-encoding":
            has_body = True
        elif name == b"expect":
            expect_continue = value.strip(b" \t").lower() == b"100-continue"
        elif name == b"upgrade":
            websocket = value.strip(b" \t").lower() == b"websocket"
    if hosts == 0 and http_version == "1.1":
        raise RequestRefused(400, "Bad Request", "HTTP/1.1 request without Host")
    return HeadFacts(expect_continue, has_body, websocket)


def _check_host(value: bytes) -> None:
    if not _HOST.fullmatch(value.strip(b" \t")):
        raise RequestRefused(400, "Bad Request", "invalid Host header")
    if len(_valid_hosts) >= _VALID_HOSTS_MAX:
        _valid_hosts.clear()
    _valid_hosts.add(value)
