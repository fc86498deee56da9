"""The channel layer contract, run over every backend in ``tests/gateway/layers/backends.py``.

A backend joins the suite by adding a ``Backend`` entry there; every test here
then runs against it. Absence of a message is shown without waiting wherever
possible: channels are FIFO, so a *marker* sent after the operation under test
and received first proves that nothing was queued before it.

Expiry is real time here (small ``expiry`` values, since a networked layer's
clock cannot be faked); the in-memory layer's exact expiry rules are tested with
an injected clock in ``test_memory.py``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from gateway.exceptions import ChannelFull
from gateway.layers.base import BaseChannelLayer
from gateway.types import Message
from tests.gateway.layers.backends import BACKENDS, Backend

MakeLayer = Callable[..., Awaitable[BaseChannelLayer]]

WAIT = 5.0  # upper bound for anything that should happen at once
EXPIRY = 0.05  # seconds, for the expiry tests
MARKER: Message = {"type": "test.marker"}


@pytest.fixture(params=[pytest.param(b, id=b.id, marks=b.marks) for b in BACKENDS])
def backend(request: pytest.FixtureRequest) -> Backend:
    backend: Backend = request.param
    return backend


@pytest.fixture
async def make_layer(backend: Backend) -> AsyncIterator[MakeLayer]:
    """Build layers of the backend under test with a given config; flush and close them."""
    layers: list[BaseChannelLayer] = []

    async def make(**config: Any) -> BaseChannelLayer:
        layer = await backend.factory(**config)
        layers.append(layer)
        return layer

    yield make
    for layer in layers:
        await layer.flush()
        await layer.close()


@pytest.fixture
async def layer(make_layer: MakeLayer) -> BaseChannelLayer:
    return await make_layer()


@pytest.fixture
def name(unique: str) -> Callable[[str], str]:
    """Channel/group names unique to the test, so backends with shared storage never mix."""
    return lambda suffix: f"{unique}.{suffix}"


async def receive(layer: BaseChannelLayer, channel: str) -> Message:
    async with asyncio.timeout(WAIT):
        return await layer.receive(channel)


async def assert_empty(layer: BaseChannelLayer, channel: str) -> None:
    """Nothing is queued on ``channel``: a marker sent now is the next message."""
    await layer.send(channel, MARKER)
    assert await receive(layer, channel) == MARKER


async def assert_nothing_arrives(layer: BaseChannelLayer, channel: str) -> None:
    """For expiry, where a marker could itself expire: wait briefly for nothing."""
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(EXPIRY):
            await layer.receive(channel)


# Send and receive ---------------------------------------------------------------


async def test_send_receive_is_fifo(layer: BaseChannelLayer, name: Callable[[str], str]) -> None:
    channel = name("fifo")
    for n in range(10):
        await layer.send(channel, {"type": "test.message", "n": n})
    assert [(await receive(layer, channel))["n"] for _ in range(10)] == list(range(10))
    await assert_empty(layer, channel)


async def test_receive_waits_for_a_send(
    layer: BaseChannelLayer, name: Callable[[str], str]
) -> None:
    channel = name("wait")
    receiving = asyncio.create_task(receive(layer, channel))
    await asyncio.sleep(0)
    await layer.send(channel, {"type": "test.message", "text": "hello"})
    assert await receiving == {"type": "test.message", "text": "hello"}


async def test_each_message_goes_to_exactly_one_receiver(
    layer: BaseChannelLayer, name: Callable[[str], str]
) -> None:
    channel = name("shared")
    receivers = [asyncio.create_task(receive(layer, channel)) for _ in range(5)]
    await asyncio.sleep(0)
    for n in range(5):
        await layer.send(channel, {"type": "test.message", "n": n})
    messages = await asyncio.gather(*receivers)
    assert sorted(m["n"] for m in messages) == list(range(5))
    await assert_empty(layer, channel)


async def test_channels_are_independent(
    layer: BaseChannelLayer, name: Callable[[str], str]
) -> None:
    await layer.send(name("a"), {"type": "test.message", "to": "a"})
    await layer.send(name("b"), {"type": "test.message", "to": "b"})
    assert (await receive(layer, name("b")))["to"] == "b"
    assert (await receive(layer, name("a")))["to"] == "a"


async def test_message_is_copied_on_send(
    layer: BaseChannelLayer, name: Callable[[str], str]
) -> None:
    message: Message = {"type": "test.message", "items": [1, 2]}
    await layer.send(name("copy"), message)
    message["items"].append(3)
    assert (await receive(layer, name("copy")))["items"] == [1, 2]


async def test_payloads_keep_bytes_and_nested_values(
    layer: BaseChannelLayer, name: Callable[[str], str]
) -> None:
    message: Message = {
        "type": "mqtt.publish",
        "payload": b"\x00\xff binary \x80",
        "empty": b"",
        "text": "héllo ✓",
        "numbers": [0, -1, 2**40, 1.5],
        "flags": {"retain": True, "dup": False, "none": None},
    }
    await layer.send(name("bytes"), message)
    received = await receive(layer, name("bytes"))
    assert received == message
    assert isinstance(received["payload"], bytes)


async def test_message_must_be_a_dict(layer: BaseChannelLayer, name: Callable[[str], str]) -> None:
    with pytest.raises(TypeError, match="dict"):
        await layer.send(name("bad"), ["type", "test.message"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="dict"):
        await layer.group_send(name("bad"), "not a message")  # type: ignore[arg-type]


# Names --------------------------------------------------------------------------

BAD_CHANNEL_NAMES: list[Any] = [
    "",
    "a" * 100,
    "has space",
    "ünïcode",
    "two!bangs!here",
    "slash/es",
    None,
    123,
    b"bytes",
]


@pytest.mark.parametrize("bad", BAD_CHANNEL_NAMES, ids=repr)
async def test_invalid_channel_names_raise_type_error(layer: BaseChannelLayer, bad: Any) -> None:
    with pytest.raises(TypeError):
        await layer.send(bad, {"type": "test.message"})
    with pytest.raises(TypeError):
        await layer.receive(bad)
    with pytest.raises(TypeError):
        await layer.group_add("group", bad)
    with pytest.raises(TypeError):
        await layer.group_discard("group", bad)


@pytest.mark.parametrize("bad", [*BAD_CHANNEL_NAMES, "local!name", "a!"], ids=repr)
async def test_invalid_group_names_raise_type_error(layer: BaseChannelLayer, bad: Any) -> None:
    with pytest.raises(TypeError):
        await layer.group_add(bad, "channel")
    with pytest.raises(TypeError):
        await layer.group_discard(bad, "channel")
    with pytest.raises(TypeError):
        await layer.group_send(bad, {"type": "test.message"})


async def test_longest_valid_name_is_accepted(layer: BaseChannelLayer) -> None:
    longest = "a" * (layer.MAX_NAME_LENGTH - 1)
    await layer.send(longest, {"type": "test.message"})
    assert await receive(layer, longest) == {"type": "test.message"}
    await layer.group_add(longest, longest)
    await layer.group_discard(longest, longest)


# Process-local channels -----------------------------------------------------------


async def test_new_channel_names_are_unique_and_well_formed(layer: BaseChannelLayer) -> None:
    names = {await layer.new_channel() for _ in range(200)}
    assert len(names) == 200
    for channel in names:
        # Channels 4.3.2 returns "specific..inmemory!..." (a double dot).
        assert re.fullmatch(r"specific\.[\w\-]+(\.[\w\-]+)*![\w\-.]+", channel), channel
        assert ".." not in channel
        assert layer.require_valid_channel_name(channel)


async def test_new_channel_takes_a_prefix(layer: BaseChannelLayer, unique: str) -> None:
    channel = await layer.new_channel(prefix=unique)
    assert channel.startswith(f"{unique}.")
    assert "!" in channel
    assert ".." not in channel


async def test_process_local_channels_deliver_to_their_own_receiver(
    layer: BaseChannelLayer,
) -> None:
    first, second = await layer.new_channel(), await layer.new_channel()
    waiting = asyncio.create_task(receive(layer, second))
    await asyncio.sleep(0)
    await layer.send(first, {"type": "test.message", "to": "first"})
    await layer.send(second, {"type": "test.message", "to": "second"})
    assert (await waiting)["to"] == "second"
    assert (await receive(layer, first))["to"] == "first"
    await assert_empty(layer, first)
    await assert_empty(layer, second)


async def test_process_local_channels_have_their_own_capacity(make_layer: MakeLayer) -> None:
    """channels_redis puts a process's local channels in one key: one fills all."""
    layer = await make_layer(capacity=2)
    busy, quiet = await layer.new_channel(), await layer.new_channel()
    for n in range(2):
        await layer.send(busy, {"type": "test.message", "n": n})
    with pytest.raises(ChannelFull):
        await layer.send(busy, {"type": "test.message", "n": 2})
    await layer.send(quiet, {"type": "test.message", "n": 0})
    await layer.send(quiet, {"type": "test.message", "n": 1})
    assert (await receive(layer, quiet))["n"] == 0


