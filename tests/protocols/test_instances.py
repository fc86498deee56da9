"""protocols.instances: keyed instances, ordered feeding, idle/LRU ends, shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable
from typing import Any

import pytest

from gateway.types import Message, Receive, Scope, Send
from protocols.background import BackgroundTasks
from protocols.instances import ApplicationInstance, Delivery, InstanceManager, NoInstanceError

WAIT = 5.0


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def recording_app(log: asyncio.Queue[tuple[Any, Message]]) -> Any:
    async def application(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            await log.put((scope["key"], message))
            if message["type"] == "test.boom":
                raise RuntimeError("boom")
            if message["type"] == "test.disconnect":
                return

    return application


def manager(log: asyncio.Queue[tuple[Any, Message]], **options: Any) -> InstanceManager:
    async def send(message: Message) -> None:
        pass

    def send_factory(key: Hashable, scope: Scope) -> Send:
        return send

    return InstanceManager(recording_app(log), send_factory=send_factory, **options)


def scope(key: Hashable) -> Scope:
    return {"type": "test", "key": key}


async def dispatch(instances: InstanceManager, key: Hashable, message: Message) -> None:
    """Dispatch as a server does: with the scope for the key's first message."""
    await instances.dispatch(key, message, scope=scope(key))


async def take(log: asyncio.Queue[tuple[Any, Message]]) -> tuple[Any, Message]:
    async with asyncio.timeout(WAIT):
        return await log.get()


async def take_two(log: asyncio.Queue[tuple[Any, Message]]) -> list[tuple[Any, Message]]:
    """Two entries from instances running in parallel, sorted by key."""
    return sorted([await take(log), await take(log)], key=lambda entry: entry[0])


async def test_reason_aware_terminal_message_for_idle_evicted_and_shutdown() -> None:
    log: asyncio.Queue[tuple[Any, Message]] = asyncio.Queue()
    clock = Clock()
    instances = manager(
        log,
        terminal_message=lambda reason: {"type": "test.disconnect", "reason": reason},
        idle_timeout=10,
        max_instances=2,
        clock=clock,
    )
    await dispatch(instances, "a", {"type": "test.event", "n": 1})
    await dispatch(instances, "b", {"type": "test.event", "n": 2})
    assert [await take(log) for _ in range(2)] == [
        ("a", {"type": "test.event", "n": 1}),
        ("b", {"type": "test.event", "n": 2}),
    ]
    await dispatch(instances, "c", {"type": "test.event", "n": 3})  # evicts "a", the LRU
    assert await take_two(log) == [
        ("a", {"type": "test.disconnect", "reason": "evicted"}),
        ("c", {"type": "test.event", "n": 3}),
    ]
    clock.now += 11
    assert sorted(instances.expire_idle(), key=str) == ["b", "c"]
    assert await take_two(log) == [
        ("b", {"type": "test.disconnect", "reason": "idle"}),
        ("c", {"type": "test.disconnect", "reason": "idle"}),
    ]
    await dispatch(instances, "d", {"type": "test.event", "n": 4})
    await take(log)
    await instances.shutdown()
    assert await take(log) == ("d", {"type": "test.disconnect", "reason": "shutdown"})


async def test_zero_argument_terminal_message_still_works() -> None:
    log: asyncio.Queue[tuple[Any, Message]] = asyncio.Queue()
    instances = manager(log, terminal_message=lambda reason: {"type": "test.disconnect"})
    await dispatch(instances, "a", {"type": "test.event"})
    await take(log)
    await instances.close("a")
    assert await take(log) == ("a", {"type": "test.disconnect"})
    assert len(instances) == 0


async def test_on_exit_reports_failures_and_drain_returns_unread_messages() -> None:
    log: asyncio.Queue[tuple[Any, Message]] = asyncio.Queue()
    ended: list[tuple[Hashable, ApplicationInstance, list[Delivery]]] = []
    done = asyncio.Event()

    def on_exit(key: Hashable, instance: ApplicationInstance) -> None:
        ended.append((key, instance, instance.drain()))
        done.set()

    instances = manager(
        log, terminal_message=lambda reason: {"type": "test.disconnect"}, on_exit=on_exit
    )
    instance = instances.get("k", scope("k"))
    instance.put_nowait({"type": "test.boom"})
    instance.put_nowait({"type": "test.event", "n": "unread"})
    async with asyncio.timeout(WAIT):
        await done.wait()
    key, gone, unread = ended[0]
    assert (key, isinstance(gone.failed, RuntimeError)) == ("k", True)
    assert unread == [({"type": "test.event", "n": "unread"}, None)]
    assert gone.in_hand == ({"type": "test.boom"}, None)  # being handled when it raised
    assert "k" not in instances.instances


