"""A small HTTP/1.1 server on asyncio and h11, enough for the local Bot API server.

Keep-alive, request bodies up to :data:`MAX_BODY`, one request at a time per
connection (HTTP/1.1 without pipelining), a handler coroutine per request. Long
polls are simply handlers that take a while; :meth:`HttpServer.close` cancels them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import h11

logger = logging.getLogger("gateway.botapi")

#: Larger bodies get 413 (the Bot API accepts photos up to 10 MB).
MAX_BODY = 20 * 1024 * 1024


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


Handler = Callable[[Request], Awaitable[Response]]


class HttpServer:
    """Serve ``handler`` on ``host``:``port`` (0: an ephemeral port, see :attr:`port`)."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1", port: int = 0) -> None:
        self.handler = handler
        self.host = host
        self.requested_port = port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self.host, self.requested_port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and end every connection, in-flight requests included."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # always inside a task
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, h11.ProtocolError, asyncio.CancelledError):
            pass  # the client went away, or the server is closing
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        while True:
            try:
                request = await self._read_request(conn, reader)
            except h11.RemoteProtocolError as exc:  # malformed or oversized: answer, then close
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    status = exc.error_status_hint
                    writer.write(conn.send(h11.Response(status_code=status, headers=[])))
                    writer.write(conn.send(h11.EndOfMessage()))
                    await writer.drain()
                return
            if request is None:
                return
            try:
                response = await self.handler(request)
            except Exception:
                logger.exception("local Bot API server: handler failed for %s", request.method)
                response = Response(500, b'{"ok":false,"error_code":500,"description":"Internal"}')
            headers = [
                ("content-length", str(len(response.body))),
                *response.headers,
            ]
            # One write, so head and body leave in one segment and the client wakes once.
            head = conn.send(h11.Response(status_code=response.status, headers=headers))
            body = conn.send(h11.Data(data=response.body)) if response.body else b""
            writer.write(b"".join((head or b"", body or b"", conn.send(h11.EndOfMessage()) or b"")))
            await writer.drain()
            if conn.our_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()

    async def _read_request(
        self, conn: h11.Connection, reader: asyncio.StreamReader
    ) -> Request | None:
        head: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    raise h11.RemoteProtocolError("request body too large", 413)
            elif isinstance(event, h11.EndOfMessage) and head is not None:
                headers = {
                    name.decode("latin-1").lower(): value.decode("latin-1")
                    for name, value in head.headers
                }
                return Request(
                    head.method.decode("ascii"), head.target.decode("latin-1"), headers, bytes(body)
                )
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return None
