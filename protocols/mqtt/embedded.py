"""amqtt 0.12's broker with the faults gateway's tests and fuzzing found, fixed.

Each fix overrides one amqtt method or table (amqtt is pinned exactly, 0.12.1):

- :class:`_Subscriptions`: amqtt awaits (every topic check is a plugin call) while
  it iterates its subscription table to deliver a message, so a SUBSCRIBE or a
  session ending meanwhile raised "dictionary changed size during iteration" and lost
  the message for every subscriber;
- retained messages went, when a client connected, to it for every filter *any*
  client had subscribed to, past its ACL; now only for its own subscriptions;
- messages kept for a disconnected persistent session were unbounded, and each held
  its publisher's whole session object; now bounded, holding no session.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from amqtt.broker import Broker

from gateway.failure_log import FailureLog

logger = logging.getLogger("gateway.server.mqtt")

#: Messages kept per disconnected persistent session.
OFFLINE_QUEUE = 1000


class _Subscriptions(dict[str, list[tuple[Any, int]]]):
    """amqtt's subscription table, iterated over a snapshot (see the module docstring)."""

    def __iter__(self) -> Iterator[str]:
        return iter(list(super().__iter__()))

    def items(self) -> list[tuple[str, list[tuple[Any, int]]]]:  # type: ignore[override]
        return list(super().items())


class EmbeddedBroker(Broker):
    """amqtt 0.12's broker with the faults above fixed.

    At most :data:`OFFLINE_QUEUE` messages are kept for a disconnected persistent
    session (clean session 0, MQTT 3.1.1 §3.1.2.4: the QoS 1 and 2 messages it
    misses); past it the oldest is dropped, and counted in the log.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self._subscriptions = _Subscriptions()
        self.offline_queue = OFFLINE_QUEUE
        self._drops = FailureLog(logger, level=logging.WARNING)

    async def retain_message(
        self, source_session: Any, topic_name: str | None, data: Any, qos: int | None = None
    ) -> None:
        """As amqtt does, without keeping the publisher's session alive (nothing reads it)."""
        await super().retain_message(None, topic_name, data, qos)

    async def _retain_broadcast_message(
        self, broadcast: dict[str, Any], qos: int, target_session: Any
    ) -> None:
        """Keep a message for a disconnected session: at most ``offline_queue``, oldest out."""
        queue = target_session.retained_messages
        while queue.qsize() >= self.offline_queue:
            queue.get_nowait()
            self._drops.repeated(
                "offline queue full",
                f"client id {target_session.client_id!r} is away with {self.offline_queue} "
                "messages kept for it: the oldest was dropped",
            )
        await super()._retain_broadcast_message({**broadcast, "session": None}, qos, target_session)

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Any
    ) -> None:
        """Retained messages for a filter, only to a session subscribed to it.

        When a client connects, amqtt calls this for every filter *any* client has
        subscribed to, which sent it other devices' retained messages past its ACL.
        A session's own filters passed its subscribe ACL, which covers every topic
        they match, so what is sent here is what it may receive.
        """
        subscribers = self._subscriptions.get(subscription[0], [])
        if any(other.client_id == session.client_id for other, _ in subscribers):
            await super()._publish_retained_messages_for_subscription(subscription, session)
