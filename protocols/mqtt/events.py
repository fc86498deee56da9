"""MQTT ⇄ ASGI translation for the ``mqtt`` spec (docs/specs/mqtt.md): pure, no I/O.

Incoming messages become scopes and ``mqtt.*`` events; what an application sends
back is validated into :class:`Publish`, :class:`Subscribe` or :class:`Unsubscribe`
with an exact error for anything else. Both roles use these functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.routing.topic import RouteMatch
from gateway.topics import filter_matches, validate_filter, validate_topic_name
from gateway.types import Message, Scope

SPEC_VERSION = "1.0"
Role = Literal["bridge", "broker"]
PRESENCE_PREFIX = "$presence/"

#: MQTT 5 PUBLISH properties carried (5.0 §3.3.2.3), as paho names them -> spec keys.
PROPERTY_NAMES = {
    "ContentType": "content_type",
    "ResponseTopic": "response_topic",
    "CorrelationData": "correlation_data",
    "MessageExpiryInterval": "message_expiry_interval",
    "PayloadFormatIndicator": "payload_format_indicator",
    "UserProperty": "user_properties",
}
_PROPERTY_KEYS = frozenset(PROPERTY_NAMES.values())


@dataclass(frozen=True)
class Incoming:
    """An application message as a link received it, before routing."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    dup: bool = False
    properties: dict[str, Any] = field(default_factory=dict)
    client: dict[str, Any] | None = None


@dataclass(frozen=True)
class Publish:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    properties: dict[str, Any] = field(default_factory=dict)
    request_id: Any = None


@dataclass(frozen=True)
class Subscribe:
    filter: str
    qos: int = 0
    request_id: Any = None


@dataclass(frozen=True)
class Unsubscribe:
    filter: str
    request_id: Any = None


Outgoing = Publish | Subscribe | Unsubscribe


def build_scope(
    match: RouteMatch,
    *,
    role: Role,
    mqtt_version: str,
    broker: dict[str, Any],
    client: dict[str, Any] | None = None,
) -> Scope:
    """The scope of the instance serving ``match``'s route key."""
    scope: Scope = {
        "type": "mqtt",
        "asgi": {"version": "3.0", "spec_version": SPEC_VERSION},
        "role": role,
        "mqtt_version": mqtt_version,
        "broker": dict(broker),
        **match.scope_keys(),
    }
    if client is not None:
        scope["client"] = dict(client)
    return scope


def message_event(incoming: Incoming, subscription: str) -> Message:
    """``mqtt.message`` for ``incoming``, matched by ``subscription``."""
    event: Message = {
        "type": "mqtt.message",
        "topic": incoming.topic,
        "payload": incoming.payload,
        "qos": incoming.qos,
        "retain": incoming.retain,
        "dup": incoming.dup,
        "subscription": subscription,
        "properties": incoming.properties,
    }
    if incoming.client is not None:
        event["client"] = incoming.client
    return event


def presence_incoming(
    client_id: str, username: str | None, connected: bool, reason: str
) -> tuple[Incoming, Message]:
    """The virtual-topic message (for routing) and ``mqtt.presence`` event of a device."""
    event: Message = {
        "type": "mqtt.presence",
        "client_id": client_id,
        "username": username,
        "connected": connected,
        "reason": reason,
    }
    client = {"client_id": client_id, "username": username}
    return Incoming(PRESENCE_PREFIX + client_id, b"", client=client), event


def link_event(state: Literal["up", "down"], reason: str, session_present: bool = False) -> Message:
    event: Message = {"type": "mqtt.link", "state": state, "reason": reason}
    if state == "up":
        event["session_present"] = session_present
    return event


def disconnect_event(reason: str) -> Message:
    return {"type": "mqtt.disconnect", "reason": reason}


