"""Counters every channel layer keeps, for logs and the dashboard."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class LayerStats:
    """What a channel layer has done since it was created.

    ``dropped_full`` counts messages refused because a channel was at capacity
    (a ``send`` raising ``ChannelFull``, or a ``group_send`` member skipped);
    ``expired`` counts messages discarded unread after ``expiry`` seconds;
    ``unavailable`` counts messages not sent because the backend stayed unreachable.
    """

    sent: int = 0
    received: int = 0
    group_sent: int = 0
    expired: int = 0
    dropped_full: int = 0
    reconnects: int = 0
    unavailable: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)
