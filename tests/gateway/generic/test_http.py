"""gateway.generic.http: AsyncHttpConsumer, whole responses and streams."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.generic.http import AsyncHttpConsumer
from gateway.layers import get_channel_layer
from gateway.testing import ApplicationCommunicator, HttpCommunicator

TIMEOUT = 5


class JsonEcho(AsyncHttpConsumer):
    async def handle(self, body: bytes) -> None:
        data = json.loads(body)
        await self.send_response(
            201,
            json.dumps({"value": data["value"], "method": self.scope["method"]}).encode(),
            headers={b"Content-Type": b"application/json"},
        )


async def test_a_whole_response():
    communicator = HttpCommunicator(JsonEcho.as_asgi(), "post", "/echo/", body=b'{"value": 42}')
    response = await communicator.get_response(TIMEOUT)
    assert response == {
        "status": 201,
        "headers": [(b"Content-Type", b"application/json")],
        "body": b'{"value": 42, "method": "POST"}',
    }


async def test_the_body_is_assembled_from_chunks():
    communicator = ApplicationCommunicator(JsonEcho.as_asgi(), {"type": "http", "method": "PUT"})
    for chunk in (b'{"val', b'ue": ', b'"split"}'):
        await communicator.send_input({"type": "http.request", "body": chunk, "more_body": True})
    assert await communicator.receive_nothing(0.01)
    await communicator.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await communicator.receive_output(TIMEOUT)
    assert start["status"] == 201
    body = await communicator.receive_output(TIMEOUT)
    assert json.loads(body["body"]) == {"value": "split", "method": "PUT"}
    await communicator.wait(TIMEOUT)


class Limited(JsonEcho):
    max_body_size = 8


async def test_a_body_over_the_limit_is_refused_with_413():
    communicator = HttpCommunicator(Limited.as_asgi(), "POST", "/", body=b'{"value": 123456}')
    response = await communicator.get_response(TIMEOUT)
    assert response["status"] == 413


class Ticker(AsyncHttpConsumer):
    """Server-sent events from handle() itself."""

    async def handle(self, body: bytes) -> None:
        await self.send_headers(headers=[(b"Content-Type", b"text/event-stream")])
        for n in range(3):
            await self.send_body(f"data: {n}\n\n".encode(), more_body=True)
        await self.send_body(b"")


async def test_streaming_from_handle():
    response = await HttpCommunicator(Ticker.as_asgi(), "GET", "/events/").get_response(TIMEOUT)
    assert response["headers"] == [(b"Content-Type", b"text/event-stream")]
    assert response["body"] == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"


class LongPoll(AsyncHttpConsumer):
    """Opens the response in handle(); a channel-layer message finishes it."""

    disconnects: list[str] | None = None

    async def handle(self, body: bytes) -> None:
        await self.send_headers(headers={b"Content-Type": b"text/event-stream"})
        await self.send_body(b"", more_body=True)

    async def news_item(self, event: dict[str, Any]) -> None:
        await self.send_body(event["text"].encode(), more_body=not event.get("last", False))

    async def disconnect(self) -> None:
        if self.disconnects is not None:
            self.disconnects.append("disconnected")


async def test_a_response_left_open_is_finished_by_layer_messages(unique: str):
    layer = get_channel_layer()
    assert layer is not None
    disconnects: list[str] = []
    communicator = HttpCommunicator(
        LongPoll.as_asgi(disconnects=disconnects, groups=[unique]), "GET", "/"
    )
    await communicator.send_request()
    assert (await communicator.receive_output(TIMEOUT))["type"] == "http.response.start"
    assert (await communicator.receive_output(TIMEOUT))["more_body"] is True
    await layer.group_send(unique, {"type": "news.item", "text": "one;"})
    assert await communicator.receive_output(TIMEOUT) == {
        "type": "http.response.body",
        "body": b"one;",
        "more_body": True,
    }
    await layer.group_send(unique, {"type": "news.item", "text": "two", "last": True})
    assert (await communicator.receive_output(TIMEOUT))["more_body"] is False
    await communicator.wait(TIMEOUT)
    assert disconnects == ["disconnected"]


async def test_a_client_leaving_mid_stream_ends_the_consumer(unique: str):
    disconnects: list[str] = []
    communicator = HttpCommunicator(
        LongPoll.as_asgi(disconnects=disconnects, groups=[unique]), "GET", "/"
    )
    await communicator.send_request()
    await communicator.receive_output(TIMEOUT)
    await communicator.receive_output(TIMEOUT)
    await communicator.send_input({"type": "http.disconnect"})
    await communicator.wait(TIMEOUT)
    assert disconnects == ["disconnected"]


class Silent(AsyncHttpConsumer):
    async def handle(self, body: bytes) -> None:
        return None


async def test_handle_returning_without_a_response_ends_the_consumer():
    communicator = HttpCommunicator(Silent.as_asgi(), "GET", "/")
    await communicator.send_request()
    with pytest.raises(TimeoutError, match="exited without sending"):
        await communicator.receive_output(TIMEOUT)


async def test_handle_must_be_provided():
    communicator = HttpCommunicator(AsyncHttpConsumer.as_asgi(), "GET", "/")
    await communicator.send_request()
    with pytest.raises(NotImplementedError, match="must provide a handle"):
        await communicator.wait(TIMEOUT)


class BodyFirst(AsyncHttpConsumer):
    async def handle(self, body: bytes) -> None:
        await self.send_body(b"oops")


class TextBody(AsyncHttpConsumer):
    async def handle(self, body: bytes) -> None:
        await self.send_headers()
        await self.send_body("not bytes")  # type: ignore[arg-type]


class TwoEndings(AsyncHttpConsumer):
    async def handle(self, body: bytes) -> None:
        await self.send_response(200, b"once")
        await self.send_body(b"twice")


@pytest.mark.parametrize(
    ("consumer", "error", "match"),
    [
        (BodyFirst, RuntimeError, "before send_headers"),
        (TextBody, TypeError, "must be bytes, not str"),
        (TwoEndings, RuntimeError, "after the response finished"),
    ],
)
async def test_response_order_mistakes_are_clear_errors(consumer: Any, error: Any, match: str):
    communicator = HttpCommunicator(consumer.as_asgi(), "GET", "/")
    await communicator.send_request()
    with pytest.raises(error, match=match):
        await communicator.wait(TIMEOUT)
