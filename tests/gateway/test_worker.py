"""Background workers: ``Worker``, ``manage.py runworker`` and ``gateway worker``.

Consumers reply through the channel layer to a channel the test reads, which is
how the test knows a message was handled; no test sleeps to wait for anything.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.test import override_settings

from gateway import metrics, worker_launcher
from gateway.consumer import AsyncConsumer, SyncConsumer
from gateway.exceptions import StopConsumer
from gateway.layers import InMemoryChannelLayer, get_channel_layer
from gateway.layers.base import BaseChannelLayer
from gateway.management.commands import runworker
from gateway.metrics import ProtocolCounters, ServerReading
from gateway.routing import ChannelNameRouter, ProtocolTypeRouter
from gateway.types import Message, Receive, Scope, Send
from gateway.worker import Worker, routed_channel_names

ROOT = Path(__file__).resolve().parents[2]
WAIT = 5.0
MEMORY = {"default": {"BACKEND": "gateway.layers.InMemoryChannelLayer"}}


# The seeds' example: a consumer on a fixed channel name -------------------------------


class GenerateConsumer(AsyncConsumer):
    async def thumbnail_generate(self, message: Message) -> None:
        assert self.channel_layer is not None
        await self.channel_layer.send(
            message["reply_to"], {"type": "thumbnail.done", "id": message["id"]}
        )


class SyncGenerateConsumer(SyncConsumer):
    def thumbnail_generate(self, message: Message) -> None:
        assert self.channel_layer is not None
        async_to_sync(self.channel_layer.send)(
            message["reply_to"], {"type": "thumbnail.done", "id": message["id"], "sync": True}
        )


class FlakyConsumer(AsyncConsumer):
    """Raises on ``{"fail": True}``; replies to anything else."""

    async def job_run(self, message: Message) -> None:
        if message.get("fail"):
            raise RuntimeError(f"job {message['n']} failed")
        assert self.channel_layer is not None
        await self.channel_layer.send(message["reply_to"], {"type": "job.done", "n": message["n"]})


class QuittingConsumer(FlakyConsumer):
    """Ends itself (StopConsumer) after every message."""

    async def job_run(self, message: Message) -> None:
        await super().job_run(message)
        raise StopConsumer()


application = ProtocolTypeRouter(
    {
        "channel": ChannelNameRouter(
            {
                "thumbnail.generate": GenerateConsumer.as_asgi(),
                "thumbnail.generate-sync": SyncGenerateConsumer.as_asgi(),
                "jobs.flaky": FlakyConsumer.as_asgi(),
                "jobs.steady": FlakyConsumer.as_asgi(),
                "jobs.quitting": QuittingConsumer.as_asgi(),
            }
        )
    }
)


@pytest.fixture
def layer() -> Iterator[BaseChannelLayer]:
    """A fresh default in-memory layer, the one consumers get from get_channel_layer()."""
    with override_settings(CHANNEL_LAYERS=MEMORY):
        layer = get_channel_layer()
        assert layer is not None
        yield layer


@pytest.fixture
async def serve(layer: BaseChannelLayer) -> AsyncIterator[Any]:
    """Start workers on ``layer``; stop them all at the end of the test."""
    workers: list[Worker] = []

    async def start(channels: list[str], app: Any = application, **kwargs: Any) -> Worker:
        worker = Worker(app, channels, layer, **kwargs)
        await worker.start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        await worker.stop(timeout=WAIT)


async def receive(layer: BaseChannelLayer, channel: str) -> Message:
    async with asyncio.timeout(WAIT):
        return await layer.receive(channel)


async def test_thumbnail_generate_example(layer: BaseChannelLayer, serve: Any) -> None:
    await serve(["thumbnail.generate", "thumbnail.generate-sync"])
    replies = await layer.new_channel()
    await layer.send(
        "thumbnail.generate", {"type": "thumbnail.generate", "id": 90902949, "reply_to": replies}
    )
    assert await receive(layer, replies) == {"type": "thumbnail.done", "id": 90902949}
    await layer.send(
        "thumbnail.generate-sync", {"type": "thumbnail.generate", "id": 7, "reply_to": replies}
    )
    assert await receive(layer, replies) == {"type": "thumbnail.done", "id": 7, "sync": True}


async def test_messages_are_handled_in_order(layer: BaseChannelLayer, serve: Any) -> None:
    replies = await layer.new_channel()
    for n in range(20):
        await layer.send("jobs.steady", {"type": "job.run", "n": n, "reply_to": replies})
    await serve(["jobs.steady"])
    assert [(await receive(layer, replies))["n"] for _ in range(20)] == list(range(20))


async def test_the_worker_reports_messages_taken_and_running_instances(
    layer: BaseChannelLayer, serve: Any
) -> None:
    worker = await serve(["jobs.steady"])
    assert worker.reading() == ServerReading({"channel": ProtocolCounters()}, 0)
    replies = await layer.new_channel()
    for n in range(3):
        await layer.send("jobs.steady", {"type": "job.run", "n": n, "reply_to": replies})
        await receive(layer, replies)
    # The instance that handled them waits for the next message: it still runs.
    assert worker.reading() == ServerReading({"channel": ProtocolCounters(messages_in=3)}, 1)
    assert metrics.registry.servers()["worker"] == worker.reading()


async def test_one_application_instance_per_channel(layer: BaseChannelLayer, serve: Any) -> None:
    scopes: list[Scope] = []
    handled: asyncio.Queue[tuple[str, Message]] = asyncio.Queue()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scopes.append(scope)
        while True:
            await handled.put((scope["channel"], await receive()))

    await serve(["a", "b"], app=app)
    for n in range(3):
        await layer.send("a", {"type": "m", "n": n})
        await layer.send("b", {"type": "m", "n": n})
    async with asyncio.timeout(WAIT):
        got = [await handled.get() for _ in range(6)]
    assert [m["n"] for c, m in got if c == "a"] == [0, 1, 2]
    assert [m["n"] for c, m in got if c == "b"] == [0, 1, 2]
    assert sorted(s["channel"] for s in scopes) == ["a", "b"]
    assert all(s["type"] == "channel" for s in scopes)


async def test_a_failing_channel_does_not_stop_the_others(
    layer: BaseChannelLayer, serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Channels 4.3.2's worker silently stops listening on a channel whose handler failed."""
    worker = await serve(["jobs.flaky", "jobs.steady"])
    replies = await layer.new_channel()
    with caplog.at_level(logging.ERROR, logger="gateway.worker"):
        # The failing message and the two queued behind it.
        for n, fail in [(1, True), (2, False), (3, False)]:
            await layer.send(
                "jobs.flaky", {"type": "job.run", "n": n, "fail": fail, "reply_to": replies}
            )
        await layer.send("jobs.steady", {"type": "job.run", "n": 10, "reply_to": replies})
        got = sorted([(await receive(layer, replies))["n"] for _ in range(3)])
    assert got == [2, 3, 10]
    assert worker.restarts == {"jobs.flaky": 1}
    (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "'jobs.flaky'" in record.getMessage()
    assert record.exc_info is not None
    assert "job 1 failed" in str(record.exc_info[1])
    # Still serving the flaky channel afterwards.
    await layer.send("jobs.flaky", {"type": "job.run", "n": 4, "reply_to": replies})
    assert (await receive(layer, replies))["n"] == 4


async def test_an_instance_that_ends_is_replaced_for_the_next_message(
    layer: BaseChannelLayer, serve: Any
) -> None:
    worker = await serve(["jobs.quitting"])
    replies = await layer.new_channel()
    for n in range(3):
        await layer.send("jobs.quitting", {"type": "job.run", "n": n, "reply_to": replies})
    assert [(await receive(layer, replies))["n"] for _ in range(3)] == [0, 1, 2]
    assert worker.restarts == {}


async def test_message_without_type_is_logged_and_dropped(
    layer: BaseChannelLayer, serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    await serve(["jobs.steady"])
    replies = await layer.new_channel()
    with caplog.at_level(logging.ERROR, logger="gateway.worker"):
        await layer.send("jobs.steady", {"n": 0, "reply_to": replies})
        await layer.send("jobs.steady", {"type": "job.run", "n": 1, "reply_to": replies})
        assert (await receive(layer, replies))["n"] == 1
    assert any("without a 'type'" in r.getMessage() for r in caplog.records)


class LayerThatFailsOnce(InMemoryChannelLayer):
    """An in-memory layer whose first receive fails, as Redis does while restarting."""

    failed = False

    async def receive(self, channel: str) -> Message:
        if not self.failed:
            self.failed = True
            raise ConnectionError("backend restarting")
        return await super().receive(channel)


async def test_layer_errors_are_logged_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    layer = LayerThatFailsOnce()
    received: asyncio.Queue[Message] = asyncio.Queue()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            await received.put(await receive())

    worker = Worker(app, ["jobs"], layer)
    with caplog.at_level(logging.ERROR, logger="gateway.worker"):
        await worker.start()
        try:
            await layer.send("jobs", {"type": "job.run"})
            async with asyncio.timeout(WAIT):
                assert await received.get() == {"type": "job.run"}
        finally:
            await worker.stop(WAIT)
    assert any("receiving from channel 'jobs' failed" in r.getMessage() for r in caplog.records)


# Stopping ------------------------------------------------------------------------------------


async def test_stop_finishes_taken_messages_and_leaves_the_rest_in_the_layer(
    layer: BaseChannelLayer,
) -> None:
    release = asyncio.Event()
    handled: list[int] = []
    started = asyncio.Event()

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            started.set()
            await release.wait()
            handled.append(message["n"])

    worker = Worker(slow, ["slow"], layer, queue_size=1)
    await worker.start()
    for n in range(4):
        await layer.send("slow", {"type": "m", "n": n})
    async with asyncio.timeout(WAIT):
        await started.wait()
    stopping = asyncio.create_task(worker.stop(timeout=WAIT))
    await asyncio.sleep(0)
    release.set()
    async with asyncio.timeout(WAIT):
        await stopping
    assert handled == [0, 1]  # the one being handled and the one queued behind it
    assert [(await receive(layer, "slow"))["n"] for _ in range(2)] == [2, 3]


async def test_stop_cancels_what_outlives_the_timeout(layer: BaseChannelLayer) -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def stuck(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    worker = Worker(stuck, ["stuck"], layer)
    await worker.start()
    await layer.send("stuck", {"type": "m"})
    async with asyncio.timeout(WAIT):
        await started.wait()
        await worker.stop(timeout=0.01)
    assert cancelled.is_set()


def test_worker_refuses_bad_arguments() -> None:
    layer = InMemoryChannelLayer()
    with pytest.raises(ValueError, match="needs a channel layer"):
        Worker(application, ["x"], None)
    with pytest.raises(ValueError, match="at least one channel"):
        Worker(application, [], layer)
    with pytest.raises(TypeError, match="Channel name"):
        Worker(application, ["not valid!"], layer)
    with pytest.raises(ValueError, match=r"does not route jobs\.typo \(it routes: jobs\.flaky"):
        Worker(application, ["jobs.steady", "jobs.typo"], layer)


# manage.py runworker ---------------------------------------------------------------------------


@override_settings(ASGI_APPLICATION="tests.gateway.test_worker.application", CHANNEL_LAYERS=MEMORY)
async def test_runworker_serves_the_named_channels() -> None:
    layer = get_channel_layer()
    assert layer is not None
    command = runworker.Command()
    thread = threading.Thread(target=call_command, args=(command, "thumbnail.generate"))
    thread.start()
    try:
        replies = await layer.new_channel()
        await layer.send(
            "thumbnail.generate", {"type": "thumbnail.generate", "id": 1, "reply_to": replies}
        )
        assert await receive(layer, replies) == {"type": "thumbnail.done", "id": 1}
    finally:
        command.worker.request_stop()
        await asyncio.to_thread(thread.join, WAIT)
    assert not thread.is_alive()


class _ReturningWorker(Worker):
    def run(self) -> None:
        """Return at once: the test checks which worker the command built."""


@override_settings(ASGI_APPLICATION="tests.gateway.test_worker.application", CHANNEL_LAYERS=MEMORY)
def test_runworker_builds_its_worker_class() -> None:
    """Channels' hook: a subclass setting ``worker_class`` gets its worker built and run."""

    class Command(runworker.Command):
        worker_class = _ReturningWorker

    command = Command()
    call_command(command, "--layer", "default", "jobs.steady", "jobs.flaky")
    assert isinstance(command.worker, _ReturningWorker)
    assert command.worker.channels == ["jobs.steady", "jobs.flaky"]


@pytest.mark.parametrize(
    ("layers", "arguments", "message"),
    [
        ({}, ["jobs"], "No channel layer 'default' in CHANNEL_LAYERS"),
        (MEMORY, ["--layer", "other", "jobs"], "No channel layer 'other'"),
        ({"default": {"BACKEND": "nowhere.Layer"}}, ["jobs"], "Cannot import BACKEND"),
        (MEMORY, ["bad name"], "Channel name must be a valid unicode string"),
        (MEMORY, ["jobs.typo"], "ChannelNameRouter does not route jobs.typo"),
    ],
)
def test_runworker_configuration_errors(
    layers: dict[str, Any], arguments: list[str], message: str
) -> None:
    with (
        override_settings(
            CHANNEL_LAYERS=layers, ASGI_APPLICATION="tests.gateway.test_worker.application"
        ),
        pytest.raises(CommandError, match=message),
    ):
        call_command("runworker", *arguments)


# gateway worker / gateway run ----------------------------------------------------------------


def test_gateway_worker_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "worker", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "CHANNEL [CHANNEL ...]" in result.stdout
    assert "--layer" in result.stdout


def test_gateway_run_wants_a_worker_only_for_routed_channel_names() -> None:
    args = worker_launcher.WorkerOptions()
    assert worker_launcher.wanted(application, args)
    channel_router = application.application_mapping["channel"]
    assert isinstance(channel_router, ChannelNameRouter)
    assert routed_channel_names(application) == sorted(channel_router.application_mapping)
    no_channels = ProtocolTypeRouter({"websocket": GenerateConsumer.as_asgi()})
    assert not worker_launcher.wanted(no_channels, args)
    assert not worker_launcher.wanted(GenerateConsumer.as_asgi(), args)


async def test_gateway_run_worker_serves_the_routed_channels(layer: BaseChannelLayer) -> None:
    service = worker_launcher.build(application, worker_launcher.WorkerOptions())
    assert service.worker.channels == routed_channel_names(application)
    await service.start()
    try:
        replies = await layer.new_channel()
        await layer.send("jobs.steady", {"type": "job.run", "n": 5, "reply_to": replies})
        assert (await receive(layer, replies))["n"] == 5
    finally:
        await service.stop(WAIT)


def test_gateway_worker_without_a_layer_is_a_configuration_error() -> None:
    args = worker_launcher.WorkerOptions(channels=("jobs",))
    with (
        override_settings(CHANNEL_LAYERS={}),
        pytest.raises(ImproperlyConfigured, match="No channel layer 'default' in CHANNEL_LAYERS"),
    ):
        worker_launcher.build(application, args)


async def test_gateway_worker_serves_until_sigterm() -> None:
    """The real command: starts on the example project's worker channel, stops cleanly."""
    environ = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "worker",
        "chat.log",
        cwd=ROOT,
        env=environ,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    try:
        async with asyncio.timeout(60):
            while b"worker listening on chat.log" not in (line := await process.stderr.readline()):
                assert line, "gateway worker exited before listening"
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            _, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.communicate()
    assert process.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr
