"""The process runner's shutdown: every service at once, one bound for all."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from protocols import runner
from protocols.runner import stop_all
from protocols.service import Service


class Recording(Service):
    """Records when its stop began; stops when released (or never)."""

    def __init__(self, name: str, log: list[str], release: asyncio.Event) -> None:
        self.name = name
        self.log = log
        self.release = release
        self.cancelled = False

    async def start(self) -> None:
        pass

    async def stop(self, timeout: float) -> None:
        self.log.append(f"{self.name} stopping")
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise


class Failing(Service):
    name = "failing"

    async def start(self) -> None:
        pass

    async def stop(self, timeout: float) -> None:
        raise RuntimeError("broken stop")


async def test_services_stop_concurrently() -> None:
    log: list[str] = []
    release = asyncio.Event()
    services = [Recording(name, log, release) for name in ("web", "mqtt", "worker")]
    stopping = asyncio.ensure_future(stop_all(services, 5.0))
    async with asyncio.timeout(5):
        while len(log) < 3:  # noqa: ASYNC110 - the services record, they signal nothing
            await asyncio.sleep(0)
    assert sorted(log) == ["mqtt stopping", "web stopping", "worker stopping"]
    release.set()
    async with asyncio.timeout(5):
        await stopping


async def test_a_service_past_its_bound_is_cancelled(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(runner, "STOP_GRACE", 0.0)
    stuck = Recording("stuck", [], asyncio.Event())
    async with asyncio.timeout(5):
        await stop_all([stuck, Failing()], 0.05)
    assert stuck.cancelled
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert "stuck did not stop within 0.05s; cancelling it" in errors
    assert "failing failed to stop cleanly" in errors


async def test_what_start_up_made_is_left_out_of_garbage_collections() -> None:
    """A full collection among thousands of live consumers must not walk Django too,
    and comes rarely: the young generations are collected less often than by default."""
    stop = asyncio.Event()
    frozen: list[int] = []
    thresholds: list[tuple[int, int, int]] = []
    before = gc.get_threshold()

    def started() -> None:
        frozen.append(gc.get_freeze_count())
        thresholds.append(gc.get_threshold())
        stop.set()

    try:
        async with asyncio.timeout(5):
            await runner.ServiceGroup([Recording("web", [], stop)]).serve(
                stop_event=stop, started=started
            )
        assert frozen[0] > 0  # frozen before the launcher says it has started
        assert thresholds == [runner.COLLECTOR_THRESHOLDS]
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
