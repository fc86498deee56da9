"""Request head checks (protocols.websocket.request): what the Host check remembers
between requests never lets a bad Host through."""

from __future__ import annotations

import pytest

from protocols.websocket.request import RequestRefused, inspect_head


def test_a_valid_host_seen_before_does_not_vouch_for_another() -> None:
    assert not inspect_head("1.1", [(b"host", b"example.com:8000")]).has_body
    assert not inspect_head("1.1", [(b"host", b"example.com:8000")]).has_body
    with pytest.raises(RequestRefused, match="invalid Host"):
        inspect_head("1.1", [(b"host", b"example.com:8000 x")])
    with pytest.raises(RequestRefused, match="more than one Host"):
        inspect_head("1.1", [(b"host", b"example.com:8000")] * 2)
