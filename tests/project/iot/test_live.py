"""Live updates: coalesced summaries, complete reading batches, a bounded traffic log."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from gateway.layers.base import BaseChannelLayer
from project.iot.events import FLEET_GROUP, device_group
from project.iot.live import LiveUpdates
from tests.project.iot.conftest import AT, Listener, live_thing


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_device_at_100_messages_a_second_yields_at_most_10_summaries_a_second(
    layer: BaseChannelLayer, listen: Any
) -> None:
    clock = Clock()
    live = LiveUpdates(layer, clock=clock)
    thing = live_thing()
    fleet = await listen(device_group(thing.device_id))
    for tick in range(100):  # a second of messages, one every 10 ms
        clock.now = tick / 100
        thing.last_values = {"n": tick}
        live.device_changed(thing)
        await live.send_due()
    clock.now = 1.1
    await live.send_due()  # the trailing edge: the last state

    summaries = []
    while True:
        summaries.append((await fleet.next("iot.device"))["device"])
        if summaries[-1]["last_values"] == {"n": 99}:
            break
    assert len(summaries) <= 11
    assert await fleet.nothing_more("iot.device")


async def test_the_fleet_gets_one_batch_per_tick_for_all_busy_devices(
    layer: BaseChannelLayer, listen: Any
) -> None:
    """50 busy devices: 10 fleet messages a second, not 500 (a page could not keep up)."""
    fleet = await listen(FLEET_GROUP)
    clock = Clock()
    live = LiveUpdates(layer, clock=clock)
    things = [live_thing(f"dev-{n}") for n in range(50)]
    for tick in range(10):  # just over a tenth of a second apart: every device is due
        clock.now = tick * 0.11
        for thing in things:
            thing.last_values = {"tick": tick}
            live.device_changed(thing)
        await live.send_due()
    batches = [await fleet.next("iot.devices") for _ in range(10)]
    assert await fleet.nothing_more("iot.devices")
    assert [len(batch["devices"]) for batch in batches] == [50] * 10
    assert {d["last_values"]["tick"] for d in batches[-1]["devices"]} == {9}


async def test_every_reading_is_in_some_batch(layer: BaseChannelLayer, listen: Any) -> None:
    device = await listen(device_group("d1"))
    clock = Clock()
    live = LiveUpdates(layer, clock=clock, readings_limit=20)
    for n in range(50):  # 20 arrive within the interval and fill a batch: sent at once
        clock.now = n / 1000
        live.reading("d1", AT + timedelta(milliseconds=n), {"n": n})
        await live.send_due()
    await live.flush()
    points: list[Any] = []
    while len(points) < 50:
        event = await device.next("iot.readings")
        assert (event["device"], event["dropped"]) == ("d1", 0)
        points += event["points"]
    assert [values["n"] for _, values in points] == list(range(50))
    assert points[0][0] == AT.isoformat()


async def test_the_sender_sends_the_trailing_state_by_itself(
    layer: BaseChannelLayer, listen: Any
) -> None:
    device = await listen(device_group("d1"))
    live = LiveUpdates(layer)
    live.start()
    thing = live_thing()
    live.device_changed(thing)
    assert (await device.next("iot.device"))["device"]["last_values"] == {}  # at once
    for n in range(3):  # within the next interval: only the last goes, when it is due
        thing.last_values = {"n": n}
        live.device_changed(thing)
    assert (await device.next("iot.device"))["device"]["last_values"] == {"n": 2}
    assert await device.nothing_more("iot.device")
    await live.close()


async def test_without_a_channel_layer_nothing_is_sent() -> None:
    live = LiveUpdates(None)
    live.start()
    live.device_changed(live_thing())
    live.reading("d1", AT, {"t": 1})
    await live.announce({"type": "iot.alert"}, "iot.alerts")
    await live.close()


async def test_notify_channels_get_alerts_and_commands_only(
    layer: BaseChannelLayer, settings: Any
) -> None:
    """The bot's worker handles alerts and commands: the live view's summaries,
    readings and bad-payload notices never reach it (each would crash its consumer)."""
    settings.IOT_NOTIFY_CHANNELS = ["notify.test"]
    notify = Listener(layer, "notify.test")
    live = LiveUpdates(layer)
    live.device_changed(live_thing("d1"))
    live.reading("d1", AT, {"t": 1})
    live.bad_payload("d1", {"type": "iot.bad_payload", "device_id": "d1"})
    await live.flush()
    await live.announce({"type": "iot.alert", "alert": {}}, "iot.alerts")
    await live.announce({"type": "iot.command", "command": {}}, "iot.commands")
    # One FIFO channel: anything the live view had sent there would come first.
    assert [(await notify.next())["type"] for _ in range(2)] == ["iot.alert", "iot.command"]
    with pytest.raises(TimeoutError):  # and nothing after them
        async with asyncio.timeout(0):
            await layer.receive("notify.test")
