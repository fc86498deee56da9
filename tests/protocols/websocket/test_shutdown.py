"""Shutdown under traffic, through the process runner as SIGTERM drives it.

50 WebSockets carry large messages: 40 clients keep asking for 64 KiB replies, 10
never read while their applications push 256 KiB messages at them, so those are
stuck in ``send()`` behind full buffers. The runner stops the web
server alongside a service that lets go only once every reading client has its
1001: the web server's Close frames must go out at the start of shutdown (they came
last, after the other services, when services were stopped one after the other),
and the non-reading clients must not hold shutdown past its bound.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from gateway.types import Receive, Scope, Send
from protocols.runner import ServiceGroup
from protocols.service import Service
from protocols.websocket import Config, WebServer
from protocols.websocket.errors import ClientDisconnected

SOCKETS = 50
NOT_READING = 10
SHUTDOWN_TIMEOUT = 10.0  # protocols.runner.DEFAULT_SHUTDOWN_TIMEOUT
REPLY = b"r" * 64 * 1024
PUSH = b"p" * 256 * 1024
HANDSHAKE = (
    b"GET /push HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class Traffic:
    """``/push``: sends large messages until the socket closes; else a large reply to
    each message. Counts the instances that ended."""

    def __init__(self) -> None:
        self.ended = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        try:
            if scope["path"] == "/push":
                while True:
                    await send({"type": "websocket.send", "bytes": PUSH})
            while (await receive())["type"] == "websocket.receive":
                await send({"type": "websocket.send", "bytes": REPLY})
        except ClientDisconnected:
            pass
        self.ended += 1


class ReleasedByTest(Service):
    """A service whose stop ends only when the test says so (like a broker draining)."""

    name = "gate"

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def start(self) -> None:
        pass

    async def stop(self, timeout: float) -> None:
        await self.release.wait()


async def ask_until_closed(ws: ClientConnection) -> int | None:
    """Ask for replies and read them until the server closes; its close code."""
    try:
        while True:
            await ws.send("more")
            await ws.recv()
    except ConnectionClosed:
        pass
    return ws.close_code


async def test_sigterm_under_traffic_closes_websockets_with_1001_within_the_bound() -> None:
    app = Traffic()
    web = WebServer(app, Config(port=0, access_log=False, lifespan="off", ws_close_timeout=2.0))
    gate = ReleasedByTest()
    stop = asyncio.Event()
    runner = asyncio.ensure_future(
        ServiceGroup([web, gate]).serve(SHUTDOWN_TIMEOUT, stop_event=stop)
    )
    async with asyncio.timeout(10):
        while not web.sockets:  # noqa: ASYNC110 - ServiceGroup.serve exposes no started event
            await asyncio.sleep(0.01)
    port = web.port
    silent = [await asyncio.open_connection("127.0.0.1", port) for _ in range(NOT_READING)]
    for _, writer in silent:
        writer.write(HANDSHAKE)  # and never read: the server's buffers for them fill up
    readers = [await connect(f"ws://127.0.0.1:{port}/") for _ in range(SOCKETS - NOT_READING)]
    reading = [asyncio.ensure_future(ask_until_closed(ws)) for ws in readers]
    async with asyncio.timeout(10):
        while len(web.ctx.connections) < SOCKETS:  # noqa: ASYNC110 - no event for this
            await asyncio.sleep(0.01)

    started = time.monotonic()
    stop.set()  # what SIGTERM does
    async with asyncio.timeout(SHUTDOWN_TIMEOUT):
        codes = await asyncio.gather(*reading)
        gate.release.set()  # only now may the other service stop
        await runner
    elapsed = time.monotonic() - started

    assert codes == [1001] * (SOCKETS - NOT_READING)
    assert elapsed < SHUTDOWN_TIMEOUT
    assert not web.ctx.connections
    assert app.ended == SOCKETS  # every application returned
    for reader, writer in silent:  # dropped: whatever was buffered, then the end
        with suppress(ConnectionError):
            while await reader.read(1 << 20):
                pass
        writer.close()
    for ws in readers:
        await ws.close()
