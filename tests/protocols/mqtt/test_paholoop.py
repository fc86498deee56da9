"""protocols.mqtt.paholoop: a paho client's socket driven by the loop (a fake client)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any, cast

import paho.mqtt.client as paho

from protocols.mqtt.paholoop import READS_PER_WAKEUP, PahoSocket


class FakeClient:
    """What PahoSocket calls on a paho client; each byte read is a message."""

    def __init__(self, driver: PahoSocket, sock: socket.socket) -> None:
        self.driver = driver
        self.sock = sock
        self.reads = 0
        self.writes = 0
        self.on_socket_open: Any = None
        self.on_socket_close: Any = None
        self.on_socket_register_write: Any = None
        self.on_socket_unregister_write: Any = None

    def loop_read(self) -> None:
        self.reads += 1
        try:
            if self.sock.recv(1):
                self.driver.messages_read += 1
        except BlockingIOError:
            pass

    def loop_write(self) -> None:
        self.writes += 1

    def want_write(self) -> bool:
        return True


async def test_reads_while_messages_come_at_most_a_wakeups_worth_and_not_while_paused() -> None:
    driver = PahoSocket()
    driver.start()
    ours, broker = socket.socketpair()
    ours.setblocking(False)
    fake = FakeClient(driver, ours)
    client = cast(paho.Client, fake)
    driver.attach(client)
    try:
        fake.on_socket_open(client, None, ours)  # on the loop thread: at once
        await asyncio.sleep(0.01)
        assert fake.writes >= 1  # want_write: watched for writing
        fake.on_socket_unregister_write(client, None, ours)
        broker.send(b"m" * (READS_PER_WAKEUP + 10))
        await asyncio.sleep(0.05)
        # A wakeup reads on while reads bring messages, a wakeup's worth at the most,
        # and stops at a read without one: 64, then 10 and an empty read.
        assert fake.reads == READS_PER_WAKEUP + 11
        driver.pause()
        broker.send(b"m")
        await asyncio.sleep(0.05)
        assert fake.reads == READS_PER_WAKEUP + 11  # paused: the readable socket is not read
        driver.resume()
        await asyncio.sleep(0.05)
        assert fake.reads == READS_PER_WAKEUP + 13
        driver.attach(cast(paho.Client, FakeClient(driver, ours)))
        broker.send(b"m")  # a new client: the old one is no longer read
        await asyncio.sleep(0.05)
        assert fake.reads == READS_PER_WAKEUP + 13
        fake.on_socket_close(client, None, ours)
    finally:
        ours.close()
        broker.close()
