"""Futures for packets a broker answers by packet id (PUBACK, SUBACK, UNSUBACK).

The bridge sends a packet through paho, which names it by its packet id; the answer
comes back in a paho callback with that id. :class:`AwaitedPackets` pairs the two, and
fails whatever is still waiting when the link goes down or closes, so no caller waits
for an answer that can no longer come.
"""

from __future__ import annotations

import asyncio


class AwaitedPackets:
    """Packet id -> the future its answer (a list of reason codes) resolves."""

    def __init__(self) -> None:
        self._futures: dict[int, asyncio.Future[list[int]]] = {}

    def __len__(self) -> int:
        return len(self._futures)

    def expect(self, packet_id: int) -> asyncio.Future[list[int]]:
        """A future for ``packet_id``'s answer."""
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._futures[packet_id] = future
        return future

    def answer(self, packet_id: int, codes: list[int]) -> None:
        """Resolve ``packet_id``'s future with ``codes``; an unknown id is ignored."""
        future = self._futures.pop(packet_id, None)
        if future is not None and not future.done():
            future.set_result(codes)

    def fail_all(self, error: BaseException) -> None:
        """Fail every future still waiting with ``error``."""
        waiting = list(self._futures.values())
        self._futures.clear()
        for future in waiting:
            if not future.done():
                future.set_exception(error)
