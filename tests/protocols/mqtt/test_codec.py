"""protocols.mqtt.codec: MQTT 3.1.1 framing (§2.2), data in, data out."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.mqtt.codec import (
    MAX_REMAINING_LENGTH,
    MalformedPacket,
    Packet,
    PacketReader,
    PacketTooLarge,
    decode_remaining_length,
    encode_remaining_length,
)


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
