"""The embedded broker's door: every connection passes it before amqtt sees a byte.

amqtt 0.12 reads packets straight from the socket: no bound on their size, no
deadline for the first one, no connection limit; it parses a CONNECT of another
protocol version as if it were 3.1.1 (an MQTT 5 client with credentials waits for
a CONNACK that never comes); it deletes the session of a client id *before* it
checks the new connection's credentials, and leaves the earlier connection of that
client id open, deaf. So the door owns each connection until nothing is left to
decide, and frames every packet after that:

1. past ``max_connections`` open connections a new one is closed at once;
2. the first packet must be a CONNECT (§3.1.0-1) arriving within
   ``connect_timeout`` seconds; no packet may have a remaining length above
   ``max_packet_size`` (refused from its fixed header, §2.2.3, before its body is
   read);
3. a CONNECT of another protocol level is answered CONNACK 0x01 at once (§3.1.2.2);
   a malformed one closes the connection without a CONNACK (§3.1.4-1);
4. the broker behind the door (:class:`Hall`) checks the credentials; the door
   checks the Will against the identity's ACL (§3.1.2.5: the broker publishes it on
   the device's behalf) and the client id (§3.1.3.1): it belongs to one identity,
   and an empty one is replaced by a generated ``auto-...`` id (§3.1.3-6). A refusal
   is a CONNACK with its return code (§3.2.2.3) and a log line;
5. an earlier connection of the same client id and identity is closed, and its end
   awaited, before the new one goes on (§3.1.4-2): amqtt never holds two;
6. amqtt gets the CONNECT, then only whole packets :func:`validate_packet` accepts;
   anything else closes the connection (§4.8), which publishes the Will (§3.1.2.5).

Refusals are logged through a :class:`~gateway.failure_log.FailureLog`: the first
of a kind, then one line of counts per minute.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from amqtt.adapters import ReaderAdapter, WriterAdapter

from gateway.devices.acl import DeviceACL
from gateway.failure_log import FailureLog
from gateway.mqtt.codes import ReturnCode
from protocols.mqtt.codec import Packet, PacketReader, ProtocolViolation
from protocols.mqtt.connect import (
    Connect,
    UnsupportedProtocol,
    connack,
    encode_connect,
    parse_connect,
)
from protocols.mqtt.validate import validate_packet

logger = logging.getLogger("gateway.server.mqtt")

#: Characters a client id may not contain: it becomes a level of ``$presence/<client_id>``.
_CLIENT_ID_FORBIDDEN = frozenset("/+#")
#: Seconds a refusal's CONNACK may take to leave before the socket is dropped.
_FLUSH_TIMEOUT = 5.0


@dataclass(frozen=True)
class DoorLimits:
    """The door's bounds (docs/security.md lists them with their options)."""

    #: Seconds from accept to the last byte of the CONNECT (``--mqtt-connect-timeout``).
    connect_timeout: float = 10.0
    #: Open connections, all listeners together (``--mqtt-max-connections``).
    max_connections: int = 10_000
    #: Largest remaining length of any packet, in bytes (``--mqtt-max-packet-size``).
    max_packet_size: int = 256 * 1024
    #: Seconds a takeover waits for the earlier connection to end (§3.1.4-2).
    takeover_timeout: float = 5.0


@dataclass(frozen=True)
class Identity:
    """Who a connection authenticated as: a device (its ACL) or anonymous (``acl`` None)."""

    acl: DeviceACL | None

    @property
    def username(self) -> str | None:
        return None if self.acl is None else self.acl.username

    def may_publish(self, topic: str) -> bool:
        """Never to ``$`` topics (§4.7.2; amqtt refuses them too); anonymous: elsewhere."""
        if topic.startswith("$"):
            return False
        return self.acl is None or self.acl.may_publish(topic)


@dataclass(frozen=True)
class Refused:
    """A refused CONNECT: its CONNACK return code (§3.2.2.3) and why, for the log.

    ``reason`` is fixed text (refusals are counted per reason); ``detail`` the specifics.
    """

    code: ReturnCode
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class Transport:
    """One accepted connection, TCP (TLS or not) or WebSocket, as the door sees it."""

    #: The client's address, for per-address limits and log lines.
    peer: str
    #: The next bytes from the client; ``b""`` once the connection has ended.
    receive: Callable[[], Awaitable[bytes]]
    #: Where the door and then amqtt write (amqtt's adapter; a closed connection
    #: raises :class:`OSError` from ``drain`` and ``close``).
    writer: WriterAdapter
    #: Close at once, unflushed (a takeover, a protocol violation).
    abort: Callable[[], None]


