"""What a client may send after its CONNECT (MQTT 3.1.1 §2, §3): pure, no I/O.

:func:`validate_packet` raises :class:`~protocols.mqtt.codec.MalformedPacket` for
any packet the embedded broker must not act on: a type a client never sends or a
second CONNECT (§3.1.0-2), fixed-header flags other than those §2.2.2 requires, a
PUBLISH with QoS 3 (§3.3.1-4), a DUP flag on QoS 0 (§3.3.1-2), a topic name that is
empty, has wildcards or bad UTF-8 (§3.3.2-2, §4.7.3, §1.5.3), a packet identifier
of 0 (§2.3.1-1), a SUBSCRIBE or UNSUBSCRIBE without a filter or with reserved bits
set (§3.8.3-3, §3.8.3-4, §3.10.3-2), or a body longer or shorter than its type
allows. The server closes the connection on any of them (§4.8).
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.topics import InvalidTopic, validate_topic_name
from protocols.mqtt.codec import Cursor, MalformedPacket, Packet, PacketType


def _publish(packet: Packet) -> None:
    qos = (packet.flags >> 1) & 0x03
    if qos == 3:
        raise MalformedPacket("PUBLISH: QoS 3 (§3.3.1-4)")
    if qos == 0 and packet.flags & 0x08:
        raise MalformedPacket("PUBLISH: DUP set on a QoS 0 message (§3.3.1-2)")
    fields = Cursor(packet.body, "PUBLISH")
    try:
        validate_topic_name(fields.string("topic name"))
    except InvalidTopic as exc:
        raise MalformedPacket(f"PUBLISH: {exc}") from None
    if qos:
        _packet_id(fields)


def _packet_id(fields: Cursor) -> None:
    if fields.u16("packet identifier") == 0:
        raise MalformedPacket(f"{fields.packet}: packet identifier 0 (§2.3.1-1)")


def _acknowledgement(packet: Packet) -> None:
    fields = Cursor(packet.body, PacketType(packet.type).name)
    _packet_id(fields)
    fields.expect_end()


def _filter_list(
    name: str, section: str, each: Callable[[Cursor], None] | None = None
) -> Callable[[Packet], None]:
    """The body check of a SUBSCRIBE or UNSUBSCRIBE: a packet identifier, then at
    least one topic filter (``section`` requires one), each followed by what ``each``
    reads."""

    def check(packet: Packet) -> None:
        fields = Cursor(packet.body, name)
        _packet_id(fields)
        if fields.at_end:
            raise MalformedPacket(f"{name}: no topic filter ({section})")
        while not fields.at_end:
            _topic_filter(fields)
            if each is not None:
                each(fields)

    return check


def _requested_qos(fields: Cursor) -> None:
    if fields.u8("requested QoS") > 2:
        raise MalformedPacket("SUBSCRIBE: a requested QoS above 2 or reserved bits (§3.8.3-4)")


def _topic_filter(fields: Cursor) -> None:
    if not fields.string("topic filter"):
        raise MalformedPacket(f"{fields.packet}: an empty topic filter (§4.7.3-1)")


def _empty(packet: Packet) -> None:
    if packet.body:
        name = PacketType(packet.type).name
        raise MalformedPacket(f"{name}: a remaining length of {len(packet.body)}, not 0")


#: Client-to-server packet types after CONNECT: (required flags, body check) (§2.2.2).
_RULES: dict[int, tuple[int | None, Callable[[Packet], None]]] = {
    PacketType.PUBLISH: (None, _publish),
    PacketType.PUBACK: (0, _acknowledgement),
    PacketType.PUBREC: (0, _acknowledgement),
    PacketType.PUBREL: (0b0010, _acknowledgement),
    PacketType.PUBCOMP: (0, _acknowledgement),
    PacketType.SUBSCRIBE: (0b0010, _filter_list("SUBSCRIBE", "§3.8.3-3", _requested_qos)),
    PacketType.UNSUBSCRIBE: (0b0010, _filter_list("UNSUBSCRIBE", "§3.10.3-2")),
    PacketType.PINGREQ: (0, _empty),
    PacketType.DISCONNECT: (0, _empty),
}


def validate_packet(packet: Packet) -> None:
    """Return if a client may send ``packet`` after CONNECT; else :class:`MalformedPacket`."""
    if packet.type == PacketType.CONNECT:
        raise MalformedPacket("a second CONNECT (§3.1.0-2)")
    rule = _RULES.get(packet.type)
    if rule is None:
        raise MalformedPacket(f"packet type {packet.type} is not one a client sends (§2.2.1)")
    flags, check = rule
    if flags is not None and packet.flags != flags:
        name = PacketType(packet.type).name
        raise MalformedPacket(f"{name}: flags {packet.flags:#06b}, not {flags:#06b} (§2.2.2)")
    check(packet)
