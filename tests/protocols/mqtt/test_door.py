"""The embedded broker's door over real sockets: one regression test per defect it fixed.

Devices log in against a :class:`FakeDevices` store (the database path is covered by
test_broker and test_acl); everything else is the real broker on an ephemeral port.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.hashers import make_password

from gateway.devices.authenticator import DeviceAuthenticator, SlowLane
from gateway.devices.credentials import VerifiedPasswords, generate_token
from gateway.devices.limits import SourceLimits
from gateway.mqtt.codes import ReturnCode
from gateway.mqtt.events import Publish
from gateway.routing import TopicRouter, topic
from protocols.mqtt.codec import Packet, encode_remaining_length
from protocols.mqtt.connect import Connect, Will, connack, encode_connect
from protocols.mqtt.door import DoorLimits
from protocols.mqtt.server import MqttServer
from tests.protocols.mqtt.conftest import (
    WAIT,
    Device,
    Event,
    Recorder,
    next_event,
)
from tests.protocols.mqtt.fakes import FakeDevices

pytestmark = pytest.mark.mqtt

D1 = generate_token()
D2 = generate_token()
PINGREQ = b"\xc0\x00"
PINGRESP = Packet(0xD0, b"")


@pytest.fixture
def events() -> asyncio.Queue[Event]:
    return asyncio.Queue()


@pytest.fixture
def start(serve: Any, events: asyncio.Queue[Event]) -> Callable[..., Any]:
    """``await start(**BrokerLink options)``: the broker, devices d1 and d2 (tokens D1, D2)."""

    async def start_broker(**options: Any) -> MqttServer:
        from protocols.mqtt.broker import BrokerLink

        options.setdefault(
            "authenticator",
            DeviceAuthenticator(SlowLane(1), SourceLimits(100), FakeDevices(d1=D1, d2=D2)),
        )
        consumer = Recorder.as_asgi(events=events)
        application = TopicRouter([topic("$presence/<device_id>", consumer)])
        server: MqttServer = await serve(application, BrokerLink("127.0.0.1", 0, **options))
        return server

    return start_broker


def login(client_id: str, user: str | None, secret: str | None, **fields: Any) -> Connect:
    password = None if secret is None else secret.encode()
    return Connect(client_id, username=user, password=password, **fields)


async def presence(events: asyncio.Queue[Event], client_id: str) -> tuple[bool, str]:
    while True:
        event = await next_event(events, "presence")
        if event.data["client_id"] == client_id:
            return event.data["connected"], event.data["reason"]


async def test_a_will_outside_the_acl_is_refused_and_never_published(
    start: Any, raw_clients: Any, devices: Callable[..., Device], caplog: pytest.LogCaptureFixture
) -> None:
    server = await start()
    port = server.link.port
    victim = devices(port, "d2", username="d2", password=D2)
    await victim.connect()
    assert await victim.subscribe("devices/d2/commands") == [1]

    intruder = await raw_clients(port)
    will = Will("devices/d2/commands", b"reboot")
    answer = await intruder.connect(login("evil", "d1", D1, will=will))
    assert answer == connack(ReturnCode.NOT_AUTHORIZED)  # 3.1.1 §3.2.2.3: 0x05
    assert await intruder.closed_by_server()
    assert "Will outside its ACL" in caplog.text

    own = await raw_clients(port)  # a Will on its own topics is fine
    own_will = Will("devices/d1/status", b"offline")
    assert await own.connect(login("d1", "d1", D1, will=own_will)) == connack(ReturnCode.ACCEPTED)

    await server.link.publish(Publish("devices/d2/commands", b"marker", qos=1))
    assert (await victim.next_message()).payload == b"marker"  # no Will came first


async def test_another_identity_cannot_take_a_client_id(
    start: Any, raw_clients: Any, devices: Callable[..., Device]
) -> None:
    server = await start()
    port = server.link.port
    victim = devices(port, "shared", username="d1", password=D1)
    await victim.connect()
    assert await victim.subscribe("devices/d1/commands") == [1]

    intruder = await raw_clients(port)
    answer = await intruder.connect(login("shared", "d2", D2))
    assert answer == connack(ReturnCode.IDENTIFIER_REJECTED)  # §3.2.2.3: 0x02
    assert await intruder.closed_by_server()

    await server.link.publish(Publish("devices/d1/commands", b"still yours", qos=1))
    assert (await victim.next_message()).payload == b"still yours"


async def test_a_persistent_session_stays_its_owners(start: Any, raw_clients: Any) -> None:
    server = await start()
    port = server.link.port
    owner = await raw_clients(port)
    keep = login("keep", "d1", D1, clean_session=False)
    assert await owner.connect(keep) == connack(ReturnCode.ACCEPTED)
    owner.send(b"\xe0\x00")  # DISCONNECT: the session stays (§3.1.2.4)
    assert await owner.closed_by_server()

    intruder = await raw_clients(port)
    answer = await intruder.connect(login("keep", "d2", D2, clean_session=False))
    assert answer == connack(ReturnCode.IDENTIFIER_REJECTED)
    back = await raw_clients(port)
    assert await back.connect(keep) == connack(ReturnCode.ACCEPTED, session_present=True)


async def test_the_same_identity_takes_over_and_the_old_connection_is_closed(
    start: Any, raw_clients: Any, events: asyncio.Queue[Event], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "gateway.server.mqtt")
    server = await start()
    port = server.link.port
    first = await raw_clients(port)
    assert await first.connect(login("dev", "d1", D1)) == connack(ReturnCode.ACCEPTED)
    assert await presence(events, "dev") == (True, "connect")

    second = await raw_clients(port)
    assert await second.connect(login("dev", "d1", D1)) == connack(ReturnCode.ACCEPTED)
    assert await first.closed_by_server()  # §3.1.4-2: the earlier connection is closed
    assert await presence(events, "dev") == (False, "takeover")
    assert await presence(events, "dev") == (True, "connect")
    assert "closing its earlier connection" in caplog.text

    second.send(PINGREQ)
    assert await second.read_packet() == PINGRESP
    assert server.link.door.open == 1


async def test_a_connection_without_connect_is_closed_after_the_timeout(
    start: Any, raw_clients: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = await start(limits=DoorLimits(connect_timeout=0.2))
    silent = await raw_clients(server.link.port)
    slow = await raw_clients(server.link.port)
    slow.send(b"\x10\x20\x00\x04MQ")  # a CONNECT that never completes
    assert await silent.closed_by_server()
    assert await slow.closed_by_server()
    assert "no CONNECT within 0.2 s" in caplog.text


async def test_connections_beyond_the_maximum_are_closed_at_once(
    start: Any, raw_clients: Any
) -> None:
    server = await start(limits=DoorLimits(max_connections=2))
    first = await raw_clients(server.link.port)
    second = await raw_clients(server.link.port)
    first.send(PINGREQ)  # any bytes: the server has accepted both
    assert await first.closed_by_server()  # (not a CONNECT: closed, §3.1.0-1)
    third = await raw_clients(server.link.port)
    assert await second.connect(login("d2", "d2", D2)) == connack(ReturnCode.ACCEPTED)
    assert await third.connect(login("d1", "d1", D1)) == connack(ReturnCode.ACCEPTED)
    over = await raw_clients(server.link.port)
    assert await over.closed_by_server()
    assert server.link.door.open == 2


async def test_a_packet_over_the_maximum_is_refused_from_its_header(
    start: Any, raw_clients: Any, devices: Callable[..., Device], events: asyncio.Queue[Event]
) -> None:
    server = await start(limits=DoorLimits(max_packet_size=1024))
    port = server.link.port
    huge = await raw_clients(port)
    huge.send(b"\x10" + encode_remaining_length(2000))  # a CONNECT too large
    assert await huge.closed_by_server()

    watcher = devices(port, "w", username="d1", password=D1)
    await watcher.connect()
    await watcher.subscribe("devices/d1/status")
    device = await raw_clients(port)
    will = Will("devices/d1/status", b"gone")
    assert await device.connect(login("big", "d1", D1, will=will)) == connack(ReturnCode.ACCEPTED)
    device.send(b"\x30" + encode_remaining_length(50 * 1024 * 1024))  # 50 MB announced, not sent
    assert await device.closed_by_server()
    assert (await watcher.next_message()).payload == b"gone"  # closed as a protocol error
    assert await presence(events, "big") == (True, "connect")
    assert await presence(events, "big") == (False, "malformed")


def mqtt5_connect(username: bytes, password: bytes) -> bytes:
    """An MQTT 5.0 CONNECT (level 5, properties after the keep alive) with credentials."""
    body = b"\x00\x04MQTT\x05\xc2\x00\x3c\x00"  # name, level 5, flags, keep alive, no properties
    for field in (b"mqtt5-client", username, password):
        body += len(field).to_bytes(2, "big") + field
    return Packet(0x10, body).to_bytes()


@pytest.mark.parametrize(
    "data",
    [
        mqtt5_connect(b"d1", D1.encode()),
        Packet(0x10, b"\x00\x06MQIsdp\x03\x02\x00\x3c\x00\x02c1").to_bytes(),  # MQTT 3.1
    ],
    ids=["mqtt-5.0", "mqtt-3.1"],
)
async def test_other_protocol_versions_are_refused_at_once(
    data: bytes, start: Any, raw_clients: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = await start()
    client = await raw_clients(server.link.port)
    client.send(data)
    answer = await client.read_packet()
    assert answer is not None
    assert answer.to_bytes() == connack(ReturnCode.UNACCEPTABLE_PROTOCOL_VERSION)  # 0x01
    assert await client.closed_by_server()
    assert "this broker speaks MQTT 3.1.1" in caplog.text


async def test_a_paho_mqtt5_client_is_answered_at_once(
    start: Any, devices: Callable[..., Device]
) -> None:
    server = await start()
    device = devices(server.link.port, "v5", username="d1", password=D1, v5=True)
    reason = await device.connect()  # within WAIT, not paho's 60 s
    assert reason.is_failure


async def test_bytes_that_are_not_a_packet_close_the_connection(
    start: Any, raw_clients: Any, devices: Callable[..., Device], events: asyncio.Queue[Event]
) -> None:
    server = await start()
    port = server.link.port
    watcher = devices(port, "w", username="d1", password=D1)
    await watcher.connect()
    await watcher.subscribe("devices/d1/status")
    device = await raw_clients(port)
    will = Will("devices/d1/status", b"broken")
    assert await device.connect(login("junk", "d1", D1, will=will)) == connack(ReturnCode.ACCEPTED)
    device.send(b"\xf0\x00")  # reserved packet type 15 (§2.2.1)
    assert await device.closed_by_server()
    assert (await watcher.next_message()).payload == b"broken"
    assert await presence(events, "junk") == (True, "connect")
    assert await presence(events, "junk") == (False, "malformed")


async def test_client_ids_are_generated_or_refused(
    start: Any, raw_clients: Any, events: asyncio.Queue[Event]
) -> None:
    server = await start()
    port = server.link.port
    anonymous_id = await raw_clients(port)
    assert await anonymous_id.connect(login("", "d1", D1)) == connack(ReturnCode.ACCEPTED)
    connected = await next_event(events, "presence")
    assert connected.data["client_id"].startswith("auto-")  # §3.1.3-6
    for refused in (login("", "d1", D1, clean_session=False), login("a/b", "d1", D1)):
        client = await raw_clients(port)
        assert await client.connect(refused) == connack(ReturnCode.IDENTIFIER_REJECTED)


async def test_wrong_credentials_cannot_starve_right_ones(start: Any, raw_clients: Any) -> None:
    """Every slow-check slot taken by a flood: tokens still connect at once, a password
    from a fresh address is turned away at once, one from its usual address goes first
    (no password remembered as verified here: the reconnect needs the hasher)."""
    lane = SlowLane(1, per_source=1, total=1)
    store = FakeDevices(d1=D1, pw="a chosen password")
    authenticator = DeviceAuthenticator(lane, SourceLimits(100), store, VerifiedPasswords(0))
    server = await start(authenticator=authenticator)
    port = server.link.port
    person = login("pw", "pw", "a chosen password")
    usual = await raw_clients(port, source="127.0.0.6")
    assert await usual.connect(person) == connack(ReturnCode.ACCEPTED)  # 127.0.0.6 trusted now
    released = threading.Event()
    flood = [
        asyncio.create_task(lane.run(f"flood-{n}", lambda: released.wait(WAIT))) for n in range(2)
    ]
    try:
        await asyncio.sleep(0)  # one check running, one waiting: the lane is full
        device = await raw_clients(port, source="127.0.0.7")
        assert await device.connect(login("d1", "d1", D1)) == connack(ReturnCode.ACCEPTED)
        fresh = await raw_clients(port, source="127.0.0.5")
        assert await fresh.connect(person) == connack(ReturnCode.SERVER_UNAVAILABLE)
        again = await raw_clients(port, source="127.0.0.6")
        answer = asyncio.create_task(again.connect(person))  # queued ahead of the flood
        released.set()
        assert await answer == connack(ReturnCode.ACCEPTED)
    finally:
        released.set()
        async with asyncio.timeout(WAIT):
            await asyncio.gather(*flood)


async def test_a_password_verified_lately_connects_while_a_flood_holds_the_hasher(
    start: Any, raw_clients: Any
) -> None:
    """A device reconnecting with the password it logged in with is accepted while every
    slow-check slot is taken, from any address; a wrong password for it, or its old one
    after a change, still needs the hasher (from a fresh address: turned away at once,
    the lane is full), and once it is free the old one is refused, the new one taken."""
    lane = SlowLane(1, per_source=1, total=1)
    store = FakeDevices(pw="a chosen password")
    authenticator = DeviceAuthenticator(lane, SourceLimits(100), store)
    server = await start(authenticator=authenticator)
    port = server.link.port
    person = login("pw", "pw", "a chosen password")
    first = await raw_clients(port, source="127.0.0.8")
    assert await first.connect(person) == connack(ReturnCode.ACCEPTED)
    await first.close()
    released = threading.Event()
    flood = [
        asyncio.create_task(lane.run(f"flood-{n}", lambda: released.wait(WAIT))) for n in range(2)
    ]
    try:
        await asyncio.sleep(0)  # one check running, one waiting: the lane is full
        for source in ("127.0.0.8", "127.0.0.9"):  # its usual address, and a new one
            again = await raw_clients(port, source=source)
            assert await again.connect(person) == connack(ReturnCode.ACCEPTED)
            await again.close()
        guess = await raw_clients(port, source="127.0.0.10")
        wrong = login("pw", "pw", "a guessed password")
        assert await guess.connect(wrong) == connack(ReturnCode.SERVER_UNAVAILABLE)
        store.stored["pw"] = make_password("a new password")
        changed = await raw_clients(port, source="127.0.0.11")
        assert await changed.connect(person) == connack(ReturnCode.SERVER_UNAVAILABLE)
    finally:
        released.set()
        async with asyncio.timeout(WAIT):
            await asyncio.gather(*flood)
    old = await raw_clients(port, source="127.0.0.8")
    assert await old.connect(person) == connack(ReturnCode.BAD_USERNAME_OR_PASSWORD)
    new = await raw_clients(port, source="127.0.0.8")
    assert await new.connect(login("pw", "pw", "a new password")) == connack(ReturnCode.ACCEPTED)


async def test_an_address_past_its_failures_is_refused_unchecked(
    start: Any, raw_clients: Any
) -> None:
    store = FakeDevices(d1=D1)
    authenticator = DeviceAuthenticator(SlowLane(1), SourceLimits(2), store)
    server = await start(authenticator=authenticator)
    port = server.link.port
    for _ in range(2):
        client = await raw_clients(port, source="127.0.0.2")
        answer = await client.connect(login("d1", "d1", generate_token()))
        assert answer == connack(ReturnCode.BAD_USERNAME_OR_PASSWORD)
    lookups = store.lookups
    client = await raw_clients(port, source="127.0.0.2")
    assert await client.connect(login("d1", "d1", D1)) == connack(ReturnCode.SERVER_UNAVAILABLE)
    assert store.lookups == lookups
    other = await raw_clients(port, source="127.0.0.3")
    assert await other.connect(login("d1", "d1", D1)) == connack(ReturnCode.ACCEPTED)


async def test_the_broker_binds_loopback_unless_told_otherwise() -> None:
    from protocols.mqtt.broker import BrokerLink

    assert BrokerLink().host == "127.0.0.1"


async def test_a_device_gone_right_after_its_connect_is_not_left_connected(
    start: Any, raw_clients: Any, events: asyncio.Queue[Event]
) -> None:
    """amqtt misses an end of stream that comes before its handler has started: the
    connection must still end (presence, Will, client id free for the device again)."""
    server = await start(keepalive_check_interval=0.05)
    port = server.link.port
    for _ in range(3):
        hasty = await raw_clients(port)
        hasty.send(encode_connect(login("hasty", "d1", D1)))
        hasty.writer.transport.abort()  # gone before reading its CONNACK
        assert await presence(events, "hasty") == (True, "connect")
        assert await presence(events, "hasty") == (False, "lost")
    again = await raw_clients(port)
    assert await again.connect(login("hasty", "d1", D1)) == connack(ReturnCode.ACCEPTED)


async def test_a_failing_login_check_is_answered_server_unavailable(
    start: Any, raw_clients: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def database_down(username: str) -> Any:
        raise ConnectionError("the database is down")

    authenticator = DeviceAuthenticator(SlowLane(1), SourceLimits(100), database_down)
    server = await start(authenticator=authenticator)
    client = await raw_clients(server.link.port)
    assert await client.connect(login("d1", "d1", D1)) == connack(ReturnCode.SERVER_UNAVAILABLE)
    assert "MQTT login of 'd1' from 127.0.0.1 failed" in caplog.text
    assert "the database is down" in caplog.text


async def test_retained_messages_reach_only_their_subscribers(
    start: Any, raw_clients: Any, devices: Callable[..., Device]
) -> None:
    """amqtt sent a connecting client the retained messages of every filter any client
    had subscribed to, past its ACL; now only its own subscriptions' (found by fuzzing)."""
    server = await start()
    port = server.link.port
    owner = devices(port, "d2", username="d2", password=D2)
    await owner.connect()
    assert await owner.subscribe("devices/d2/commands") == [1]
    await owner.publish("devices/d2/commands", b"secret", qos=1)  # not retained: a marker
    assert (await owner.next_message()).payload == b"secret"
    owner.client.publish("devices/d2/commands", b"retained secret", qos=1, retain=True)
    assert (await owner.next_message()).payload == b"retained secret"

    other = await raw_clients(port)
    assert await other.connect(login("d1", "d1", D1)) == connack(ReturnCode.ACCEPTED)
    other.send(PINGREQ)
    assert await other.read_packet() == PINGRESP  # and nothing before it