# Expiry -----------------------------------------------------------------------------


async def test_unreceived_messages_expire(
    make_layer: MakeLayer, name: Callable[[str], str]
) -> None:
    layer = await make_layer(expiry=EXPIRY)
    await layer.send(name("expiring"), {"type": "test.message"})
    await asyncio.sleep(EXPIRY * 2)
    await assert_nothing_arrives(layer, name("expiring"))


async def test_expired_messages_free_capacity(
    make_layer: MakeLayer, name: Callable[[str], str]
) -> None:
    # Long enough that the first message cannot expire before the second send, even
    # when a loaded machine pauses this test between the two (it did, at 0.05 s).
    expiry = 0.5
    layer = await make_layer(expiry=expiry, capacity=1)
    await layer.send(name("full"), {"type": "test.message", "n": 1})
    with pytest.raises(ChannelFull):
        await layer.send(name("full"), {"type": "test.message", "n": 2})
    await asyncio.sleep(expiry * 2)
    await layer.send(name("full"), {"type": "test.message", "n": 3})  # no ChannelFull


async def test_group_membership_expires(make_layer: MakeLayer, name: Callable[[str], str]) -> None:
    layer = await make_layer(group_expiry=EXPIRY)
    await layer.group_add(name("group"), name("member"))
    await asyncio.sleep(EXPIRY * 2)
    await layer.group_send(name("group"), {"type": "test.message"})
    await assert_empty(layer, name("member"))


