"""Seeded fuzzing of the embedded broker's door over real sockets.

One *session* is what one connection sends: a CONNECT (valid, mutated or random
bytes), then a few packets, each valid, mutated (bits flipped, cut short,
stretched, its remaining length or first byte changed) or random. A *batch* runs
many sessions at once against the broker; after each batch a well-formed client
must still connect, subscribe, and get back what it publishes. Used by
tests/protocols/mqtt/test_fuzz.py (seconds) and bench/fuzz/mqtt.py (minutes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import traceback
from dataclasses import dataclass, field

from gateway.mqtt.codes import ReturnCode
from protocols.mqtt.codec import Packet, encode_remaining_length
from protocols.mqtt.connect import Connect, Will, connack, encode_connect

#: Well-formed packets a client may send after CONNECT (MQTT 3.1.1 §3).
VALID_AFTER_CONNECT = [
    b"\x30\x0d\x00\x05fuzz/hello!!",  # PUBLISH QoS 0
    b"\x32\x09\x00\x05fuzz/\x00\x07",  # PUBLISH QoS 1, no payload
    b"\x34\x0a\x00\x05fuzz/\x00\x08x",  # PUBLISH QoS 2
    b"\x82\x0a\x00\x01\x00\x05fuzz/\x01",  # SUBSCRIBE
    b"\xa2\x09\x00\x02\x00\x05fuzz/",  # UNSUBSCRIBE
    b"\x40\x02\x00\x01",  # PUBACK
    b"\x62\x02\x00\x08",  # PUBREL
    b"\xc0\x00",  # PINGREQ
]
DISCONNECT = b"\xe0\x00"


@dataclass
class Credentials:
    """Who fuzzing sessions log in as: anonymous, or a known device."""

    username: str | None = None
    password: bytes | None = None


def connects(credentials: Credentials, rng: random.Random) -> bytes:
    """A valid CONNECT, sometimes with a Will and a persistent session."""
    will = None
    if rng.random() < 0.3:
        will = Will("fuzz/will", rng.randbytes(rng.randrange(8)), rng.randrange(3))
    connect = Connect(
        f"fuzz-{rng.randrange(20)}",
        clean_session=rng.random() < 0.8,
        keepalive=rng.choice([0, 1, 60]),
        will=will,
        username=credentials.username,
        password=credentials.password,
    )
    return encode_connect(connect)


def mutate(data: bytes, rng: random.Random) -> bytes:
    """``data`` damaged one way or another."""
    how = rng.randrange(7)
    if how == 0 and data:  # flip a few bits
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
        return bytes(damaged)
    if how == 1:  # cut short
        return data[: rng.randrange(len(data) + 1)]
    if how == 2:  # stretched: junk appended inside the packet
        body = data[2:] + rng.randbytes(rng.randrange(1, 40))
        return Packet(data[0], body).to_bytes()
    if how == 3:  # a remaining length that lies (up to hundreds of megabytes)
        claimed = rng.choice([0, 1, 127, 128, 16_384, 2**21, 268_435_455])
        return data[:1] + encode_remaining_length(claimed) + data[2:]
    if how == 4:  # another packet type or flags
        return bytes([rng.randrange(256)]) + data[1:]
    if how == 5:  # a remaining length longer than four bytes (§2.2.3)
        return data[:1] + b"\xff\xff\xff\xff\x7f" + data[2:]
    return data + data  # twice


def session(logins: list[Credentials], rng: random.Random) -> list[bytes]:
    """What one connection sends, chunk by chunk, logging in as one of ``logins``."""
    credentials = rng.choice(logins)
    kind = rng.random()
    if kind < 0.1:
        first = rng.randbytes(rng.randrange(1, 64))
    elif kind < 0.4:
        first = mutate(connects(credentials, rng), rng)
    else:
        first = connects(credentials, rng)
    chunks = [first]
    for _ in range(rng.randrange(6)):
        packet = rng.choice(VALID_AFTER_CONNECT)
        roll = rng.random()
        if roll < 0.3:
            packet = mutate(packet, rng)
        elif roll < 0.4:
            packet = rng.randbytes(rng.randrange(1, 32))
        chunks.append(packet)
    if rng.random() < 0.3:
        chunks.append(DISCONNECT)
    return chunks


@dataclass
class Tally:
    """What the fuzzed sessions saw."""

    sessions: int = 0
    accepted: int = 0
    refused: int = 0
    closed_by_server: int = 0
    probes: int = 0
    codes: dict[int, int] = field(default_factory=dict)


async def run_session(port: int, chunks: list[bytes], tally: Tally, linger: float) -> None:
    """Send ``chunks``; read what comes for at most ``linger`` seconds; close."""
    tally.sessions += 1
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return
    try:
        for chunk in chunks:
            writer.write(chunk)
        with contextlib.suppress(OSError):
            await writer.drain()
        received = b""
        with contextlib.suppress(TimeoutError, OSError):
            async with asyncio.timeout(linger):
                while data := await reader.read(65536):
                    received += data
                tally.closed_by_server += 1
        if received[:1] == b"\x20" and len(received) >= 4:
            code = received[3]
            tally.codes[code] = tally.codes.get(code, 0) + 1
            tally.accepted += code == ReturnCode.ACCEPTED
            tally.refused += code != ReturnCode.ACCEPTED
    finally:
        writer.transport.abort()


async def probe(port: int, timeout: float) -> None:
    """A well-formed anonymous client: CONNECT, SUBSCRIBE, PUBLISH to itself, get it back."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(encode_connect(Connect("probe")))
            assert await reader.readexactly(4) == connack(ReturnCode.ACCEPTED)
            writer.write(b"\x82\x0b\x00\x01\x00\x06probe/\x00")  # SUBSCRIBE probe/ QoS 0
            assert await reader.readexactly(5) == b"\x90\x03\x00\x01\x00"  # SUBACK
            writer.write(b"\x30\x0a\x00\x06probe/ok")  # PUBLISH probe/ "ok"
            assert await reader.readexactly(12) == b"\x30\x0a\x00\x06probe/ok"
            writer.write(DISCONNECT)
            assert await reader.read() == b""
        finally:
            writer.transport.abort()


async def run_batch(
    port: int, logins: list[Credentials], rng: random.Random, tally: Tally, size: int, linger: float
) -> None:
    """``size`` sessions at once, then the probe (the broker must allow anonymous clients)."""
    sessions = [session(logins, rng) for _ in range(size)]
    await asyncio.gather(*(run_session(port, chunks, tally, linger) for chunks in sessions))
    await probe(port, timeout=10.0)
    tally.probes += 1


def amqtt_internal(record: logging.LogRecord) -> bool:
    """Whether an ERROR record is amqtt's own task failing, not gateway's code.

    amqtt 0.12 logs a traceback at ERROR when one of its tasks fails on a connection
    that died under it (a delivery whose subscriber vanished, a PUBACK cancelled with
    its connection, reported by asyncio as "Task exception was never retrieved"). The
    broker goes on serving; gateway cannot catch these, only count them apart.
    """
    if record.name.startswith("amqtt"):
        return True
    text = record.getMessage()
    if record.exc_info is not None:
        text += "".join(traceback.format_exception(*record.exc_info))
    return "site-packages/amqtt/" in text and "protocols/mqtt/" not in text
