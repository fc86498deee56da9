"""``connected_communicator``: a connected WebsocketCommunicator for one test.

Its ``receive_output`` leaves the application running on a timeout (the
library's tests read until a timeout, then go on using the connection), and
``receive_many_json_from`` reads frames until one does not come in time.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from channels.testing import WebsocketCommunicator


class Communicator(WebsocketCommunicator):
    async def receive_output(self, timeout=1):
        if self.future.done():
            self.future.result()
        try:
            return await asyncio.wait_for(self.output_queue.get(), timeout)
        except TimeoutError:
            if self.future.done():
                self.future.result()
            raise

    async def receive_many_json_from(self, timeout=1):
        """Every JSON frame sent until ``timeout`` seconds pass without one."""
        frames = []
        while True:
            try:
                frames.append(await self.receive_json_from(timeout))
            except TimeoutError:
                return frames


@asynccontextmanager
async def connected_communicator(consumer, path: str = "/testws/") -> AsyncIterator[Communicator]:
    communicator = Communicator(consumer, path)
    connected, _ = await communicator.connect()
    try:
        assert connected, "Failed to connect to WebSocket"
        yield communicator
    finally:
        await communicator.disconnect()
