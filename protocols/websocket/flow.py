"""Write-side flow control between an asyncio transport and ASGI ``send``.

asyncio calls ``pause_writing`` when the transport buffer passes its high-water mark;
ASGI senders then wait in :meth:`WriteFlow.drain` until it empties below the low-water
mark. A peer that reads nothing for ``timeout`` seconds is dropped, so a sender never
waits forever and a slow client costs at most one high-water mark of memory. Writes
that nobody awaits (Pongs, close frames) are bounded by ``limit``: beyond it the
connection is aborted.
"""

from __future__ import annotations

import asyncio

from protocols.websocket.errors import ClientDisconnected


class WriteFlow:
    __slots__ = ("_limit", "_lost", "_timeout", "_transport", "_waiter")

    def __init__(self, transport: asyncio.WriteTransport, timeout: float, limit: int) -> None:
        self._transport = transport
        self._timeout = timeout
        self._limit = limit
        self._waiter: asyncio.Future[None] | None = None
        self._lost = False

    @property
    def paused(self) -> bool:
        return self._waiter is not None

    def pause(self) -> None:
        if self._waiter is None:
            self._waiter = asyncio.get_running_loop().create_future()

    def resume(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def lost(self) -> None:
        """The connection is gone: wake every sender with :class:`ClientDisconnected`."""
        self._lost = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(ClientDisconnected("connection lost"))
            waiter.exception()  # retrieved here so an unawaited waiter is not reported

    def over_limit(self) -> bool:
        """Whether unawaited writes pushed the buffer past the hard limit."""
        return self._transport.get_write_buffer_size() > self._limit

    async def drain(self) -> None:
        """Wait until the peer has read enough; raise ClientDisconnected if it never does."""
        if self._lost:
            raise ClientDisconnected("connection lost")
        waiter = self._waiter
        if waiter is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self._timeout)
        except TimeoutError:
            self._transport.abort()
            raise ClientDisconnected(
                f"peer read nothing for {self._timeout:g}s; connection dropped"
            ) from None
