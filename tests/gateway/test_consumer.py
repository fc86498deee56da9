"""gateway.consumer: dispatch, lifetime, as_asgi, the channel layer, sync handlers."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings

from gateway.consumer import AsyncConsumer, SyncConsumer
from gateway.exceptions import InvalidChannelLayerError, StopConsumer
from gateway.layers import get_channel_layer
from gateway.testing import ApplicationCommunicator

TIMEOUT = 5


class ChattyBotConsumer(SyncConsumer):
    """The seed example of DESIGN.md §4, exactly as written there."""

    def telegram_message(self, message):
        self.send({"type": "telegram.message", "text": "You said: %s" % message["text"]})  # noqa: UP031


def layer() -> Any:
    channel_layer = get_channel_layer()
    assert channel_layer is not None
    return channel_layer


async def test_seed_example_runs_a_whole_scope_without_error(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    communicator = ApplicationCommunicator(ChattyBotConsumer.as_asgi(), {"type": "telegram"})
    await communicator.send_input({"type": "telegram.message", "text": "hello"})
    assert await communicator.receive_output(TIMEOUT) == {
        "type": "telegram.message",
        "text": "You said: hello",
    }
    # No telegram_disconnect handler: the terminal event still ends it cleanly.
    await communicator.send_input({"type": "telegram.disconnect"})
    await communicator.wait(TIMEOUT)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


class Recorder(AsyncConsumer):
    """Records what it is given; answers pings; its handler names show the mapping."""

    seen: list[Any] | None = None

    async def websocket_receive(self, message):
        await self.send({"type": "websocket.send", "text": message["text"]})

    async def test_ping(self, message):
        await self.send({"type": "test.pong", "channel_name": self.channel_name})

    async def test_stop(self, message):
        raise StopConsumer()

    async def websocket_disconnect(self, message):
        assert self.seen is not None
        self.seen.append(message["code"])


async def test_events_go_to_the_handler_named_after_their_type():
    async with ApplicationCommunicator(Recorder.as_asgi(), {"type": "websocket"}) as communicator:
        await communicator.send_input({"type": "websocket.receive", "text": "one"})
        await communicator.send_input({"type": "websocket.receive", "text": "two"})
        assert (await communicator.receive_output(TIMEOUT))["text"] == "one"
        assert (await communicator.receive_output(TIMEOUT))["text"] == "two"
        await communicator.send_input({"type": "test.stop"})
        await communicator.wait(TIMEOUT)


async def test_an_event_without_a_handler_is_a_clear_error():
    communicator = ApplicationCommunicator(Recorder.as_asgi(), {"type": "websocket"})
    await communicator.send_input({"type": "websocket.unknown"})
    with pytest.raises(ValueError, match=r"No handler for message type websocket.unknown"):
        await communicator.wait(TIMEOUT)


@pytest.mark.parametrize(
    ("message", "error"),
    [({"type": "_private.method"}, "leading underscore"), ({"text": "x"}, "no 'type'")],
)
async def test_malformed_message_types_are_refused(message: dict[str, Any], error: str):
    communicator = ApplicationCommunicator(Recorder.as_asgi(), {"type": "websocket"})
    await communicator.send_input(message)
    with pytest.raises(ValueError, match=error):
        await communicator.wait(TIMEOUT)


async def test_the_consumer_ends_after_its_handled_terminal_event():
    seen: list[Any] = []
    communicator = ApplicationCommunicator(Recorder.as_asgi(seen=seen), {"type": "websocket"})
    await communicator.send_input({"type": "websocket.disconnect", "code": 4001})
    await communicator.wait(TIMEOUT)
    assert seen == [4001]


async def test_any_protocols_disconnect_without_a_handler_ends_cleanly():
    communicator = ApplicationCommunicator(ChattyBotConsumer.as_asgi(), {"type": "channel"})
    await communicator.send_input({"type": "mqtt.disconnect"})
    await communicator.wait(TIMEOUT)


async def test_a_handled_disconnect_of_another_protocol_does_not_end_it():
    seen: list[Any] = []
    communicator = ApplicationCommunicator(Recorder.as_asgi(seen=seen), {"type": "mqtt"})
    await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
    await communicator.send_input({"type": "websocket.receive", "text": "still here"})
    assert (await communicator.receive_output(TIMEOUT))["text"] == "still here"
    await communicator.send_input({"type": "mqtt.disconnect"})
    await communicator.wait(TIMEOUT)
    assert seen == [1000]


class Configurable(AsyncConsumer):
    greeting = "hello"
    channel_layer_alias = "default"

    async def test_greet(self, message):
        await self.send({"type": "test.greeting", "text": self.greeting})
        raise StopConsumer()


async def test_as_asgi_sets_its_keyword_arguments_on_each_instance():
    # Channels 4.3.2 accepts the keywords and drops them.
    application = Configurable.as_asgi(greeting="bonjour")
    for _ in range(2):
        communicator = ApplicationCommunicator(application, {"type": "test"})
        await communicator.send_input({"type": "test.greet"})
        assert (await communicator.receive_output(TIMEOUT))["text"] == "bonjour"
        await communicator.wait(TIMEOUT)
    assert Configurable.greeting == "hello"
    assert application.consumer_class is Configurable
    assert application.consumer_initkwargs == {"greeting": "bonjour"}
    assert application.__name__ == "Configurable"


def test_as_asgi_refuses_keywords_that_are_not_class_attributes():
    with pytest.raises(TypeError, match=r"invalid keyword 'greting'"):
        Configurable.as_asgi(greting="typo")


async def test_with_a_layer_each_instance_has_its_own_channel():
    first = ApplicationCommunicator(Recorder.as_asgi(), {"type": "websocket"})
    second = ApplicationCommunicator(Recorder.as_asgi(), {"type": "websocket"})
    names = []
    for communicator in (first, second):
        await communicator.send_input({"type": "test.ping"})
        names.append((await communicator.receive_output(TIMEOUT))["channel_name"])
    assert names[0] != names[1]
    assert all(".." not in name and name.count("!") == 1 for name in names)
    # A layer message sent to that channel reaches the same instance's handler.
    await layer().send(names[0], {"type": "test.ping"})
    assert (await first.receive_output(TIMEOUT))["channel_name"] == names[0]
    assert await second.receive_nothing(0.05)
    for communicator in (first, second):
        await communicator.send_input({"type": "test.stop"})
        await communicator.wait(TIMEOUT)


class Member(AsyncConsumer):
    async def group_hello(self, message):
        await self.send({"type": "test.hello", "text": message["text"]})

    async def test_ping(self, message):
        await self.send({"type": "test.pong", "channel_name": self.channel_name})


async def test_groups_are_joined_for_the_consumers_lifetime(unique: str):
    communicator = ApplicationCommunicator(Member.as_asgi(groups=[unique]), {"type": "test"})
    await communicator.send_input({"type": "test.ping"})
    channel_name = (await communicator.receive_output(TIMEOUT))["channel_name"]
    await layer().group_send(unique, {"type": "group.hello", "text": "hi"})
    assert await communicator.receive_output(TIMEOUT) == {"type": "test.hello", "text": "hi"}

    await communicator.send_input({"type": "test.disconnect"})
    await communicator.wait(TIMEOUT)
    # Left the group on exit: the next message on its channel is the direct one.
    await layer().group_send(unique, {"type": "group.hello", "text": "late"})
    await layer().send(channel_name, {"type": "direct"})
    assert await asyncio.wait_for(layer().receive(channel_name), TIMEOUT) == {"type": "direct"}


async def test_groups_are_joined_when_the_first_event_arrives(unique: str):
    # Joining earlier would let a group message overtake websocket.connect or
    # http.request and be handled before the connection is accepted.
    communicator = ApplicationCommunicator(Member.as_asgi(groups=[unique]), {"type": "test"})
    assert await communicator.receive_nothing(0.05)  # the consumer is up, waiting
    await layer().group_send(unique, {"type": "group.hello", "text": "too early"})
    await communicator.send_input({"type": "test.ping"})
    assert (await communicator.receive_output(TIMEOUT))["type"] == "test.pong"
    await layer().group_send(unique, {"type": "group.hello", "text": "member now"})
    assert (await communicator.receive_output(TIMEOUT))["text"] == "member now"
    await communicator.send_input({"type": "test.disconnect"})
    await communicator.wait(TIMEOUT)


class Holding(AsyncConsumer):
    """Echoes ``test.event`` and ``layer.event`` texts; ``test.hold`` keeps its
    handler busy until the test sets ``release``."""

    release: asyncio.Event | None = None

    async def test_hold(self, message):
        assert self.release is not None
        await self.send({"type": "test.held", "channel_name": self.channel_name})
        await self.release.wait()

    async def test_event(self, message):
        await self.send({"type": "test.seen", "text": message["text"]})

    layer_event = test_event

    async def test_ping(self, message):
        await self.send({"type": "test.pong", "channel_name": self.channel_name})


async def seen(communicator: ApplicationCommunicator, count: int) -> list[str]:
    return [(await communicator.receive_output(TIMEOUT))["text"] for _ in range(count)]


async def test_a_layer_message_that_came_during_a_handler_goes_before_later_events():
    release = asyncio.Event()
    async with ApplicationCommunicator(Holding.as_asgi(release=release), {"type": "t"}) as comm:
        await comm.send_input({"type": "test.hold"})
        channel_name = (await comm.receive_output(TIMEOUT))["channel_name"]
        await layer().send(channel_name, {"type": "layer.event", "text": "layer"})
        await comm.send_input({"type": "test.event", "text": "scope"})
        release.set()
        assert await seen(comm, 2) == ["layer", "scope"]


@pytest.mark.parametrize("first", ["scope", "layer"])
async def test_events_that_reach_a_waiting_consumer_together_keep_their_order(first: str):
    async with ApplicationCommunicator(Holding.as_asgi(), {"type": "t"}) as comm:
        await comm.send_input({"type": "test.ping"})
        channel_name = (await comm.receive_output(TIMEOUT))["channel_name"]
        assert await comm.receive_nothing(0.05)  # waiting on both sources again
        sends = {
            "scope": comm.send_input({"type": "test.event", "text": "scope"}),
            "layer": layer().send(channel_name, {"type": "layer.event", "text": "layer"}),
        }
        second = "layer" if first == "scope" else "scope"
        await sends[first]
        await sends[second]  # before the consumer has run again
        assert await seen(comm, 2) == [first, second]


async def test_a_layer_message_handed_to_a_consumer_cancelled_before_it_ran_stays_queued():
    comm = ApplicationCommunicator(Holding.as_asgi(), {"type": "t"})
    await comm.send_input({"type": "test.ping"})
    channel_name = (await comm.receive_output(TIMEOUT))["channel_name"]
    assert await comm.receive_nothing(0.05)
    await layer().send(channel_name, {"type": "layer.event", "text": "handed"})
    await comm.stop()  # cancelled before it could handle the message
    message = await asyncio.wait_for(layer().receive(channel_name), TIMEOUT)
    assert message == {"type": "layer.event", "text": "handed"}


async def test_a_consumer_on_another_threads_event_loop_gets_layer_messages():
    names: queue.Queue[str] = queue.Queue()
    got: list[Any] = []

    async def consume() -> None:
        async with ApplicationCommunicator(Holding.as_asgi(), {"type": "t"}) as comm:
            await comm.send_input({"type": "test.ping"})
            names.put((await comm.receive_output(TIMEOUT))["channel_name"])
            got.append(await comm.receive_output(TIMEOUT))

    thread = threading.Thread(target=asyncio.run, args=(consume(),))
    thread.start()
    try:
        channel_name = await asyncio.to_thread(names.get, timeout=TIMEOUT)
        await layer().send(channel_name, {"type": "layer.event", "text": "across"})
    finally:
        await asyncio.to_thread(thread.join, TIMEOUT)
    assert got == [{"type": "test.seen", "text": "across"}]


async def test_groups_need_a_configured_layer(unique: str):
    with override_settings(CHANNEL_LAYERS={}):
        communicator = ApplicationCommunicator(Member.as_asgi(groups=[unique]), {"type": "test"})
        with pytest.raises(InvalidChannelLayerError, match="not configured"):
            await communicator.wait(TIMEOUT)


async def test_without_a_layer_the_consumer_still_runs():
    with override_settings(CHANNEL_LAYERS={}):
        async with ApplicationCommunicator(Recorder.as_asgi(), {"type": "websocket"}) as comm:
            await comm.send_input({"type": "websocket.receive", "text": "solo"})
            assert (await comm.receive_output(TIMEOUT))["text"] == "solo"


async def test_groups_given_as_a_string_are_refused():
    communicator = ApplicationCommunicator(Member.as_asgi(groups="lobby"), {"type": "test"})
    with pytest.raises(TypeError, match="list of group names"):
        await communicator.wait(TIMEOUT)


class Blocking(SyncConsumer):
    barrier: threading.Barrier | None = None

    def test_block(self, message):
        assert self.barrier is not None
        self.barrier.wait()  # returns only when both consumers are inside it at once
        self.send({"type": "test.done", "thread": threading.get_ident()})


async def test_sync_consumers_opted_out_of_thread_sensitivity_run_in_parallel():
    # By default (as in Channels) every sync consumer shares one thread: this
    # would deadlock until the barrier's timeout broke it.
    barrier = threading.Barrier(2, timeout=TIMEOUT)
    application = Blocking.as_asgi(barrier=barrier, thread_sensitive=False)
    communicators = [ApplicationCommunicator(application, {"type": "test"}) for _ in range(2)]
    for communicator in communicators:
        await communicator.send_input({"type": "test.block"})
    replies = [await c.receive_output(TIMEOUT) for c in communicators]
    assert replies[0]["thread"] != replies[1]["thread"]
    assert threading.get_ident() not in {reply["thread"] for reply in replies}
    for communicator in communicators:
        await communicator.send_input({"type": "test.disconnect"})
        await communicator.wait(TIMEOUT)


class WhichThread(SyncConsumer):
    def test_where(self, message):
        self.send({"type": "test.here", "thread": threading.get_ident()})


async def test_sync_consumers_share_one_thread_by_default_as_in_channels():
    application = WhichThread.as_asgi()
    threads = set()
    for _ in range(3):
        async with ApplicationCommunicator(application, {"type": "test"}) as communicator:
            await communicator.send_input({"type": "test.where"})
            threads.add((await communicator.receive_output(TIMEOUT))["thread"])
    assert len(threads) == 1
    assert threading.get_ident() not in threads


class InOrder(SyncConsumer):
    def test_item(self, message):
        self.send({"type": "test.item", "n": message["n"]})


async def test_one_sync_instance_handles_its_events_in_order():
    async with ApplicationCommunicator(InOrder.as_asgi(), {"type": "test"}) as communicator:
        for n in range(20):
            await communicator.send_input({"type": "test.item", "n": n})
        assert [(await communicator.receive_output(TIMEOUT))["n"] for _ in range(20)] == list(
            range(20)
        )


async def test_async_consumers_do_not_hop_to_a_thread_for_each_event():
    # Hold Django's thread-sensitive thread (where Channels closes old connections
    # before every event) busy: events must still be handled.
    async with ApplicationCommunicator(Recorder.as_asgi(), {"type": "websocket"}) as communicator:
        await communicator.send_input({"type": "websocket.receive", "text": "started"})
        await communicator.receive_output(TIMEOUT)
        release = threading.Event()
        holder = asyncio.ensure_future(sync_to_async(release.wait, thread_sensitive=True)())
        try:
            for text in ("a", "b", "c"):
                await communicator.send_input({"type": "websocket.receive", "text": text})
                # wait_for, so a failure releases the thread before the app is cancelled
                reply = await asyncio.wait_for(communicator.receive_output(2 * TIMEOUT), TIMEOUT)
                assert reply["text"] == text
        finally:
            release.set()
            await asyncio.wait_for(holder, TIMEOUT)


class SyncWithAsyncHandler(SyncConsumer):
    async def test_async(self, message):
        await self._asgi_send({"type": "test.done", "thread": threading.get_ident()})


async def test_a_sync_consumer_awaits_async_handlers_on_the_loop():
    async with ApplicationCommunicator(SyncWithAsyncHandler.as_asgi(), {"type": "test"}) as comm:
        await comm.send_input({"type": "test.async"})
        assert (await comm.receive_output(TIMEOUT))["thread"] == threading.get_ident()


class WrongKind(AsyncConsumer):
    def test_sync(self, message):
        return None


async def test_a_sync_handler_in_an_async_consumer_is_a_clear_error():
    communicator = ApplicationCommunicator(WrongKind.as_asgi(), {"type": "test"})
    await communicator.send_input({"type": "test.sync"})
    with pytest.raises(TypeError, match="must be a coroutine function"):
        await communicator.wait(TIMEOUT)
