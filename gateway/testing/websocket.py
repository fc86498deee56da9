"""Test a WebSocket application as a client would, without a server."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from gateway.testing.application import ApplicationCommunicator, path_scope_keys
from gateway.types import ASGIApp, Scope
from gateway.web.events import (
    SPEC_VERSION,
    close_of,
    connect_event,
    disconnect_event,
    frame_data,
    headers_of,
    receive_event,
    websocket_scope,
)

__all__ = ["WebsocketCommunicator"]


class WebsocketCommunicator(ApplicationCommunicator):
    """A WebSocket client for one application instance::

        communicator = WebsocketCommunicator(application, "/ws/chat/lobby/")
        connected, subprotocol = await communicator.connect()
        await communicator.send_json_to({"message": "hello"})
        assert await communicator.receive_json_from() == {"message": "hello"}
        await communicator.disconnect()

    ``headers`` are ``(bytes, bytes)`` pairs, as in the ASGI scope (add
    ``(b"origin", ...)`` and ``(b"cookie", ...)`` here).
    """

    def __init__(
        self,
        application: ASGIApp,
        path: str,
        headers: Iterable[tuple[bytes, bytes]] | None = None,
        subprotocols: Iterable[str] | None = None,
        spec_version: str | None = None,
    ) -> None:
        scope: Scope = dict(
            websocket_scope(
                **path_scope_keys(path),
                headers=list(headers or []),
                subprotocols=list(subprotocols or []),
                spec_version=spec_version or SPEC_VERSION,
            )
        )
        if spec_version:  # Channels' communicator has it at the top level too
            scope["spec_version"] = spec_version
        super().__init__(application, scope)
        #: The headers the application accepted with (``websocket.accept``), as Channels.
        self.response_headers: list[tuple[bytes, bytes]] | None = None
        self._accepted = False

    async def connect(self, timeout: float = 1) -> tuple[bool, Any]:
        """Open the connection: ``(True, subprotocol)``, or ``(False, close code)`` if refused."""
        await self.send_input(dict(connect_event()))
        response = await self.receive_output(timeout)
        if response["type"] == "websocket.close":
            return False, close_of(response)[0]
        if response["type"] != "websocket.accept":
            raise AssertionError(f"Expected websocket.accept or websocket.close, got {response!r}")
        self._accepted = True
        self.response_headers = list(headers_of(response))
        return True, response.get("subprotocol")

    async def send_to(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Send one frame (exactly one of text or bytes) to the application."""
        if not self._accepted:
            raise RuntimeError("send_to() before connect() accepted the connection")
        if text_data is not None and bytes_data is None:
            await self.send_input(dict(receive_event(text_data)))
        elif bytes_data is not None and text_data is None:
            await self.send_input(dict(receive_event(bytes_data)))
        else:
            raise ValueError("send_to() needs exactly one of text_data or bytes_data")

    async def send_json_to(self, data: Any) -> None:
        """Send ``data`` as a JSON text frame."""
        await self.send_to(text_data=json.dumps(data))

    async def receive_from(self, timeout: float = 1) -> str | bytes:
        """The next frame the application sends (text or bytes)."""
        response = await self.receive_output(timeout)
        if response["type"] != "websocket.send":
            raise AssertionError(
                f"Expected type 'websocket.send', but was '{response['type']}' ({response!r})"
            )
        return frame_data(response)

    async def receive_json_from(self, timeout: float = 1) -> Any:
        """The next frame, which must be JSON text, decoded."""
        payload = await self.receive_from(timeout)
        if not isinstance(payload, str):
            raise AssertionError(
                f"JSON data is not a text frame, it is {type(payload)} ({payload!r:.200})"
            )
        return json.loads(payload)

    async def disconnect(self, code: int = 1000, timeout: float = 1) -> None:
        """Close from the client side and wait for the application to exit."""
        self._accepted = False
        if not self.future.done():
            await self.send_input(dict(disconnect_event(code)))
        await self.wait(timeout)
