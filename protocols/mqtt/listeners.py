"""The embedded broker's sockets: MQTT over TCP, TLS, WebSocket and secure WebSocket.

Each accepted connection becomes a :class:`~protocols.mqtt.door.Transport` that the
door serves; amqtt binds nothing itself (its ``external`` listener type). A TLS
handshake and a WebSocket opening handshake must finish within the connect timeout
too. MQTT over WebSocket follows MQTT 3.1.1 §6: subprotocol ``mqtt``, binary frames
only (§6.0-1: a text frame closes the connection), a frame at most one maximum
packet (plus its fixed header) long.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass

from amqtt.adapters import StreamWriterAdapter, WebSocketsWriter
from django.core.exceptions import ImproperlyConfigured
from websockets import ConnectionClosed, Subprotocol
from websockets.asyncio.server import Server, ServerConnection, serve

from protocols.mqtt.codec import MalformedPacket
from protocols.mqtt.door import Door, Transport

#: Bytes read from a TCP socket at a time.
_CHUNK = 64 * 1024
#: A fixed header is at most five bytes (§2.2.3).
_FIXED_HEADER_MAX = 5
#: Seconds :meth:`Listeners.close` waits for connections to end once their sockets closed.
_CLOSE_TIMEOUT = 5.0
#: Connections the kernel may hold waiting for accept (capped by net.core.somaxconn).
#: asyncio's default of 100 overflows when a fleet reconnects at once, and an
#: overflowed SYN is retried only after a second or more.
_BACKLOG = 4096


class _WebSocketWriter(WebSocketsWriter):
    """amqtt's WebSocket writer, raising :class:`OSError` like a socket once closed."""

    async def drain(self) -> None:
        try:
            await super().drain()
        except ConnectionClosed as exc:
            raise ConnectionResetError(str(exc)) from exc

    async def close(self) -> None:
        try:
            await super().close()
        except ConnectionClosed as exc:
            raise ConnectionResetError(str(exc)) from exc


@dataclass(frozen=True)
class TLSFiles:
    """The broker's certificate chain and private key (PEM files)."""

    certfile: str
    keyfile: str

    def context(self) -> ssl.SSLContext:
        """A server context (TLS 1.2 or later); a bad file fails start naming the options."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(self.certfile, self.keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise ImproperlyConfigured(
                f"the embedded MQTT broker cannot load its TLS certificate {self.certfile!r} "
                f"and key {self.keyfile!r} (--mqtt-ssl-certfile, --mqtt-ssl-keyfile): {exc}"
            ) from exc
        return context


@dataclass(frozen=True)
class ListenerSpec:
    """One listening socket: where, and whether it speaks TLS and/or WebSocket."""

    name: str
    host: str
    port: int
    tls: ssl.SSLContext | None = None
    websocket: bool = False


class Listeners:
    """Starts the broker's listening sockets, each feeding ``door``; closes them all."""

    def __init__(self, door: Door) -> None:
        self.door = door
        self.ports: dict[str, int] = {}
        self._tcp: list[asyncio.Server] = []
        self._websocket: list[Server] = []
        self._connections: dict[asyncio.Task[object], Transport] = {}

    async def start(self, spec: ListenerSpec) -> None:
        """Listen as ``spec`` says; the bound port is in :attr:`ports` under its name."""
        timeout = self.door.limits.connect_timeout
        if spec.websocket:
            server = await serve(
                self._serve_websocket,
                spec.host,
                spec.port,
                ssl=spec.tls,
                subprotocols=[Subprotocol("mqtt")],
                max_size=self.door.limits.max_packet_size + _FIXED_HEADER_MAX,
                open_timeout=timeout,
                compression=None,
                backlog=_BACKLOG,
            )
            self._websocket.append(server)
            sockets = list(server.sockets)
        else:
            tcp = await asyncio.start_server(
                self._serve_tcp,
                spec.host,
                spec.port,
                ssl=spec.tls,
                ssl_handshake_timeout=timeout if spec.tls is not None else None,
                reuse_address=True,
                backlog=_BACKLOG,
            )
            self._tcp.append(tcp)
            sockets = list(tcp.sockets)
        self.ports[spec.name] = sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening; close every connection still open and let its handler end.

        Handlers are cancelled only if they outlive ``_CLOSE_TIMEOUT``: Python 3.11's
        streams log a traceback for a cancelled connection handler.
        """
        for tcp in self._tcp:
            tcp.close()
        for server in self._websocket:
            server.close()
        self.abort()
        if self._connections:
            _, late = await asyncio.wait(self._connections, timeout=_CLOSE_TIMEOUT)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        for tcp in self._tcp:
            await tcp.wait_closed()
        for server in self._websocket:
            await server.wait_closed()

    def abort(self) -> int:
        """Abort every open connection at once, unflushed; how many there were."""
        for transport in self._connections.values():
            transport.abort()
        return len(self._connections)

    async def _serve(self, transport: Transport) -> None:
        task = asyncio.current_task()
        assert task is not None  # a connection handler always runs in a task
        self._connections[task] = transport
        try:
            await self.door.serve(transport)
        finally:
            del self._connections[task]

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def receive() -> bytes:
            try:
                return await reader.read(_CHUNK)
            except OSError:  # reset by the peer: the end, like any other
                return b""

        peer = writer.get_extra_info("peername") or ("?",)
        transport = Transport(
            str(peer[0]), receive, StreamWriterAdapter(writer), writer.transport.abort
        )
        try:
            await self._serve(transport)
        finally:
            writer.close()

    async def _serve_websocket(self, connection: ServerConnection) -> None:
        async def receive() -> bytes:
            try:
                message = await connection.recv()
            except ConnectionClosed:
                return b""
            if isinstance(message, str):
                raise MalformedPacket("MQTT over WebSocket uses binary frames only (§6.0-1)")
            return message

        await self._serve(
            Transport(
                str(connection.remote_address[0]),
                receive,
                _WebSocketWriter(connection),
                connection.transport.abort,
            )
        )
