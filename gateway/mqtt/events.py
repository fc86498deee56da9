"""The ``mqtt`` ASGI vocabulary (docs/specs/mqtt.md): typed, built and parsed here only.

Pure, no I/O. The scope, every event to the application and every message from it
are :class:`~typing.TypedDict` s; the builders make them (the interface server in
:mod:`protocols.mqtt` from what its link received, the test communicator from a
test's arguments, the generic consumers from their ``publish``/``subscribe`` calls)
and :func:`parse_outgoing` validates what an application sent into
:class:`Publish`, :class:`Subscribe` or :class:`Unsubscribe`, with an exact error for
anything else.
"""

# No ``from __future__ import annotations``: TypedDict reads ``NotRequired`` from
# evaluated annotations only, and ``__required_keys__`` must be right at run time.
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NotRequired, TypedDict

from gateway.mqtt.codes import SubackCode
from gateway.topics import validate_filter, validate_topic_name
from gateway.types import Message

if TYPE_CHECKING:
    from gateway.routing.topic import RouteMatch

SPEC_VERSION = "1.0"
#: The fixed channel-layer channel the MQTT server publishes from ("Publishing from any
#: process").
PUBLISH_CHANNEL = "mqtt.publish"
#: Presence is routed as a message on the virtual topic ``$presence/<client_id>``.
PRESENCE_PREFIX = "$presence/"

Role = Literal["bridge", "broker"]
LinkState = Literal["up", "down"]
#: MQTT 5 properties as the spec's snake_case keys (``content_type`` …).
Properties = dict[str, Any]

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


# --- the scope -----------------------------------------------------------------------


class AsgiInfo(TypedDict):
    version: str
    spec_version: str


class BrokerInfo(TypedDict):
    """Where the link goes: the external broker (bridge) or the embedded listener."""

    host: str
    port: int
    tls: bool


class ClientInfo(TypedDict):
    """A device of the embedded broker (broker role)."""

    client_id: str
    username: str | None


class RouteInfo(TypedDict):
    pattern: str
    kwargs: dict[str, str]


class UrlRoute(TypedDict):
    """``route`` again, as Channels' ``url_route``."""

    args: tuple[()]
    kwargs: dict[str, str]


class MqttScope(TypedDict):
    type: Literal["mqtt"]
    asgi: AsgiInfo
    role: Role
    mqtt_version: str
    broker: BrokerInfo
    route: RouteInfo
    url_route: UrlRoute
    client: NotRequired[ClientInfo]


# --- events to the application -------------------------------------------------------


class MessageEvent(TypedDict):
    type: Literal["mqtt.message"]
    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool
    subscription: str
    properties: Properties
    client: NotRequired[ClientInfo]


class PresenceEvent(TypedDict):
    type: Literal["mqtt.presence"]
    client_id: str
    username: str | None
    connected: bool
    reason: str


class LinkEvent(TypedDict):
    type: Literal["mqtt.link"]
    state: LinkState
    reason: str
    session_present: NotRequired[bool]


class AckEvent(TypedDict):
    type: Literal["mqtt.ack"]
    request_id: Any
    operation: str
    ok: bool
    reason_codes: list[int]
    error: NotRequired[str]


class DisconnectEvent(TypedDict):
    type: Literal["mqtt.disconnect"]
    reason: str


# --- messages from the application ---------------------------------------------------


class PublishMessage(TypedDict):
    type: Literal["mqtt.publish"]
    topic: str
    payload: bytes | str
    qos: NotRequired[int]
    retain: NotRequired[bool]
    properties: NotRequired[Properties]
    request_id: NotRequired[Any]


class SubscribeMessage(TypedDict):
    type: Literal["mqtt.subscribe"]
    filter: str
    qos: NotRequired[int]
    request_id: NotRequired[Any]


class UnsubscribeMessage(TypedDict):
    type: Literal["mqtt.unsubscribe"]
    filter: str
    request_id: NotRequired[Any]


@dataclass(frozen=True)
class Incoming:
    """An application message as a link received it, before routing."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    dup: bool = False
    properties: Properties = field(default_factory=dict)
    client: ClientInfo | None = None


@dataclass(frozen=True)
class Publish:
    """A parsed ``mqtt.publish``: the payload as bytes, the defaults filled in."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    properties: Properties = field(default_factory=dict)
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


# --- builders ------------------------------------------------------------------------


