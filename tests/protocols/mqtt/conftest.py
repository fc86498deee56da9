"""Fixtures for the MQTT server tests: a recording consumer, paho and raw devices, servers."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties

from gateway.generic.mqtt import AsyncMqttConsumer
from protocols.mqtt.codec import Packet, PacketReader
from protocols.mqtt.connect import Connect, encode_connect
from protocols.mqtt.link import Link
from protocols.mqtt.server import MqttServer

WAIT = 10.0  # seconds any single expected event may take before a test fails


@dataclass
class Event:
    kind: str
    key: dict[str, str]
    data: dict[str, Any] = field(default_factory=dict)
    instance: int = 0


class Recorder(AsyncMqttConsumer):
    """Records every event of its scope on ``events`` (passed through as_asgi).

    Payload commands: ``boom`` raises, ``sub:<filter>`` subscribes,
    ``unsub:<filter>`` unsubscribes, ``pub:<topic>`` publishes ``reply`` with a
    request_id, ``wait`` blocks until ``gate`` is set.
    """

    events: asyncio.Queue[Event] | None = None
    gate: asyncio.Event | None = None

    def record(self, kind: str, **data: Any) -> None:
        assert self.events is not None
        key = self.scope["route"]["kwargs"]
        self.events.put_nowait(Event(kind, key, {"scope": self.scope, **data}, id(self)))

    async def receive(self, topic: str, payload: bytes, **details: Any) -> None:
        self.record("message", topic=topic, payload=payload, **details)
        command, _, argument = payload.decode(errors="replace").partition(":")
        if command == "boom":
            raise RuntimeError("boom requested")
        if command == "sub":
            await self.subscribe(argument, qos=1, request_id="sub")
        elif command == "unsub":
            await self.unsubscribe(argument, request_id="unsub")
        elif command == "pub":
            await self.publish(
                argument,
                b"reply",
                qos=1,
                properties={"content_type": "text/plain", "user_properties": [["k", "v"]]},
                request_id="pub",
            )
        elif command == "wait":
            assert self.gate is not None
            await self.gate.wait()

    async def presence(self, client_id: str, connected: bool, **details: Any) -> None:
        self.record("presence", client_id=client_id, connected=connected, **details)

    async def link(self, state: str, **details: Any) -> None:
        self.record("link", state=state, **details)

    async def ack(self, request_id: Any, ok: bool, **details: Any) -> None:
        self.record("ack", request_id=request_id, ok=ok, **details)

    async def disconnect(self, reason: str) -> None:
        self.record("disconnect", reason=reason)


async def next_event(events: asyncio.Queue[Event], kind: str | None = None) -> Event:
    """The next event (skipping other kinds when ``kind`` is given)."""
    async with asyncio.timeout(WAIT):
        while True:
            event = await events.get()
            if kind is None or event.kind == kind:
                return event


class Device:
    """A device simulated with paho (its own network thread), awaited from asyncio."""

    def __init__(
        self,
        port: int,
        client_id: str = "",
        *,
        username: str | None = None,
        password: str | None = None,
        v5: bool = False,
        keepalive: int = 60,
        transport: str = "tcp",
    ) -> None:
        self.port = port
        self.keepalive = keepalive
        self.loop = asyncio.get_running_loop()
        self.messages: asyncio.Queue[paho.MQTTMessage] = asyncio.Queue()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            transport=transport,  # type: ignore[arg-type]
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        self._acks: dict[int, asyncio.Future[Any]] = {}
        self._connack: asyncio.Future[Any] = self.loop.create_future()
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_ack
        self.client.on_publish = self._on_ack

    def _resolve(self, future: asyncio.Future[Any], value: Any) -> None:
        if not future.done():
            future.set_result(value)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.loop.call_soon_threadsafe(self._resolve, self._connack, reason)

    def _on_ack(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        self.loop.call_soon_threadsafe(self._ack_arrived, mid, reason)

    def _ack_arrived(self, mid: int, reason: Any) -> None:
        self._acks.setdefault(mid, self.loop.create_future())
        self._resolve(self._acks[mid], reason)

    async def connect(self) -> Any:
        """Connect; the CONNACK reason code."""
        await self.loop.run_in_executor(
            None, self.client.connect, "127.0.0.1", self.port, self.keepalive
        )
        self.client.loop_start()
        async with asyncio.timeout(WAIT):
            return await self._connack

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self.loop.call_soon_threadsafe(self.messages.put_nowait, message)

    async def _wait_ack(self, mid: int) -> Any:
        future = self._acks.setdefault(mid, self.loop.create_future())
        async with asyncio.timeout(WAIT):
            return await future

    async def subscribe(self, topic_filter: str, qos: int = 1) -> list[int]:
        _, mid = self.client.subscribe(topic_filter, qos)
        assert mid is not None  # paho gives None when the client is not connected
        return [code.value for code in await self._wait_ack(mid)]

    async def publish(
        self, topic: str, payload: bytes | str, qos: int = 1, properties: Properties | None = None
    ) -> None:
        info = self.client.publish(topic, payload, qos, properties=properties)
        if qos:
            await self._wait_ack(info.mid)

    async def next_message(self) -> paho.MQTTMessage:
        async with asyncio.timeout(WAIT):
            return await self.messages.get()

    async def close(self) -> None:
        self.client.disconnect()
        await self.loop.run_in_executor(None, self.client.loop_stop)
        # paho closes its socket pair only in __del__; close it now (no ResourceWarning).
        self.client._reset_sockets()


@pytest.fixture
async def devices() -> AsyncIterator[Callable[..., Device]]:
    made: list[Device] = []

    def make(port: int, client_id: str = "", **options: Any) -> Device:
        device = Device(port, client_id, **options)
        made.append(device)
        return device

    yield make
    for device in made:
        with contextlib.suppress(Exception):
            await device.close()


#: ``await serve(app, link, **options)``: the ``serve`` fixture.
Serve = Callable[..., Awaitable[MqttServer]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start an MqttServer (stopped at teardown): ``await serve(app, link, **options)``."""
    started: list[MqttServer] = []

    async def start(application: Any, link: Link, **options: Any) -> MqttServer:
        options.setdefault("channel_layer_alias", None)
        server = MqttServer(application, link, **options)
        await server.start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        await server.stop(2.0)


