"""protocols.mqtt.dispatch: received messages to their keys' instances, in order, bounded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable
from typing import Any

import pytest

from gateway.exceptions import ChannelLayerUnavailable
from gateway.mqtt.events import Incoming, disconnect_event
from gateway.routing.topic import TopicRouter, topic
from gateway.types import Message, Receive, Scope, Send
from protocols.instances import ApplicationInstance, InstanceManager
from protocols.mqtt.dispatch import Dispatcher
from protocols.mqtt.route_cache import RouteCache
from protocols.mqtt.stats import MqttStats
from protocols.mqtt.subscriptions import DynamicSubscriptions
from tests.protocols.mqtt.fakes import RecordingLink

WAIT = 5.0
PATTERN = "devices/<device_id>/telemetry"


def key(device_id: str) -> Hashable:
    return (PATTERN, (("device_id", device_id),))


class Harness:
    """A dispatcher over a recording link; its instances log what they receive.

    An instance raises :class:`ChannelLayerUnavailable` on a payload in ``layer_down``
    (once per payload) and waits for ``release`` on a payload ``b"hold"``.
    """

    def __init__(self, inflight: int = 100) -> None:
        self.link = RecordingLink()
        self.stats = MqttStats()
        self.log: asyncio.Queue[tuple[str, bytes, Scope]] = asyncio.Queue()
        self.layer_down: set[bytes] = set()
        self.release = asyncio.Event()
        self.dynamic = DynamicSubscriptions()
        self.manager = InstanceManager(
            self.application,
            send_factory=self.send_for,
            terminal_message=lambda reason: dict(disconnect_event(reason)),
            on_exit=self.ended,
        )
        self.dispatcher = Dispatcher(
            self.link,
            RouteCache(TopicRouter([topic(PATTERN, self.application)])),
            self.manager,
            self.dynamic,
            inflight=inflight,
            stats=self.stats,
            retry_delay=0.0,
        )

    async def application(self, scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "mqtt.disconnect":
                return
            payload = message["payload"]
            if payload in self.layer_down:
                self.layer_down.discard(payload)
                raise ChannelLayerUnavailable("the layer is down")
            await self.log.put((scope["route"]["kwargs"].get("device_id", "?"), payload, scope))
            if payload == b"hold":
                await self.release.wait()

    def send_for(self, key: Hashable, scope: Scope) -> Send:
        async def send(message: Message) -> None:
            pass

        return send

    def ended(self, key: Hashable, instance: ApplicationInstance) -> None:
        self.dispatcher.take_back(key, instance)

    def receive(self, topic_name: str, payload: bytes, ack: Any = None) -> None:
        self.dispatcher.queue(Incoming(topic_name, payload, qos=1 if ack else 0), None, ack)

    async def logged(self, count: int) -> list[tuple[str, bytes]]:
        async with asyncio.timeout(WAIT):
            return [(await self.log.get())[:2] for _ in range(count)]


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness()
    h.dispatcher.start()
    yield h
    h.dispatcher.stopping = True
    await h.dispatcher.cancel()
    await h.manager.shutdown(1.0)


async def test_each_keys_messages_reach_one_instance_in_order(harness: Harness) -> None:
    for n in range(3):
        harness.receive("devices/d1/telemetry", b"%d" % n)
        harness.receive("devices/d2/telemetry", b"%d" % n)
    logged = await harness.logged(6)
    assert [p for d, p in logged if d == "d1"] == [b"0", b"1", b"2"]
    assert [p for d, p in logged if d == "d2"] == [b"0", b"1", b"2"]
    assert set(harness.manager.instances) == {key("d1"), key("d2")}
    assert harness.stats.dispatched == 6


async def test_an_instance_starts_with_the_scope_of_its_keys_first_message(
    harness: Harness,
) -> None:
    harness.receive("devices/d1/telemetry", b"0")
    harness.receive("devices/d1/telemetry", b"1")
    async with asyncio.timeout(WAIT):
        _, _, first = await harness.log.get()
        _, _, second = await harness.log.get()
    assert first is second  # one instance, one scope
    assert first["type"] == "mqtt"
    assert first["role"] == "bridge"
    assert first["broker"] == RecordingLink.broker_info
    assert first["route"] == {"pattern": PATTERN, "kwargs": {"device_id": "d1"}}


async def test_the_link_pauses_at_the_inflight_bound_and_resumes_at_half() -> None:
    h = Harness(inflight=4)
    for n in range(4):  # before dispatch runs: all four wait
        h.receive("devices/d1/telemetry", b"%d" % n)
    assert h.link.calls == [("pause", None)]
    assert h.stats.pauses == 1
    assert h.stats.max_pending == 4
    h.dispatcher.start()
    try:
        assert await h.logged(4) == [("d1", b"%d" % n) for n in range(4)]
        async with asyncio.timeout(WAIT):
            assert (await h.link.made.get(), await h.link.made.get()) == (
                ("pause", None),
                ("resume", None),
            )
    finally:
        await h.dispatcher.cancel()
        await h.manager.shutdown(1.0)


async def test_an_unroutable_message_is_counted_and_dropped(harness: Harness) -> None:
    harness.receive("elsewhere", b"x")
    await harness.dispatcher.wait_drained(WAIT)
    assert harness.stats.unroutable == 1
    assert harness.stats.dispatched == 0
    assert len(harness.manager) == 0


async def test_a_message_is_acked_once_its_instance_handled_it(harness: Harness) -> None:
    acks: asyncio.Queue[bytes] = asyncio.Queue()
    harness.receive("devices/d1/telemetry", b"hold", lambda: acks.put_nowait(b"hold"))
    harness.receive("devices/d1/telemetry", b"next", lambda: acks.put_nowait(b"next"))
    assert await harness.logged(1) == [("d1", b"hold")]
    assert acks.empty()  # the instance is still on it
    harness.release.set()
    assert await harness.logged(1) == [("d1", b"next")]
    async with asyncio.timeout(WAIT):
        assert await acks.get() == b"hold"


async def test_a_message_the_layer_failed_goes_again_first_to_a_fresh_instance(
    harness: Harness,
) -> None:
    acks: list[bytes] = []
    harness.layer_down.add(b"1")
    harness.receive("devices/d1/telemetry", b"hold")
    assert await harness.logged(1) == [("d1", b"hold")]
    first = harness.manager.live(key("d1"))
    for payload in (b"1", b"2"):  # queued behind "hold"
        harness.receive("devices/d1/telemetry", payload, lambda p=payload: acks.append(p))
    await harness.dispatcher.wait_drained(WAIT)
    assert acks == []
    harness.release.set()  # "1" now fails on the layer (not acked); "2" was never read
    assert await harness.logged(2) == [("d1", b"1"), ("d1", b"2")]
    assert harness.manager.live(key("d1")) is not first
    harness.receive("devices/d1/telemetry", b"3")  # after the redelivered ones
    assert await harness.logged(1) == [("d1", b"3")]
    assert acks == [b"1", b"2"]


async def test_a_dynamic_subscription_brings_other_topics_to_a_live_key(
    harness: Harness,
) -> None:
    harness.receive("devices/d2/telemetry", b"0")
    await harness.logged(1)
    harness.dynamic.add(key("d2"), "alerts/#", 0)
    harness.dynamic.add(key("gone"), "alerts/#", 0)  # no live instance: not started for it
    harness.receive("alerts/fire", b"!")
    assert await harness.logged(1) == [("d2", b"!")]
    assert list(harness.manager.instances) == [key("d2")]
