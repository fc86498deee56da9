"""Helpers shared by the differential tests."""

from __future__ import annotations

from typing import Any


def assert_same_outcome(channels: tuple[str, Any], gateway: tuple[str, Any]) -> None:
    """Equal results, or the same exception whose message starts with Channels' words.

    docs/porting.md, "Error messages": gateway's errors start with Channels'
    wording (its final period aside) and may go on to name what was refused.
    """
    assert channels[0] == gateway[0], (channels, gateway)
    if channels[0] == "ok":
        assert channels == gateway
    else:
        assert str(gateway[1]).startswith(str(channels[1]).rstrip(".")), (channels, gateway)
