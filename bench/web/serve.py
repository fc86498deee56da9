"""Run one reference server in this process: ``python -m bench.web.serve KIND PORT``.

KIND is ``websockets`` (a bare websockets echo server), ``broadcast`` (a bare
websockets server where every connection but ``/pub`` is a member and each message
``/pub`` sends goes to all members through ``websockets.broadcast``: the ceiling of
bench/web/broadcast.py) or ``frames`` (no WebSocket
code at all: answers each client frame with the precomputed echo frame, so it
measures only the load generator and the sockets — the true ceiling). gateway,
uvicorn and daphne run from their own command lines (see run.py), as users run them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys

from bench.web.load import ECHO_FRAME, TEXT_FRAME


async def serve_websockets(port: int) -> None:
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.exceptions import ConnectionClosed

    async def echo(connection: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):  # the load generator just hangs up
            async for message in connection:
                await connection.send(message)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with serve(echo, "127.0.0.1", port, compression=None):
        await stop.wait()


async def serve_broadcast(port: int) -> None:
    from websockets.asyncio.server import ServerConnection, broadcast, serve
    from websockets.exceptions import ConnectionClosed

    members: set[ServerConnection] = set()

    async def handler(connection: ServerConnection) -> None:
        if connection.request is not None and connection.request.path == "/pub":
            with contextlib.suppress(ConnectionClosed):
                async for message in connection:
                    broadcast(members, message)
            return
        members.add(connection)
        try:
            await connection.wait_closed()
        finally:
            members.discard(connection)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with serve(handler, "127.0.0.1", port, compression=None, backlog=4096):
        await stop.wait()


class FrameEcho(asyncio.Protocol):
    """Answers the handshake with a canned 101, then each 70-byte client frame with
    the 66-byte echo frame: the cost of the load generator and the kernel, nothing else."""

    def __init__(self) -> None:
        self.buffer = b""
        self.open = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        if not self.open:
            head, found, self.buffer = self.buffer.partition(b"\r\n\r\n")
            if not found:
                self.buffer = head
                return
            self.open = True
            self.transport.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
            )
        frames, rest = divmod(len(self.buffer), len(TEXT_FRAME))
        if frames:
            self.buffer = self.buffer[len(self.buffer) - rest :]
            self.transport.write(ECHO_FRAME * frames)


async def serve_frames(port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    server = await loop.create_server(FrameEcho, "127.0.0.1", port)
    async with server:
        await stop.wait()


def main() -> None:
    kind, port_text = sys.argv[1:3]
    port = int(port_text)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("websockets.server").setLevel(logging.CRITICAL)  # the start-up probe
    if kind == "websockets":
        asyncio.run(serve_websockets(port))
    elif kind == "broadcast":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        asyncio.run(serve_broadcast(port))
    elif kind == "frames":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        asyncio.run(serve_frames(port))
    else:
        raise SystemExit(f"unknown server kind {kind!r}")


if __name__ == "__main__":
    main()