async def test_websocket_clients_are_answered_too(
    start: Any, devices: Callable[..., Device]
) -> None:
    server = await start(ws_port=0)
    port = server.link.ws_port
    refused = devices(port, "ws-1", username="d1", password="wrong", transport="websockets")
    assert str(await refused.connect()) == "Bad user name or password"  # 0x04
    accepted = devices(port, "ws-2", username="d1", password=D1, transport="websockets")
    assert not (await accepted.connect()).is_failure


async def test_messages_kept_for_an_absent_device_are_bounded(
    start: Any,
    raw_clients: Any,
    devices: Callable[..., Device],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """amqtt kept every QoS 1/2 message for a disconnected persistent session; now the
    newest ``OFFLINE_QUEUE`` (found by fuzzing: memory grew without bound)."""
    from protocols.mqtt import embedded

    monkeypatch.setattr(embedded, "OFFLINE_QUEUE", 3)
    server = await start()
    port = server.link.port
    away = await raw_clients(port)
    keep = login("away", "d1", D1, clean_session=False)
    assert await away.connect(keep) == connack(ReturnCode.ACCEPTED)
    away.send(b"\x82\x13\x00\x01\x00\x0edevices/d1/box\x01")  # SUBSCRIBE devices/d1/box QoS 1
    assert await away.read_packet() == Packet(0x90, b"\x00\x01\x01")
    away.send(b"\xe0\x00")  # DISCONNECT: the session stays
    assert await away.closed_by_server()

    watcher = devices(port, "watcher", username="d2", password=D2)
    await watcher.connect()
    await watcher.subscribe("devices/d2/done")
    for n in range(5):
        await server.link.publish(Publish("devices/d1/box", b"%d" % n, qos=1))
    await server.link.publish(Publish("devices/d2/done", b"", qos=1))
    await watcher.next_message()  # every publish before it has been handled

    back = await raw_clients(port)
    assert await back.connect(keep) == connack(ReturnCode.ACCEPTED, session_present=True)
    payloads = []
    for _ in range(3):
        publish = await back.read_packet()
        assert publish is not None
        topic_length = int.from_bytes(publish.body[:2], "big")
        packet_id = publish.body[2 + topic_length : 4 + topic_length]
        payloads.append(publish.body[4 + topic_length :])
        back.send(b"\x40\x02" + packet_id)  # PUBACK
    assert sorted(payloads) == [b"2", b"3", b"4"]
    assert "the oldest was dropped" in caplog.text


async def test_a_session_amqtt_cannot_close_does_not_hold_the_broker_s_shutdown(
    start: Any, raw_clients: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """amqtt's shutdown closes its sessions one by one, each once its reader task has
    ended after a cancellation. Python 3.11's ``wait_for`` loses that cancellation when
    the read completes at the same moment, and the reader goes on reading: SIGTERM
    while devices published held the broker until the process's bound cancelled it
    (11-12 s of a 10 s bound, a traceback per pending task). The lost cancellation is
    made certain here; the broker's connections are aborted after a grace instead."""
    from amqtt.mqtt.protocol.handler import ProtocolHandler

    from protocols.mqtt import broker

    stop = ProtocolHandler.stop

    async def stop_losing_the_cancellation(self: ProtocolHandler) -> None:
        await self._reader_stopped.wait()  # the reader ends only with its stream
        await stop(self)

    server = await start()
    device = await raw_clients(server.link.port)
    assert await device.connect(login("busy", "d1", D1)) == connack(ReturnCode.ACCEPTED)
    monkeypatch.setattr(ProtocolHandler, "stop", stop_losing_the_cancellation)

    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(broker.SHUTDOWN_GRACE + WAIT):
        await server.stop(2.0)
    assert loop.time() - started < broker.SHUTDOWN_GRACE * 3
    assert await device.closed_by_server()
    assert "1 connection(s) aborted" in caplog.text
