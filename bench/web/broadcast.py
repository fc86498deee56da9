"""Live-dashboard scale, every row in ONE run: ``.venv/bin/python -m bench.web.broadcast``.

Issue 17. Each server runs the same consumer (bench/web/broadcast_app.py: join the
group ``dash``, forward each group message to the socket) on its in-memory channel
layer; the ceiling is a bare ``websockets`` server calling ``websockets.broadcast``.
The server is pinned to CPU 0 and the clients (one process) to CPU 1.

1. **Broadcast**: ``--members`` sockets offering permessage-deflate as browsers do
   (``permessage-deflate; client_max_window_bits``), and one publisher socket sending
   ``--rate`` messages a second (a ~300-byte dashboard JSON carrying a sequence number
   and its send time on the shared monotonic clock). Per broadcast: the time until
   every member has it; per delivery: its latency; per member: nothing lost, nothing
   duplicated or reordered.
2. **Idle sockets**: ``--idle`` browser-like sockets (compression offered) opened 200
   at a time: server RSS growth per socket, and connections accepted per second.

Writes the tables to stdout (and ``--out``); bench/RESULTS.md keeps the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from bench.web.load import use_fast_loop
from bench.web.run import ROOT, Server, free_port

PYTHON = sys.executable
SERVER_CPU, CLIENT_CPU = 0, 1
APP = "bench.web.broadcast_app"
#: Chrome's and Firefox's offer.
OFFER = b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
MASK = b"\x12\x34\x56\x78"


def command(kind: str, port: int, limit: int) -> list[str]:
    if kind == "gateway":
        return [PYTHON, "-m", "gateway.cli", "--log-level", "warning", "web",
                f"{APP}:gateway_app", "--port", str(port), "--no-access-log",
                "--lifespan", "off", "--limit-concurrency", str(limit)]  # fmt: skip
    if kind == "uvicorn":
        return [PYTHON, "-m", "uvicorn", f"{APP}:channels_app", "--port", str(port),
                "--no-access-log", "--log-level", "warning", "--lifespan", "off",
                "--backlog", "4096"]  # fmt: skip
    if kind == "daphne":
        return [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "-v", "0",
                f"{APP}:channels_app"]  # fmt: skip
    if kind == "websockets":
        return [PYTHON, "-m", "bench.web.serve", "broadcast", str(port)]
    raise ValueError(kind)


class PinnedServer(Server):
    """A server process of ``kind`` pinned to :data:`SERVER_CPU`."""

    def __init__(self, kind: str, limit: int = 20_000) -> None:
        import subprocess

        self.kind = kind
        self.port = free_port()
        env = dict(
            os.environ, DJANGO_SETTINGS_MODULE="bench.web.broadcast_settings", PYTHONPATH=str(ROOT)
        )
        self.process = subprocess.Popen(
            command(kind, self.port, limit),
            cwd=ROOT,
            env=env,
            preexec_fn=lambda: os.sched_setaffinity(0, {SERVER_CPU}),
        )
        self.wait_listening(kind)


# -- the client side (one process on CLIENT_CPU) ---------------------------------------


def masked_text(payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        head = bytes([0x81, 0x80 | n])
    elif n < 65536:
        head = bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x81, 0x80 | 127]) + n.to_bytes(8, "big")
    return head + MASK + bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))


def masked_control(opcode: int, payload: bytes) -> bytes:
    return (
        bytes([0x80 | opcode, 0x80 | len(payload)])
        + MASK
        + bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    )


class Tally:
    """What every member saw: latencies per sequence number, losses and reorders."""

    def __init__(self) -> None:
        self.latencies: dict[int, list[float]] = {}
        self.reordered = 0
        self.duplicates = 0
        self.compressed = 0
        self.plain = 0
        self.bytes = 0


class Member(asyncio.Protocol):
    """A browser-like WebSocket client: offers permessage-deflate, answers Pings."""

    def __init__(self, tally: Tally, opened: asyncio.Future[bool], path: bytes) -> None:
        self.tally = tally
        self.opened = opened
        self.path = path
        self.buffer = bytearray()
        self.open = False
        self.last = -1
        self.seen: set[int] = set()
        self.decoder: Any = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(  # type: ignore[union-attr]
            b"GET " + self.path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n" + OFFER + b"\r\n"
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("closed during the handshake"))

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.open:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end]).lower()
            del buffer[: end + 4]
            if not head.startswith(b"http/1.1 101"):
                self.opened.set_exception(RuntimeError(f"refused: {head[:40]!r}"))
                return
            self.open = True
            self.opened.set_result(b"permessage-deflate" in head)
        while len(buffer) >= 2:
            first, length = buffer[0], buffer[1] & 0x7F
            offset = 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length, offset = int.from_bytes(buffer[2:4], "big"), 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length, offset = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < offset + length:
                return
            payload = bytes(buffer[offset : offset + length])
            del buffer[: offset + length]
            self.frame(first, payload)

    def frame(self, first: int, payload: bytes) -> None:
        opcode = first & 0x0F
        if opcode == 9:  # Ping
            assert self.transport is not None
            self.transport.write(masked_control(10, payload))
            return
        if opcode != 1:
            return
        tally = self.tally
        tally.bytes += len(payload)
        if first & 0x40:
            tally.compressed += 1
            if self.decoder is None:
                self.decoder = zlib.decompressobj(wbits=-15)
            payload = self.decoder.decompress(payload + b"\x00\x00\xff\xff")
        else:
            tally.plain += 1
        now = time.monotonic()
        message = json.loads(payload)
        seq = message["seq"]
        if seq in self.seen:
            tally.duplicates += 1
            return
        self.seen.add(seq)
        if seq >= 0:
            if seq < self.last:
                tally.reordered += 1
            self.last = seq
        tally.latencies.setdefault(seq, []).append(now - message["t"])


def dashboard_message(seq: int) -> bytes:
    """A live-dashboard update of about 300 bytes (JSON like project/iot's readings)."""
    readings = [
        {"device": f"boiler-{i}", "metric": "temperature", "value": 20 + (seq * 7 + i) % 10 / 3}
        for i in range(3)
    ]
    body = {"seq": seq, "t": time.monotonic(), "type": "iot.readings", "readings": readings}
    return json.dumps(body, separators=(",", ":")).encode()


async def open_members(
    loop: asyncio.AbstractEventLoop, port: int, count: int, tally: Tally, path: bytes
) -> tuple[list[Member], float, int]:
    """Open ``count`` members, 200 handshakes at a time: (members, seconds, compressed)."""
    gate = asyncio.Semaphore(200)
    members: list[Member] = []
    negotiated = 0

    async def one() -> None:
        nonlocal negotiated
        async with gate:
            opened: asyncio.Future[bool] = loop.create_future()
            member = Member(tally, opened, path)
            await loop.create_connection(lambda: member, "127.0.0.1", port)
            compressed = await asyncio.wait_for(opened, 60)
            negotiated += compressed
            members.append(member)

    start = time.monotonic()
    await asyncio.gather(*(one() for _ in range(count)))
    return members, time.monotonic() - start, negotiated


def broadcast_worker(
    kind: str, port: int, members: int, broadcasts: int, rate: float, drain: float
) -> dict[str, Any]:
    os.sched_setaffinity(0, {CLIENT_CPU})
    use_fast_loop()

    async def main() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        tally = Tally()
        opened, seconds, negotiated = await open_members(loop, port, members, tally, b"/ws")
        pub_path = b"/pub" if kind == "websockets" else b"/ws/pub"
        (publisher,), _, _ = await open_members(loop, port, 1, Tally(), pub_path)
        assert publisher.transport is not None

        async def all_have(seq: int, timeout: float) -> bool:
            deadline = time.monotonic() + timeout
            while len(tally.latencies.get(seq, ())) < members:
                if time.monotonic() > deadline:
                    return False
                await asyncio.sleep(0.02)  # a benchmark polls its own tally
            return True

        # Warm-up: a member counts once it has had a broadcast (the bare websockets
        # server adds a connection to its set only after the handshake).
        for warm in range(-1, -6, -1):
            publisher.transport.write(masked_text(dashboard_message(warm)))
            if await all_have(warm, max(drain, 10)):
                break
        else:
            raise RuntimeError(f"{kind}: members never all joined")
        tally.latencies = {}
        start = time.monotonic()
        for seq in range(broadcasts):
            await asyncio.sleep(max(0.0, start + seq / rate - time.monotonic()))
            publisher.transport.write(masked_text(dashboard_message(seq)))
        deadline = time.monotonic() + drain
        for seq in range(broadcasts):
            await all_have(seq, max(0.0, deadline - time.monotonic()))
        spreads = [max(tally.latencies.get(s, [float("nan")])) for s in range(broadcasts)]
        every = sorted(x for s in range(broadcasts) for x in tally.latencies.get(s, ()))
        delivered = len(every)
        for member in [*opened, publisher]:
            assert member.transport is not None
            member.transport.abort()
        return {
            "connect_s": seconds,
            "negotiated": negotiated,
            "expected": members * broadcasts,
            "delivered": delivered,
            "complete": sum(len(tally.latencies.get(s, ())) == members for s in range(broadcasts)),
            "all_have_ms": statistics.median(spreads) * 1000,
            "all_have_max_ms": max(spreads) * 1000,
            "p50_ms": every[len(every) // 2] * 1000 if every else float("nan"),
            "p99_ms": every[int(len(every) * 0.99)] * 1000 if every else float("nan"),
            "reordered": tally.reordered,
            "duplicates": tally.duplicates,
            "compressed": tally.compressed,
            "bytes_per_message": tally.bytes / max(1, tally.compressed + tally.plain),
        }

    return asyncio.run(main())


def idle_worker(port: int, count: int, results: Any, release: Any) -> None:
    os.sched_setaffinity(0, {CLIENT_CPU})
    use_fast_loop()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        members, seconds, negotiated = await open_members(loop, port, count, Tally(), b"/ws")
        results.put({"connect_s": seconds, "negotiated": negotiated})
        await asyncio.to_thread(release.wait)
        for member in members:
            assert member.transport is not None
            member.transport.abort()

    asyncio.run(main())


CTX = multiprocessing.get_context("spawn")


def in_process(target: Any, *args: Any) -> Any:
    with CTX.Pool(1) as pool:
        return pool.apply(target, args)


def measure_idle(server: PinnedServer, count: int) -> dict[str, Any]:
    results, release = CTX.Queue(), CTX.Event()
    time.sleep(0.5)
    base = server.rss()
    process = CTX.Process(target=idle_worker, args=(server.port, count, results, release))
    process.start()
    try:
        result: dict[str, Any] = results.get(timeout=300)
        time.sleep(1.0)  # accepted consumers settle
        loaded = server.rss()
    finally:
        release.set()
        process.join(60)
    result["kib_per_socket"] = (loaded - base) / count / 1024
    result["accept_per_s"] = count / result["connect_s"]
    return result


@dataclass
class Row:
    kind: str
    runs: list[dict[str, Any]] = field(default_factory=list)


LABELS = {
    "gateway": "gateway",
    "uvicorn": "uvicorn + Channels",
    "daphne": "daphne + Channels",
    "websockets": "bare `websockets` broadcast (ceiling, no compression)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--servers", default="gateway,websockets,uvicorn,daphne")
    parser.add_argument("--members", default="1000,3000", help="group sizes, comma-separated")
    parser.add_argument(
        "--anchor-members", type=int, default=1000, help="largest group for the Channels stacks"
    )
    parser.add_argument("--broadcasts", type=int, default=20)
    parser.add_argument("--anchor-broadcasts", type=int, default=4)
    parser.add_argument("--rate", type=float, default=4.0, help="broadcasts per second")
    parser.add_argument("--drain", type=float, default=30.0, help="seconds to wait for stragglers")
    parser.add_argument("--idle", type=int, default=10_000)
    parser.add_argument("--anchor-idle", type=int, default=2_000)
    parser.add_argument("--skip-idle", action="store_true")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    kinds = args.servers.split(",")
    sizes = [int(n) for n in args.members.split(",")]
    lines = [
        f"Command: `{' '.join(['.venv/bin/python', '-m', 'bench.web.broadcast', *sys.argv[1:]])}`, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the start",
        "",
        f"Broadcast: {args.rate:g} a second to one group; server on CPU {SERVER_CPU}, "
        f"clients on CPU {CLIENT_CPU}; members offer permessage-deflate.",
        "",
        "| server | members | broadcasts | delivered | all have it, median (max) ms "
        "| p50 / p99 ms | lost / dup / reordered | compressed | bytes/msg |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind in kinds:
        for size in sizes:
            anchor = kind in ("uvicorn", "daphne")
            if anchor and size > args.anchor_members:
                continue
            count = args.anchor_broadcasts if anchor else args.broadcasts
            server = PinnedServer(kind)
            try:
                r = in_process(
                    broadcast_worker, kind, server.port, size, count, args.rate, args.drain
                )
            finally:
                server.stop()
            lost = r["expected"] - r["delivered"]
            line = (
                f"| {LABELS[kind]} | {size:,} | {count} | {r['delivered']:,}/{r['expected']:,} "
                f"| {r['all_have_ms']:,.0f} ({r['all_have_max_ms']:,.0f}) "
                f"| {r['p50_ms']:,.0f} / {r['p99_ms']:,.0f} "
                f"| {lost} / {r['duplicates']} / {r['reordered']} "
                f"| {r['compressed']:,} | {r['bytes_per_message']:.0f} |"
            )
            print(line, flush=True)
            lines.append(line)
    if not args.skip_idle:
        lines += [
            "",
            "Idle browser-like sockets (permessage-deflate offered), opened 200 at a time:",
            "",
            "| server | sockets | KiB per socket | accepted per s | compression negotiated |",
            "|---|---:|---:|---:|---:|",
        ]
        for kind in kinds:
            count = args.anchor_idle if kind in ("uvicorn", "daphne") else args.idle
            server = PinnedServer(kind)
            try:
                r = measure_idle(server, count)
            finally:
                server.stop()
            line = (
                f"| {LABELS[kind]} | {count:,} | {r['kib_per_socket']:.1f} "
                f"| {r['accept_per_s']:,.0f} | {r['negotiated']:,} |"
            )
            print(line, flush=True)
            lines.append(line)
    text = "\n".join(lines) + "\n"
    if args.out:
        with open(args.out, "a") as out:
            out.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
