"""The live copies of devices: loaded once, refreshed when stale, shared by consumers."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from project.iot.hysteresis import Rule
from project.iot.models import Alert
from project.iot.services import set_threshold
from project.iot.state import LiveThing, RuleState, ThingRegistry, load_thing
from tests.project.iot.conftest import live_thing


class Loader:
    """Loads from a dict of devices, counting calls; ``gate`` holds a load back."""

    def __init__(self, things: dict[str, LiveThing]) -> None:
        self.things = things
        self.calls = 0
        self.gate: asyncio.Event | None = None

    async def __call__(self, device_id: str) -> LiveThing | None:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        thing = self.things.get(device_id)
        return dataclasses.replace(thing, rules=list(thing.rules)) if thing else None


async def test_a_device_is_loaded_once_then_refreshed_when_stale() -> None:
    now = [0.0]
    loader = Loader({"d1": live_thing()})
    registry = ThingRegistry(loader, refresh_after=5, clock=lambda: now[0])
    thing = await registry.get("d1")
    assert thing is not None
    assert await registry.get("d1") is thing
    assert loader.calls == 1

    thing.online, thing.last_values = False, {"t": 3}  # live state this process holds
    rule = RuleState(9, Rule("t", "above", 1.0), open_alert=None)
    loader.things["d1"] = dataclasses.replace(live_thing(), name="Renamed", rules=[rule])
    now[0] = 5.0
    refreshed = await registry.get("d1")
    assert refreshed is thing
    assert loader.calls == 2
    assert (thing.name, thing.rules) == ("Renamed", [rule])  # configuration: the database's
    assert (thing.online, thing.last_values) == (False, {"t": 3})  # live state: kept


async def test_unknown_ids_are_remembered_and_the_registry_is_bounded() -> None:
    loader = Loader({})
    registry = ThingRegistry(loader, size=2, clock=lambda: 0.0)
    assert await registry.get("ghost") is None
    assert await registry.get("ghost") is None
    assert loader.calls == 1
    await registry.get("a")
    await registry.get("b")  # "ghost" is the least recently used: forgotten
    await registry.get("ghost")
    assert loader.calls == 4


async def test_consumers_loading_the_same_device_at_once_share_one_copy() -> None:
    loader = Loader({"d1": live_thing()})
    loader.gate = asyncio.Event()
    registry = ThingRegistry(loader)
    loads = [asyncio.ensure_future(registry.get("d1")) for _ in range(2)]
    await asyncio.sleep(0)  # both are waiting for the database
    loader.gate.set()
    first, second = await asyncio.gather(*loads)
    assert first is second


@pytest.mark.django_db
def test_load_thing_reads_enabled_thresholds_and_their_open_alerts(
    make_thing: Callable[..., Any],
) -> None:
    thing, _ = make_thing(online=True, last_values={"t": 1})
    hot = set_threshold(thing, "t", "above", 30, hysteresis=1)
    set_threshold(thing, "t", "below", 0, enabled=False)
    alert = Alert.objects.create(
        thing=thing, threshold=hot, metric="t", direction="above", limit=30, value=31,
        opened_at=thing.created_at,
    )  # fmt: skip
    loaded = load_thing(thing.device_id)
    assert loaded is not None
    assert (loaded.pk, loaded.owner_id, loaded.online, loaded.last_values) == (
        thing.pk,
        thing.owner_id,
        True,
        {"t": 1},
    )
    assert loaded.rules == [RuleState(hot.pk, Rule("t", "above", 30.0, 1.0), alert.pk)]
    assert loaded.open_alerts == 1
    assert load_thing("nobody") is None
