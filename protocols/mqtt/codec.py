"""MQTT 3.1.1 framing and fields: pure, no I/O.

Every control packet starts with a fixed header (MQTT 3.1.1 §2.2): one byte holding
the packet type and its flags, then the *remaining length*, the number of bytes
left in the packet, in a variable-length encoding of one to four bytes (§2.2.3).
:class:`PacketReader` cuts a byte stream into packets and refuses one whose
remaining length exceeds its maximum as soon as the length is known, before a
byte of the body is buffered. :class:`Cursor` reads the fields packets are made
of: big-endian 16-bit integers (§1.5.2), and UTF-8 strings and binary data
prefixed by their 16-bit length (§1.5.3).

Errors (all mean "close the connection", §4.8)::

    ProtocolViolation (ValueError)
     ├── MalformedPacket        the bytes break a rule of MQTT 3.1.1
     ├── PacketTooLarge         the remaining length exceeds the server's maximum
     └── UnsupportedProtocol    a CONNECT of another MQTT version (answer CONNACK 0x01
                                first, §3.1.2.2; defined in protocols.mqtt.connect)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

#: The largest remaining length the encoding can express (§2.2.3).
MAX_REMAINING_LENGTH = 268_435_455


class PacketType(IntEnum):
    """The high nibble of a packet's first byte (§2.2.1)."""

    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14


class ProtocolViolation(ValueError):
    """The peer broke MQTT 3.1.1: the server closes the connection (§4.8)."""


class MalformedPacket(ProtocolViolation):
    """The bytes are not a packet MQTT 3.1.1 allows here."""


class PacketTooLarge(ProtocolViolation):
    """The remaining length exceeds the server's maximum packet size."""


@dataclass(frozen=True)
class Packet:
    """One whole control packet: its first byte and its body (after the fixed header)."""

    first_byte: int
    body: bytes

    @property
    def type(self) -> int:
        return self.first_byte >> 4

    @property
    def flags(self) -> int:
        return self.first_byte & 0x0F

    def to_bytes(self) -> bytes:
        return bytes([self.first_byte]) + encode_remaining_length(len(self.body)) + self.body


def encode_remaining_length(length: int) -> bytes:
    """The variable-length encoding of ``length`` (§2.2.3)."""
    if not 0 <= length <= MAX_REMAINING_LENGTH:
        raise ValueError(f"a remaining length is 0 to {MAX_REMAINING_LENGTH}, not {length}")
    encoded = bytearray()
    while True:
        length, digit = divmod(length, 128)
        encoded.append(digit | (0x80 if length else 0))
        if not length:
            return bytes(encoded)


def decode_remaining_length(buffer: bytes | bytearray, start: int) -> tuple[int, int] | None:
    """The remaining length encoded at ``buffer[start:]`` and where it ends.

    None while the encoding is incomplete; :class:`MalformedPacket` when a fourth
    byte still has its continuation bit set (§2.2.3).
    """
    value = 0
    for index in range(4):
        if start + index >= len(buffer):
            return None
        digit = buffer[start + index]
        value += (digit & 0x7F) << (7 * index)
        if not digit & 0x80:
            return value, start + index + 1
    raise MalformedPacket("the remaining length takes more than four bytes (§2.2.3)")


class PacketReader:
    """Cuts a byte stream into packets: :meth:`feed` bytes, take :meth:`next_packet`.

    The buffer never holds more than one packet of at most ``max_remaining_length``
    body bytes plus what the last :meth:`feed` brought: a larger packet is refused
    from its fixed header alone.
    """

    def __init__(self, max_remaining_length: int = MAX_REMAINING_LENGTH) -> None:
        self.max_remaining_length = max_remaining_length
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next_packet(self) -> Packet | None:
        """The next whole packet, or None until more bytes arrive."""
        if not self._buffer:
            return None
        decoded = decode_remaining_length(self._buffer, 1)
        if decoded is None:
            return None
        length, body_start = decoded
        if length > self.max_remaining_length:
            raise PacketTooLarge(
                f"a packet of {length} bytes exceeds the maximum of {self.max_remaining_length}"
            )
        end = body_start + length
        if len(self._buffer) < end:
            return None
        packet = Packet(self._buffer[0], bytes(self._buffer[body_start:end]))
        del self._buffer[:end]
        return packet


class Cursor:
    """Reads the fields of one packet body in order; :class:`MalformedPacket` past its end."""

    def __init__(self, data: bytes, packet: str) -> None:
        self.data = data
        self.packet = packet
        self.position = 0

    def _take(self, size: int, what: str) -> bytes:
        end = self.position + size
        if end > len(self.data):
            raise MalformedPacket(f"{self.packet}: the packet ends inside its {what}")
        chunk = self.data[self.position : end]
        self.position = end
        return chunk

    def u8(self, what: str) -> int:
        return self._take(1, what)[0]

    def u16(self, what: str) -> int:
        return int.from_bytes(self._take(2, what), "big")

    def binary(self, what: str) -> bytes:
        """Length-prefixed binary data (§1.5.3 framing, any bytes)."""
        return self._take(self.u16(what), what)

    def string(self, what: str) -> str:
        """A UTF-8 encoded string: well-formed and without U+0000 (§1.5.3)."""
        raw = self.binary(what)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedPacket(f"{self.packet}: its {what} is not UTF-8 (§1.5.3)") from None
        if "\x00" in text:
            raise MalformedPacket(f"{self.packet}: its {what} contains U+0000 (§1.5.3)")
        return text

    @property
    def at_end(self) -> bool:
        return self.position == len(self.data)

    def expect_end(self) -> None:
        if not self.at_end:
            extra = len(self.data) - self.position
            raise MalformedPacket(f"{self.packet}: {extra} unexpected byte(s) at the end")


def encode_binary(data: bytes) -> bytes:
    if len(data) > 0xFFFF:
        raise ValueError(f"a field holds at most 65535 bytes, not {len(data)} (§1.5.3)")
    return len(data).to_bytes(2, "big") + data


def encode_string(text: str) -> bytes:
    return encode_binary(text.encode("utf-8"))
