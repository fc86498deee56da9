"""Several MQTT processes share one device's readings (a shared subscription): an alert
one of them opened is cleared by a reading that reaches another, at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from gateway.layers.base import BaseChannelLayer
from project.iot.conf import iot_settings
from project.iot.ingest import Ingest
from project.iot.models import Alert
from project.iot.services import create_thing, set_threshold
from tests.project.iot.conftest import WAIT

pytestmark = pytest.mark.django_db(transaction=True)

TOPIC = "devices/kiln-1/telemetry"


@pytest.fixture
async def two_processes(layer: BaseChannelLayer) -> AsyncIterator[tuple[Ingest, Ingest]]:
    """Two ingest sides on one channel layer, as two `gateway mqtt` processes over Redis."""
    processes = (Ingest(iot_settings(), layer), Ingest(iot_settings(), layer))
    for process in processes:
        process.start()
    try:
        yield processes
    finally:
        for process in processes:
            await process.close()


@pytest.fixture
async def kiln() -> Any:
    def make() -> Any:
        owner = User.objects.create_user("olga")
        thing, _ = create_thing(owner, "kiln-1", "Kiln")
        set_threshold(thing, "temperature", "above", 900)
        return thing

    return await sync_to_async(make)()


async def reading(process: Ingest, temperature: float) -> None:
    await process.telemetry("kiln-1", TOPIC, b'{"temperature": %g}' % temperature)


async def test_an_alert_opened_by_one_process_is_cleared_by_a_reading_on_another(
    two_processes: tuple[Ingest, Ingest], kiln: Any
) -> None:
    first, second = two_processes
    for process in two_processes:  # both serve the kiln: both hold its live copy
        await reading(process, 20)
    await reading(first, 950)
    opened = await sync_to_async(Alert.objects.get)(cleared_at__isnull=True)
    # The second process learns of it from the other's announcement, not a reload.
    kiln_there = second.things.cached("kiln-1")
    assert kiln_there is not None
    async with asyncio.timeout(WAIT):
        while kiln_there.rules[0].open_alert != opened.pk:  # noqa: ASYNC110 (no event to await)
            await asyncio.sleep(0.01)
    await reading(second, 25)
    cleared = await sync_to_async(Alert.objects.get)(pk=opened.pk)
    assert cleared.cleared_at is not None
    assert cleared.clear_value == 25
    assert second.stats.alerts_cleared == 1
