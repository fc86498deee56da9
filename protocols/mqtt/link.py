"""What the MQTT server needs from a link to a broker, in either role.

The server (:mod:`protocols.mqtt.server`) owns routing, instances and ordering;
a link owns the wire: :class:`protocols.mqtt.bridge.BridgeLink` is a client of an
external broker, :class:`protocols.mqtt.broker.BrokerLink` embeds one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from gateway.mqtt.events import BrokerInfo, Incoming, LinkEvent, Publish, Role
from gateway.startup import Summary

#: Called once the message has reached its instance: sends the QoS 1 PUBACK (bridge).
Ack = Callable[[], None]


class LinkSink(Protocol):
    """The server, as a link sees it."""

    def deliver(self, incoming: Incoming, ack: Ack | None = None) -> None:
        """Queue a received message for routing (never blocks; may pause the link)."""

    def link_changed(self, event: LinkEvent) -> None:
        """The link went ``down`` or came ``up`` (an ``mqtt.link`` event)."""

    def presence(self, client_id: str, username: str | None, connected: bool, reason: str) -> None:
        """A device connected or went away (broker role)."""

    def wanted_filters(self) -> dict[str, int]:
        """Every filter that must be subscribed now (routes and dynamic subscriptions)."""


class Link(Protocol):
    role: Role
    mqtt_version: str
    broker_info: BrokerInfo
    #: Whether the link serves now: the bridge is connected, the embedded broker listens.
    connected: bool

    def open_connections(self) -> int:
        """MQTT connections held now: devices on the embedded broker, the bridge's one."""

    def describe(self, summary: Summary) -> None:
        """Where devices connect, and warnings for credentials at risk."""

    async def start(self, sink: LinkSink) -> None:
        """Connect (or listen) and subscribe ``sink.wanted_filters()``; raise if impossible."""

    async def stop(self) -> None: ...

    async def publish(self, message: Publish) -> asyncio.Future[list[int]] | None:
        """Queue ``message`` (waiting for room).

        With a ``request_id``, a future that completes with the broker's reason codes
        (or raises :class:`ConnectionError`); without one, None.
        """

    async def subscribe(self, filters: dict[str, int]) -> list[int]:
        """Subscribe now; the SUBACK reason codes."""

    async def unsubscribe(self, filters: list[str]) -> list[int]: ...

    def pause_reading(self) -> None:
        """Stop reading from the broker until :meth:`resume_reading` (backpressure)."""

    def resume_reading(self) -> None: ...
