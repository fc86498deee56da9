"""gateway.generic.websocket: the four WebSocket consumers, through communicators.

Every behaviour is checked on the async class and its sync twin alike: the sync
classes are adapters over the same implementation and must behave the same.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import User

from gateway.exceptions import AcceptConnection, DenyConnection
from gateway.generic.websocket import (
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
    JsonWebsocketConsumer,
    WebsocketConsumer,
)
from gateway.layers import get_channel_layer
from gateway.testing import WebsocketCommunicator

TIMEOUT = 5


class AsyncEcho(AsyncWebsocketConsumer):
    """Echoes frames; commands in text frames exercise close and subprotocols."""

    closed_with: list[int] | None = None

    async def connect(self) -> None:
        if "refuse" in self.scope["path"]:
            await self.close()
        elif "deny" in self.scope["path"]:
            raise DenyConnection()
        elif "raise-accept" in self.scope["path"]:
            raise AcceptConnection()
        elif "early" in self.scope["path"]:
            await self.send(text_data="too early")
        else:
            await self.accept(
                subprotocol=(self.scope["subprotocols"] or [None])[0],
                headers=[(b"x-gateway", b"yes")],
            )

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data == "close":
            await self.close(code=4000, reason="asked to")
        elif text_data == "last":
            await self.send(text_data="bye", close=True)
        elif text_data is not None:
            await self.send(text_data=text_data)
        else:
            await self.send(bytes_data=bytes_data)

    async def disconnect(self, code: int) -> None:
        if self.closed_with is not None:
            self.closed_with.append(code)

    async def room_message(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])


class SyncEcho(WebsocketConsumer):
    """The same consumer, with sync hooks."""

    closed_with: list[int] | None = None

    def connect(self) -> None:
        if "refuse" in self.scope["path"]:
            self.close()
        elif "deny" in self.scope["path"]:
            raise DenyConnection()
        elif "raise-accept" in self.scope["path"]:
            raise AcceptConnection()
        elif "early" in self.scope["path"]:
            self.send(text_data="too early")
        else:
            self.accept(
                subprotocol=(self.scope["subprotocols"] or [None])[0],
                headers=[(b"x-gateway", b"yes")],
            )

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data == "close":
            self.close(code=4000, reason="asked to")
        elif text_data == "last":
            self.send(text_data="bye", close=True)
        elif text_data is not None:
            self.send(text_data=text_data)
        else:
            self.send(bytes_data=bytes_data)

    def disconnect(self, code: int) -> None:
        if self.closed_with is not None:
            self.closed_with.append(code)

    def room_message(self, event: dict[str, Any]) -> None:
        self.send(text_data=event["text"])


echo_consumers = pytest.mark.parametrize("consumer", [AsyncEcho, SyncEcho], ids=["async", "sync"])


@echo_consumers
async def test_accept_with_subprotocol_and_headers(consumer: Any):
    communicator = WebsocketCommunicator(consumer.as_asgi(), "/ws/", subprotocols=["chat.v2"])
    assert await communicator.connect(TIMEOUT) == (True, "chat.v2")
    await communicator.disconnect(timeout=TIMEOUT)


@echo_consumers
async def test_accept_message_carries_the_headers(consumer: Any):
    communicator = WebsocketCommunicator(consumer.as_asgi(), "/ws/")
    await communicator.send_input({"type": "websocket.connect"})
    accept = await communicator.receive_output(TIMEOUT)
    assert accept == {
        "type": "websocket.accept",
        "subprotocol": None,
        "headers": [(b"x-gateway", b"yes")],
    }
    await communicator.send_input({"type": "websocket.disconnect", "code": 1001})
    await communicator.wait(TIMEOUT)


@echo_consumers
async def test_text_and_binary_frames_round_trip(consumer: Any):
    communicator = WebsocketCommunicator(consumer.as_asgi(), "/ws/")
    await communicator.connect(TIMEOUT)
    await communicator.send_to(text_data="héllo")
    assert await communicator.receive_from(TIMEOUT) == "héllo"
    await communicator.send_to(bytes_data=b"\x00\xff")
    assert await communicator.receive_from(TIMEOUT) == b"\x00\xff"
    await communicator.disconnect(timeout=TIMEOUT)


@echo_consumers
@pytest.mark.parametrize("path", ["/refuse/", "/deny/"])
async def test_closing_or_denying_in_connect_refuses_the_handshake(consumer: Any, path: str):
    communicator = WebsocketCommunicator(consumer.as_asgi(), path)
    assert await communicator.connect(TIMEOUT) == (False, 1000)
    await communicator.disconnect(timeout=TIMEOUT)


@echo_consumers
async def test_raising_accept_connection_accepts(consumer: Any):
    communicator = WebsocketCommunicator(consumer.as_asgi(), "/raise-accept/")
    assert await communicator.connect(TIMEOUT) == (True, None)
    await communicator.disconnect(timeout=TIMEOUT)


@echo_consumers
async def test_sending_before_accept_is_a_clear_error(consumer: Any):
    communicator = WebsocketCommunicator(consumer.as_asgi(), "/early/")
    with pytest.raises(RuntimeError, match=r"before the connection is accepted: call accept\(\)"):
        await communicator.connect(TIMEOUT)


@echo_consumers
async def test_close_with_code_and_reason(consumer: Any):
    communicator = WebsocketCommunicator(consumer.as_asgi(), "/ws/")
    await communicator.connect(TIMEOUT)
    await communicator.send_to(text_data="close")
    assert await communicator.receive_output(TIMEOUT) == {
        "type": "websocket.close",
        "code": 4000,
        "reason": "asked to",
    }
    await communicator.disconnect(code=4000, timeout=TIMEOUT)


@echo_consumers
async def test_send_then_close(consumer: Any):
    communicator = WebsocketCommunicator(consumer.as_asgi(), "/ws/")
    await communicator.connect(TIMEOUT)
    await communicator.send_to(text_data="last")
    assert await communicator.receive_from(TIMEOUT) == "bye"
    assert await communicator.receive_output(TIMEOUT) == {"type": "websocket.close"}
    await communicator.disconnect(timeout=TIMEOUT)


@echo_consumers
async def test_disconnect_gets_the_close_code(consumer: Any):
    closed_with: list[int] = []
    communicator = WebsocketCommunicator(consumer.as_asgi(closed_with=closed_with), "/ws/")
    await communicator.connect(TIMEOUT)
    await communicator.disconnect(code=4321, timeout=TIMEOUT)
    assert closed_with == [4321]


@echo_consumers
async def test_group_messages_reach_every_member(consumer: Any, unique: str):
    application = consumer.as_asgi(groups=[unique])
    members = [WebsocketCommunicator(application, "/ws/") for _ in range(2)]
    for member in members:
        assert (await member.connect(TIMEOUT))[0]
    layer = get_channel_layer()
    assert layer is not None
    await layer.group_send(unique, {"type": "room.message", "text": "to all"})
    for member in members:
        assert await member.receive_from(TIMEOUT) == "to all"
    await members[0].disconnect(timeout=TIMEOUT)
    await layer.group_send(unique, {"type": "room.message", "text": "to the rest"})
    assert await members[1].receive_from(TIMEOUT) == "to the rest"
    await members[1].disconnect(timeout=TIMEOUT)


class AsyncJson(AsyncJsonWebsocketConsumer):
    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        await self.send_json({"echo": content}, close=content == "bye")


class SyncJson(JsonWebsocketConsumer):
    def receive_json(self, content: Any, **kwargs: Any) -> None:
        self.send_json({"echo": content}, close=content == "bye")


json_consumers = pytest.mark.parametrize("consumer", [AsyncJson, SyncJson], ids=["async", "sync"])


@json_consumers
async def test_json_round_trip(consumer: Any):
    communicator = WebsocketCommunicator(consumer.as_asgi(), "/ws/")
    await communicator.connect(TIMEOUT)
    await communicator.send_json_to({"n": [1, 2]})
    assert await communicator.receive_json_from(TIMEOUT) == {"echo": {"n": [1, 2]}}
    await communicator.send_json_to("bye")
    assert await communicator.receive_json_from(TIMEOUT) == {"echo": "bye"}
    assert (await communicator.receive_output(TIMEOUT))["type"] == "websocket.close"
    await communicator.disconnect(timeout=TIMEOUT)


@json_consumers
async def test_a_binary_frame_to_a_json_consumer_is_an_error(consumer: Any):
    communicator = WebsocketCommunicator(consumer.as_asgi(), "/ws/")
    await communicator.connect(TIMEOUT)
    await communicator.send_to(bytes_data=b"{}")
    with pytest.raises(ValueError, match="No text section"):
        await communicator.wait(TIMEOUT)


@json_consumers
async def test_json_encoding_is_overridable(consumer: Any):
    class Sorted(consumer):  # type: ignore[misc]  # the base parametrize picks is typed Any
        @classmethod
        def encode_json(cls, content: Any) -> str:
            return json.dumps(content, sort_keys=True, separators=(",", ":"))

        @classmethod
        def decode_json(cls, text_data: str) -> Any:
            return {"decoded": json.loads(text_data)}

    communicator = WebsocketCommunicator(Sorted.as_asgi(), "/ws/")
    await communicator.connect(TIMEOUT)
    await communicator.send_to(text_data='{"b": 1, "a": 2}')
    assert await communicator.receive_from(TIMEOUT) == '{"echo":{"decoded":{"a":2,"b":1}}}'
    await communicator.disconnect(timeout=TIMEOUT)


class Profile(JsonWebsocketConsumer):
    """A sync consumer using the ORM directly, as Channels users write them."""

    def receive_json(self, content: Any, **kwargs: Any) -> None:
        user = User.objects.get(username=content["username"])
        self.send_json({"email": user.email})


@pytest.mark.django_db(transaction=True)
async def test_a_sync_consumer_uses_the_orm_in_its_thread():
    await User.objects.acreate(username="ada", email="ada@example.com")
    communicator = WebsocketCommunicator(Profile.as_asgi(), "/ws/")
    await communicator.connect(TIMEOUT)
    await communicator.send_json_to({"username": "ada"})
    assert await communicator.receive_json_from(TIMEOUT) == {"email": "ada@example.com"}
    await communicator.disconnect(timeout=TIMEOUT)


class Announcer(WebsocketConsumer):
    """Sync code talking to the layer the Channels way: async_to_sync(group_send)."""

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        assert self.channel_layer is not None
        assert self.groups  # as_asgi(groups=[...])
        async_to_sync(self.channel_layer.group_send)(
            self.groups[0], {"type": "room.message", "text": text_data}
        )

    def room_message(self, event: dict[str, Any]) -> None:
        self.send(text_data=event["text"])


async def test_sync_consumer_group_send_with_async_to_sync(unique: str):
    communicator = WebsocketCommunicator(Announcer.as_asgi(groups=[unique]), "/ws/")
    await communicator.connect(TIMEOUT)
    await communicator.send_to(text_data="echoed by the group")
    assert await communicator.receive_from(TIMEOUT) == "echoed by the group"
    await communicator.disconnect(timeout=TIMEOUT)
