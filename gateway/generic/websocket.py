"""WebSocket consumers: connect/accept, receive, send, close, JSON.

Four classes, as in Channels, over ONE implementation of the ASGI WebSocket
protocol (:class:`WebsocketHandlers`, which handles the ``websocket.*`` events and
keeps the connection's state). The async classes and the sync classes differ only
in how the user's hooks run and how they send: :meth:`_call_hook` awaits async hooks
on the event loop and runs sync ones in a worker thread (see
:mod:`gateway.consumer`).

The connection's state is explicit (:class:`WebsocketState`), so sending a frame
before ``accept()`` or after ``close()`` raises a ``RuntimeError`` that says so,
instead of a message the server drops or a hang.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable
from typing import Any, cast

from gateway.consumer import AsyncConsumer, SyncConsumer
from gateway.exceptions import AcceptConnection, DenyConnection
from gateway.generic.codec import JsonCodec
from gateway.types import Message
from gateway.web.events import accept_message, close_message, frame_data, send_message

__all__ = [
    "AsyncJsonWebsocketConsumer",
    "AsyncWebsocketConsumer",
    "JsonWebsocketConsumer",
    "WebsocketConsumer",
]

Headers = Iterable[tuple[bytes | str, bytes | str]]


class ConnectionState(enum.Enum):
    CONNECTING = "connecting"  # websocket.connect received, not yet accepted
    CONNECTED = "connected"  # accepted; frames may flow
    CLOSING = "closing"  # the application sent websocket.close
    DISCONNECTED = "disconnected"  # websocket.disconnect received: the client is gone


def _header_bytes(value: bytes | str) -> bytes:
    return value.encode("latin-1") if isinstance(value, str) else value


class WebsocketState:
    """The application's side of one WebSocket (ASGI WebSocket spec), without I/O.

    Each method checks that the step is allowed now, records it, and returns the
    ASGI message(s) to send.
    """

    def __init__(self) -> None:
        self.state = ConnectionState.CONNECTING

    def accept(self, subprotocol: str | None = None, headers: Headers | None = None) -> Message:
        """``websocket.accept``; allowed once, before anything else is sent."""
        if self.state is not ConnectionState.CONNECTING:
            raise RuntimeError(f"Cannot accept a WebSocket that is {self.state.value}")
        header_list = (
            [(_header_bytes(name), _header_bytes(value)) for name, value in headers]
            if headers
            else None
        )
        self.state = ConnectionState.CONNECTED
        return cast(Message, accept_message(subprotocol, header_list))

    def frame(self, text_data: str | None = None, bytes_data: bytes | None = None) -> Message:
        """``websocket.send`` with exactly one of text or bytes."""
        if self.state is ConnectionState.CONNECTING:
            raise RuntimeError(
                "Cannot send a WebSocket message before the connection is accepted: "
                "call accept() first (or raise AcceptConnection in connect())"
            )
        if self.state is not ConnectionState.CONNECTED:
            raise RuntimeError(
                f"Cannot send a WebSocket message: the connection is {self.state.value}"
            )
        if text_data is not None and bytes_data is None:
            return cast(Message, send_message(text_data))
        if bytes_data is not None and text_data is None:
            return cast(Message, send_message(bytes_data))
        raise ValueError("send() needs exactly one of text_data or bytes_data")

    def close(self, code: int | bool | None = None, reason: str | None = None) -> Message | None:
        """``websocket.close``; before accept it refuses the handshake (HTTP 403).

        Returns None when the connection is already closing or gone: closing
        twice is harmless, as in Channels.
        """
        if self.state in (ConnectionState.CLOSING, ConnectionState.DISCONNECTED):
            return None
        self.state = ConnectionState.CLOSING
        return cast(Message, close_message(None if code is True else code, reason))

    def disconnected(self) -> None:
        self.state = ConnectionState.DISCONNECTED


class WebsocketHandlers(AsyncConsumer):
    """The ``websocket.*`` event handlers shared by every WebSocket consumer.

    Subclasses provide the user-facing hooks (``connect``, ``receive``,
    ``disconnect``), async or sync; this class calls them through
    :meth:`_call_hook` and sends what the protocol itself needs through the
    server's async ``_asgi_send``.
    """

    @functools.cached_property
    def _websocket_state(self) -> WebsocketState:
        # Made on first use, not in __call__: a consumer built and driven by hand
        # (``Consumer()``, ``base_send`` assigned, ``accept()`` called, as some
        # libraries' tests do) works as in Channels. One instance serves one connection.
        return WebsocketState()

    async def websocket_connect(self, message: Message) -> None:
        try:
            await self._call_hook(self.connect)
        except AcceptConnection:
            await self._asgi_send(self._websocket_state.accept())
        except DenyConnection:
            refusal = self._websocket_state.close()
            if refusal is not None:
                await self._asgi_send(refusal)

    async def websocket_receive(self, message: Message) -> None:
        data = frame_data(message)
        if isinstance(data, str):
            await self._call_hook(self.receive, text_data=data)
        else:
            await self._call_hook(self.receive, bytes_data=data)

    async def websocket_disconnect(self, message: Message) -> None:
        """Leave the groups, then run ``disconnect(code)``; the consumer then ends."""
        self._websocket_state.disconnected()
        await self._leave_groups()
        await self._call_hook(self.disconnect, message.get("code", 1005))

    # The hooks subclasses define (async or sync) ------------------------------
    connect: Any
    receive: Any
    disconnect: Any


class AsyncWebsocketConsumer(WebsocketHandlers):
    """A WebSocket consumer with async hooks.

    Override :meth:`connect` (accepts by default), :meth:`receive` and
    :meth:`disconnect`; call :meth:`accept`, :meth:`send` and :meth:`close`.
    """

    async def connect(self) -> None:
        await self.accept()

    async def accept(self, subprotocol: str | None = None, headers: Headers | None = None) -> None:
        """Accept the connection, optionally choosing a subprotocol and adding headers."""
        await self.base_send(self._websocket_state.accept(subprotocol, headers))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Called with each frame from the client; does nothing by default."""

    async def send(  # type: ignore[override]
        self,
        text_data: str | None = None,
        bytes_data: bytes | None = None,
        close: bool | int = False,
    ) -> None:
        """Send a text or binary frame; ``close=True`` (or a close code) closes after it."""
        await self.base_send(self._websocket_state.frame(text_data, bytes_data))
        if close:
            await self.close(close)

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        """Close the connection (before accept: refuse it with HTTP 403)."""
        message = self._websocket_state.close(code, reason)
        if message is not None:
            await self.base_send(message)

    async def disconnect(self, code: int) -> None:
        """Called when the client has gone, with the close code; does nothing by default."""


