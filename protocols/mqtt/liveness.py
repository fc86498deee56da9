"""When each device of the embedded broker was last heard from, and why it is leaving.

amqtt does not enforce keep-alive (amqtt#308). MQTT 3.1.1 §3.1.2.10: "If the Keep
Alive value is non-zero and the Server does not receive a Control Packet from the
Client within one and a half times the Keep Alive time period, it MUST disconnect
the Network Connection"; closing it makes amqtt publish the device's Will
(§3.1.2.5). :class:`Liveness` keeps the times and answers whether a device is
overdue; the broker link's watchdog does the closing. It also remembers why a
connection is ending (a DISCONNECT, a takeover, the keep-alive), for the
``mqtt.presence`` event that reports it. Pure; time comes from an injected clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: How long past its keep-alive a device may stay silent (3.1.1 §3.1.2.10).
GRACE = 1.5
#: The reason of a connection that ended with none given (the network dropped it).
LOST = "lost"


class Liveness:
    """Last packet times and ending reasons of the connected devices, by client id."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._last_heard: dict[str, float] = {}
        self._end_reason: dict[str, str] = {}

    def connected(self, client_id: str) -> None:
        """``client_id`` connected: heard now, no ending reason yet."""
        self._last_heard[client_id] = self.clock()
        self._end_reason.pop(client_id, None)

    def heard(self, client_id: str) -> None:
        """A packet arrived from ``client_id``."""
        self._last_heard[client_id] = self.clock()

    def ending(self, client_id: str, reason: str) -> None:
        """``client_id``'s connection is ending, for ``reason``."""
        self._end_reason[client_id] = reason

    def overdue(self, client_id: str, keep_alive: int, now: float) -> bool:
        """Whether ``client_id`` has been silent past ``GRACE`` times its ``keep_alive``
        seconds at ``now`` (never with keep-alive 0, nor for a device never heard)."""
        heard = self._last_heard.get(client_id)
        return heard is not None and 0 < keep_alive * GRACE < now - heard

    def forget(self, client_id: str) -> None:
        """Stop watching ``client_id`` (its connection is being closed)."""
        self._last_heard.pop(client_id, None)

    def disconnected(self, client_id: str) -> str:
        """``client_id`` is gone: forget it; why it left (:data:`LOST` if nobody said)."""
        self._last_heard.pop(client_id, None)
        return self._end_reason.pop(client_id, LOST)
