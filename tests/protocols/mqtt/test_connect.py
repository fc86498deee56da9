"""protocols.mqtt.connect: CONNECT and CONNACK (MQTT 3.1.1 §3.1, §3.2), data in, data out."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.mqtt.codes import ReturnCode
from protocols.mqtt.codec import MalformedPacket, Packet
from protocols.mqtt.connect import (
    Connect,
    UnsupportedProtocol,
    Will,
    connack,
    encode_connect,
    parse_connect,
)
from tests.protocols.mqtt.test_codec import packet

CONNECT = Connect(
    "c1",
    clean_session=False,
    keepalive=30,
    will=Will("devices/d1/status", b"offline", 1, True),
    username="d1",
    password=b"\x00secret",
)


connects = st.builds(
    Connect,
    st.text(max_size=30).filter(lambda s: "\x00" not in s),
    st.booleans(),
    st.integers(0, 65535),
    st.none()
    | st.builds(
        Will,
        st.text("ab/$", min_size=1, max_size=20),
        st.binary(max_size=50),
        st.integers(0, 2),
        st.booleans(),
    ),
    st.none() | st.text(max_size=20).filter(lambda s: "\x00" not in s),
    st.none(),
)


def test_a_connect_round_trips() -> None:
    assert parse_connect(packet(encode_connect(CONNECT))) == CONNECT


@given(connects)
def test_any_connect_round_trips(connect: Connect) -> None:
    assert parse_connect(packet(encode_connect(connect))) == connect


def raw_connect(name: bytes, level: int, flags: int, payload: bytes = b"\x00\x00") -> bytes:
    body = len(name).to_bytes(2, "big") + name + bytes([level, flags, 0, 60]) + payload
    return Packet(0x10, body).to_bytes()


@pytest.mark.parametrize(("name", "level"), [(b"MQTT", 5), (b"MQTT", 3), (b"MQIsdp", 3)])
def test_other_protocol_versions_are_unsupported(name: bytes, level: int) -> None:
    # An MQTT 5 CONNECT has properties where 3.1.1 has the client id: never parsed.
    with pytest.raises(UnsupportedProtocol, match=f"level {level}"):
        parse_connect(packet(raw_connect(name, level, 0xC2, b"\x00\x00\x03abc")))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (raw_connect(b"MQTT", 4, 0x03), "reserved flag"),
        (raw_connect(b"MQTT", 4, 0x1C), "will QoS 3"),
        (raw_connect(b"MQTT", 4, 0x22), "without a will"),
        (raw_connect(b"MQTT", 4, 0x42), "password without a user name"),
        (raw_connect(b"HTTP", 4, 0x02), "unknown protocol name"),
        (raw_connect(b"MQTT", 4, 0x02, b"\x00\x02\xff\xfe"), "not UTF-8"),
        (raw_connect(b"MQTT", 4, 0x02, b"\x00\x01\x00"), "U\\+0000"),
        (raw_connect(b"MQTT", 4, 0x02, b"\x00\x00junk"), "unexpected byte"),
        (raw_connect(b"MQTT", 4, 0x82), "ends inside its user name"),
        (raw_connect(b"MQTT", 4, 0x06, b"\x00\x00\x00\x03a/+\x00\x00"), "wildcard"),
        (b"\x11\x00", "flags must be 0"),
        (b"\x30\x00", "first packet must be a CONNECT"),
    ],
)
def test_malformed_connects(data: bytes, reason: str) -> None:
    with pytest.raises(MalformedPacket, match=reason):
        parse_connect(packet(data))


def test_connack_never_claims_a_session_when_refusing() -> None:
    assert connack(ReturnCode.ACCEPTED, True) == b"\x20\x02\x01\x00"
    assert connack(ReturnCode.NOT_AUTHORIZED, True) == b"\x20\x02\x00\x05"