class WebsocketConsumer(WebsocketHandlers, SyncConsumer):
    """A WebSocket consumer with sync hooks, run in a worker thread.

    The same hooks and methods as :class:`AsyncWebsocketConsumer`, synchronous.
    """

    def connect(self) -> None:
        self.accept()

    def accept(self, subprotocol: str | None = None, headers: Headers | None = None) -> None:
        """Accept the connection, optionally choosing a subprotocol and adding headers."""
        self.base_send(self._websocket_state.accept(subprotocol, headers))

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Called with each frame from the client; does nothing by default."""

    def send(  # type: ignore[override]
        self,
        text_data: str | None = None,
        bytes_data: bytes | None = None,
        close: bool | int = False,
    ) -> None:
        """Send a text or binary frame; ``close=True`` (or a close code) closes after it."""
        self.base_send(self._websocket_state.frame(text_data, bytes_data))
        if close:
            self.close(close)

    def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        """Close the connection (before accept: refuse it with HTTP 403)."""
        message = self._websocket_state.close(code, reason)
        if message is not None:
            self.base_send(message)

    def disconnect(self, code: int) -> None:
        """Called when the client has gone, with the close code; does nothing by default."""


def _json_text(text_data: str | None) -> str:
    """A frame's text, which JSON needs: a binary frame is refused."""
    if text_data is None:
        raise ValueError("No text section for incoming WebSocket frame: JSON needs text")
    return text_data


class AsyncJsonWebsocketConsumer(JsonCodec, AsyncWebsocketConsumer):
    """An async WebSocket consumer that exchanges JSON text frames."""

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.receive_json(self.decode_json(_json_text(text_data)))

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """Called with each decoded frame; does nothing by default."""

    async def send_json(self, content: Any, close: bool | int = False) -> None:
        """Encode ``content`` and send it as a text frame."""
        await self.send(text_data=self.encode_json(content), close=close)


class JsonWebsocketConsumer(JsonCodec, WebsocketConsumer):
    """A sync WebSocket consumer that exchanges JSON text frames."""

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        self.receive_json(self.decode_json(_json_text(text_data)))

    def receive_json(self, content: Any, **kwargs: Any) -> None:
        """Called with each decoded frame; does nothing by default."""

    def send_json(self, content: Any, close: bool | int = False) -> None:
        """Encode ``content`` and send it as a text frame."""
        self.send(text_data=self.encode_json(content), close=close)
