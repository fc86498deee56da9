"""Seeded fuzz inputs for the doors of the web server, and batches that throw them at
a real server over 127.0.0.1 (used by the suite's fuzz tests and by ``bench/fuzz``).

Every input comes from a ``random.Random`` the caller seeds, so a failure is replayed
by its seed. Each input goes over its own connection: the client sends it, half-closes
(so a server waiting for more sees EOF at once), and reads until the server closes. A
*crash* is anything a server must never do whatever a client sends: log an ERROR (a
traceback above all), answer 500, or still hold the connection open after
:data:`HANG` seconds.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import logging
import random
import struct
import time
import tracemalloc
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field

#: Seconds the server has to close a connection after the client's EOF.
HANG = 5.0
#: Mutation bytes: the delimiters of HTTP and the bytes parsers trip on.
SPECIAL = b"\r\n\x00 :;,/?#%[]\t\x7f\x80\xff0129"


@dataclass
class Stats:
    """What a batch did: inputs sent, the server's answers, and crashes (described)."""

    inputs: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    crashes: list[str] = field(default_factory=list)

    def add(self, other: Stats) -> None:
        self.inputs += other.inputs
        self.statuses.update(other.statuses)
        self.crashes.extend(other.crashes)


class ErrorRecords(logging.Handler):
    """Collects every record at ERROR or above, and any record with a traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            self.records.append(record)

    def __enter__(self) -> ErrorRecords:
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeHandler(self)


# -- mutations --------------------------------------------------------------------------


def mutate(rnd: random.Random, data: bytes, rounds: int = 3) -> bytes:
    """Up to ``rounds`` random edits: flip a bit, insert a special byte, delete or
    duplicate a slice, truncate."""
    out = bytearray(data)
    for _ in range(rnd.randint(1, rounds)):
        if not out:
            out += rnd.randbytes(rnd.randint(1, 8))
            continue
        at = rnd.randrange(len(out))
        edit = rnd.randrange(5)
        if edit == 0:
            out[at] ^= 1 << rnd.randrange(8)
        elif edit == 1:
            out[at:at] = bytes([rnd.choice(SPECIAL)]) * rnd.choice((1, 1, 2, 100))
        elif edit == 2:
            del out[at : at + rnd.randint(1, 16)]
        elif edit == 3:
            out[at:at] = out[at : at + rnd.randint(1, 64)] * rnd.randint(2, 20)
        else:
            del out[at:]
    return bytes(out)


def _weird_text(rnd: random.Random) -> bytes:
    """A header value or path piece: usual, hostile, or random."""
    return rnd.choice(
        (
            b"x",
            b"",
            b" \t ",
            b"\xc2\xb2",  # "²": a digit to str.isdigit, not to int()
            "١٢٣".encode(),
            b"9" * rnd.choice((6, 20, 5000)),
            b"-1",
            b"[::1]:80",
            b"http://[/",
            b"%00%ff%zz",
            b"a, b, c",
            b"\x80\xfe",
            rnd.randbytes(rnd.randint(0, 40)).replace(b"\r", b"").replace(b"\n", b""),
        )
    )


# -- HTTP heads ---------------------------------------------------------------------------

METHODS = (b"GET", b"POST", b"HEAD", b"PUT", b"OPTIONS", b"DELETE", b"CONNECT", b"PRI", b"G\x00T")
TARGETS = (b"/", b"/a/b?c=d&e", b"/caf%C3%A9", b"*", b"http://h/p?q", b"http://[/", b"//x", b"/%")
VERSIONS = (b"HTTP/1.1",) * 6 + (b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.12", b"HTTX/1.1")
HEADER_NAMES = (
    b"Host",
    b"Content-Length",
    b"Transfer-Encoding",
    b"Expect",
    b"Connection",
    b"Upgrade",
    b"X-Forwarded-For",
    b"X-Forwarded-Proto",
    b"X-Forwarded-Port",
    b"Cookie",
    b"X-Custom",
)


def _body(rnd: random.Random, headers: list[bytes]) -> bytes:
    data = rnd.randbytes(rnd.choice((0, 1, 10, 1000)))
    framing = rnd.randrange(3)
    if framing == 0:
        headers.append(b"Content-Length: %d" % (len(data) + rnd.choice((0, 0, 0, -1, 5))))
        return data
    if framing == 1:
        headers.append(b"Transfer-Encoding: chunked")
        size = rnd.choice(
            (b"%x" % len(data), b"ffffffffffffffffff", b"-1", b"z", b"%x;ext=1" % len(data))
        )
        return size + b"\r\n" + data + b"\r\n0\r\n\r\n"
    return b""


USUAL_VALUES = (b"1", b"close", b"keep-alive", b"100-continue", b"websocket", b"10.0.0.1, 1.2.3.4")


def _value(rnd: random.Random) -> bytes:
    return _weird_text(rnd) if rnd.random() < 0.3 else rnd.choice(USUAL_VALUES)


def http_request(rnd: random.Random) -> bytes:
    """One request, valid or close to valid."""
    target = rnd.choice(TARGETS) + (_weird_text(rnd)[:8] if rnd.random() < 0.2 else b"")
    line = b" ".join(
        (
            rnd.choice(METHODS[:4]) if rnd.random() < 0.8 else rnd.choice(METHODS),
            target,
            rnd.choice(VERSIONS),
        )
    )
    headers = (
        [b"Host: " + (_weird_text(rnd) if rnd.random() < 0.1 else b"h:8000")]
        if rnd.random() < 0.9
        else []
    )
    for _ in range(rnd.choice((0, 1, 3, 8))):
        headers.append(rnd.choice(HEADER_NAMES) + b": " + _value(rnd))
    if rnd.random() < 0.05:
        headers.append(b"X-Fold: a\r\n  folded")  # obs-fold, RFC 9112 5.2
    body = _body(rnd, headers) if rnd.random() < 0.5 else b""
    return line + b"\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body


def http_input(rnd: random.Random) -> bytes:
    """A request, pipelined requests, a mutated request, or noise."""
    kind = rnd.random()
    if kind < 0.05:
        return rnd.randbytes(rnd.randint(1, 300))
    data = http_request(rnd)
    if kind < 0.15:
        data += http_request(rnd)
    return mutate(rnd, data) if kind > 0.5 else data


# -- WebSocket ---------------------------------------------------------------------------

KEY = base64.b64encode(b"0123456789abcdef")
EXTENSIONS = (
    b"",
    b"permessage-deflate",
    b"permessage-deflate; client_max_window_bits",
    b"permessage-deflate; client_no_context_takeover; server_no_context_takeover",
    b"permessage-deflate; client_max_window_bits=8",
)


def handshake(rnd: random.Random, path: bytes = b"/ws") -> bytes:
    extensions = rnd.choice(EXTENSIONS)
    head = (
        b"GET " + path + b" HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: "
        + KEY
        + b"\r\nSec-WebSocket-Version: 13\r\n"
        + (b"Sec-WebSocket-Extensions: " + extensions + b"\r\n" if extensions else b"")
        + b"\r\n"
    )
    return mutate(rnd, head) if rnd.random() < 0.1 else head


def frame(rnd: random.Random, opcode: int, payload: bytes, fin: bool = True, rsv: int = 0) -> bytes:
    """A client frame (RFC 6455 5.2), masked unless the dice say otherwise."""
    masked = rnd.random() < 0.95
    length = len(payload)
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    if length < 126 and rnd.random() < 0.9:
        head += bytes([masked << 7 | length])
    elif length < 65536 and rnd.random() < 0.9:
        head += bytes([masked << 7 | 126]) + struct.pack("!H", length)
    else:
        head += bytes([masked << 7 | 127]) + struct.pack("!Q", length)
    if not masked:
        return head + payload
    mask = rnd.randbytes(4)
    key = (mask * (length // 4 + 1))[:length]
    masked_payload = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(
        length, "big"
    )
    return head + mask + masked_payload


def _payload(rnd: random.Random, opcode: int) -> tuple[bytes, int]:
    """A payload for ``opcode`` and the RSV bits it needs (RSV1: compressed)."""
    if opcode == 8:
        code = rnd.choice((1000, 1001, 1005, 1006, 999, 4000, 5000, 65535))
        return struct.pack("!H", code) + rnd.choice((b"", b"bye", b"\xff\xfe")), 0
    text = rnd.choice(("hello", "é" * 50, "", "x" * 5000)).encode()
    data = rnd.choice((text, b"\xff\xfe\xfd", rnd.randbytes(rnd.randint(0, 2000)), b"\0" * 100_000))
    if rnd.random() < 0.3:
        compressor = zlib.compressobj(wbits=-15)
        deflated = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
        return deflated[:-4] if rnd.random() < 0.8 else deflated, 4
    return data, rnd.choice((0, 0, 0, 1, 2, 4))


def websocket_frames(rnd: random.Random) -> bytes:
    """A few frames: data, fragments, control frames (some broken), maybe mutated."""
    frames = []
    for _ in range(rnd.randint(1, 5)):
        opcode = rnd.choice((1, 2, 0, 8, 9, 10, 1, 2, 3, 11))
        payload, rsv = _payload(rnd, opcode)
        frames.append(frame(rnd, opcode, payload, fin=rnd.random() < 0.8, rsv=rsv))
    data = b"".join(frames)
    return mutate(rnd, data) if rnd.random() < 0.3 else data


# -- the Telegram webhook ----------------------------------------------------------------------


def _json_value(rnd: random.Random, depth: int = 0) -> object:
    kind = rnd.randrange(8 if depth < 4 else 4)
    if kind == 0:
        return rnd.choice((0, -1, 2**63, 1.5, True, None))
    if kind == 1:
        return rnd.choice(("", "hi", "/start x", "é"))
    if kind in (2, 3):
        return rnd.randint(-(2**40), 2**40)
    if kind in (4, 5):
        return {
            rnd.choice(
                ("id", "chat", "from", "text", "message_thread_id", "is_forum", "x")
            ): _json_value(rnd, depth + 1)
            for _ in range(rnd.randint(0, 4))
        }
    return [_json_value(rnd, depth + 1) for _ in range(rnd.randint(0, 3))]


def update_body(rnd: random.Random) -> bytes:
    """A JSON Update (some well-formed), or something that only looks like one."""
    kind = rnd.choice(
        ("message", "edited_message", "callback_query", "my_chat_member", "poll", "future_kind")
    )
    chat = {"id": rnd.randint(1, 8), "type": "private", "is_forum": rnd.random() < 0.2}
    payload = {"message_id": 1, "chat": chat, "from": {"id": 5}, "text": "hi"}
    if rnd.random() < 0.5:
        payload = _json_value(rnd, 1)  # type: ignore[assignment]
    update = {"update_id": rnd.choice((1, rnd.randint(0, 2**31), "7", None)), kind: payload}
    choice = rnd.random()
    if choice < 0.05:
        return b"[" * rnd.choice((1000, 100_000)) + b"]" * rnd.choice((0, 1000))
    if choice < 0.1:
        return b"1" * 5000
    if choice < 0.15:
        return rnd.randbytes(rnd.randint(0, 200))
    data = json.dumps(update).encode()
    return mutate(rnd, data) if choice < 0.4 else data


def webhook_request(rnd: random.Random, path: bytes, bot_id: bytes, secret: bytes) -> bytes:
    """A POST to the webhook: the bot's path or a strange one, with or without the secret."""
    target = (
        path
        + b"/"
        + rnd.choice(
            (bot_id, bot_id, bot_id, "١٢٣".encode(), b"9" * 5000, b"-1", b"", bot_id + b"/x")
        )
    )
    body = update_body(rnd)
    headers = [b"Host: h", b"Content-Type: application/json", b"Content-Length: %d" % len(body)]
    token = rnd.choice((secret, secret, secret, b"wrong", b"", b"\xff"))
    if token:
        headers.append(b"X-Telegram-Bot-Api-Secret-Token: " + token)
    method = rnd.choice((b"POST", b"POST", b"POST", b"GET"))
    head = method + b" " + target + b" HTTP/1.1\r\n" + b"".join(h + b"\r\n" for h in headers)
    return head + b"\r\n" + body


