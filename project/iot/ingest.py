"""What the IoT consumers of one process share, and what they do with each message.

The MQTT server runs one consumer instance per device and route; all of them in a
process (one event loop) share one :class:`Ingest`: the live copies of the
devices (:class:`~project.iot.state.ThingRegistry`), the batching
:class:`~project.iot.writer.ReadingWriter` and the rate-limited
:class:`~project.iot.live.LiveUpdates`. :func:`current_ingest` returns the
loop's, creating and starting it on first use.

Per message nothing waits for the database or the channel layer, except a
device's configuration reload (every few seconds), an alert opening or
clearing, and a command ack: rare events, recorded at once because they must be
announced exactly once. Bad input is refused with a reason, counted on the device
(``bad_payloads``, the last sample, reason and time, written with the next
batch), shown live (``iot.bad_payload``) and logged once per device per minute;
the next message is handled normally.

The ingest side also times commands out: every ``sweep_interval`` seconds it
expires commands pending for ``IOT_COMMAND_TIMEOUT`` seconds. Expiry is a
conditional UPDATE, so with several ingest processes on one database each
command times out (and is announced) once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from django.utils import timezone

from gateway.db import DatabaseSyncToAsync
from gateway.exceptions import ChannelLayerUnavailable
from gateway.failure_log import FailureLog
from gateway.layers import get_channel_layer
from gateway.layers.base import BaseChannelLayer
from gateway.layers.receiving import receive_retrying
from project.iot.alerts import clear_alert, open_alert
from project.iot.commands import expire_overdue, record_ack
from project.iot.conf import IotSettings, iot_settings
from project.iot.events import (
    ALERTS_GROUP,
    COMMANDS_GROUP,
    AlertInfo,
    alert_event,
    alert_info,
    bad_payload_event,
    command_event,
    command_info,
    device_group,
)
from project.iot.hysteresis import Transition, step
from project.iot.live import LiveUpdates
from project.iot.payloads import (
    MAX_REASON_CHARS,
    BadPayload,
    Limits,
    parse_ack,
    parse_status,
    parse_telemetry,
    sample,
)
from project.iot.state import LiveThing, ThingRegistry, load_thing
from project.iot.writer import ReadingWriter
from project.traffic import traffic

T = TypeVar("T")

#: Seconds between renewals of the alert follower's group membership (groups expire).
REJOIN_INTERVAL = 3600.0

logger = logging.getLogger("project.iot")


def in_thread(func: Callable[..., Any]) -> DatabaseSyncToAsync[..., Any]:
    """Run ORM code in a worker thread, off the thread Django's sync views share."""
    return DatabaseSyncToAsync(func, thread_sensitive=False)


def sweep_interval(command_timeout: float) -> float:
    """How often pending commands are checked: a quarter of the timeout, 0.05-1 s."""
    return min(1.0, max(0.05, command_timeout / 4))


def describe(values: dict[str, float]) -> str:
    """A traffic-log summary of a reading: ``temperature=21.5 humidity=40``."""
    return " ".join(f"{name}={value:g}" for name, value in values.items())


@dataclass
class IngestStats:
    """Counts since the process started, for tests, logs and metrics."""

    messages: int = 0
    refused: int = 0
    unknown_devices: int = 0
    unknown_acks: int = 0
    alerts_opened: int = 0
    alerts_cleared: int = 0
    commands_acked: int = 0
    commands_expired: int = 0


