"""The load generator: minimal raw-socket WebSocket and HTTP/1.1 clients.

Frames are precomputed (a fixed mask is fine for a benchmark), so a client costs a
write and a ``readexactly`` per message and the generator stays far from being the
bottleneck; the raw ``websockets`` echo server row shows its ceiling. Each worker is
a separate process running uvloop when available.
"""

from __future__ import annotations

import asyncio
import re
import time
from multiprocessing.synchronize import Barrier, Event

MASK = b"\x12\x34\x56\x78"
PAYLOAD = b"x" * 64
MASKED = bytes(b ^ MASK[i % 4] for i, b in enumerate(PAYLOAD))
TEXT_FRAME = b"\x81" + bytes([0x80 | len(PAYLOAD)]) + MASK + MASKED
ECHO_FRAME = b"\x81" + bytes([len(PAYLOAD)]) + PAYLOAD
HANDSHAKE = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
CONTENT_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


def use_fast_loop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def open_websocket(port: int) -> Stream:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    writer.write(HANDSHAKE)
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"handshake refused: {head[:60]!r}")
    return reader, writer


async def round_trip(stream: Stream) -> None:
    reader, writer = stream
    writer.write(TEXT_FRAME)
    frame = await reader.readexactly(len(ECHO_FRAME))
    if frame != ECHO_FRAME:
        raise RuntimeError(f"unexpected frame {frame[:8]!r}")


async def close_all(streams: list[Stream]) -> None:
    for _, writer in streams:
        writer.close()
    await asyncio.gather(*(w.wait_closed() for _, w in streams), return_exceptions=True)


def echo_worker(port: int, clients: int, messages: int, barrier: Barrier) -> tuple[float, float]:
    """Open ``clients`` WebSockets, wait for every worker, then ping-pong ``messages`` each."""
    use_fast_loop()

    async def main() -> tuple[float, float]:
        streams = [await open_websocket(port) for _ in range(clients)]
        await asyncio.to_thread(barrier.wait)
        start = time.monotonic()

        async def client(stream: Stream) -> None:
            for _ in range(messages):
                await round_trip(stream)

        await asyncio.gather(*(client(s) for s in streams))
        end = time.monotonic()
        await close_all(streams)
        return start, end

    return asyncio.run(main())


def latency_worker(port: int, messages: int) -> list[float]:
    use_fast_loop()

    async def main() -> list[float]:
        stream = await open_websocket(port)
        for _ in range(50):
            await round_trip(stream)  # warm-up
        samples = []
        for _ in range(messages):
            start = time.perf_counter()
            await round_trip(stream)
            samples.append(time.perf_counter() - start)
        await close_all([stream])
        return samples

    return asyncio.run(main())


def http_worker(port: int, path: str, connections: int, duration: float, barrier: Barrier) -> int:
    """Keep-alive GETs on ``connections`` connections for ``duration`` seconds."""
    use_fast_loop()
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()

    async def main() -> int:
        streams = [
            await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
            for _ in range(connections)
        ]
        await asyncio.to_thread(barrier.wait)
        deadline = time.monotonic() + duration
        done = 0

        async def client(stream: Stream) -> None:
            nonlocal done
            reader, writer = stream
            while time.monotonic() < deadline:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"unexpected response {head[:60]!r}")
                length = CONTENT_LENGTH.search(head)
                if length is not None:
                    await reader.readexactly(int(length.group(1)))
                else:  # chunked (Django's ASGI handler streams even small bodies)
                    while True:
                        size = int((await reader.readline()).split(b";")[0], 16)
                        await reader.readexactly(size + 2)
                        if size == 0:
                            break
                done += 1

        await asyncio.gather(*(client(s) for s in streams))
        await close_all(streams)
        return done

    return asyncio.run(main())


def idle_worker(port: int, connections: int, ready: Event, release: Event) -> int:
    """Open ``connections`` WebSockets and hold them, idle, until ``release``."""
    use_fast_loop()

    async def main() -> int:
        gate = asyncio.Semaphore(50)

        async def one() -> Stream:
            async with gate:
                return await open_websocket(port)

        streams = await asyncio.gather(*(one() for _ in range(connections)))
        ready.set()
        await asyncio.to_thread(release.wait)
        await close_all(list(streams))
        return len(streams)

    return asyncio.run(main())


def worker_main(results: object, index: int, name: str, args: tuple[object, ...]) -> None:
    """Process entry point: run ``name`` from this module and report its result."""
    result = globals()[name](*args)
    results.put((index, result))  # type: ignore[attr-defined]