# Capacity ------------------------------------------------------------------------------


async def test_send_to_a_full_channel_raises_channel_full(
    make_layer: MakeLayer, name: Callable[[str], str]
) -> None:
    layer = await make_layer(capacity=3)
    for n in range(3):
        await layer.send(name("c"), {"type": "test.message", "n": n})
    with pytest.raises(ChannelFull):
        await layer.send(name("c"), {"type": "test.message", "n": 3})
    assert (await receive(layer, name("c")))["n"] == 0
    await layer.send(name("c"), {"type": "test.message", "n": 4})
    assert [(await receive(layer, name("c")))["n"] for _ in range(3)] == [1, 2, 4]
    assert layer.stats.dropped_full == 1


async def test_channel_capacity_patterns(make_layer: MakeLayer, unique: str) -> None:
    """Glob strings and compiled regexes, first match wins (Channels 4.3.2 crashes here)."""
    layer = await make_layer(
        capacity=2,
        channel_capacity={
            f"{unique}.small.*": 1,
            re.compile(rf"^{unique}\.big$"): 4,
            f"{unique}.*": 3,
        },
    )
    for channel, capacity in [
        (f"{unique}.small.x", 1),
        (f"{unique}.big", 4),
        (f"{unique}.other", 3),
        (f"x{unique}", 2),
    ]:
        for n in range(capacity):
            await layer.send(channel, {"type": "test.message", "n": n})
        with pytest.raises(ChannelFull):
            await layer.send(channel, {"type": "test.message", "n": capacity})


async def test_channel_capacity_applies_to_process_local_channels(make_layer: MakeLayer) -> None:
    layer = await make_layer(capacity=5, channel_capacity={"specific.*": 1})
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "test.message"})
    with pytest.raises(ChannelFull):
        await layer.send(channel, {"type": "test.message"})


