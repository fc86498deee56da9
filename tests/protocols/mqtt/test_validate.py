"""protocols.mqtt.validate: the packets a client may send after CONNECT, data in, data out."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.mqtt.codec import MalformedPacket, Packet, ProtocolViolation
from protocols.mqtt.connect import parse_connect
from protocols.mqtt.validate import validate_packet
from tests.protocols.mqtt.test_codec import packet


@pytest.mark.parametrize(
    "data",
    [
        b"\x30\x05\x00\x03a/b",  # PUBLISH QoS 0
        b"\x32\x07\x00\x03a/b\x00\x01",  # QoS 1 with a packet id
        b"\x40\x02\x00\x01",  # PUBACK
        b"\x62\x02\x00\x01",  # PUBREL (flags 0010)
        b"\x82\x08\x00\x01\x00\x03a/#\x01",  # SUBSCRIBE
        b"\xa2\x07\x00\x01\x00\x03a/#",  # UNSUBSCRIBE
        b"\xc0\x00",  # PINGREQ
        b"\xe0\x00",  # DISCONNECT
    ],
)
def test_valid_packets_after_connect(data: bytes) -> None:
    validate_packet(packet(data))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x10\x00", "second CONNECT"),
        (b"\x20\x02\x00\x00", "not one a client sends"),
        (b"\xf0\x00", "not one a client sends"),
        (b"\x36\x05\x00\x03a/b", "QoS 3"),
        (b"\x38\x05\x00\x03a/b", "DUP set on a QoS 0"),
        (b"\x30\x05\x00\x03a/+", "wildcard"),
        (b"\x30\x02\x00\x00", "must not be empty"),
        (b"\x32\x07\x00\x03a/b\x00\x00", "packet identifier 0"),
        (b"\x40\x03\x00\x01\x00", "unexpected byte"),
        (b"\x60\x02\x00\x01", "flags"),
        (b"\x82\x02\x00\x01", "no topic filter"),
        (b"\x82\x08\x00\x01\x00\x03a/#\x03", "requested QoS"),
        (b"\x82\x08\x00\x01\x00\x03a/#\x81", "requested QoS"),
        (b"\x82\x05\x00\x01\x00\x00\x00", "empty topic filter"),
        (b"\xa2\x02\x00\x01", "no topic filter"),
        (b"\xc0\x01\x00", "remaining length of 1"),
        (b"\xe2\x00", "flags"),
    ],
)
def test_invalid_packets_after_connect(data: bytes, reason: str) -> None:
    with pytest.raises(MalformedPacket, match=reason):
        validate_packet(packet(data))


@given(st.integers(0, 255), st.binary(max_size=64))
def test_any_packet_is_accepted_or_refused_as_a_protocol_violation(first: int, body: bytes) -> None:
    data = Packet(first, body)
    with contextlib.suppress(ProtocolViolation):
        validate_packet(data)
    with contextlib.suppress(ProtocolViolation):
        parse_connect(data)
