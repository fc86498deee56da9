"""Response heads (protocols.websocket.response): what the checks remember between
responses never lets a bad field through."""

from __future__ import annotations

import pytest

from protocols.websocket.errors import ProtocolViolation
from protocols.websocket.response import response_head, status_line


def test_a_name_seen_before_still_has_its_value_checked() -> None:
    assert response_head(200, [(b"X-Seen", b"1")]).lines[2] == b"X-Seen: 1\r\n"
    with pytest.raises(ProtocolViolation, match="CR, LF or NUL"):
        response_head(200, [(b"X-Seen", b"1\r\nset-cookie: stolen=1")])
    with pytest.raises(ProtocolViolation, match="must be bytes"):
        response_head(200, [(b"X-Seen", "1")])  # type: ignore[list-item]  # wrong on purpose


def test_names_are_checked_whatever_their_type() -> None:
    for name in ("x-text", bytearray(b"x-array"), b"bad name", b""):
        with pytest.raises(ProtocolViolation):
            response_head(200, [(name, b"1")])  # type: ignore[list-item]


def test_status_lines() -> None:
    assert status_line(200) == b"HTTP/1.1 200 OK\r\n"
    assert status_line(599) == b"HTTP/1.1 599 \r\n"  # no registered reason phrase