# -- sending ----------------------------------------------------------------------------------


def status_of(response: bytes) -> str:
    """``"200"`` … from a response, ``"ws"`` after a 101, ``"closed"`` with no answer."""
    if response.startswith(b"HTTP/1.1 101"):
        return "ws"
    if response.startswith(b"HTTP/1.1 "):
        return response[9:12].decode("latin-1")
    return "closed" if not response else "?"


async def exchange(port: int, data: bytes, then: bytes = b"") -> bytes:
    """Send ``data``, and ``then`` once a 101 came back (frames after a WebSocket
    handshake), half-close and read to EOF. Raises TimeoutError if the server holds
    the connection past HANG seconds after the client's EOF."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = b""
    try:
        writer.write(data)
        if then:
            with suppress(TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                async with asyncio.timeout(1.0):  # a head the server deems incomplete
                    received = await reader.readuntil(b"\r\n\r\n")
            if received.startswith(b"HTTP/1.1 101"):
                writer.write(then)
        with suppress(OSError):
            writer.write_eof()
        async with asyncio.timeout(HANG):
            with suppress(OSError):
                while chunk := await reader.read(65536):
                    received += chunk
    finally:
        writer.close()
        with suppress(OSError):
            await writer.wait_closed()
    return received


Make = Callable[[random.Random], tuple[bytes, bytes]]


async def batch(
    port: int, rnd: random.Random, count: int, make: Make, concurrency: int = 16
) -> Stats:
    """Send ``count`` inputs from ``make`` (data, then-data), ``concurrency`` at a time;
    count ERROR records, 500s and hangs as crashes."""
    stats = Stats()
    inputs = [make(rnd) for _ in range(count)]
    limit = asyncio.Semaphore(concurrency)

    async def one(data: bytes, then: bytes) -> None:
        async with limit:
            try:
                status = status_of(await exchange(port, data, then))
            except TimeoutError:
                status = "hang"
            except OSError:
                status = "reset"
            stats.inputs += 1
            stats.statuses[status] += 1
            if status in ("500", "hang"):
                stats.crashes.append(f"{status} for {data[:200]!r} + {then[:200]!r}")

    with ErrorRecords() as errors:
        await asyncio.gather(*(one(data, then) for data, then in inputs))
    stats.crashes.extend(
        f"logged: {r.name} {r.levelname} {r.getMessage()[:200]}" for r in errors.records
    )
    return stats


# -- campaigns ----------------------------------------------------------------------------------


@dataclass
class Report:
    """A campaign: batches of inputs, each followed by a well-formed client."""

    stats: Stats = field(default_factory=Stats)
    batches: int = 0
    unhealthy: int = 0  # batches after which the well-formed client failed
    #: Python memory still allocated after the campaign that was not before it (tracemalloc).
    memory_growth: int = 0
    seconds: float = 0.0


async def campaign(
    port: int,
    rnd: random.Random,
    make: Make,
    healthy: Callable[[], Awaitable[bool]],
    *,
    per_batch: int = 200,
    batches: int | None = None,
    seconds: float | None = None,
) -> Report:
    """Run ``batches`` batches (or as many as fit in ``seconds``) after one warm-up
    batch (caches, first log lines), checking ``healthy()`` after each one and how
    much memory the whole run kept."""
    await batch(port, rnd, per_batch, make)
    gc.collect()
    tracemalloc.start()
    report = Report()
    started = time.monotonic()
    try:
        while (batches is None or report.batches < batches) and (
            seconds is None or time.monotonic() - started < seconds
        ):
            report.stats.add(await batch(port, rnd, per_batch, make))
            report.batches += 1
            report.unhealthy += not await healthy()
        gc.collect()
        report.memory_growth = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    report.seconds = time.monotonic() - started
    return report
