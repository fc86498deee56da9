"""Readings and device state to the database in batches, off the message path.

One transaction per message cannot keep up with a broker (a few hundred commits
a second on SQLite). Consumers hand their readings and device-state changes to
the process's :class:`ReadingWriter`, which writes them together, in one
transaction in its own database thread, every ``interval`` seconds
(``IOT_WRITE_INTERVAL``) or as soon as ``batch`` readings (``IOT_WRITE_BATCH``)
are waiting, whichever comes first. State changes are coalesced per device
between flushes: a device's ``last_values`` is written once per flush, however
many messages it sent.

Overflow policy: at most ``capacity`` readings (4 x ``batch`` by default) wait in
memory, counting those being written. When that many wait, :meth:`add` waits for
a flush to make room: the consumer waits, the MQTT server's queues fill, and the
broker connection is paused (backpressure, never unbounded memory).

When the database is unreachable the batch is kept and retried with backoff
(0.1 s doubling to 5 s; meanwhile the bound above applies). A batch the database
refuses (its device was deleted meanwhile, a constraint) is dropped and counted
in ``stats.lost``, so one bad batch cannot wedge the writer. Failures are logged
with one traceback per kind, then counts (``FailureLog``).

The writer also prunes: every ``prune_interval`` seconds it deletes readings,
cleared alerts and finished commands older than ``retention`` (``IOT_RETENTION``),
at most ``PRUNE_CHUNK`` rows of each per round, so a large backlog is removed
over several rounds between flushes rather than in one long lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from django.db import InterfaceError, OperationalError, transaction
from django.db.models import F, Model, QuerySet
from django.utils import timezone

from gateway.db import DatabaseSyncToAsync
from gateway.failure_log import FailureLog
from project.iot.models import Alert, Command, CommandStatus, Reading, Thing

logger = logging.getLogger("project.iot.writer")

P = ParamSpec("P")
R = TypeVar("R")

#: Rows of each kind deleted per pruning round.
PRUNE_CHUNK = 10_000
#: Seconds between pruning rounds (sooner while a backlog remains).
PRUNE_INTERVAL = 60.0
#: Retry delays after the database failed: first, then doubling up to the last.
BACKOFF = (0.1, 5.0)


@dataclass
class WriterStats:
    """What the writer has done, for tests, logs and metrics."""

    #: Transactions that wrote readings and/or device state.
    flushes: int = 0
    readings_written: int = 0
    #: Device rows updated (one per device per flush at most).
    state_updates: int = 0
    #: Times a consumer waited for room (backpressure).
    waits: int = 0
    #: Flushes retried because the database was unreachable.
    retries: int = 0
    #: Readings dropped: their device was deleted, or the database refused the batch.
    lost: int = 0
    #: Pruning rounds run, and rows they deleted.
    prunes: int = 0
    pruned: int = 0
    #: Most readings waiting in memory at once.
    max_waiting: int = 0


@dataclass
class StateChange:
    """A device's pending ``Thing`` updates: latest value per field, summed counts."""

    fields: dict[str, Any] = field(default_factory=dict)
    bad_payloads: int = 0

    def update(self, newer: StateChange) -> None:
        self.fields.update(newer.fields)
        self.bad_payloads += newer.bad_payloads


def write_batch(readings: list[Reading], changes: dict[int, StateChange]) -> int:
    """Store ``readings`` and apply ``changes`` in one transaction (sync: ORM).

    Returns how many readings were dropped because their device no longer exists.
    """
    wanted = {reading.thing_id for reading in readings} | changes.keys()
    existing = set(Thing.objects.filter(pk__in=wanted).values_list("pk", flat=True))
    kept = [reading for reading in readings if reading.thing_id in existing]
    with transaction.atomic():
        Reading.objects.bulk_create(kept)
        for pk, change in changes.items():
            if pk not in existing:
                continue
            fields = dict(change.fields)
            if change.bad_payloads:
                fields["bad_payloads"] = F("bad_payloads") + change.bad_payloads
            Thing.objects.filter(pk=pk).update(**fields)
    return len(readings) - len(kept)


def _delete_chunk(queryset: QuerySet[Any]) -> int:
    model: type[Model] = queryset.model
    pks = list(queryset.values_list("pk", flat=True)[:PRUNE_CHUNK])
    return model._default_manager.filter(pk__in=pks).delete()[0] if pks else 0


def prune_before(cutoff: datetime) -> tuple[int, bool]:
    """Delete a chunk of what is older than ``cutoff``; (rows deleted, whether more remain)."""
    deleted = [
        _delete_chunk(Reading.objects.filter(at__lt=cutoff)),
        _delete_chunk(Alert.objects.filter(cleared_at__lt=cutoff)),
        _delete_chunk(
            Command.objects.filter(created_at__lt=cutoff).exclude(status=CommandStatus.PENDING)
        ),
    ]
    return sum(deleted), any(count == PRUNE_CHUNK for count in deleted)


