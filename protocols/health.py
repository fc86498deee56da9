"""The heartbeat of a gateway process: its metrics snapshot, published on the channel layer.

In the scaled deployment every process (``gateway web``, ``mqtt``, ``telegram``,
``worker``) keeps its own counters. Each one publishes
:meth:`gateway.metrics.MetricsRegistry.snapshot` to the group
:data:`gateway.metrics.HEALTH_GROUP` every ``interval`` seconds (the first at
once), and a last one marked ``stopped`` when it stops, so a dashboard in any
process sees every process (with the in-memory layer: only its own).

A heartbeat that cannot be published because the layer is down is logged in one
line, then counted (:class:`~gateway.failure_log.FailureLog`), and the next one is
tried on schedule: nothing queues up while the layer is away. Any other failure is
a bug and logged with its traceback, once per kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway import DEFAULT_CHANNEL_LAYER
from gateway.exceptions import ChannelLayerUnavailable
from gateway.failure_log import FailureLog
from gateway.layers import get_channel_layer
from gateway.layers.base import BaseChannelLayer
from gateway.metrics import (
    HEALTH_GROUP,
    HEALTH_INTERVAL,
    MetricsRegistry,
    health_event,
    registry,
)
from gateway.startup import Summary
from protocols.service import Service

logger = logging.getLogger("gateway.server")
failures = FailureLog(logger, level=logging.WARNING)

#: Seconds the last (``stopped``) heartbeat may take at shutdown.
LAST_WORD_TIMEOUT = 1.0


class HealthService(Service):
    """Publishes this process's snapshot every ``interval`` seconds (see the module)."""

    name = "health"

    def __init__(
        self,
        interval: float = HEALTH_INTERVAL,
        alias: str = DEFAULT_CHANNEL_LAYER,
        metrics: MetricsRegistry = registry,
    ) -> None:
        if interval <= 0:
            raise ValueError("the health interval must be positive")
        self.interval = interval
        self.alias = alias
        self.metrics = metrics
        self._layer: BaseChannelLayer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        layer = get_channel_layer(self.alias)
        if layer is None or "groups" not in layer.extensions:
            logger.info("no channel layer with groups: this process publishes no health")
            return
        self._layer = layer
        self._task = asyncio.create_task(self._beat(layer), name="health heartbeat")

    async def stop(self, timeout: float) -> None:
        if self._task is None or self._layer is None:
            return
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(timeout, LAST_WORD_TIMEOUT)):
                await self._publish(self._layer, "stopped")

    def describe(self, summary: Summary) -> None:
        if self._task is not None:
            summary.add(
                "Health", f"published every {self.interval:g} s to the group {HEALTH_GROUP}"
            )

    async def _beat(self, layer: BaseChannelLayer) -> None:
        while True:
            await self._publish(layer, "running")
            await asyncio.sleep(self.interval)

    async def _publish(self, layer: BaseChannelLayer, state: str) -> None:
        message = health_event(self.metrics.snapshot(), self.interval, state)
        try:
            await layer.group_send(HEALTH_GROUP, message)
        except ChannelLayerUnavailable as exc:
            failures.repeated("health unavailable", f"health heartbeat not published: {exc}")
        except Exception as exc:
            failures.failed("health heartbeat not published", exc)
