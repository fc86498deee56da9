"""protocols.health: the process's heartbeat on the (in-memory) channel layer."""

from __future__ import annotations

import asyncio

import pytest
from django.test import override_settings

from gateway import metrics
from gateway.layers import get_channel_layer
from gateway.metrics import HEALTH_GROUP, HEALTH_TYPE
from gateway.startup import Summary
from protocols.health import HealthService

WAIT = 5.0


async def test_publishes_at_once_on_schedule_and_a_last_word_when_stopped() -> None:
    layer = get_channel_layer()
    assert layer is not None
    listener = await layer.new_channel()
    await layer.group_add(HEALTH_GROUP, listener)
    service = HealthService(interval=0.05)
    await service.start()
    try:
        async with asyncio.timeout(WAIT):
            first = await layer.receive(listener)
            second = await layer.receive(listener)
    finally:
        await service.stop(5)
        await layer.group_discard(HEALTH_GROUP, listener)
    async with asyncio.timeout(WAIT):
        last = await layer.receive(listener)
    assert [m["state"] for m in (first, second, last)] == ["running", "running", "stopped"]
    assert {m["type"] for m in (first, second, last)} == {HEALTH_TYPE}
    assert first["interval"] == 0.05
    assert first["process"]["id"] == metrics.registry.process.id
    assert second["process"]["uptime"] >= first["process"]["uptime"]
    summary = Summary("test")
    service.describe(summary)
    assert summary.lines == [("Health", f"published every 0.05 s to the group {HEALTH_GROUP}")]


@override_settings(CHANNEL_LAYERS={})
async def test_without_a_channel_layer_it_publishes_nothing_and_says_nothing() -> None:
    service = HealthService()
    await service.start()
    summary = Summary("test")
    service.describe(summary)
    await service.stop(5)
    assert summary.lines == []


def test_the_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        HealthService(interval=0)