async def test_a_message_counts_as_handled_once_the_next_is_asked_for_or_the_app_ends() -> None:
    received: asyncio.Queue[Message] = asyncio.Queue()
    proceed = asyncio.Event()
    handled: list[str] = []

    async def application(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            await received.put(message)
            await proceed.wait()  # handling takes until the test says so
            proceed.clear()
            if message["type"] == "test.disconnect":
                return

    async def send(message: Message) -> None:
        pass

    instance = ApplicationInstance(application, {"type": "test"}, send)
    instance.put_nowait({"type": "test.event", "n": 1}, lambda: handled.append("1"))
    instance.put_nowait({"type": "test.disconnect"}, lambda: handled.append("end"))
    async with asyncio.timeout(WAIT):
        assert (await received.get())["n"] == 1
        assert handled == []  # the application is still on it
        proceed.set()
        assert (await received.get())["type"] == "test.disconnect"
        assert handled == ["1"]
        proceed.set()
        await instance.task
    assert handled == ["1", "end"]
    assert instance.in_hand is None


async def test_a_message_the_app_raised_on_is_left_unhandled() -> None:
    log: asyncio.Queue[tuple[Any, Message]] = asyncio.Queue()
    handled: list[str] = []
    instances = manager(log, terminal_message=lambda reason: {"type": "test.disconnect"})
    instance = instances.get("k", scope("k"))
    instance.put_nowait({"type": "test.boom"}, lambda: handled.append("boom"))
    async with asyncio.timeout(WAIT):
        await instance.task
    assert handled == []
    assert instance.in_hand is not None
    assert instance.in_hand[0] == {"type": "test.boom"}


async def test_wait_for_room_returns_when_the_instance_reads_or_ends() -> None:
    gate = asyncio.Event()

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await gate.wait()
        await receive()

    async def send(message: Message) -> None:
        pass

    instance = ApplicationInstance(slow, {"type": "test"}, send, queue_size=1)
    instance.put_nowait({"type": "test.one"})
    await asyncio.sleep(0)  # let the instance take the first message
    instance.put_nowait({"type": "test.two"})
    waiter = asyncio.create_task(instance.wait_for_room())
    await asyncio.sleep(0)
    assert not waiter.done()  # full, and the instance is busy
    gate.set()
    async with asyncio.timeout(WAIT):
        await waiter
    await instance.close(None, 1)
    await instance.wait_for_room()  # an ended instance never blocks the caller


async def test_put_soon_never_waits_and_delivers_once_there_is_room() -> None:
    """What a server tells an instance (an ack, a result) never blocks the server."""
    gate = asyncio.Event()
    all_three = asyncio.Event()
    got: list[str] = []

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        got.append((await receive())["type"])
        await gate.wait()
        got.append((await receive())["type"])
        got.append((await receive())["type"])
        all_three.set()
        await receive()

    async def send(message: Message) -> None:
        pass

    tasks = BackgroundTasks(logging.getLogger("test.instances"), "test")
    instance = ApplicationInstance(slow, {"type": "test"}, send, queue_size=1)
    instance.put_nowait({"type": "test.one"})
    await asyncio.sleep(0)  # the instance takes it and waits on the gate
    instance.put_soon({"type": "test.two"}, tasks)  # room: queued at once
    instance.put_soon({"type": "test.three"}, tasks)  # full: in a task, not waited for
    assert len(tasks) == 1
    gate.set()
    async with asyncio.timeout(WAIT):
        await all_three.wait()
    assert got == ["test.one", "test.two", "test.three"]
    assert len(tasks) == 0
    await instance.close(None, 1)


async def test_the_scope_comes_with_the_first_message_and_starts_the_instance() -> None:
    log: asyncio.Queue[tuple[Any, Message]] = asyncio.Queue()
    instances = manager(log, terminal_message=lambda reason: {"type": "test.disconnect"})
    assert instances.live("a") is None
    first = await instances.dispatch("a", {"type": "test.event"}, scope={"type": "test", "key": 1})
    assert await take(log) == (1, {"type": "test.event"})
    assert instances.live("a") is first
    # While the instance lives, a scope given with a later message is not read.
    again = await instances.dispatch("a", {"type": "test.event"}, scope={"type": "test", "key": 2})
    assert again is first
    assert await take(log) == (1, {"type": "test.event"})
    await instances.dispatch("a", {"type": "test.event"})  # no scope needed either
    assert await take(log) == (1, {"type": "test.event"})
    # Once it ended, the next message's scope starts a fresh instance.
    await instances.dispatch("a", {"type": "test.disconnect"})
    await take(log)
    async with asyncio.timeout(WAIT):
        await first.task
    assert instances.live("a") is None
    fresh = await instances.dispatch("a", {"type": "test.event"}, scope={"type": "test", "key": 3})
    assert fresh is not first
    assert await take(log) == (3, {"type": "test.event"})
    await instances.shutdown()


async def test_a_message_that_needs_a_new_instance_without_a_scope_is_refused() -> None:
    log: asyncio.Queue[tuple[Any, Message]] = asyncio.Queue()
    instances = manager(
        log, terminal_message=lambda reason: {"type": "test.disconnect"}, max_instances=1
    )
    await dispatch(instances, "a", {"type": "test.event"})
    await take(log)
    with pytest.raises(NoInstanceError, match="instance 'b' has no live instance and no scope"):
        await instances.dispatch("b", {"type": "test.event"})
    with pytest.raises(NoInstanceError):
        instances.get("b")
    # Refused before anything changed: "a" was not evicted to make room for "b".
    assert list(instances.instances) == ["a"]
    assert instances.live("a") is not None
    await instances.shutdown()
    assert await take(log) == ("a", {"type": "test.disconnect"})
