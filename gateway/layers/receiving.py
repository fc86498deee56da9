"""Receiving from a fixed channel that must keep being served through layer outages."""

from __future__ import annotations

import logging

from gateway.backoff import Backoff
from gateway.layers.base import BaseChannelLayer
from gateway.types import Message


async def receive_retrying(
    layer: BaseChannelLayer,
    channel: str,
    logger: logging.Logger,
    first_delay: float = 0.1,
    max_delay: float = 5.0,
    level: int = logging.WARNING,
) -> Message:
    """``layer.receive(channel)``, retried with doubling delays while it fails.

    Workers and interface servers listen on fixed channel names (``mqtt.publish``,
    ``telegram.send``, a worker's channels) for their whole life; a failed receive
    (Redis restarting) is logged on ``logger`` at ``level`` and retried, never fatal.
    """
    backoff = Backoff(first_delay, max_delay)
    while True:
        try:
            return await layer.receive(channel)
        except Exception as exc:
            logger.log(
                level,
                "receiving from channel %r failed (%s); retrying in %.2fs",
                channel,
                exc,
                backoff.delay,
            )
            await backoff.wait()