def ack_event(
    request_id: Any, operation: str, reason_codes: list[int], error: str | None = None
) -> Message:
    """``mqtt.ack``: ``ok`` unless ``error`` or a reason code is a failure (>= 0x80)."""
    ok = error is None and all(code < 0x80 for code in reason_codes)
    event: Message = {
        "type": "mqtt.ack",
        "request_id": request_id,
        "operation": operation,
        "ok": ok,
        "reason_codes": reason_codes,
    }
    if not ok:
        event["error"] = error or f"refused by the broker (reason codes {reason_codes})"
    return event


def _qos(message: Message) -> int:
    qos = message.get("qos", 0)
    if qos not in (0, 1, 2) or isinstance(qos, bool):
        raise ValueError(f"{message.get('type')}: qos must be 0, 1 or 2, not {qos!r}")
    return int(qos)


def parse_outgoing(message: Message) -> Outgoing:
    """Validate what an application sent; ``ValueError`` with the exact reason otherwise."""
    kind = message.get("type")
    if kind == "mqtt.publish":
        topic = message.get("topic")
        if not isinstance(topic, str):
            raise ValueError(f"mqtt.publish needs a str 'topic', not {topic!r}")
        validate_topic_name(topic)
        payload = message.get("payload", b"")
        if isinstance(payload, str):
            payload = payload.encode()
        elif isinstance(payload, bytearray | memoryview):
            payload = bytes(payload)
        elif not isinstance(payload, bytes):
            raise ValueError(f"mqtt.publish 'payload' must be bytes or str, not {type(payload)}")
        properties = message.get("properties") or {}
        if not isinstance(properties, dict):
            raise ValueError("mqtt.publish 'properties' must be a dict")
        unknown = properties.keys() - _PROPERTY_KEYS
        if unknown:
            raise ValueError(f"mqtt.publish has unknown properties: {', '.join(sorted(unknown))}")
        return Publish(
            topic,
            payload,
            _qos(message),
            bool(message.get("retain", False)),
            properties,
            message.get("request_id"),
        )
    if kind in ("mqtt.subscribe", "mqtt.unsubscribe"):
        topic_filter = message.get("filter")
        if not isinstance(topic_filter, str):
            raise ValueError(f"{kind} needs a str 'filter', not {topic_filter!r}")
        validate_filter(topic_filter)
        if kind == "mqtt.subscribe":
            return Subscribe(topic_filter, _qos(message), message.get("request_id"))
        return Unsubscribe(topic_filter, message.get("request_id"))
    raise ValueError(
        f"an mqtt instance may send mqtt.publish, mqtt.subscribe or mqtt.unsubscribe, not {kind!r}"
    )


class DynamicSubscriptions:
    """Filters instances subscribed to with ``mqtt.subscribe``, per route key."""

    def __init__(self) -> None:
        self.by_key: dict[Any, dict[str, int]] = {}

    def add(self, key: Any, topic_filter: str, qos: int) -> None:
        self.by_key.setdefault(key, {})[topic_filter] = qos

    def remove(self, key: Any, topic_filter: str) -> None:
        filters = self.by_key.get(key)
        if filters is not None:
            filters.pop(topic_filter, None)
            if not filters:
                del self.by_key[key]

    def drop(self, key: Any) -> list[str]:
        """Forget ``key`` (its instance ended); return its filters."""
        return list(self.by_key.pop(key, {}))

    def filters(self) -> dict[str, int]:
        merged: dict[str, int] = {}
        for filters in self.by_key.values():
            for topic_filter, qos in filters.items():
                merged[topic_filter] = max(qos, merged.get(topic_filter, 0))
        return merged

    def in_use(self, topic_filter: str) -> bool:
        return any(topic_filter in filters for filters in self.by_key.values())

    def matches(self, topic_name: str) -> list[tuple[Any, str]]:
        """(key, filter) for every subscribed key whose filter matches ``topic_name``."""
        found: list[tuple[Any, str]] = []
        for key, filters in self.by_key.items():
            for topic_filter in filters:
                if filter_matches(topic_filter, topic_name):
                    found.append((key, topic_filter))
                    break
        return found
