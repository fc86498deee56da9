"""One connection per Redis server carrying every non-blocking command: auto-pipelining.

Commands from all coroutines of an event loop are written to one connection as they
come, and one reader task hands each reply to the command that is oldest in flight
(Redis answers in order on a connection). Concurrent sends therefore share round
trips instead of each borrowing a pooled connection, and the per-command cost on the
client is a pack, a write and a future.

The reader is always reading, so a connection closed by the server (a Redis restart)
is noticed at once and replaced on the next command, never used stale. A command
waits at most ``command_timeout`` seconds for its reply; a timeout or a broken link
fails every command in flight with :class:`ChannelLayerUnavailable` and drops the
connection, so a hung Redis makes sends fail rather than hang. One timer per
connection watches the oldest command, instead of a timeout per command.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import Callable
from typing import Any

from hiredis import pack_command  # C packer: ~6x faster than redis-py's on long args
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.exceptions import ResponseError

from gateway.exceptions import ChannelLayerUnavailable

from .errors import UNREACHABLE, CommandNotSent


class Multiplexer:
    """Pipelines the commands of one event loop over one connection from ``pool``."""

    def __init__(
        self,
        pool: ConnectionPool,
        name: str,
        command_timeout: float,
        on_broken: Callable[[BaseException], None],
    ) -> None:
        self.pool = pool
        self.name = name
        self.command_timeout = command_timeout
        #: Told when the link breaks, even with no command in flight (a Redis restart).
        self.on_broken = on_broken
        self.closing = False
        self.connection: AbstractConnection | None = None
        self.in_flight: deque[asyncio.Future[Any]] = deque()
        self.reader: asyncio.Task[None] | None = None
        self.connecting: asyncio.Task[AbstractConnection] | None = None
        self.discarding: set[asyncio.Task[None]] = set()
        #: When each in-flight command was written (loop time), oldest first.
        self.sent_at: deque[float] = deque()
        self.watchdog: asyncio.TimerHandle | None = None
        self.pool_timeout: float | None = None

    async def execute(self, *args: Any) -> Any:
        """Send one command and return its reply (error replies are raised)."""
        connection = self.connection or await self._connect()
        while connection is not self.connection:  # failed while we waited for it
            connection = self.connection or await self._connect()
        # From here to the write nothing awaits, so replies stay in command order.
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Any] = loop.create_future()
        self.in_flight.append(reply)
        self.sent_at.append(loop.time())
        if self.watchdog is None:
            self.watchdog = loop.call_later(self.command_timeout, self._check_overdue)
        # Written to redis-py's stream directly: its send_packed_command drops the
        # connection when the wait for the write is cancelled, failing every command
        # in flight on it, while the command is already whole in the buffer.
        writer = connection._writer
        assert writer is not None  # connected: a failed connection is not self.connection
        try:
            writer.write(pack_command(args))
            await writer.drain()
        except UNREACHABLE as exc:
            self._fail(connection, exc)
        except asyncio.CancelledError:
            # Cancelled while Redis was slow to read: the command still goes out and
            # its reply comes in its turn, to nobody. The commands around it go on.
            reply.cancel()
            raise
        return await reply

    def _check_overdue(self) -> None:
        """Fail the connection if its oldest command has waited past the timeout."""
        self.watchdog = None
        if not self.sent_at or self.connection is None:
            return
        loop = asyncio.get_running_loop()
        overdue_at = self.sent_at[0] + self.command_timeout
        if loop.time() >= overdue_at:
            self._fail(self.connection, TimeoutError(f"no reply in {self.command_timeout} s"))
        else:
            self.watchdog = loop.call_later(overdue_at - loop.time(), self._check_overdue)

    async def _connect(self) -> AbstractConnection:
        if self.connecting is None:
            self.connecting = asyncio.ensure_future(self._open())
        try:
            return await asyncio.shield(self.connecting)
        finally:
            if self.connecting is not None and self.connecting.done():
                self.connecting = None

    async def _open(self) -> AbstractConnection:
        try:
            connection: AbstractConnection = await self.pool.get_connection()
        except UNREACHABLE as exc:
            raise CommandNotSent(f"Redis at {self.name} is unavailable: {exc}") from exc
        self.pool_timeout = connection.socket_timeout
        connection.socket_timeout = None  # command_timeout bounds each command instead
        self.connection = connection
        self.reader = asyncio.ensure_future(self._read(connection))
        return connection

    async def _read(self, connection: AbstractConnection) -> None:
        while True:
            try:
                response = await connection.read_response(timeout=math.inf)
            except ResponseError as error:
                response = error
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                self._fail(connection, exc)
                return
            if self.in_flight:
                self.sent_at.popleft()
                reply = self.in_flight.popleft()
                if not reply.done():
                    if isinstance(response, ResponseError):
                        reply.set_exception(response)
                    else:
                        reply.set_result(response)

    def _fail(self, connection: AbstractConnection, exc: BaseException) -> None:
        """Fail everything in flight on ``connection`` and stop using it."""
        if self.connection is not connection:
            return
        self.connection = None
        error = ChannelLayerUnavailable(f"Redis at {self.name} is unavailable: {exc}")
        self.sent_at.clear()
        while self.in_flight:
            reply = self.in_flight.popleft()
            if not reply.done():
                reply.set_exception(error)
        reader, self.reader = self.reader, None
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
        task = asyncio.ensure_future(self._discard(connection, reader))
        self.discarding.add(task)
        task.add_done_callback(self.discarding.discard)
        if not self.closing:
            self.on_broken(error)

    async def _discard(
        self, connection: AbstractConnection, reader: asyncio.Task[None] | None
    ) -> None:
        if reader is not None and reader is not asyncio.current_task():
            await asyncio.gather(reader, return_exceptions=True)
        with contextlib.suppress(Exception):
            await connection.disconnect()
        connection.socket_timeout = self.pool_timeout
        await self.pool.release(connection)

    async def aclose(self) -> None:
        self.closing = True
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        connection = self.connection
        if connection is not None:
            self._fail(connection, ConnectionError("layer closed"))
        if self.discarding:
            await asyncio.gather(*self.discarding, return_exceptions=True)
