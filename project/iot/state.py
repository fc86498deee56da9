"""The ingest side's live copy of each device it serves, and where it comes from.

Telemetry must not wait for the database, so each ingest process keeps a
:class:`LiveThing` per device: what the dashboard shows (presence, last values,
counts), which this process updates with every message and the writer copies to
the database in batches, and the device's configuration (name, owner,
thresholds and which of them have an open alert), which the database owns and
:class:`ThingRegistry` reloads every ``refresh_after`` seconds. So a threshold
changed in the dashboard (any process) applies within that time, and a device
created after its first message was refused is served from then on.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from project.iot.events import DeviceSummary, device_summary
from project.iot.hysteresis import Rule, as_direction
from project.iot.models import Alert, Thing, Threshold

#: Seconds a device's configuration is used before it is read again.
REFRESH_AFTER = 5.0
#: Devices remembered per process (the MQTT server's default instance bound).
REGISTRY_SIZE = 10_000


@dataclass
class RuleState:
    """A threshold as the hysteresis state machine sees it, and its open alert."""

    threshold_id: int
    rule: Rule
    open_alert: int | None = None


@dataclass
class LiveThing:
    pk: int
    device_id: str
    name: str
    owner_id: int
    online: bool
    last_seen: datetime | None
    presence_changed: datetime | None
    last_values: dict[str, float]
    last_reading_at: datetime | None
    bad_payloads: int
    rules: list[RuleState] = field(default_factory=list)

    @property
    def open_alerts(self) -> int:
        return sum(1 for state in self.rules if state.open_alert is not None)

    def summary(self) -> DeviceSummary:
        return device_summary(self, self.open_alerts)

    def configure_from(self, fresh: LiveThing) -> None:
        """Take the configuration of a fresh load; keep the live state this process holds
        (newer than the database's until the writer has flushed it)."""
        self.name = fresh.name
        self.owner_id = fresh.owner_id
        self.rules = fresh.rules


def load_thing(device_id: str) -> LiveThing | None:
    """The device with this id and its enabled thresholds, or None (sync: ORM)."""
    thing = Thing.objects.filter(device_id=device_id).first()
    if thing is None:
        return None
    open_alerts = dict(
        Alert.objects.filter(
            thing=thing, cleared_at__isnull=True, threshold__isnull=False
        ).values_list("threshold_id", "pk")
    )
    rules = [
        RuleState(
            threshold.pk,
            Rule(
                threshold.metric,
                as_direction(threshold.direction),
                threshold.limit,
                threshold.hysteresis,
            ),
            open_alerts.get(threshold.pk),
        )
        for threshold in Threshold.objects.filter(thing=thing, enabled=True)
    ]
    return LiveThing(
        pk=thing.pk,
        device_id=thing.device_id,
        name=thing.name,
        owner_id=thing.owner_id,
        online=thing.online,
        last_seen=thing.last_seen,
        presence_changed=thing.presence_changed,
        last_values=dict(thing.last_values),
        last_reading_at=thing.last_reading_at,
        bad_payloads=thing.bad_payloads,
        rules=rules,
    )


@dataclass
class _Entry:
    thing: LiveThing | None
    expires: float


class ThingRegistry:
    """The devices this process serves, by device id, each reloaded when stale.

    An unknown id is remembered (as None) for as long as a known one, so a flood
    from an unknown device costs one query per ``refresh_after`` seconds. At most
    ``size`` ids are kept, the least recently used forgotten first.
    """

    def __init__(
        self,
        load: Callable[[str], Awaitable[LiveThing | None]],
        *,
        refresh_after: float = REFRESH_AFTER,
        size: int = REGISTRY_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self.refresh_after = refresh_after
        self.size = size
        self.clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def cached(self, device_id: str) -> LiveThing | None:
        """The device's live copy if this process holds one (stale or not); no query."""
        entry = self._entries.get(device_id)
        return entry.thing if entry is not None else None

    async def get(self, device_id: str) -> LiveThing | None:
        entry = self._entries.get(device_id)
        if entry is not None and self.clock() < entry.expires:
            self._entries.move_to_end(device_id)
            return entry.thing
        fresh = await self._load(device_id)
        # Read again: another consumer of this device may have loaded it meanwhile,
        # and every consumer must update the same live copy.
        entry = self._entries.get(device_id)
        current = entry.thing if entry is not None else None
        if current is not None and fresh is not None and current.pk == fresh.pk:
            current.configure_from(fresh)
            fresh = current
        self._entries[device_id] = _Entry(fresh, self.clock() + self.refresh_after)
        self._entries.move_to_end(device_id)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return fresh