class RawClient:
    """An MQTT connection driven byte by byte (asyncio streams): what paho will not send."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.packets = PacketReader()

    @classmethod
    async def open(
        cls, port: int, *, tls: ssl.SSLContext | None = None, source: str | None = None
    ) -> RawClient:
        """Connect to 127.0.0.1:``port``, from address ``source`` (any 127.x.y.z) if given."""
        local = (source, 0) if source is not None else None
        async with asyncio.timeout(WAIT):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=tls, local_addr=local
            )
        return cls(reader, writer)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def connect(self, connect: Connect) -> bytes:
        """Send ``connect``; the CONNACK's bytes (b"" if the server closed instead)."""
        self.send(encode_connect(connect))
        answer = await self.read_packet()
        return b"" if answer is None else answer.to_bytes()

    async def read_packet(self) -> Packet | None:
        """The next packet from the server; None once it closed the connection."""
        async with asyncio.timeout(WAIT):
            while (packet := self.packets.next_packet()) is None:
                try:
                    data = await self.reader.read(65536)
                except ConnectionError:
                    data = b""
                if not data:
                    return None
                self.packets.feed(data)
        return packet

    async def closed_by_server(self) -> bool:
        """Wait for the server to close, ignoring packets before that; True when it has."""
        while await self.read_packet() is not None:
            pass
        return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


@pytest.fixture
async def raw_clients() -> AsyncIterator[Callable[..., Any]]:
    """``await raw_clients(port, ...)``: a :class:`RawClient`, closed at teardown."""
    opened: list[RawClient] = []

    async def open_client(port: int, **options: Any) -> RawClient:
        client = await RawClient.open(port, **options)
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        await client.close()
