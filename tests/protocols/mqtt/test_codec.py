"""protocols.mqtt codec, connect and validate: MQTT 3.1.1 framing, data in, data out."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.mqtt.codec import (
    MAX_REMAINING_LENGTH,
    MalformedPacket,
    Packet,
    PacketReader,
    PacketTooLarge,
    ProtocolViolation,
    decode_remaining_length,
    encode_remaining_length,
)
from protocols.mqtt.connect import (
    Connect,
    ReturnCode,
    UnsupportedProtocol,
    Will,
    connack,
    encode_connect,
    parse_connect,
)
from protocols.mqtt.validate import validate_packet


def packet(data: bytes) -> Packet:
    reader = PacketReader()
    reader.feed(data)
    found = reader.next_packet()
    assert found is not None
    assert reader.buffered == 0
    return found


@pytest.mark.parametrize(
    ("length", "encoded"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16_383, b"\xff\x7f"),
        (16_384, b"\x80\x80\x01"),
        (MAX_REMAINING_LENGTH, b"\xff\xff\xff\x7f"),  # §2.2.3's table
    ],
)
def test_remaining_length_encoding(length: int, encoded: bytes) -> None:
    assert encode_remaining_length(length) == encoded
    assert decode_remaining_length(encoded, 0) == (length, len(encoded))


def test_remaining_length_of_five_bytes_is_malformed() -> None:
    with pytest.raises(MalformedPacket, match="four bytes"):
        decode_remaining_length(b"\xff\xff\xff\xff\x01", 0)
    assert decode_remaining_length(b"\xff\xff", 0) is None  # incomplete
    with pytest.raises(ValueError, match="remaining length"):
        encode_remaining_length(MAX_REMAINING_LENGTH + 1)


@given(st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=300)), max_size=8), st.data())
def test_packets_survive_any_split_of_the_stream(
    packets: list[tuple[int, bytes]], data: st.DataObject
) -> None:
    stream = b"".join(Packet(first, body).to_bytes() for first, body in packets)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    reader = PacketReader()
    found = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        reader.feed(stream[start:end])
        while (next_packet := reader.next_packet()) is not None:
            found.append((next_packet.first_byte, next_packet.body))
    assert found == packets
    assert reader.buffered == 0


def test_a_large_packet_is_refused_from_its_fixed_header() -> None:
    reader = PacketReader(max_remaining_length=1024)
    reader.feed(b"\x30" + encode_remaining_length(50 * 1024 * 1024))  # no body sent
    with pytest.raises(PacketTooLarge, match="52428800 bytes exceeds the maximum of 1024"):
        reader.next_packet()
    assert reader.buffered == 5


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