class Ingest:
    """Turns device messages into stored readings, presence, alerts and live updates."""

    def __init__(
        self,
        config: IotSettings,
        layer: BaseChannelLayer | None,
        *,
        now: Callable[[], datetime] = timezone.now,
    ) -> None:
        self.config = config
        self.limits = Limits(config.max_payload_bytes, config.max_metrics)
        self.now = now
        self.things = ThingRegistry(in_thread(load_thing))
        self.writer = ReadingWriter(
            interval=config.write_interval,
            batch=config.write_batch,
            retention=config.retention,
            now=now,
        )
        self.live = LiveUpdates(layer)
        self.stats = IngestStats()
        #: Device mistakes: a warning per kind and device, then a count per minute.
        self.warnings = FailureLog(logger, level=logging.WARNING)
        self.failures = FailureLog(logger)
        #: device id -> connections open on the embedded broker (see presence()).
        self._connections: dict[str, int] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._follower: asyncio.Task[None] | None = None

    # -- lifetime ----------------------------------------------------------------

    def start(self) -> None:
        self.writer.start()
        self.live.start()
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_commands(), name="iot command sweep")
        if self._follower is None and self.live.layer is not None:
            self._follower = asyncio.create_task(
                self._follow_alerts(self.live.layer), name="iot alert follower"
            )
            self._follower.add_done_callback(self._follower_ended)

    async def flush(self) -> None:
        """Write and send everything waiting (at shutdown)."""
        await self.writer.flush()
        await self.live.flush()

    async def close(self) -> None:
        for task in (self._sweeper, self._follower):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._sweeper = self._follower = None
        await self.writer.close()
        await self.live.close()

    # -- messages ----------------------------------------------------------------

    async def telemetry(self, device_id: str, topic: str, payload: bytes) -> None:
        at = self.now()
        parsed = await self._parse(device_id, topic, payload, at, parse_telemetry)
        if parsed is None:
            return
        thing, values = parsed
        self._traffic(device_id, topic, describe(values))
        await self.writer.add(thing.pk, at, values)
        came_online = not thing.online
        thing.online = True
        thing.last_seen = thing.last_reading_at = at
        thing.last_values.update(values)
        fields: dict[str, Any] = {
            "online": True,
            "last_seen": at,
            "last_reading_at": at,
            "last_values": dict(thing.last_values),
        }
        if came_online:
            fields["presence_changed"] = thing.presence_changed = at
        self.writer.change(thing.pk, fields, urgent=came_online)
        self.live.reading(device_id, at, values)
        await self._evaluate(thing, values, at)
        self.live.device_changed(thing)

    async def status(self, device_id: str, topic: str, payload: bytes) -> None:
        at = self.now()
        parsed = await self._parse(
            device_id, topic, payload, at, lambda data, _: parse_status(data)
        )
        if parsed is None:
            return
        thing, online = parsed
        state = "online" if online else "offline"
        self._traffic(device_id, topic, state)
        self._set_presence(thing, online, at)

    async def presence(self, device_id: str, client_id: str, connected: bool, reason: str) -> None:
        """The embedded broker saw one of the device's connections open or go away.

        A device may hold several connections (a publisher and a command listener, or
        a reconnect that takes over its old session before the old one is reported
        gone): it is online while any is open, so connections are counted.
        """
        at = self.now()
        thing = await self.things.get(device_id)
        if thing is None:
            # Any client's presence is reported (tools, other gateways): not a mistake.
            logger.debug("presence of %r, which is not a device, ignored", device_id)
            return
        state = "connected" if connected else "gone"
        self._traffic(device_id, f"$presence/{client_id}", f"{state} ({reason})")
        open_now = self._connections.get(device_id, 0) + (1 if connected else -1)
        if open_now > 0:
            self._connections[device_id] = open_now
        else:
            self._connections.pop(device_id, None)
        self._set_presence(thing, open_now > 0, at)

    async def command_ack(self, device_id: str, topic: str, payload: bytes) -> None:
        at = self.now()
        parsed = await self._parse(
            device_id, topic, payload, at, lambda data, limits: parse_ack(data, limits.max_bytes)
        )
        if parsed is None:
            return
        thing, ack = parsed
        outcome = "ok" if ack.ok else f"failed: {ack.reason}"
        self._traffic(device_id, topic, f"ack {ack.command_id} {outcome}")
        thing.last_seen = at
        self.writer.change(thing.pk, {"last_seen": at})
        command = await in_thread(record_ack)(device_id, ack, at)
        if command is None:
            self.stats.unknown_acks += 1
            self.warnings.repeated(
                f"unknown acks from {device_id!r}",
                f"device {device_id!r} acknowledged command {ack.command_id}, which is "
                "unknown, another device's or no longer pending: ignored",
            )
            return
        self.stats.commands_acked += 1
        info = command_info(command)
        await self.live.announce(command_event(info), COMMANDS_GROUP, device_group(device_id))

    # -- what the handlers share --------------------------------------------------

    def _traffic(self, device_id: str, topic: str, summary: str) -> None:
        """Report a device's message to the traffic log (``iot.traffic``)."""
        if self.live.layer is not None:
            traffic.emit("mqtt", "in", topic, summary, device=device_id)

    async def _parse(
        self,
        device_id: str,
        topic: str,
        payload: bytes,
        at: datetime,
        parse: Callable[[bytes, Limits], T],
    ) -> tuple[LiveThing, T] | None:
        """The device and its parsed message; None once a bad payload or an unknown
        device has been counted and reported (a bad payload counts even then)."""
        self.stats.messages += 1
        thing = await self.things.get(device_id)
        try:
            parsed = parse(payload, self.limits)
        except BadPayload as bad:
            self._refused(thing, device_id, topic, payload, bad.reason, at)
            return None
        if thing is None:
            self._unknown(device_id, topic)
            return None
        return thing, parsed

    def _unknown(self, device_id: str, topic: str) -> None:
        self.stats.unknown_devices += 1
        self.warnings.repeated(
            f"messages from unknown device {device_id!r}",
            f"message on {topic!r} ignored: no device {device_id!r} (create it in the IoT admin)",
        )

    def _refused(
        self,
        thing: LiveThing | None,
        device_id: str,
        topic: str,
        payload: bytes,
        reason: str,
        at: datetime,
    ) -> None:
        self.stats.refused += 1
        reason = reason[:MAX_REASON_CHARS]
        self._traffic(device_id, topic, f"refused: {reason}")
        if thing is None:
            self._unknown(device_id, topic)
            return
        text = sample(payload)
        thing.bad_payloads += 1
        thing.last_seen = at
        fields = {"last_bad_sample": text, "last_bad_reason": reason, "last_bad_at": at}
        self.writer.change(thing.pk, {**fields, "last_seen": at}, bad_payloads=1)
        self.live.bad_payload(device_id, bad_payload_event(device_id, reason, text, at))
        self.live.device_changed(thing)
        self.warnings.repeated(
            f"bad payloads from {device_id!r}",
            f"device {device_id!r}: payload on {topic!r} refused: {reason}",
        )

    def _set_presence(self, thing: LiveThing, online: bool, at: datetime) -> None:
        changed = thing.online != online
        thing.online = online
        if online:
            thing.last_seen = at
        if changed:
            thing.presence_changed = at
        fields = {"online": online, "presence_changed": thing.presence_changed}
        if online:
            fields["last_seen"] = at
        self.writer.change(thing.pk, fields, urgent=changed)
        self.live.device_changed(thing)

    async def _evaluate(self, thing: LiveThing, values: dict[str, float], at: datetime) -> None:
        """Run each threshold's hysteresis state machine on the new values."""
        for state in thing.rules:
            value = values.get(state.rule.metric)
            if value is None:
                continue
            transition = step(state.rule, state.open_alert is not None, value)
            if transition is Transition.OPEN:
                opened = await in_thread(open_alert)(
                    thing.pk, state.threshold_id, state.rule, value, at
                )
                if opened is None:
                    continue  # the threshold was deleted; the next reload forgets it
                alert, created = opened
                state.open_alert = alert.pk
                if created:
                    self.stats.alerts_opened += 1
                    await self._announce_alert(alert_info(alert, thing, "opened"), thing)
            elif transition is Transition.CLEAR and state.open_alert is not None:
                cleared = await in_thread(clear_alert)(state.open_alert, value, at)
                state.open_alert = None
                if cleared is not None:
                    self.stats.alerts_cleared += 1
                    await self._announce_alert(alert_info(cleared, thing, "cleared"), thing)

    async def _announce_alert(self, info: AlertInfo, thing: LiveThing) -> None:
        await self.live.announce(alert_event(info), ALERTS_GROUP, device_group(thing.device_id))

    async def _follow_alerts(self, layer: BaseChannelLayer) -> None:
        """Keep this process's copies of open alerts in step with every process's.

        With several MQTT processes (a shared subscription) one device's readings are
        spread over them: the process that opened an alert is not always the one that
        sees the reading that clears it. Each one listens on ``iot.alerts``, so a
        process learns at once what another opened or cleared, instead of at its next
        reload of the device. Membership is renewed well within the layer's group expiry.
        """
        channel = await layer.new_channel("iot.ingest")
        try:
            while True:
                with contextlib.suppress(ChannelLayerUnavailable):
                    await layer.group_add(ALERTS_GROUP, channel)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(REJOIN_INTERVAL):
                        while True:
                            event = await receive_retrying(layer, channel, logger)
                            if event.get("type") == "iot.alert":
                                self._alert_changed(event["alert"])
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(layer.group_discard(ALERTS_GROUP, channel))

    def _follower_ended(self, task: asyncio.Task[None]) -> None:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            self.failures.failed("iot: the alert follower stopped", error)

    def _alert_changed(self, info: AlertInfo) -> None:
        thing = self.things.cached(info["device_id"])
        if thing is None:
            return  # not served here (yet): its first load reads the database
        for state in thing.rules:
            if state.threshold_id != info["threshold_id"]:
                continue
            if info["state"] == "opened":
                state.open_alert = info["id"]
            elif state.open_alert == info["id"]:
                state.open_alert = None

    async def _sweep_commands(self) -> None:
        timeout = self.config.command_timeout
        while True:
            await asyncio.sleep(sweep_interval(timeout))
            try:
                expired = await self.writer.call(expire_overdue, self.now(), timeout)
            except Exception as exc:
                self.failures.failed("iot: timing out overdue commands failed", exc)
                continue
            self.stats.commands_expired += len(expired)
            for command in expired:
                info = command_info(command)
                await self.live.announce(
                    command_event(info), COMMANDS_GROUP, device_group(info["device_id"])
                )


_ingests: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Ingest] = weakref.WeakKeyDictionary()


def current_ingest() -> Ingest:
    """The running event loop's :class:`Ingest`, created and started on first use.

    Settings are read then (``IOT_*``, ``CHANNEL_LAYERS``). One per loop, not per
    process, so each test's event loop gets a fresh one.
    """
    loop = asyncio.get_running_loop()
    ingest = _ingests.get(loop)
    if ingest is None:
        ingest = _ingests[loop] = Ingest(iot_settings(), get_channel_layer())
        ingest.start()
    return ingest


async def close_current_ingest() -> None:
    """Flush and stop the running loop's :class:`Ingest`, if it has one."""
    ingest = _ingests.pop(asyncio.get_running_loop(), None)
    if ingest is not None:
        await ingest.close()
