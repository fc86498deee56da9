"""Reporting messages that did not fit, without flooding the log.

A slow consumer behind a busy group makes every ``group_send`` skip it, thousands
of times a minute. These reports log the first occurrence of each kind and then
one count per minute (:class:`~gateway.failure_log.FailureLog`); the layers'
``stats.dropped_full`` counts every single message.
"""

from __future__ import annotations

import logging

from gateway.failure_log import FailureLog

_log = FailureLog(logging.getLogger("gateway.layers"), level=logging.WARNING)


def report_full_members(group: str, skipped: list[str], members: int) -> None:
    """``group_send`` to ``group`` skipped ``skipped`` of its ``members``: at capacity."""
    names = ", ".join(skipped[:10]) + (" ..." if len(skipped) > 10 else "")
    _log.repeated(
        f"group {group!r} full members",
        f"group_send to {group!r}: {len(skipped)} of {members} members at capacity "
        f"did not get the message: {names}",
    )


def report_dropped(channel: str, why: str) -> None:
    """A message for ``channel`` was dropped on arrival in this process, for ``why``.

    Process-local channels are reported per family (one per layer and process), so
    one layer's drops never hide another's.
    """
    family = channel[: channel.find("!") + 1]
    _log.repeated(f"dropped {family}: {why}", f"Channel {channel!r}: message dropped ({why})")