class Hall(Protocol):
    """What the door needs from the broker behind it (:class:`protocols.mqtt.broker.BrokerLink`)."""

    async def authenticate(self, connect: Connect, peer: str) -> Identity | Refused:
        """Who the CONNECT's credentials say it is, or why it is refused."""

    def session_owner(self, client_id: str) -> Identity | None:
        """Who owns the persistent session kept for ``client_id`` (None: no session)."""

    def ending(self, client_id: str, reason: str) -> None:
        """The connection of ``client_id`` is about to be closed for ``reason``."""

    async def hand_over(self, reader: ReaderAdapter, writer: WriterAdapter) -> None:
        """Serve the connection (its CONNECT first) until it ends."""


class _Connection:
    def __init__(self, transport: Transport, max_packet_size: int) -> None:
        self.transport = transport
        self.packets = PacketReader(max_packet_size)
        self.client_id = ""
        self.identity = Identity(None)
        self.ended = asyncio.Event()

    async def next_packet(self) -> Packet | None:
        """The next whole packet; None once the client has gone."""
        while (packet := self.packets.next_packet()) is None:
            data = await self.transport.receive()
            if not data:
                return None
            self.packets.feed(data)
        return packet


class _FramedReader(ReaderAdapter):
    """amqtt's side of a connection: the CONNECT, then validated whole packets, then the end."""

    def __init__(self, first: bytes, next_packet: Callable[[], Awaitable[bytes | None]]) -> None:
        self._buffer = bytearray(first)
        self._next_packet = next_packet
        self._ended = False

    async def read(self, n: int = -1) -> bytes:
        while not self._ended and (n < 0 or len(self._buffer) < n):
            packet = await self._next_packet()
            if packet is None:
                self._ended = True
            else:
                self._buffer += packet
        size = len(self._buffer) if n < 0 else min(n, len(self._buffer))
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def feed_eof(self) -> None:
        self._ended = True


