"""gateway.testing: the communicators themselves, and the package's public face."""

from __future__ import annotations

import types
from typing import Any

import pytest

import gateway.testing
from gateway.consumer import AsyncConsumer
from gateway.testing import ApplicationCommunicator, HttpCommunicator, WebsocketCommunicator
from gateway.types import Message, Receive, Scope, Send

TIMEOUT = 5


def test_the_public_face_is_curated():
    public = {
        name
        for name, value in vars(gateway.testing).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(gateway.testing.__all__)
    assert {"ApplicationCommunicator", "HttpCommunicator", "WebsocketCommunicator"} <= public
    for name in gateway.testing.__all__:
        assert getattr(gateway.testing, name).__module__.startswith("gateway.testing.")


async def scope_reporter(scope: Scope, receive: Receive, send: Send) -> None:
    """A raw ASGI app: reports its scope, then echoes until disconnect."""
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": repr(sorted(scope.items()))})
        elif message["type"] == "websocket.disconnect":
            return


async def test_websocket_scope_from_path_headers_and_subprotocols():
    communicator = WebsocketCommunicator(
        scope_reporter,
        "/chat/r%C3%A9sum%C3%A9/?room=1&x=y",
        headers=[(b"origin", b"http://example.com")],
        subprotocols=["v1", "v2"],
    )
    assert communicator.scope["path"] == "/chat/résumé/"
    assert communicator.scope["query_string"] == b"room=1&x=y"
    assert communicator.scope["headers"] == [(b"origin", b"http://example.com")]
    assert communicator.scope["subprotocols"] == ["v1", "v2"]
    assert await communicator.connect(TIMEOUT) == (True, None)
    await communicator.send_to(text_data="scope?")
    assert "résumé" in str(await communicator.receive_from(TIMEOUT))
    await communicator.disconnect(timeout=TIMEOUT)


async def test_sending_before_connect_is_refused():
    communicator = WebsocketCommunicator(scope_reporter, "/")
    with pytest.raises(RuntimeError, match="before connect"):
        await communicator.send_to(text_data="hi")
    await communicator.stop()


async def test_receive_nothing_keeps_a_late_message():
    communicator = WebsocketCommunicator(scope_reporter, "/")
    await communicator.connect(TIMEOUT)
    assert await communicator.receive_nothing(0.01)
    await communicator.send_to(text_data="x")
    assert not await communicator.receive_nothing(TIMEOUT)
    # The message seen by receive_nothing is still delivered.
    assert "websocket" in str(await communicator.receive_from(TIMEOUT))
    await communicator.disconnect(timeout=TIMEOUT)


async def test_receive_output_timeout_cancels_the_application():
    communicator = WebsocketCommunicator(scope_reporter, "/")
    await communicator.connect(TIMEOUT)
    with pytest.raises(TimeoutError, match="No message"):
        await communicator.receive_output(0.01)
    assert communicator.future.cancelled()


async def crasher(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "test.before"})
    raise LookupError("boom")


async def test_an_application_error_surfaces_after_its_output():
    communicator = ApplicationCommunicator(crasher, {"type": "test"})
    await communicator.send_input({"type": "test.go"})
    assert await communicator.receive_output(TIMEOUT) == {"type": "test.before"}
    with pytest.raises(LookupError, match="boom"):
        await communicator.receive_output(TIMEOUT)
    with pytest.raises(LookupError):
        await communicator.send_input({"type": "test.again"})


async def test_wait_times_out_and_cancels():
    communicator = ApplicationCommunicator(scope_reporter, {"type": "websocket"})
    with pytest.raises(TimeoutError, match="did not exit"):
        await communicator.wait(0.01)
    assert communicator.future.done()


async def test_the_context_manager_stops_a_running_application():
    async with ApplicationCommunicator(scope_reporter, {"type": "websocket"}) as communicator:
        await communicator.send_input({"type": "websocket.connect"})
        await communicator.receive_output(TIMEOUT)
    assert communicator.future.cancelled()


async def test_a_refused_websocket_reports_the_close_code():
    async def refuser(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.close", "code": 4403})

    communicator = WebsocketCommunicator(refuser, "/")
    assert await communicator.connect(TIMEOUT) == (False, 4403)
    await communicator.wait(TIMEOUT)


async def test_receive_from_names_an_unexpected_message():
    class Closer(AsyncConsumer):
        async def websocket_connect(self, message: Message) -> None:
            await self.send({"type": "websocket.accept"})

        async def websocket_receive(self, message: Message) -> None:
            await self.send({"type": "websocket.close", "code": 1000})

    communicator = WebsocketCommunicator(Closer.as_asgi(), "/")
    await communicator.connect(TIMEOUT)
    await communicator.send_to(text_data="close please")
    # Channels' wording first: user tests match it.
    with pytest.raises(
        AssertionError, match=r"^Expected type 'websocket\.send', but was 'websocket\.close'"
    ):
        await communicator.receive_from(TIMEOUT)
    await communicator.disconnect(timeout=TIMEOUT)


async def test_receive_json_from_refuses_binary_frames():
    async def binary(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "bytes": b"{}"})
        await receive()

    communicator = WebsocketCommunicator(binary, "/")
    await communicator.connect(TIMEOUT)
    with pytest.raises(AssertionError, match=r"^JSON data is not a text frame"):
        await communicator.receive_json_from(TIMEOUT)
    await communicator.disconnect(timeout=TIMEOUT)


async def test_accept_headers_are_exposed_as_in_channels():
    async def accepter(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept", "headers": [(b"x-room", b"lobby")]})
        await receive()

    communicator = WebsocketCommunicator(accepter, "/")
    assert communicator.response_headers is None
    assert await communicator.connect(TIMEOUT) == (True, None)
    assert communicator.response_headers == [(b"x-room", b"lobby")]
    await communicator.disconnect(timeout=TIMEOUT)


async def test_a_subclass_may_define_its_own_connected_property():
    """Libraries' test suites do (djangochannelsrestframework's, for one)."""

    class Tracking(WebsocketCommunicator):
        @property
        def connected(self) -> bool:
            return self.response_headers is not None

    async def accepter(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await receive()

    communicator = Tracking(accepter, "/")
    assert not communicator.connected
    await communicator.connect(TIMEOUT)
    assert communicator.connected
    await communicator.send_to(text_data="hello")
    await communicator.disconnect(timeout=TIMEOUT)


async def test_http_communicator_builds_the_scope_and_sends_the_body():
    seen: dict[str, Any] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen["scope"] = scope
        seen["request"] = await receive()
        await send({"type": "http.response.start", "status": 204})
        await send({"type": "http.response.body"})
        seen["after"] = await receive()  # the client is gone once the response is done

    communicator = HttpCommunicator(
        app, "patch", "/items/7?full=1", body=b"data", headers=[(b"x-a", b"1")]
    )
    response = await communicator.get_response(TIMEOUT)
    assert response == {"status": 204, "headers": [], "body": b""}
    assert seen["scope"]["method"] == "PATCH"
    assert seen["scope"]["path"] == "/items/7"
    assert seen["scope"]["query_string"] == b"full=1"
    assert seen["scope"]["headers"] == [(b"x-a", b"1")]
    # The event the server sends for a whole body (gateway.web.events.request_event).
    assert seen["request"] == {"type": "http.request", "body": b"data", "more_body": False}
    assert seen["after"] == {"type": "http.disconnect"}


async def test_http_communicator_wants_a_bytes_body():
    with pytest.raises(TypeError, match="must be bytes"):
        HttpCommunicator(scope_reporter, "POST", "/", body="text")  # type: ignore[arg-type]