def build_scope(
    match: "RouteMatch",
    *,
    role: Role,
    mqtt_version: str,
    broker: BrokerInfo,
    client: ClientInfo | None = None,
) -> MqttScope:
    """The scope of the instance serving ``match``'s route key."""
    scope: MqttScope = {
        "type": "mqtt",
        "asgi": {"version": "3.0", "spec_version": SPEC_VERSION},
        "role": role,
        "mqtt_version": mqtt_version,
        "broker": broker.copy(),
        "route": {"pattern": match.pattern.pattern, "kwargs": dict(match.kwargs)},
        "url_route": {"args": (), "kwargs": dict(match.kwargs)},
    }
    if client is not None:
        scope["client"] = client.copy()
    return scope


def message_event(incoming: Incoming, subscription: str) -> MessageEvent:
    """``mqtt.message`` for ``incoming``, matched by ``subscription``."""
    event: MessageEvent = {
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


def presence_event(
    client_id: str, username: str | None, connected: bool, reason: str
) -> PresenceEvent:
    return {
        "type": "mqtt.presence",
        "client_id": client_id,
        "username": username,
        "connected": connected,
        "reason": reason,
    }


def presence_incoming(
    client_id: str, username: str | None, connected: bool, reason: str
) -> tuple[Incoming, PresenceEvent]:
    """The virtual-topic message (for routing) and ``mqtt.presence`` event of a device."""
    client: ClientInfo = {"client_id": client_id, "username": username}
    event = presence_event(client_id, username, connected, reason)
    return Incoming(PRESENCE_PREFIX + client_id, b"", client=client), event


def link_event(state: LinkState, reason: str, session_present: bool = False) -> LinkEvent:
    """``mqtt.link``; ``session_present`` is carried only when the link comes ``up``."""
    event: LinkEvent = {"type": "mqtt.link", "state": state, "reason": reason}
    if state == "up":
        event["session_present"] = session_present
    return event


def disconnect_event(reason: str) -> DisconnectEvent:
    """The terminal event of a scope: ``idle``, ``evicted`` or ``shutdown``."""
    return {"type": "mqtt.disconnect", "reason": reason}


def ack_event(
    request_id: Any, operation: str, reason_codes: list[int], error: str | None = None
) -> AckEvent:
    """``mqtt.ack``: ``ok`` unless ``error`` or a reason code is a failure (>= 0x80)."""
    ok = error is None and all(code < SubackCode.FAILURE for code in reason_codes)
    event: AckEvent = {
        "type": "mqtt.ack",
        "request_id": request_id,
        "operation": operation,
        "ok": ok,
        "reason_codes": reason_codes,
    }
    if not ok:
        event["error"] = error or f"refused by the broker (reason codes {reason_codes})"
    return event


def publish_message(
    topic: str,
    payload: bytes | str,
    qos: int = 0,
    retain: bool = False,
    properties: Properties | None = None,
    request_id: Any = None,
) -> PublishMessage:
    """The ``mqtt.publish`` an application sends; empty ``properties`` are left out."""
    message: PublishMessage = {
        "type": "mqtt.publish",
        "topic": topic,
        "payload": payload,
        "qos": qos,
        "retain": retain,
    }
    if properties:
        message["properties"] = properties
    if request_id is not None:
        message["request_id"] = request_id
    return message


def subscribe_message(topic_filter: str, qos: int = 0, request_id: Any = None) -> SubscribeMessage:
    message: SubscribeMessage = {"type": "mqtt.subscribe", "filter": topic_filter, "qos": qos}
    if request_id is not None:
        message["request_id"] = request_id
    return message


def unsubscribe_message(topic_filter: str, request_id: Any = None) -> UnsubscribeMessage:
    message: UnsubscribeMessage = {"type": "mqtt.unsubscribe", "filter": topic_filter}
    if request_id is not None:
        message["request_id"] = request_id
    return message


# --- parsers -------------------------------------------------------------------------

#: What an ``mqtt.message`` carries besides its type, topic and payload.
_MESSAGE_DETAILS = ("qos", "retain", "dup", "subscription", "properties", "client")


def message_details(event: Message) -> dict[str, Any]:
    """The keys of an ``mqtt.message`` besides ``type``, ``topic`` and ``payload``."""
    return {key: event[key] for key in _MESSAGE_DETAILS if key in event}


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
