"""What only the in-memory layer promises: exact expiry on an injected clock,
bounded memory, wake-ups across event loops, and Channels 4.3.2's defects fixed.
The shared layer contract is in test_contract.py."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from gateway.exceptions import ChannelFull
from gateway.layers import InMemoryChannelLayer

WAIT = 5.0


class FakeClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def layer(clock: FakeClock) -> InMemoryChannelLayer:
    return InMemoryChannelLayer(expiry=10, group_expiry=100, capacity=3, clock=clock)


async def receive(layer: InMemoryChannelLayer, channel: str) -> dict[str, object]:
    async with asyncio.timeout(WAIT):
        return await layer.receive(channel)


async def assert_empty(layer: InMemoryChannelLayer, channel: str) -> None:
    await layer.send(channel, {"type": "marker"})
    assert await receive(layer, channel) == {"type": "marker"}


# Expiry on the injected clock ------------------------------------------------------


async def test_message_expires_exactly_after_expiry(
    layer: InMemoryChannelLayer, clock: FakeClock
) -> None:
    await layer.send("c", {"type": "m", "n": 1})
    clock.advance(9.999)
    await layer.send("c", {"type": "m", "n": 2})
    clock.advance(0.001)  # n=1 is now exactly 10 s old: gone; n=2 is not
    assert (await receive(layer, "c"))["n"] == 2
    assert layer.stats.expired == 1
    assert layer.stats.received == 1


async def test_expired_messages_do_not_count_against_capacity(
    layer: InMemoryChannelLayer, clock: FakeClock
) -> None:
    for n in range(3):
        await layer.send("c", {"type": "m", "n": n})
    with pytest.raises(ChannelFull):
        await layer.send("c", {"type": "m", "n": 3})
    clock.advance(10)
    for n in range(3):
        await layer.send("c", {"type": "m", "n": n + 10})
    assert layer.stats.expired == 3
    assert [(await receive(layer, "c"))["n"] for _ in range(3)] == [10, 11, 12]


async def test_group_add_renews_membership(layer: InMemoryChannelLayer, clock: FakeClock) -> None:
    await layer.group_add("room", "renewed")
    await layer.group_add("room", "lapsed")
    clock.advance(60)
    await layer.group_add("room", "renewed")
    clock.advance(40)  # "lapsed" joined 100 s ago, "renewed" 40 s ago
    await layer.group_send("room", {"type": "m"})
    assert await receive(layer, "renewed") == {"type": "m"}
    await assert_empty(layer, "lapsed")


async def test_memory_is_released_when_things_expire(
    layer: InMemoryChannelLayer, clock: FakeClock
) -> None:
    for n in range(50):
        await layer.send(f"abandoned.{n}", {"type": "m"})
        await layer.group_add(f"group.{n}", f"abandoned.{n}")
    assert layer.occupancy() == {"channels": 50, "messages": 50, "groups": 50, "memberships": 50}
    clock.advance(100)
    await layer.send("fresh", {"type": "m"})  # any operation cleans what is due
    assert layer.occupancy() == {"channels": 1, "messages": 1, "groups": 0, "memberships": 0}
    assert layer.stats.expired == 50


async def test_received_channels_are_forgotten_once_their_expiry_passes(
    layer: InMemoryChannelLayer, clock: FakeClock
) -> None:
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "m"})
    await receive(layer, channel)
    clock.advance(10)
    await layer.group_send("nobody", {"type": "m"})
    assert layer.occupancy()["channels"] == 0
    assert layer.stats.expired == 0


async def test_a_waiting_receiver_keeps_its_channel(
    layer: InMemoryChannelLayer, clock: FakeClock
) -> None:
    waiting = asyncio.create_task(receive(layer, "c"))
    await asyncio.sleep(0)
    clock.advance(1000)
    await layer.send("other", {"type": "m"})
    assert layer.occupancy()["channels"] == 2
    await layer.send("c", {"type": "m", "n": 1})
    assert (await waiting)["n"] == 1


# Receivers and wake-ups ----------------------------------------------------------------


async def test_wake_up_of_a_cancelled_receiver_passes_to_the_next(
    layer: InMemoryChannelLayer,
) -> None:
    first = asyncio.create_task(layer.receive("c"))
    second = asyncio.create_task(receive(layer, "c"))
    await asyncio.sleep(0)  # both wait; "first" is first in line
    await layer.send("c", {"type": "m"})  # wakes "first" ...
    first.cancel()  # ... which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second == {"type": "m"}


async def test_receivers_are_served_in_arrival_order(layer: InMemoryChannelLayer) -> None:
    receivers = [asyncio.create_task(receive(layer, "c")) for _ in range(3)]
    await asyncio.sleep(0)
    for n in range(3):
        await layer.send("c", {"type": "m", "n": n})
    assert [(await r)["n"] for r in receivers] == [0, 1, 2]


async def test_receiver_on_another_loop_in_another_thread_is_woken(
    layer: InMemoryChannelLayer,
) -> None:
    waiting = threading.Event()
    result: list[dict[str, object]] = []

    async def receive_in_thread() -> None:
        receiving = asyncio.create_task(layer.receive("c"))
        await asyncio.sleep(0)
        waiting.set()
        result.append(await receiving)

    thread = threading.Thread(target=async_to_sync(receive_in_thread))
    thread.start()
    try:
        assert await asyncio.to_thread(waiting.wait, WAIT)
        await layer.send("c", {"type": "m"})
    finally:
        await asyncio.to_thread(thread.join, WAIT)
    assert result == [{"type": "m"}]


async def test_a_receiver_abandoned_on_a_closed_loop_is_skipped(
    layer: InMemoryChannelLayer,
) -> None:
    """A receiver whose event loop was closed while it waited cannot take a message."""

    def abandon_a_receiver() -> asyncio.Task[dict[str, object]]:
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(lambda loop, context: None)  # abandoned on purpose
        task = loop.create_task(layer.receive("c"))
        loop.run_until_complete(asyncio.sleep(0))  # the receiver is now waiting
        loop.close()
        return task

    abandoned = await asyncio.to_thread(abandon_a_receiver)
    await layer.send("c", {"type": "m"})
    assert not abandoned.done()
    assert await receive(layer, "c") == {"type": "m"}


# The polling reader a consumer's dispatch loop uses ------------------------------------


async def test_a_message_for_a_waiting_reader_is_handed_over_not_queued(
    layer: InMemoryChannelLayer,
) -> None:
    waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    assert layer._local_reader("c").wait(waiter)
    await layer.send("c", {"type": "m"})
    assert waiter.result() == {"type": "m"}
    assert layer.occupancy()["messages"] == 0
    assert (layer.stats.sent, layer.stats.received) == (1, 1)
    await layer.send("c", {"type": "queued"})  # nobody waits now
    assert layer.occupancy()["messages"] == 1


async def test_a_channel_has_one_waiting_reader(layer: InMemoryChannelLayer) -> None:
    loop = asyncio.get_running_loop()
    assert layer._local_reader("c").wait(loop.create_future())
    with pytest.raises(RuntimeError, match="already has a waiting reader"):
        layer._local_reader("c").wait(loop.create_future())


# Channels 4.3.2's defects, fixed -------------------------------------------------------------


async def test_channel_capacity_does_not_crash_the_first_send() -> None:
    layer = InMemoryChannelLayer(channel_capacity={"http.response!*": 2, "websocket.*": 5})
    await layer.send("http.response!abc", {"type": "m"})
    await layer.send("websocket.send", {"type": "m"})
    assert layer.get_capacity("http.response!abc") == 2
    assert layer.get_capacity("anything") == 100


async def test_new_channel_has_no_double_dot() -> None:
    layer = InMemoryChannelLayer()
    assert ".." not in await layer.new_channel()
    assert (await layer.new_channel("custom.prefix")).startswith("custom.prefix.")


async def test_new_channels_of_one_layer_share_their_local_family() -> None:
    layer, other = InMemoryChannelLayer(), InMemoryChannelLayer()
    first, second = await layer.new_channel(), await layer.new_channel()
    assert first != second
    assert layer.non_local_name(first) == layer.non_local_name(second)
    assert layer.non_local_name(first) != other.non_local_name(await other.new_channel())


# Configuration ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [{"expiry": 0}, {"group_expiry": -1}, {"capacity": 0}],
)
def test_nonsense_config_is_refused(config: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"expiry|capacity"):
        InMemoryChannelLayer(**config)


def test_config_keys_for_other_layers_are_ignored_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Channels ignores them silently; a CONFIG written for Redis must still work."""
    with caplog.at_level(logging.WARNING, logger="gateway.layers"):
        layer = InMemoryChannelLayer(hosts=["redis://"], prefix="x", capacity=5)
    assert layer.capacity == 5
    (record,) = caplog.records
    assert "ignores the CONFIG key(s) hosts, prefix" in record.getMessage()


async def test_group_send_warning_names_the_full_members(
    caplog: pytest.LogCaptureFixture,
) -> None:
    layer = InMemoryChannelLayer(capacity=1)
    for n in range(8):
        await layer.group_add("crowd", f"member.{n}")
        await layer.send(f"member.{n}", {"type": "m"})
    with caplog.at_level(logging.WARNING, logger="gateway.layers"):
        await layer.group_send("crowd", {"type": "m"})
    (record,) = caplog.records
    assert "8 of 8" in record.getMessage()
    assert "member.0" in record.getMessage()
    assert layer.stats.dropped_full == 8