class ReadingWriter:
    """Batches readings and device state into transactions; prunes old rows.

    ``start()`` runs it on the current event loop; ``close()`` writes what is
    left and stops it. ``now`` (wall clock, for the retention cutoff) and
    ``clock`` (monotonic, for scheduling; default the loop's) can be injected.
    """

    def __init__(
        self,
        *,
        interval: float,
        batch: int,
        retention: timedelta,
        capacity: int | None = None,
        prune_interval: float = PRUNE_INTERVAL,
        now: Callable[[], datetime] = timezone.now,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.interval = interval
        self.batch = batch
        self.capacity = capacity if capacity is not None else 4 * batch
        if self.capacity < batch:
            raise ValueError("capacity must hold at least one batch")
        self.retention = retention
        self.prune_interval = prune_interval
        self.now = now
        self.stats = WriterStats()
        self.failures = FailureLog(logger)
        self._clock = clock
        self._readings: list[Reading] = []
        self._changes: dict[int, StateChange] = {}
        self._writing = 0
        #: Clock time the oldest waiting item arrived, None when nothing waits.
        self._oldest: float | None = None
        self._urgent = False
        self._retry_at = 0.0
        self._backoff = BACKOFF[0]
        self._wake = asyncio.Event()
        self._changed = asyncio.Condition()
        self._flushing = asyncio.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="iot-writer")
        self._task: asyncio.Task[None] | None = None

    def clock(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    async def call(self, func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``func`` (sync ORM code) in the writer's database thread."""
        runner = DatabaseSyncToAsync(func, thread_sensitive=False, executor=self._executor)
        return await runner(*args, **kwargs)

    # -- what consumers call ---------------------------------------------------

    async def add(self, thing_pk: int, at: datetime, values: dict[str, float]) -> None:
        """Queue a reading; waits while ``capacity`` readings wait already."""
        if self._waiting() >= self.capacity:
            self.stats.waits += 1
            async with self._changed:
                await self._changed.wait_for(lambda: self._waiting() < self.capacity)
        self._readings.append(Reading(thing_id=thing_pk, at=at, values=values))
        self._arrived()
        self.stats.max_waiting = max(self.stats.max_waiting, self._waiting())
        if len(self._readings) >= self.batch:
            self._wake.set()

    def change(
        self, thing_pk: int, fields: dict[str, Any], *, bad_payloads: int = 0, urgent: bool = False
    ) -> None:
        """Queue updates of a device's row (coalesced); ``urgent`` writes them at once
        (presence: a command must not be refused because "offline" waits in memory)."""
        self._changes.setdefault(thing_pk, StateChange()).update(StateChange(fields, bad_payloads))
        self._arrived()
        if urgent:
            self._urgent = True
            self._wake.set()

    def _waiting(self) -> int:
        return len(self._readings) + self._writing

    def _arrived(self) -> None:
        if self._oldest is None:
            self._oldest = self.clock()
            self._wake.set()  # the loop may be sleeping until the next prune

    # -- flushing --------------------------------------------------------------

    async def flush(self) -> None:
        """Write everything waiting now, in one transaction."""
        async with self._flushing:
            readings, self._readings = self._readings, []
            changes, self._changes = self._changes, {}
            self._oldest = None
            self._urgent = False
            if not readings and not changes:
                return
            self._writing = len(readings)
            try:
                lost = await self.call(write_batch, readings, changes)
            except (OperationalError, InterfaceError) as exc:
                self._put_back(readings, changes)
                self.stats.retries += 1
                self._retry_at = self.clock() + self._backoff
                self._backoff = min(self._backoff * 2, BACKOFF[1])
                self.failures.failed("iot writer: the database is unreachable; will retry", exc)
            except Exception as exc:  # refused by the database, or a bug: not retried
                self.stats.lost += len(readings)
                self.failures.failed(f"iot writer: {len(readings)} readings dropped", exc)
            else:
                self._backoff = BACKOFF[0]
                self.stats.flushes += 1
                self.stats.readings_written += len(readings) - lost
                self.stats.lost += lost
                self.stats.state_updates += len(changes)
            finally:
                self._writing = 0
                async with self._changed:
                    self._changed.notify_all()

    def _put_back(self, readings: list[Reading], changes: dict[int, StateChange]) -> None:
        """Return a failed batch, older than what arrived meanwhile, for the next try."""
        self._readings[:0] = readings
        for pk, newer in self._changes.items():
            changes.setdefault(pk, StateChange()).update(newer)
        self._changes = changes
        self._oldest = self.clock()

    async def prune(self) -> bool:
        """Delete a chunk of rows older than the retention; whether more remain."""
        try:
            deleted, more = await self.call(prune_before, self.now() - self.retention)
        except Exception as exc:
            self.failures.failed("iot writer: pruning old rows failed", exc)
            return False
        self.stats.prunes += 1
        self.stats.pruned += deleted
        async with self._changed:
            self._changed.notify_all()
        return more

    async def wait_for(self, predicate: Callable[[WriterStats], bool]) -> None:
        """Wait until ``predicate(stats)`` holds (checked after each flush and prune)."""
        async with self._changed:
            await self._changed.wait_for(lambda: predicate(self.stats))

    # -- the loop --------------------------------------------------------------

    def _flush_due(self, now: float) -> float | None:
        """When to flush what waits (``now`` if it should be at once), None if nothing waits."""
        if self._oldest is None:
            return None
        if self._urgent or len(self._readings) >= self.batch:
            due = now
        else:
            due = self._oldest + self.interval
        return max(due, self._retry_at)

    async def _run(self) -> None:
        next_prune = now = self.clock()
        while True:
            flush_due = self._flush_due(now)
            due = next_prune if flush_due is None else min(flush_due, next_prune)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, due - now)):
                    await self._wake.wait()
            now = self.clock()
            flush_due = self._flush_due(now)
            if flush_due is not None and flush_due <= now:
                await self.flush()
            if next_prune <= now:
                more = await self.prune()
                next_prune = now + (self.interval if more else self.prune_interval)
            now = self.clock()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="iot writer")

    async def close(self) -> None:
        """Stop the loop, write what is waiting, release the database thread."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.flush()
        await asyncio.to_thread(self._executor.shutdown)
