"""The writer: batches in few transactions, bounded memory, automatic retention."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from project.iot.models import Alert, Command, Reading, Thing
from project.iot.writer import ReadingWriter, WriterStats
from tests.project.iot.conftest import WAIT, in_thread

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def writers() -> AsyncIterator[Callable[..., ReadingWriter]]:
    """``writers(**options)``: a started writer (closed at the end of the test)."""
    made: list[ReadingWriter] = []

    def make(**options: Any) -> ReadingWriter:
        defaults: dict[str, Any] = {"interval": 60.0, "batch": 100, "retention": timedelta(days=7)}
        options = defaults | options
        writer = ReadingWriter(**options)
        writer.start()
        made.append(writer)
        return writer

    yield make
    for writer in made:
        await writer.close()


async def until(writer: ReadingWriter, predicate: Callable[[WriterStats], bool]) -> None:
    async with asyncio.timeout(WAIT):
        await writer.wait_for(predicate)


async def test_readings_are_written_in_batches_not_one_transaction_each(
    writers: Callable[..., ReadingWriter], thing: Thing
) -> None:
    writer = writers(batch=100)
    for n in range(500):
        await writer.add(thing.pk, NOW + timedelta(milliseconds=n), {"n": n})
        writer.change(thing.pk, {"last_values": {"n": n}})
    await until(writer, lambda stats: stats.readings_written == 500)

    assert writer.stats.flushes <= 5  # whole batches of 100, not 500 transactions
    assert writer.stats.state_updates <= writer.stats.flushes  # one UPDATE per device per flush
    values = await in_thread(lambda: [r.values["n"] for r in Reading.objects.order_by("at")])
    assert values == list(range(500))
    assert (await in_thread(Thing.objects.get, pk=thing.pk)).last_values == {"n": 499}


async def test_a_full_buffer_makes_producers_wait_for_the_next_flush(
    writers: Callable[..., ReadingWriter], thing: Thing
) -> None:
    writer = writers(batch=10, capacity=10)
    for n in range(25):
        await writer.add(thing.pk, NOW, {"n": n})  # the 11th and 21st wait for room
        assert writer.stats.max_waiting <= 10
    await writer.flush()
    assert writer.stats.waits >= 2
    assert (writer.stats.readings_written, writer.stats.flushes) == (25, 3)


async def test_state_changes_are_coalesced_and_counts_summed(
    writers: Callable[..., ReadingWriter], thing: Thing
) -> None:
    writer = writers()
    for n in range(100):
        writer.change(thing.pk, {"last_bad_reason": f"r{n}", "last_bad_at": NOW}, bad_payloads=1)
    writer.change(thing.pk, {"online": True, "presence_changed": NOW}, urgent=True)
    await until(writer, lambda stats: stats.state_updates == 1)  # urgent: no 60 s wait
    row = await in_thread(Thing.objects.get, pk=thing.pk)
    assert (row.bad_payloads, row.last_bad_reason, row.online) == (100, "r99", True)
    assert writer.stats.flushes == 1


async def test_readings_of_a_deleted_device_are_dropped_and_counted(
    writers: Callable[..., ReadingWriter], make_thing: Callable[..., Any]
) -> None:
    kept, _ = await in_thread(make_thing, "kept")
    gone, _ = await in_thread(make_thing, "gone")
    writer = writers()
    await writer.add(kept.pk, NOW, {"t": 1})
    await writer.add(gone.pk, NOW, {"t": 2})
    writer.change(gone.pk, {"online": True})
    await in_thread(gone.delete)
    await writer.flush()
    assert (writer.stats.readings_written, writer.stats.lost) == (1, 1)
    assert await in_thread(lambda: [r.values for r in Reading.objects.all()]) == [{"t": 1}]


async def test_a_batch_the_database_refuses_is_dropped_and_the_next_one_written(
    writers: Callable[..., ReadingWriter], thing: Thing, caplog: pytest.LogCaptureFixture
) -> None:
    writer = writers()
    with caplog.at_level(logging.ERROR, "project.iot.writer"):
        # A reading without a time: NOT NULL, refused by every database.
        await writer.add(thing.pk, None, {"t": 1})  # type: ignore[arg-type]
        await writer.flush()
    assert writer.stats.lost == 1
    assert "iot writer: 1 readings dropped" in caplog.text
    await writer.add(thing.pk, NOW, {"t": 1})
    await writer.flush()
    assert writer.stats.readings_written == 1


def old_and_recent_rows(thing: Thing) -> None:
    """Two of each kind: one older than the 7-day retention, one within it."""
    old, recent = NOW - timedelta(days=8), NOW - timedelta(days=6)
    Reading.objects.bulk_create(
        [Reading(thing=thing, at=old, values={"t": 1}), Reading(thing=thing, at=recent, values={})]
    )
    common = {"thing": thing, "metric": "t", "direction": "above", "limit": 1, "value": 2}
    Alert.objects.create(**common, opened_at=old, cleared_at=old)  # pruned
    Alert.objects.create(**common, opened_at=old)  # still open: kept
    Command.objects.create(thing=thing, name="a", status="acknowledged", created_at=old)  # pruned
    Command.objects.create(thing=thing, name="b", status="pending", created_at=old)  # kept
    Command.objects.create(thing=thing, name="c", status="failed", created_at=recent)  # kept


async def test_rows_older_than_the_retention_are_pruned_automatically(
    writers: Callable[..., ReadingWriter], thing: Thing
) -> None:
    await in_thread(old_and_recent_rows, thing)
    clock = {"now": NOW}
    writer = writers(now=lambda: clock["now"], prune_interval=0.01)
    await until(writer, lambda stats: stats.prunes >= 1)  # a first round at start
    assert writer.stats.pruned == 3
    counts = await in_thread(
        lambda: (Reading.objects.count(), Alert.objects.count(), Command.objects.count())
    )
    assert counts == (1, 1, 2)

    clock["now"] = NOW + timedelta(days=2)  # the recent rows age past the retention
    rounds = writer.stats.prunes  # one may be under way with the old time: wait for two
    await until(writer, lambda stats: stats.prunes >= rounds + 2)
    names = await in_thread(lambda: list(Command.objects.values_list("name", flat=True)))
    assert await in_thread(Reading.objects.count) == 0
    assert names == ["b"]  # pending commands are never pruned (they time out first)