# Groups ---------------------------------------------------------------------------------


async def test_group_send_reaches_every_member_once(
    layer: BaseChannelLayer, name: Callable[[str], str]
) -> None:
    members = [name("m1"), name("m2"), await layer.new_channel()]
    for member in members:
        await layer.group_add(name("room"), member)
    await layer.group_add(name("room"), members[0])  # adding twice: still one membership
    await layer.group_send(name("room"), {"type": "chat.message", "text": "hi"})
    for member in members:
        assert await receive(layer, member) == {"type": "chat.message", "text": "hi"}
        await assert_empty(layer, member)


@pytest.mark.parametrize("body", [{"text": "hi"}, {"items": [1, 2], "meta": {"n": 1}}])
async def test_each_member_of_a_group_gets_its_own_copy(
    layer: BaseChannelLayer, name: Callable[[str], str], body: Message
) -> None:
    # Members in one process may share one delivery; none may see another's changes.
    members = [await layer.new_channel() for _ in range(3)]
    for member in members:
        await layer.group_add(name("copies"), member)
    await layer.group_send(name("copies"), {"type": "chat.message", **body})
    for member in members:
        received = await receive(layer, member)
        assert received == {"type": "chat.message", **body}
        received["type"] = "changed"
        for value in received.values():
            if isinstance(value, list):
                value.append(3)
            elif isinstance(value, dict):
                value["n"] = 2


async def test_group_discard_removes_only_that_member(
    layer: BaseChannelLayer, name: Callable[[str], str]
) -> None:
    await layer.group_add(name("room"), name("stays"))
    await layer.group_add(name("room"), name("leaves"))
    await layer.group_add(name("other"), name("leaves"))
    await layer.group_discard(name("room"), name("leaves"))
    await layer.group_discard(name("room"), name("never-joined"))  # not an error
    await layer.group_send(name("room"), {"type": "test.message", "group": "room"})
    await layer.group_send(name("other"), {"type": "test.message", "group": "other"})
    assert (await receive(layer, name("stays")))["group"] == "room"
    assert (await receive(layer, name("leaves")))["group"] == "other"
    await assert_empty(layer, name("leaves"))


async def test_group_send_to_an_empty_group_does_nothing(
    layer: BaseChannelLayer, name: Callable[[str], str]
) -> None:
    await layer.group_send(name("nobody"), {"type": "test.message"})
    await layer.group_add(name("gone"), name("member"))
    await layer.group_discard(name("gone"), name("member"))
    await layer.group_send(name("gone"), {"type": "test.message"})
    await assert_empty(layer, name("member"))