class Door:
    """Admits connections to the broker behind it: :meth:`serve` one per accepted connection."""

    def __init__(self, hall: Hall, limits: DoorLimits | None = None) -> None:
        self.hall = hall
        self.limits = limits or DoorLimits()
        self.open = 0
        self.closing = False
        self._live: dict[str, _Connection] = {}
        self._refusals = FailureLog(logger, level=logging.WARNING)
        self._errors = FailureLog(logger)

    def identity(self, client_id: str) -> Identity | None:
        """The identity of the connection admitted with ``client_id``, if one is."""
        connection = self._live.get(client_id)
        return None if connection is None else connection.identity

    def close(self) -> None:
        """Admit nothing more: the broker is stopping (connections at the door are closed)."""
        self.closing = True

    async def serve(self, transport: Transport) -> None:
        """Own ``transport`` from accept until it ends (one task per connection)."""
        if self.closing:
            transport.abort()
            return
        if self.open >= self.limits.max_connections:
            self._refuse_log(
                "connection limit",
                f"{transport.peer}: closed at once, {self.open} connections are open "
                "(--mqtt-max-connections)",
            )
            transport.abort()
            return
        self.open += 1
        connection = _Connection(transport, self.limits.max_packet_size)
        try:
            await self._serve(connection)
        except Exception as exc:
            self._errors.failed(f"MQTT connection from {transport.peer} failed", exc)
            transport.abort()
        finally:
            self.open -= 1
            if self._live.get(connection.client_id) is connection:
                del self._live[connection.client_id]
            connection.ended.set()

    async def _serve(self, connection: _Connection) -> None:
        connect = await self._read_connect(connection)
        if connect is None:
            return
        try:
            refused = await self._admit(connection, connect)
        except Exception as exc:  # the database is down, a device's rules are invalid...
            peer = connection.transport.peer
            self._errors.failed(f"MQTT login of {connect.username!r} from {peer} failed", exc)
            refused = Refused(ReturnCode.SERVER_UNAVAILABLE, "server error", type(exc).__name__)
        if refused is not None:
            await self._refuse(connection, connect, refused)
            return
        if self.closing:
            connection.transport.abort()
            return
        self._live[connection.client_id] = connection
        connect = dataclasses.replace(connect, client_id=connection.client_id)
        reader = _FramedReader(encode_connect(connect), lambda: self._next_valid(connection))
        await self.hall.hand_over(reader, connection.transport.writer)

    async def _read_connect(self, connection: _Connection) -> Connect | None:
        """The CONNECT (§3.1), or None once the connection was answered or closed."""
        peer = connection.transport.peer
        try:
            async with asyncio.timeout(self.limits.connect_timeout):
                packet = await connection.next_packet()
            if packet is None:
                return None  # gone before a CONNECT: nothing to say
            return parse_connect(packet)
        except TimeoutError:
            self._refuse_log(
                "connect timeout",
                f"{peer}: no CONNECT within {self.limits.connect_timeout:g} s, closed "
                "(--mqtt-connect-timeout)",
            )
        except UnsupportedProtocol as exc:
            refused = Refused(
                ReturnCode.UNACCEPTABLE_PROTOCOL_VERSION, "protocol version", str(exc)
            )
            await self._refuse(connection, None, refused)
            return None
        except ProtocolViolation as exc:
            self._refuse_log("malformed CONNECT", f"{peer}: {exc}: closed (§3.1.4-1)")
        connection.transport.abort()
        return None

    async def _admit(self, connection: _Connection, connect: Connect) -> Refused | None:
        """None if ``connect`` may go on (its identity and client id set), else the refusal."""
        verdict = await self.hall.authenticate(connect, connection.transport.peer)
        if isinstance(verdict, Refused):
            return verdict
        connection.identity = verdict
        if connect.will is not None and not verdict.may_publish(connect.will.topic):
            detail = f"it may not publish to its Will topic {connect.will.topic!r} (§3.1.2.5)"
            return Refused(ReturnCode.NOT_AUTHORIZED, "Will outside its ACL", detail)
        if not connect.client_id and not connect.clean_session:
            detail = "an empty client id needs a clean session (§3.1.3-8)"
            return Refused(ReturnCode.IDENTIFIER_REJECTED, "client id", detail)
        if _CLIENT_ID_FORBIDDEN & set(connect.client_id):
            detail = "a client id may not contain '/', '+' or '#'"
            return Refused(ReturnCode.IDENTIFIER_REJECTED, "client id", detail)
        connection.client_id = connect.client_id or f"auto-{uuid.uuid4().hex}"
        return await self._claim(connection)

    async def _claim(self, connection: _Connection) -> Refused | None:
        """Make the client id this connection's, closing an earlier one of the same identity.

        A client id belongs to the identity connected with it, or keeping a
        persistent session under it: another identity is refused (§3.1.3.1 lets a
        server reject a client id with 0x02), so a device can never take over, nor
        silence, another device's session. The same identity takes over (§3.1.4-2).
        """
        client_id = connection.client_id
        while True:
            earlier = self._live.get(client_id)
            owner = earlier.identity if earlier is not None else self.hall.session_owner(client_id)
            if owner is not None and owner.username != connection.identity.username:
                detail = f"it belongs to user {owner.username!r} (§3.1.3.1)"
                return Refused(ReturnCode.IDENTIFIER_REJECTED, "client id of another user", detail)
            if earlier is None:
                return None
            logger.info(
                "client id %r connected again (user %r) from %s: closing its earlier "
                "connection from %s (§3.1.4-2)",
                client_id,
                owner.username if owner is not None else None,
                connection.transport.peer,
                earlier.transport.peer,
            )
            self.hall.ending(client_id, "takeover")
            earlier.transport.abort()
            try:
                async with asyncio.timeout(self.limits.takeover_timeout):
                    await earlier.ended.wait()
            except TimeoutError:
                detail = "its earlier connection did not end in time (§3.1.4-2)"
                return Refused(ReturnCode.SERVER_UNAVAILABLE, "takeover", detail)

    async def _next_valid(self, connection: _Connection) -> bytes | None:
        """The next packet for amqtt; None at the end, or after closing on a violation (§4.8)."""
        try:
            packet = await connection.next_packet()
            if packet is None:
                return None
            validate_packet(packet)
        except ProtocolViolation as exc:
            self._refuse_log(
                "protocol violation",
                f"{connection.transport.peer} (client id {connection.client_id!r}): {exc}: "
                "closed (§4.8)",
            )
            self.hall.ending(connection.client_id, "malformed")
            connection.transport.abort()
            return None
        return packet.to_bytes()

    async def _refuse(
        self, connection: _Connection, connect: Connect | None, refused: Refused
    ) -> None:
        """Log, send the refusing CONNACK and close (§3.2.2.3: then the server closes)."""
        who = connection.transport.peer
        if connect is not None:
            who += f" (user {connect.username!r}, client id {connect.client_id!r})"
        detail = f" ({refused.detail})" if refused.detail else ""
        message = f"{who}: {refused.reason}{detail}: CONNACK {refused.code:#04x}"
        self._refuse_log(refused.reason, message)
        writer = connection.transport.writer
        writer.write(connack(refused.code))
        try:
            async with asyncio.timeout(_FLUSH_TIMEOUT):
                await writer.drain()
                await writer.close()
        except (TimeoutError, OSError):
            connection.transport.abort()

    def _refuse_log(self, kind: str, message: str) -> None:
        self._refusals.repeated(f"MQTT connection refused ({kind})", message)
