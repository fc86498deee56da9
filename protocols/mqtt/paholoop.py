"""paho-mqtt driven from an asyncio loop: the socket of one client, as paho's
external-loop callbacks intend.

paho parses and serialises MQTT; :class:`PahoSocket` only moves bytes for it. It
watches the current client's socket with ``add_reader``/``add_writer``, reads at
most :data:`READS_PER_WAKEUP` messages per wakeup (other tasks run in between),
stops reading while paused (backpressure: the broker's socket fills instead), moves
paho's socket callbacks from other threads (connecting runs in a worker thread)
onto the loop, and ignores those of a client that is no longer the current one.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho

#: Messages read from the socket per wakeup at the most.
READS_PER_WAKEUP = 64


class PahoSocket:
    """Moves the bytes of :attr:`client`, the current paho client (see the module docstring)."""

    def __init__(self) -> None:
        #: The current client; None between clients.
        self.client: paho.Client | None = None
        #: Messages read so far: the owner's ``on_message`` counts them, so that a
        #: wakeup reads on while reads bring messages.
        self.messages_read = 0
        #: Whether reading is paused (:meth:`pause`).
        self.paused = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._fd: int | None = None
        self._reading = False

    def start(self) -> None:
        """Drive clients from the running loop (its thread is the loop thread)."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()

    def attach(self, client: paho.Client) -> None:
        """Make ``client`` the current client and take over its socket callbacks."""
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        self.client = client

    def drop(self) -> None:
        """Close the current client's socket now and stop watching it."""
        if self.client is not None:
            # paho has no public "close now"; this closes the socket and calls _unwatch.
            self.client._sock_close()
        self._unwatch()

    def pause(self) -> None:
        self.paused = True
        self._apply_reading()

    def resume(self) -> None:
        self.paused = False
        self._apply_reading()

    def _in_loop(self, function: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        if threading.get_ident() == self._loop_thread:
            function(*args)
        else:
            self._loop.call_soon_threadsafe(function, *args)

    def _on_socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._watch, client, sock.fileno())

    def _on_socket_close(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._unwatch)

    def _on_register_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._want_write, client, True)

    def _on_unregister_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._want_write, client, False)

    def _watch(self, client: paho.Client, fd: int) -> None:
        if client is not self.client or fd < 0:
            return
        self._fd = fd
        self._apply_reading()
        if client.want_write():
            self._want_write(client, True)

    def _unwatch(self) -> None:
        assert self._loop is not None
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
            self._fd = None
            self._reading = False

    def _apply_reading(self) -> None:
        assert self._loop is not None
        if self._fd is None:
            return
        if self.paused and self._reading:
            self._loop.remove_reader(self._fd)
            self._reading = False
        elif not self.paused and not self._reading:
            self._loop.add_reader(self._fd, self._readable)
            self._reading = True

    def _want_write(self, client: paho.Client, wanted: bool) -> None:
        assert self._loop is not None
        if client is not self.client or self._fd is None:
            return
        if wanted:
            self._loop.add_writer(self._fd, self._writable)
        else:
            self._loop.remove_writer(self._fd)

    def _readable(self) -> None:
        client = self.client
        for _ in range(READS_PER_WAKEUP):
            if client is None or client is not self.client or self.paused:
                return
            before = self.messages_read
            client.loop_read()
            if self.messages_read == before:
                return

    def _writable(self) -> None:
        client = self.client
        if client is not None:
            client.loop_write()