async def test_group_send_skips_full_members_counts_and_logs(
    make_layer: MakeLayer, name: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    layer = await make_layer(capacity=1)
    await layer.group_add(name("room"), name("full"))
    await layer.group_add(name("room"), name("free"))
    await layer.send(name("full"), {"type": "test.message", "n": "first"})
    with caplog.at_level(logging.WARNING, logger="gateway.layers"):
        for n in range(20):
            await layer.group_send(name("room"), {"type": "test.message", "n": n})
            assert (await receive(layer, name("free")))["n"] == n
    assert (await receive(layer, name("full")))["n"] == "first"
    await assert_empty(layer, name("full"))
    assert layer.stats.dropped_full == 20
    # Logged once, not once per message: the rest are counted for the next summary.
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert [w for w in warnings if name("room") in w and name("full") in w] == warnings
    assert len(warnings) == 1, warnings


# Flush, close, extensions ---------------------------------------------------------------


async def test_flush_drops_messages_and_groups(
    layer: BaseChannelLayer, name: Callable[[str], str]
) -> None:
    assert {"groups", "flush"} <= set(layer.extensions)
    await layer.send(name("queued"), {"type": "test.message"})
    await layer.group_add(name("room"), name("member"))
    await layer.flush()
    await assert_empty(layer, name("queued"))
    await layer.group_send(name("room"), {"type": "test.message"})
    await assert_empty(layer, name("member"))


async def test_close_is_idempotent_and_the_layer_stays_usable(
    layer: BaseChannelLayer, name: Callable[[str], str]
) -> None:
    await layer.send(name("c"), {"type": "test.message", "n": 1})
    await layer.close()
    await layer.close()
    await layer.send(name("c"), {"type": "test.message", "n": 2})
    assert (await receive(layer, name("c")))["n"] == 1
    assert (await receive(layer, name("c")))["n"] == 2


# Stats -----------------------------------------------------------------------------------


async def test_stats_count_what_the_layer_did(
    make_layer: MakeLayer, name: Callable[[str], str]
) -> None:
    layer = await make_layer(capacity=1)
    await layer.send(name("a"), {"type": "test.message"})
    await layer.group_add(name("room"), name("a"))
    await layer.group_add(name("room"), name("b"))
    await layer.group_add(name("room"), name("c"))
    await layer.group_send(name("room"), {"type": "test.message"})  # a is full
    with pytest.raises(ChannelFull):
        await layer.send(name("b"), {"type": "test.message"})
    await receive(layer, name("a"))
    await receive(layer, name("b"))
    stats = layer.stats.as_dict()
    assert {k: stats[k] for k in ("sent", "received", "group_sent", "dropped_full")} == {
        "sent": 3,  # one send, two group deliveries
        "received": 2,
        "group_sent": 1,
        "dropped_full": 2,  # one skipped member, one refused send
    }


# Cancellation and threads -----------------------------------------------------------------


async def test_cancelled_receive_loses_no_message(
    layer: BaseChannelLayer, name: Callable[[str], str]
) -> None:
    """Cancel receivers at every point around a send: each message is still delivered once."""
    channel = name("cancel")
    delivered: list[int] = []
    for n in range(12):
        receiving = asyncio.create_task(layer.receive(channel))
        for _ in range(n % 4):
            await asyncio.sleep(0)
        await layer.send(channel, {"type": "test.message", "n": n})
        for _ in range(n // 4):
            await asyncio.sleep(0)
        receiving.cancel()
        async with asyncio.timeout(WAIT):
            (outcome,) = await asyncio.gather(receiving, return_exceptions=True)
        if isinstance(outcome, dict):
            delivered.append(outcome["n"])
        else:
            assert isinstance(outcome, asyncio.CancelledError)
    for _ in range(12 - len(delivered)):
        delivered.append((await receive(layer, channel))["n"])
    assert sorted(delivered) == list(range(12))
    await assert_empty(layer, channel)


async def test_receive_cancelled_while_waiting_leaves_the_channel_working(
    layer: BaseChannelLayer, name: Callable[[str], str]
) -> None:
    channel = name("idle")
    waiting = asyncio.create_task(layer.receive(channel))
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await layer.send(channel, {"type": "test.message"})
    assert await receive(layer, channel) == {"type": "test.message"}


async def test_usable_from_sync_code_called_repeatedly(
    layer: BaseChannelLayer, name: Callable[[str], str]
) -> None:
    """async_to_sync makes a new event loop per call (channels_redis#332)."""
    channel = name("sync")

    def sync_code() -> list[Message]:
        for n in range(3):
            async_to_sync(layer.send)(channel, {"type": "test.message", "n": n})
            async_to_sync(layer.group_add)(name("room"), name("member"))
            async_to_sync(layer.group_send)(name("room"), {"type": "test.message", "n": n})
        return [async_to_sync(layer.receive)(channel) for _ in range(3)]

    async with asyncio.timeout(WAIT * 2):
        received = await asyncio.to_thread(sync_code)
    assert [m["n"] for m in received] == [0, 1, 2]
    assert [(await receive(layer, name("member")))["n"] for _ in range(3)] == [0, 1, 2]


async def test_send_from_another_thread_wakes_a_waiting_receiver(
    layer: BaseChannelLayer, name: Callable[[str], str]
) -> None:
    channel = name("threads")
    waiting = asyncio.create_task(receive(layer, channel))
    await asyncio.sleep(0)
    await asyncio.to_thread(async_to_sync(layer.send), channel, {"type": "test.message"})
    assert await waiting == {"type": "test.message"}
