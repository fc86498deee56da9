"""Live updates to the channel layer: coalesced, batched, never on the message path.

Consumers report what happened with non-blocking calls; one task per process
sends it to the groups of ``project.iot.events``:

- device summaries: the latest per device, at most one per ``summary_interval``
  (0.1 s) per device, the last one always sent (:class:`~project.iot.coalesce.Throttle`),
  as ``iot.device`` to ``iot.device.<id>`` and, all those due at one tick together,
  as one ``iot.devices`` to ``iot.fleet``;
- bad-payload notices (``iot.bad_payload``): the same, per device;
- readings (``iot.readings`` to ``iot.device.<id>``): every reading, batched per
  device every ``readings_interval`` (0.1 s); a batch holding ``readings_limit``
  (500) points goes at once; points that find a batch full while the layer is
  too slow to take it are dropped from the live view (the database has them)
  and counted in the batch's ``dropped``.

(The traffic log has its own batching emitter, ``project.traffic``.)

Alerts and command updates are not rate-limited: :meth:`LiveUpdates.announce`
sends them at once. Live updates are best effort, as channel layers are (at most
once): a send that fails is logged and not retried; the database is the record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from gateway.exceptions import ChannelFull, ChannelLayerUnavailable
from gateway.failure_log import FailureLog
from gateway.layers.base import BaseChannelLayer
from gateway.types import Message
from project.iot.coalesce import Batch, Batches, Throttle
from project.iot.conf import iot_settings
from project.iot.events import (
    FLEET_GROUP,
    device_event,
    device_group,
    devices_event,
    readings_event,
)
from project.iot.state import LiveThing

logger = logging.getLogger("project.iot.live")

Point = tuple[str, Mapping[str, float]]


#: The events ``IOT_NOTIFY_CHANNELS`` get: alerts and command updates, never the live
#: view's summaries, readings or bad-payload notices (no notify consumer handles those).
NOTIFY_TYPES = frozenset({"iot.alert", "iot.command"})


async def broadcast(layer: BaseChannelLayer, event: Message, groups: Iterable[str]) -> None:
    """``group_send`` ``event`` to each of ``groups``, then, for an alert or a command
    update (:data:`NOTIFY_TYPES`), ``send`` it to each ``IOT_NOTIFY_CHANNELS`` channel.

    Groups reach every member, in every process; a channel reaches one receiver.
    Whoever must act on an alert or a command once (the bot messaging a chat) listens
    on a notify channel, never on a group.
    """
    for group in groups:
        await layer.group_send(group, event)
    if event["type"] in NOTIFY_TYPES:
        for channel in iot_settings().notify_channels:
            await layer.send(channel, event)


class LiveUpdates:
    """Rate-limits and sends one process's live updates (see the module docstring).

    With no channel layer (``layer`` None) every call does nothing. ``clock``
    (monotonic seconds; default the loop's) can be injected.
    """

    def __init__(
        self,
        layer: BaseChannelLayer | None,
        *,
        summary_interval: float = 0.1,
        readings_interval: float = 0.1,
        readings_limit: int = 500,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.layer = layer
        self._clock = clock
        self._summaries: Throttle[str, LiveThing] = Throttle(summary_interval)
        self._bad_payloads: Throttle[str, Message] = Throttle(summary_interval)
        self._readings: Batches[str, Point] = Batches(readings_interval, readings_limit)
        self._sleeping_until = math.inf
        self._wake = asyncio.Event()
        self._sending = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.failures = FailureLog(logger)
        self.outages = FailureLog(logger, level=logging.WARNING)

    def clock(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    # -- what consumers call (never blocks) -------------------------------------

    def device_changed(self, thing: LiveThing) -> None:
        if self.layer is not None:
            self._summaries.put(thing.device_id, thing, self.clock())
            self._poke(self._summaries.next_due())

    def bad_payload(self, device_id: str, event: Message) -> None:
        if self.layer is not None:
            self._bad_payloads.put(device_id, event, self.clock())
            self._poke(self._bad_payloads.next_due())

    def reading(self, device_id: str, at: datetime, values: Mapping[str, float]) -> None:
        if self.layer is not None:
            self._readings.add(device_id, (at.isoformat(), values), self.clock())
            self._poke(self._readings.next_due())

    async def announce(self, event: Message, *groups: str) -> None:
        """Send ``event`` to ``groups`` now (alerts, commands); failures are logged."""
        if self.layer is None:
            return
        try:
            await broadcast(self.layer, event, groups)
        except (ChannelFull, ChannelLayerUnavailable) as exc:
            self.outages.repeated(
                f"{event['type']} unsent", f"iot: {event['type']} not sent: {exc}"
            )
        except Exception as exc:
            self.failures.failed(f"iot: {event['type']} not sent", exc)

    # -- sending -----------------------------------------------------------------

    def _poke(self, due: float | None) -> None:
        if due is not None and due < self._sleeping_until:
            self._wake.set()

    def _next_due(self) -> float | None:
        dues = [
            due
            for due in (
                self._summaries.next_due(),
                self._bad_payloads.next_due(),
                self._readings.next_due(),
            )
            if due is not None
        ]
        return min(dues, default=None)

    async def send_due(self, now: float | None = None) -> None:
        """Send whatever is due at ``now`` (default: the clock's now)."""
        now = self.clock() if now is None else now
        async with self._sending:
            await self._send(
                self._summaries.take_due(now),
                self._bad_payloads.take_due(now),
                self._readings.take_due(now),
            )

    async def flush(self) -> None:
        """Send everything pending, due or not."""
        async with self._sending:
            await self._send(
                self._summaries.take_all(),
                self._bad_payloads.take_all(),
                self._readings.take_all(),
            )

    async def _send(
        self,
        summaries: list[tuple[str, LiveThing]],
        bad_payloads: list[tuple[str, Message]],
        readings: list[tuple[str, Batch[Point]]],
    ) -> None:
        if summaries:
            fleet = [thing.summary() for _, thing in summaries]
            await self.announce(devices_event(fleet), FLEET_GROUP)
            for summary in fleet:
                await self.announce(device_event(summary), device_group(summary["device_id"]))
        for device_id, event in bad_payloads:
            await self.announce(event, device_group(device_id))
        for device_id, batch in readings:
            event = readings_event(device_id, batch.items, batch.dropped)
            await self.announce(event, device_group(device_id))

    async def _run(self) -> None:
        while True:
            due = self._next_due()
            self._sleeping_until = math.inf if due is None else due
            self._wake.clear()
            timeout = None if due is None else max(0.0, due - self.clock())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            await self.send_due()

    def start(self) -> None:
        if self._task is None and self.layer is not None:
            self._task = asyncio.create_task(self._run(), name="iot live updates")

    async def close(self) -> None:
        """Stop the sender after sending what is pending."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.flush()
