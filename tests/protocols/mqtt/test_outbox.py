"""protocols.mqtt.outbox: what instances send becomes link operations and acks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable
from typing import Any

from gateway.mqtt.codes import SubackCode
from gateway.mqtt.events import AckEvent
from protocols.background import BackgroundTasks
from protocols.mqtt.outbox import Outbox
from protocols.mqtt.stats import MqttStats
from protocols.mqtt.subscriptions import DynamicSubscriptions
from tests.protocols.mqtt.fakes import RecordingLink

WAIT = 5.0
ROUTES = {"devices/+/telemetry": 1, "$presence/#": 0}


class Harness:
    """An outbox over a recording link, its replies in a queue."""

    def __init__(self) -> None:
        self.link = RecordingLink()
        self.stats = MqttStats()
        self.tasks = BackgroundTasks(logging.getLogger("test.outbox"), "test")
        self.replies: asyncio.Queue[tuple[Hashable, AckEvent]] = asyncio.Queue()
        self.outbox = Outbox(
            self.link,
            ROUTES,
            DynamicSubscriptions(),
            reply=lambda key, event: self.replies.put_nowait((key, event)),
            stats=self.stats,
            tasks=self.tasks,
        )

    async def send(self, key: Hashable, message: dict[str, Any]) -> None:
        await self.outbox.send_for(key, {"type": "mqtt"})(message)

    async def reply(self) -> tuple[Hashable, AckEvent]:
        async with asyncio.timeout(WAIT):
            return await self.replies.get()


async def test_a_publish_goes_to_the_link_and_is_acked_only_when_asked() -> None:
    h = Harness()
    await h.send("k", {"type": "mqtt.publish", "topic": "a/b", "payload": b"x"})
    await h.send("k", {"type": "mqtt.publish", "topic": "a/c", "payload": b"x", "request_id": 7})
    assert h.link.calls == [("publish", "a/b"), ("publish", "a/c")]
    key, ack = await h.reply()
    assert (key, ack["request_id"], ack["operation"], ack["ok"]) == ("k", 7, "publish", True)
    assert h.replies.empty()
    assert h.stats.published == 2


async def test_a_publish_on_a_lost_link_is_an_ack_with_the_error_or_a_count() -> None:
    h = Harness()
    h.link.down = True
    await h.send("k", {"type": "mqtt.publish", "topic": "a/b", "payload": b"x"})
    assert h.replies.empty()  # nobody asked: counted and logged only
    await h.send("k", {"type": "mqtt.publish", "topic": "a/b", "payload": b"", "request_id": 1})
    _, ack = await h.reply()
    assert (ack["ok"], ack["error"]) == (False, "the link is down")
    assert h.stats.publish_failures == 2


async def test_subscriptions_are_the_keys_and_a_refused_one_is_forgotten() -> None:
    h = Harness()
    await h.send("k", {"type": "mqtt.subscribe", "filter": "alerts/#", "qos": 1, "request_id": 1})
    _, ack = await h.reply()
    assert (ack["operation"], ack["ok"], ack["reason_codes"]) == ("subscribe", True, [1])
    assert h.outbox.wanted_filters() == {"devices/+/telemetry": 1, "alerts/#": 1}
    h.link.suback = [SubackCode.FAILURE]
    await h.send("k", {"type": "mqtt.subscribe", "filter": "secret/#", "request_id": 2})
    _, ack = await h.reply()
    assert ack["ok"] is False
    assert "secret/#" not in h.outbox.wanted_filters()


async def test_unsubscribing_a_filter_still_wanted_leaves_the_link_subscribed() -> None:
    h = Harness()
    for key in ("k", "other"):
        await h.send(key, {"type": "mqtt.subscribe", "filter": "alerts/#"})
    await h.send("k", {"type": "mqtt.unsubscribe", "filter": "alerts/#", "request_id": 1})
    _, ack = await h.reply()
    assert (ack["operation"], ack["ok"]) == ("unsubscribe", True)
    await h.send("k", {"type": "mqtt.unsubscribe", "filter": "devices/+/telemetry"})  # a route's
    assert [c for c in h.link.calls if c[0] == "unsubscribe"] == []
    await h.send("other", {"type": "mqtt.unsubscribe", "filter": "alerts/#"})  # the last key
    assert h.link.calls[-1] == ("unsubscribe", ["alerts/#"])


async def test_release_unsubscribes_only_what_nothing_else_wants() -> None:
    h = Harness()
    await h.send("k", {"type": "mqtt.subscribe", "filter": "alerts/#"})
    await h.send("k", {"type": "mqtt.subscribe", "filter": "shared/#"})
    await h.send("k", {"type": "mqtt.subscribe", "filter": "devices/+/telemetry"})
    await h.send("other", {"type": "mqtt.subscribe", "filter": "shared/#"})
    h.outbox.release("k")
    assert len(h.tasks) == 1  # one unsubscribe, in the background
    async with asyncio.timeout(WAIT):
        while (call := await h.link.made.get())[0] == "subscribe":
            pass  # the calls made before
    assert call == ("unsubscribe", ["alerts/#"])
    assert h.outbox.wanted_filters() == {"devices/+/telemetry": 1, "shared/#": 0}


async def test_a_subscribe_on_a_lost_link_is_an_ack_with_the_error() -> None:
    h = Harness()
    h.link.down = True
    await h.send("k", {"type": "mqtt.subscribe", "filter": "alerts/#", "request_id": 3})
    _, ack = await h.reply()
    assert (ack["ok"], ack["reason_codes"], ack["error"]) == (False, [], "the link is down")
