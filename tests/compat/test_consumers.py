"""Consumers and communicators: the same code on Channels 4.3.2 and on gateway."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from tests.compat.conftest import assert_same_outcome
from tests.compat.frameworks import CHANNELS, GATEWAY, Framework, on, on_both, outcome

TIMEOUT = 5


async def websocket_session(fw: Framework, consumer: Any, *frames: Any) -> list[Any]:
    """Connect, send each frame (str, bytes or a JSON-able dict), collect the replies."""
    communicator = fw.testing.WebsocketCommunicator(
        consumer.as_asgi(), "/ws/?q=1", subprotocols=["chat", "v2"]
    )
    transcript: list[Any] = [await communicator.connect(TIMEOUT), communicator.response_headers]
    for frame in frames:
        if isinstance(frame, dict):
            await communicator.send_json_to(frame)
            transcript.append(await communicator.receive_json_from(TIMEOUT))
        elif isinstance(frame, bytes):
            await communicator.send_to(bytes_data=frame)
            transcript.append(await communicator.receive_from(TIMEOUT))
        else:
            await communicator.send_to(text_data=frame)
            transcript.append(await communicator.receive_from(TIMEOUT))
    await communicator.disconnect(timeout=TIMEOUT)
    return transcript


async def echo_async(fw: Framework) -> list[Any]:
    class Echo(fw.websocket.AsyncWebsocketConsumer):  # type: ignore[name-defined]
        async def connect(self) -> None:
            await self.accept(subprotocol=self.scope["subprotocols"][0], headers=[(b"x-a", b"1")])

        async def receive(self, text_data: Any = None, bytes_data: Any = None) -> None:
            if text_data is not None:
                await self.send(text_data=text_data.upper())
            else:
                await self.send(bytes_data=bytes_data[::-1])

    return await websocket_session(fw, Echo, "hello", b"\x01\x02")


async def echo_sync_json(fw: Framework) -> list[Any]:
    class Echo(fw.websocket.JsonWebsocketConsumer):  # type: ignore[name-defined]
        def receive_json(self, content: Any, **kwargs: Any) -> None:
            self.send_json({"got": content, "path": self.scope["path"]})

    return await websocket_session(fw, Echo, {"n": 1}, {"n": [2, 3]})


async def echo_async_json(fw: Framework) -> list[Any]:
    class Echo(fw.websocket.AsyncJsonWebsocketConsumer):  # type: ignore[name-defined]
        async def receive_json(self, content: Any, **kwargs: Any) -> None:
            await self.send_json({"got": content})

    return await websocket_session(fw, Echo, {"n": 1})


@pytest.mark.parametrize("scenario", [echo_async, echo_sync_json, echo_async_json])
async def test_websocket_consumers_exchange_the_same_frames(scenario: Any) -> None:
    channels, gateway = await on_both(scenario)
    assert channels == gateway


async def refuse(fw: Framework) -> Any:
    class Refuse(fw.websocket.AsyncWebsocketConsumer):  # type: ignore[name-defined]
        async def connect(self) -> None:
            await self.close(code=4001)

    communicator = fw.testing.WebsocketCommunicator(Refuse.as_asgi(), "/")
    refused = await communicator.connect(TIMEOUT)
    await communicator.disconnect(timeout=TIMEOUT)
    denied = fw.testing.WebsocketCommunicator(fw.security.WebsocketDenier.as_asgi(), "/")
    refusal = await denied.connect(TIMEOUT)
    await denied.disconnect(timeout=TIMEOUT)  # else its task outlives the test
    return refused, refusal


async def test_refusing_a_connection_reports_the_close_code() -> None:
    channels, gateway = await on_both(refuse)
    assert channels == gateway


async def group_fan_out(fw: Framework) -> list[Any]:
    class Member(fw.websocket.AsyncJsonWebsocketConsumer):  # type: ignore[name-defined]
        groups = ["room"]

        async def chat_message(self, message: Any) -> None:
            await self.send_json(message["text"])

    layer = fw.layers.get_channel_layer()
    communicators = [fw.testing.WebsocketCommunicator(Member.as_asgi(), "/") for _ in range(3)]
    for communicator in communicators:
        await communicator.connect(TIMEOUT)
    await layer.group_send("room", {"type": "chat.message", "text": "hi"})
    received = [await c.receive_json_from(TIMEOUT) for c in communicators]
    await communicators[0].disconnect(timeout=TIMEOUT)  # leaves the group
    await layer.group_send("room", {"type": "chat.message", "text": "again"})
    received += [await c.receive_json_from(TIMEOUT) for c in communicators[1:]]
    received.append(await communicators[0].receive_nothing(0.05))
    for communicator in communicators[1:]:
        await communicator.disconnect(timeout=TIMEOUT)
    return received


async def test_groups_fan_out_to_every_member_until_it_leaves() -> None:
    channels, gateway = await on_both(group_fan_out)
    assert channels == gateway == ["hi", "hi", "hi", "again", "again", True]


async def interleaving(fw: Framework) -> list[str]:
    """Events and layer messages queued while a handler runs, then handled one by one."""
    release = asyncio.Event()

    class Recorder(fw.consumer.AsyncConsumer):  # type: ignore[name-defined]
        async def websocket_receive(self, message: Any) -> None:
            if message["text"] == "block":
                await self.send({"type": "blocked", "channel": self.channel_name})
                await release.wait()
            await self.send({"type": "seen", "what": message["text"]})

        async def layer_note(self, message: Any) -> None:
            await self.send({"type": "seen", "what": message["what"]})

    layer = fw.layers.get_channel_layer()
    communicator = fw.testing.ApplicationCommunicator(Recorder.as_asgi(), {"type": "websocket"})
    await communicator.send_input({"type": "websocket.receive", "text": "block"})
    channel = (await communicator.receive_output(TIMEOUT))["channel"]
    for n in (1, 2):
        await layer.send(channel, {"type": "layer.note", "what": f"layer{n}"})
        await communicator.send_input({"type": "websocket.receive", "text": f"socket{n}"})
    release.set()
    seen = [(await communicator.receive_output(TIMEOUT))["what"] for _ in range(5)]
    communicator.future.cancel()
    await asyncio.wait([communicator.future])
    return seen


async def test_one_message_at_a_time_in_arrival_order_across_socket_and_layer() -> None:
    channels, gateway = await on_both(interleaving)
    assert channels == gateway == ["block", "layer1", "socket1", "layer2", "socket2"]


async def threads(fw: Framework) -> tuple[bool, bool]:
    """Where sync handlers and ``database_sync_to_async`` run."""

    class Where(fw.consumer.SyncConsumer):  # type: ignore[name-defined]
        def test_where(self, message: Any) -> None:
            self.send({"type": "here", "thread": threading.get_ident()})

    def ident() -> int:
        return threading.get_ident()

    db_thread = await fw.db.database_sync_to_async(ident)()
    handler_threads = set()
    for _ in range(2):
        communicator = fw.testing.ApplicationCommunicator(Where.as_asgi(), {"type": "test"})
        await communicator.send_input({"type": "test.where"})
        handler_threads.add((await communicator.receive_output(TIMEOUT))["thread"])
        communicator.future.cancel()
        await asyncio.wait([communicator.future])
    return handler_threads == {db_thread}, db_thread != threading.get_ident()


async def test_sync_consumers_run_in_the_thread_database_sync_to_async_uses() -> None:
    channels, gateway = await on_both(threads)
    assert channels == gateway == (True, True)


async def errors(fw: Framework) -> list[tuple[str, Any]]:
    class Faulty(fw.consumer.AsyncConsumer):  # type: ignore[name-defined]
        async def test_fail(self, message: Any) -> None:
            raise KeyError("boom")

        async def test_stop(self, message: Any) -> None:
            raise fw.exceptions.StopConsumer()

    results = []
    for message in (
        {"type": "test.fail"},
        {"type": "test.unknown"},
        {"type": "_test.private"},
        {"type": "test.stop"},
    ):
        communicator = fw.testing.ApplicationCommunicator(Faulty.as_asgi(), {"type": "test"})
        await communicator.send_input(message)
        results.append(await outcome(communicator.wait(TIMEOUT)))
    return results


async def test_handler_errors_reach_the_test_with_channels_messages() -> None:
    channels, gateway = await on_both(errors)
    for channels_outcome, gateway_outcome in zip(channels, gateway, strict=True):
        assert_same_outcome(channels_outcome, gateway_outcome)


async def http_response(fw: Framework) -> dict[str, Any]:
    class Hello(fw.http.AsyncHttpConsumer):  # type: ignore[name-defined]
        async def handle(self, body: bytes) -> None:
            await self.send_response(
                201,
                body + self.scope["method"].encode(),
                headers=[(b"content-type", b"text/plain")],
            )

    communicator = fw.testing.HttpCommunicator(Hello.as_asgi(), "POST", "/p/?x=1", body=b"hi ")
    response: dict[str, Any] = await communicator.get_response(TIMEOUT)
    return response


async def test_http_consumers_answer_the_same_response() -> None:
    channels, gateway = await on_both(http_response)
    assert (
        channels
        == gateway
        == {
            "status": 201,
            "headers": [(b"content-type", b"text/plain")],
            "body": b"hi POST",
        }
    )


async def communicator_errors(fw: Framework) -> list[tuple[str, Any]]:
    class Closer(fw.websocket.AsyncWebsocketConsumer):  # type: ignore[name-defined]
        async def receive(self, text_data: Any = None, bytes_data: Any = None) -> None:
            if text_data == "bytes":
                await self.send(bytes_data=b"\x00")
            else:
                await self.close()

    communicator = fw.testing.WebsocketCommunicator(Closer.as_asgi(), "/")
    await communicator.connect(TIMEOUT)
    await communicator.send_to(text_data="bytes")
    results = [await outcome(communicator.receive_json_from(TIMEOUT))]
    await communicator.send_to(text_data="close")
    results.append(await outcome(communicator.receive_from(TIMEOUT)))
    await communicator.disconnect(timeout=TIMEOUT)
    return results


async def test_communicators_fail_with_channels_messages() -> None:
    channels, gateway = await on_both(communicator_errors)
    for channels_outcome, gateway_outcome in zip(channels, gateway, strict=True):
        assert_same_outcome(channels_outcome, gateway_outcome)


# Deliberate differences (docs/porting.md) -------------------------------------------


async def scope_keys(fw: Framework) -> set[str]:
    communicator = fw.testing.WebsocketCommunicator(fw.consumer.AsyncConsumer.as_asgi(), "/a?b=c")
    keys = set(communicator.scope)
    communicator.future.cancel()
    await asyncio.wait([communicator.future])
    return keys


async def test_communicator_scopes_have_every_key_a_server_sends() -> None:
    """docs/porting.md, gateway.testing: "Communicators build the whole scope"."""
    channels, gateway = await on_both(scope_keys)
    assert channels < gateway
    assert gateway - channels == {
        "asgi",
        "http_version",
        "scheme",
        "raw_path",
        "root_path",
        "client",
        "server",
        "extensions",
    }


async def send_before_accept(fw: Framework) -> tuple[str, Any]:
    class Eager(fw.websocket.AsyncWebsocketConsumer):  # type: ignore[name-defined]
        async def connect(self) -> None:
            await self.send(text_data="too early")

    communicator = fw.testing.WebsocketCommunicator(Eager.as_asgi(), "/")
    return await outcome(communicator.connect(TIMEOUT))


async def test_a_frame_before_accept_is_an_error_on_gateway_only() -> None:
    """docs/porting.md, gateway.consumer: "WebSocket state is checked"."""
    channels = await on(CHANNELS, send_before_accept)
    gateway = await on(GATEWAY, send_before_accept)
    assert channels[0] == "AssertionError"  # the communicator got websocket.send
    assert gateway[0] == "RuntimeError"
    assert "before the connection is accepted" in gateway[1]


async def unhandled_disconnect(fw: Framework) -> tuple[str, Any]:
    communicator = fw.testing.ApplicationCommunicator(
        fw.consumer.AsyncConsumer.as_asgi(), {"type": "mqtt"}
    )
    await communicator.send_input({"type": "mqtt.disconnect"})
    return await outcome(communicator.wait(TIMEOUT))


async def test_a_disconnect_without_handler_ends_cleanly_on_gateway() -> None:
    """docs/porting.md, gateway.consumer: "Ending"."""
    channels = await on(CHANNELS, unhandled_disconnect)
    gateway = await on(GATEWAY, unhandled_disconnect)
    assert channels == ("ValueError", "No handler for message type mqtt.disconnect")
    assert gateway == ("ok", None)


async def initkwargs(fw: Framework) -> Any:
    class Room(fw.consumer.AsyncConsumer):  # type: ignore[name-defined]
        room = "lobby"

        async def test_room(self, message: Any) -> None:
            await self.send({"type": "room", "room": self.room})

    communicator = fw.testing.ApplicationCommunicator(Room.as_asgi(room="help"), {"type": "t"})
    await communicator.send_input({"type": "test.room"})
    await asyncio.sleep(0)  # Channels' instance fails at once: let it, before waiting
    room = (await communicator.receive_output(TIMEOUT))["room"]
    communicator.future.cancel()
    await asyncio.wait([communicator.future])
    return room


async def test_as_asgi_keywords_become_attributes_on_gateway() -> None:
    """docs/porting.md, "Channels 4.3.2 defects": ``as_asgi(**initkwargs)``."""
    assert await on(CHANNELS, lambda fw: outcome(initkwargs(fw))) == (
        "TypeError",
        "Room() takes no arguments",
    )
    assert await on(GATEWAY, initkwargs) == "help"


async def constructor_keywords(fw: Framework) -> Any:
    # strawberry's GraphQLWSConsumer.as_asgi(schema=schema): its __init__ takes the
    # keyword, which is no attribute of the class.
    class Schema(fw.websocket.AsyncJsonWebsocketConsumer):  # type: ignore[name-defined]
        def __init__(self, schema: str, keep_alive: bool = True) -> None:
            self.schema = schema
            super().__init__()

        async def connect(self) -> None:
            await self.accept()
            await self.send_json({"schema": self.schema})

    communicator = fw.testing.WebsocketCommunicator(Schema.as_asgi(schema="s"), "/")
    await communicator.connect(TIMEOUT)
    received = await communicator.receive_json_from(TIMEOUT)
    await communicator.disconnect(timeout=TIMEOUT)
    try:
        Schema.as_asgi(schema="s", keep_alvie=False)
        misspelt = "ok"
    except TypeError:
        misspelt = "TypeError"
    return received, misspelt


async def test_as_asgi_keywords_go_to_a_consumers_own_init() -> None:
    """Third-party libraries (strawberry's Channels integration) route with
    ``Consumer.as_asgi(schema=...)`` for an ``__init__(self, schema, ...)``."""
    channels, gateway = await on_both(constructor_keywords)
    assert channels == ({"schema": "s"}, "ok")  # Channels finds the misspelling per connection
    assert gateway == ({"schema": "s"}, "TypeError")  # gateway at routing time


def built_by_hand(consumer_class: Any, scope_type: str, sent: list[Any]) -> Any:
    """``consumer_class()`` given a scope and a ``base_send`` that records into ``sent``,
    as cypartagraphqlsubscriptionstools' tests build consumers: they then call the
    hooks directly, never through ``__call__``."""

    async def record(message: Any) -> None:
        sent.append(message)

    consumer = consumer_class()
    consumer.scope = {"type": scope_type, "path": "/"}
    consumer.base_send = record
    return consumer


async def driven_without_a_server(fw: Framework) -> list[Any]:
    sent: list[Any] = []
    consumer = built_by_hand(fw.websocket.AsyncJsonWebsocketConsumer, "websocket", sent)
    await consumer.accept(subprotocol="graphql-transport-ws")
    await consumer.send_json({"type": "connection_ack"})
    await consumer.close(4401)
    sync = fw.websocket.JsonWebsocketConsumer()
    sync.base_send = sent.append
    await asyncio.to_thread(sync.accept)
    await asyncio.to_thread(sync.send_json, {"n": 1}, True)
    return sent


async def test_a_consumer_driven_without_a_server_sends_as_in_channels() -> None:
    channels, gateway = await on_both(driven_without_a_server)
    assert channels == gateway


async def http_driven_without_a_server(fw: Framework) -> list[Any]:
    sent: list[Any] = []
    consumer = built_by_hand(fw.http.AsyncHttpConsumer, "http", sent)
    consumer.body.append(b"seen")
    await consumer.send_response(200, b"".join(consumer.body), headers=[(b"a", b"b")])
    return sent


async def test_an_http_consumer_driven_without_a_server_sends_as_in_channels() -> None:
    channels, gateway = await on_both(http_driven_without_a_server)
    assert channels == gateway
