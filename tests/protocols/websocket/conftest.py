"""Servers on ephemeral ports of 127.0.0.1 and small clients for the web server tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from typing import Any

import pytest

from gateway.types import ASGIApp
from protocols.websocket import Config, WebServer

Serve = Callable[..., AbstractAsyncContextManager[WebServer]]


@asynccontextmanager
async def running(app: ASGIApp, **options: Any) -> AsyncIterator[WebServer]:
    """A WebServer for ``app`` on an ephemeral port, stopped (gracefully) afterwards."""
    options.setdefault("access_log", False)
    options.setdefault("lifespan", "off")
    server = WebServer(app, Config(port=0, **options))
    await server.start()
    try:
        yield server
    finally:
        await server.stop(5.0)


@pytest.fixture
def serve() -> Serve:
    return running


class RawClient:
    """A plain TCP client for what no well-behaved HTTP library would send."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_head(self) -> tuple[int, dict[str, str]]:
        """Read one response head: the status and lower-cased headers."""
        async with asyncio.timeout(5):
            raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        return status, headers

    async def read_response(self) -> tuple[int, dict[str, str], bytes]:
        status, headers = await self.read_head()
        async with asyncio.timeout(5):
            if "content-length" in headers:
                body = await self.reader.readexactly(int(headers["content-length"]))
            elif headers.get("transfer-encoding") == "chunked":
                body = b""
                while True:
                    size = int((await self.reader.readline()).strip(), 16)
                    chunk = await self.reader.readexactly(size + 2)
                    if size == 0:
                        break
                    body += chunk[:-2]
            else:
                body = await self.reader.read()
        return status, headers, body

    async def at_eof(self) -> bool:
        """Whether the server closes the connection (read until EOF, 5 s at most)."""
        async with asyncio.timeout(5):
            while await self.reader.read(65536):
                pass
        return True

    async def close(self) -> None:
        self.writer.close()
        with suppress(OSError):
            await self.writer.wait_closed()


@asynccontextmanager
async def raw(port: int) -> AsyncIterator[RawClient]:
    client = await RawClient.connect(port)
    try:
        yield client
    finally:
        await client.close()


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll a condition the server exposes no event for (a buffer filling up)."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - the server has no event for this
            await asyncio.sleep(0.005)


async def read_body(receive: Callable[[], Awaitable[dict[str, Any]]]) -> bytes:
    body = b""
    while True:
        message = await receive()
        chunk: bytes = message.get("body", b"")
        body += chunk
        if not message.get("more_body", False):
            return body
