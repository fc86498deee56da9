"""CONNECT and CONNACK (MQTT 3.1.1 §3.1, §3.2): pure, no I/O.

:func:`parse_connect` checks everything §3.1 lets a server check before it
looks up a credential: the protocol name and level (§3.1.2.1, §3.1.2.2), the
connect flags (§3.1.2.3-§3.1.2.9), the payload fields in order and nothing after
them (§3.1.3), every string well-formed UTF-8 (§1.5.3) and the Will Topic a valid
topic name (§3.3.2.1, §4.7.3). :func:`encode_connect` is its inverse, used to hand
a checked CONNECT on and by test tools.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.mqtt.codes import ReturnCode
from gateway.topics import InvalidTopic, validate_topic_name
from protocols.mqtt.codec import (
    Cursor,
    MalformedPacket,
    Packet,
    PacketType,
    ProtocolViolation,
    encode_binary,
    encode_string,
)

#: The protocol level of MQTT 3.1.1 (§3.1.2.2); 3 is MQTT 3.1, 5 is MQTT 5.0.
PROTOCOL_LEVEL = 4
#: The protocol name MQTT 3.1 used (§3.1.2.1 of 3.1.1 names only "MQTT").
MQTT_31_NAME = "MQIsdp"

_RESERVED = 0x01
_CLEAN_SESSION = 0x02
_WILL = 0x04
_WILL_QOS = 0x18
_WILL_RETAIN = 0x20
_PASSWORD = 0x40
_USERNAME = 0x80


class UnsupportedProtocol(ProtocolViolation):
    """A CONNECT of an MQTT version other than 3.1.1: answer CONNACK 0x01, close (§3.1.2.2)."""

    def __init__(self, name: str, level: int) -> None:
        super().__init__(
            f"protocol {name!r} level {level} (this broker speaks MQTT 3.1.1, level 4)"
        )
        self.name = name
        self.level = level


@dataclass(frozen=True)
class Will:
    """The Will Message (§3.1.2.5): published by the server if the connection is lost."""

    topic: str
    message: bytes
    qos: int = 0
    retain: bool = False


@dataclass(frozen=True)
class Connect:
    """A well-formed MQTT 3.1.1 CONNECT; ``client_id`` may be empty (§3.1.3.1)."""

    client_id: str
    clean_session: bool = True
    keepalive: int = 0
    will: Will | None = None
    username: str | None = None
    password: bytes | None = None


def parse_connect(packet: Packet) -> Connect:
    """The CONNECT in ``packet``; :class:`UnsupportedProtocol` or :class:`MalformedPacket`."""
    if packet.type != PacketType.CONNECT:
        raise MalformedPacket(f"the first packet must be a CONNECT, not type {packet.type} (§3.1)")
    if packet.flags:
        raise MalformedPacket("CONNECT: its fixed header flags must be 0 (§2.2.2)")
    fields = Cursor(packet.body, "CONNECT")
    name = fields.string("protocol name")
    level = fields.u8("protocol level")
    if name == MQTT_31_NAME or (name == "MQTT" and level != PROTOCOL_LEVEL):
        raise UnsupportedProtocol(name, level)
    if name != "MQTT":
        raise MalformedPacket(f"CONNECT: unknown protocol name {name!r} (§3.1.2.1)")
    flags = fields.u8("connect flags")
    _check_flags(flags)
    keepalive = fields.u16("keep alive")
    client_id = fields.string("client identifier")
    will = None
    if flags & _WILL:
        will = Will(
            _will_topic(fields.string("will topic")),
            fields.binary("will message"),
            (flags & _WILL_QOS) >> 3,
            bool(flags & _WILL_RETAIN),
        )
    username = fields.string("user name") if flags & _USERNAME else None
    password = fields.binary("password") if flags & _PASSWORD else None
    fields.expect_end()
    return Connect(client_id, bool(flags & _CLEAN_SESSION), keepalive, will, username, password)


def _check_flags(flags: int) -> None:
    if flags & _RESERVED:
        raise MalformedPacket("CONNECT: the reserved flag must be 0 (§3.1.2.3)")
    if (flags & _WILL_QOS) >> 3 == 3:
        raise MalformedPacket("CONNECT: will QoS 3 (§3.1.2.6)")
    if not flags & _WILL and flags & (_WILL_QOS | _WILL_RETAIN):
        raise MalformedPacket("CONNECT: will QoS or retain without a will (§3.1.2.6, §3.1.2.7)")
    if flags & _PASSWORD and not flags & _USERNAME:
        raise MalformedPacket("CONNECT: a password without a user name (§3.1.2.9)")


def _will_topic(topic: str) -> str:
    try:
        return validate_topic_name(topic)
    except InvalidTopic as exc:
        raise MalformedPacket(f"CONNECT: will topic: {exc}") from None


def encode_connect(connect: Connect) -> bytes:
    """``connect`` as a whole packet, fixed header included."""
    flags = _CLEAN_SESSION if connect.clean_session else 0
    payload = encode_string(connect.client_id)
    if connect.will is not None:
        flags |= _WILL | connect.will.qos << 3 | (_WILL_RETAIN if connect.will.retain else 0)
        payload += encode_string(connect.will.topic) + encode_binary(connect.will.message)
    if connect.username is not None:
        flags |= _USERNAME
        payload += encode_string(connect.username)
    if connect.password is not None:
        flags |= _PASSWORD
        payload += encode_binary(connect.password)
    header = encode_string("MQTT") + bytes([PROTOCOL_LEVEL, flags])
    body = header + connect.keepalive.to_bytes(2, "big") + payload
    return Packet(PacketType.CONNECT << 4, body).to_bytes()


def connack(code: ReturnCode, session_present: bool = False) -> bytes:
    """A CONNACK; a refusal never claims a session (§3.2.2.2)."""
    present = session_present and code == ReturnCode.ACCEPTED
    return bytes([PacketType.CONNACK << 4, 2, int(present), code])
