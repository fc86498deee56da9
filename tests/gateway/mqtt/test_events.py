"""gateway.mqtt.events: MQTT <-> ASGI translation, data in, data out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.mqtt.codes import SubackCode
from gateway.mqtt.events import (
    SPEC_VERSION,
    AckEvent,
    BrokerInfo,
    ClientInfo,
    DisconnectEvent,
    Incoming,
    LinkEvent,
    LinkState,
    MessageEvent,
    MqttScope,
    PresenceEvent,
    Publish,
    PublishMessage,
    Role,
    Subscribe,
    SubscribeMessage,
    Unsubscribe,
    UnsubscribeMessage,
    ack_event,
    build_scope,
    disconnect_event,
    link_event,
    message_details,
    message_event,
    parse_outgoing,
    presence_event,
    presence_incoming,
    publish_message,
    subscribe_message,
    unsubscribe_message,
)
from gateway.routing import TopicRouter, topic
from gateway.routing.topic import RouteMatch
from gateway.topics import InvalidTopic, Pattern
from tests.protocols.mqtt.strategies import topic_filters, topic_names


async def nothing(scope: object, receive: object, send: object) -> None:
    pass


def test_scope_carries_role_version_broker_and_route() -> None:
    match = TopicRouter([topic("devices/<device_id>/t", nothing)]).resolve("devices/d1/t")
    assert match is not None
    scope = build_scope(
        match,
        role="broker",
        mqtt_version="3.1.1",
        broker={"host": "h", "port": 1, "tls": False},
        client={"client_id": "c", "username": "u"},
    )
    assert scope == {
        "type": "mqtt",
        "asgi": {"version": "3.0", "spec_version": "1.0"},
        "role": "broker",
        "mqtt_version": "3.1.1",
        "broker": {"host": "h", "port": 1, "tls": False},
        "route": {"pattern": "devices/<device_id>/t", "kwargs": {"device_id": "d1"}},
        "url_route": {"args": (), "kwargs": {"device_id": "d1"}},
        "client": {"client_id": "c", "username": "u"},
    }


def test_message_event_keeps_payload_bytes_and_flags() -> None:
    incoming = Incoming("a/b", b"\xff\x00", 1, True, True, {"content_type": "x"})
    assert message_event(incoming, "a/+") == {
        "type": "mqtt.message",
        "topic": "a/b",
        "payload": b"\xff\x00",
        "qos": 1,
        "retain": True,
        "dup": True,
        "subscription": "a/+",
        "properties": {"content_type": "x"},
    }


def test_presence_is_routed_on_a_virtual_topic() -> None:
    incoming, event = presence_incoming("dev1", "alice", False, "keepalive")
    assert incoming.topic == "$presence/dev1"
    assert event == {
        "type": "mqtt.presence",
        "client_id": "dev1",
        "username": "alice",
        "connected": False,
        "reason": "keepalive",
    }


def test_parse_outgoing_accepts_the_spec_messages() -> None:
    assert parse_outgoing({"type": "mqtt.publish", "topic": "a", "payload": "é"}) == Publish(
        "a", "é".encode()
    )
    assert parse_outgoing(
        {
            "type": "mqtt.publish",
            "topic": "a",
            "payload": b"x",
            "qos": 1,
            "retain": True,
            "request_id": 7,
        }
    ) == Publish("a", b"x", 1, True, {}, 7)
    assert parse_outgoing({"type": "mqtt.subscribe", "filter": "a/#", "qos": 2}) == Subscribe(
        "a/#", 2
    )
    assert parse_outgoing({"type": "mqtt.unsubscribe", "filter": "a/+"}) == Unsubscribe("a/+")


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"type": "mqtt.publish", "topic": "a/+", "payload": b""}, InvalidTopic),
        ({"type": "mqtt.publish", "payload": b""}, ValueError),
        ({"type": "mqtt.publish", "topic": "a", "payload": 5}, ValueError),
        ({"type": "mqtt.publish", "topic": "a", "qos": 3}, ValueError),
        ({"type": "mqtt.publish", "topic": "a", "qos": True}, ValueError),
        ({"type": "mqtt.subscribe", "filter": "a/#/b"}, InvalidTopic),
        ({"type": "websocket.send", "text": "x"}, ValueError),
    ],
)
def test_parse_outgoing_refuses_bad_messages(message: dict[str, object], error: type) -> None:
    with pytest.raises(error):
        parse_outgoing(message)


def test_ack_event_ok_and_failure() -> None:
    assert ack_event(1, "subscribe", [1])["ok"] is True
    refused = ack_event(1, "subscribe", [0x80])
    assert refused["ok"] is False
    assert refused["error"] == "refused by the broker (reason codes [128])"
    failed = ack_event("r", "publish", [], "link down")
    assert failed == {
        "type": "mqtt.ack",
        "request_id": "r",
        "operation": "publish",
        "ok": False,
        "reason_codes": [],
        "error": "link down",
    }


#: Values an application might put in a message: msgpack-safe and not.
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
message_keys = st.sampled_from(
    ["type", "topic", "payload", "qos", "retain", "properties", "request_id", "filter"]
)
message_types = st.sampled_from(
    ["mqtt.publish", "mqtt.subscribe", "mqtt.unsubscribe", "mqtt.send", None]
)


@given(message_types, st.dictionaries(message_keys, values, max_size=6))
def test_any_outgoing_message_is_parsed_or_refused_with_a_value_error(
    kind: str | None, fields: dict[str, Any]
) -> None:
    try:
        parsed = parse_outgoing({**fields, "type": kind})
    except ValueError:
        return
    assert isinstance(parsed, Publish | Subscribe | Unsubscribe)


@given(topic_names, st.binary() | st.text(), st.integers(0, 2), st.booleans())
def test_a_publish_keeps_its_topic_payload_and_flags(
    name: str, payload: bytes | str, qos: int, retain: bool
) -> None:
    message = {"type": "mqtt.publish", "topic": name, "payload": payload, "qos": qos}
    published = parse_outgoing({**message, "retain": retain})
    expected = payload.encode() if isinstance(payload, str) else payload
    assert published == Publish(name, expected, qos, retain)


@given(topic_filters(), st.integers(0, 2))
def test_a_subscription_keeps_its_filter(topic_filter: str, qos: int) -> None:
    message = {"type": "mqtt.subscribe", "filter": topic_filter, "qos": qos}
    assert parse_outgoing(message) == Subscribe(topic_filter, qos)


@given(topic_names, st.binary(), st.integers(0, 2), st.booleans(), st.booleans(), topic_filters())
def test_a_message_event_carries_the_message_unchanged(
    name: str, payload: bytes, qos: int, retain: bool, dup: bool, subscription: str
) -> None:
    event = message_event(Incoming(name, payload, qos, retain, dup), subscription)
    assert event == {
        "type": "mqtt.message",
        "topic": name,
        "payload": payload,
        "qos": qos,
        "retain": retain,
        "dup": dup,
        "subscription": subscription,
        "properties": {},
    }


# --- builders and parsers agree (Hypothesis) -------------------------------------------

request_ids = st.none() | st.integers() | st.text(max_size=5)
properties = st.fixed_dictionaries(
    {},
    optional={
        "content_type": st.text(max_size=5),
        "response_topic": topic_names,
        "correlation_data": st.binary(max_size=5),
        "message_expiry_interval": st.integers(0, 2**32 - 1),
        "payload_format_indicator": st.integers(0, 1),
        "user_properties": st.lists(st.lists(st.text(max_size=3), min_size=2, max_size=2)),
    },
)
clients = st.none() | st.fixed_dictionaries(
    {"client_id": st.text(min_size=1, max_size=5), "username": st.none() | st.text(max_size=5)}
)


def has_the_keys_of(message: Mapping[str, Any], typed: Any) -> bool:
    """``message`` has every required key of the TypedDict ``typed`` and no other."""
    required: frozenset[str] = typed.__required_keys__
    optional: frozenset[str] = typed.__optional_keys__
    return required <= set(message) <= required | optional


@given(
    topic_names, st.binary() | st.text(), st.integers(0, 2), st.booleans(), properties, request_ids
)
def test_a_built_publish_parses_back_to_its_arguments(
    name: str,
    payload: bytes | str,
    qos: int,
    retain: bool,
    props: dict[str, Any],
    request_id: Any,
) -> None:
    message = publish_message(name, payload, qos, retain, props, request_id)
    assert has_the_keys_of(message, PublishMessage)
    assert ("properties" in message) == bool(props)
    assert ("request_id" in message) == (request_id is not None)
    expected = payload.encode() if isinstance(payload, str) else payload
    assert parse_outgoing(dict(message)) == Publish(name, expected, qos, retain, props, request_id)


@given(topic_filters(), st.integers(0, 2), request_ids)
def test_built_subscriptions_parse_back_to_their_arguments(
    topic_filter: str, qos: int, request_id: Any
) -> None:
    subscribe = subscribe_message(topic_filter, qos, request_id)
    unsubscribe = unsubscribe_message(topic_filter, request_id)
    assert has_the_keys_of(subscribe, SubscribeMessage)
    assert has_the_keys_of(unsubscribe, UnsubscribeMessage)
    assert parse_outgoing(dict(subscribe)) == Subscribe(topic_filter, qos, request_id)
    assert parse_outgoing(dict(unsubscribe)) == Unsubscribe(topic_filter, request_id)


@given(
    topic_names,
    st.binary(),
    st.integers(0, 2),
    st.booleans(),
    st.booleans(),
    properties,
    clients,
    topic_filters(),
)
def test_a_message_event_parses_back_to_what_was_received(
    name: str,
    payload: bytes,
    qos: int,
    retain: bool,
    dup: bool,
    props: dict[str, Any],
    client: ClientInfo | None,
    subscription: str,
) -> None:
    event = message_event(Incoming(name, payload, qos, retain, dup, props, client), subscription)
    assert has_the_keys_of(event, MessageEvent)
    details = message_details(dict(event))
    assert details == {key: value for key, value in event.items() if key not in _ENVELOPE}
    assert Incoming(
        event["topic"],
        event["payload"],
        details["qos"],
        details["retain"],
        details["dup"],
        details["properties"],
        details.get("client"),
    ) == Incoming(name, payload, qos, retain, dup, props, client)


_ENVELOPE = ("type", "topic", "payload")


@given(
    st.dictionaries(st.sampled_from(["device_id", "room"]), st.text(max_size=3)),
    st.sampled_from(["bridge", "broker"]),
    st.sampled_from(["5.0", "3.1.1"]),
    clients,
)
def test_a_scope_carries_the_route_and_owns_its_dicts(
    kwargs: dict[str, str], role: Role, mqtt_version: str, client: ClientInfo | None
) -> None:
    pattern = "/".join(f"<{name}>" for name in sorted(kwargs)) or "a"
    match = RouteMatch(Pattern.parse(pattern), kwargs, 0)
    broker: BrokerInfo = {"host": "h", "port": 1883, "tls": False}
    scope = build_scope(match, role=role, mqtt_version=mqtt_version, broker=broker, client=client)
    assert has_the_keys_of(scope, MqttScope)
    assert scope["asgi"] == {"version": "3.0", "spec_version": SPEC_VERSION}
    assert scope["route"] == {"pattern": pattern, "kwargs": kwargs}
    assert scope["url_route"] == {"args": (), "kwargs": kwargs}
    assert scope.get("client") == client
    broker["port"] = 1  # the embedded broker learns its port after scopes exist
    kwargs["other"] = "x"
    assert scope["broker"]["port"] == 1883
    assert "other" not in scope["route"]["kwargs"]


@given(st.sampled_from(["up", "down"]), st.text(max_size=5), st.booleans())
def test_link_events_carry_session_present_only_when_up(
    state: LinkState, reason: str, session_present: bool
) -> None:
    event = link_event(state, reason, session_present)
    assert has_the_keys_of(event, LinkEvent)
    assert event.get("session_present") == (session_present if state == "up" else None)


@given(
    request_ids,
    st.sampled_from(["publish", "subscribe", "unsubscribe"]),
    st.lists(st.integers(0, 255), max_size=3),
    st.none() | st.text(min_size=1, max_size=5),
)
def test_an_ack_is_ok_exactly_without_error_or_failure_code(
    request_id: Any, operation: str, codes: list[int], error: str | None
) -> None:
    event = ack_event(request_id, operation, codes, error)
    assert has_the_keys_of(event, AckEvent)
    assert event["ok"] == (error is None and all(code < SubackCode.FAILURE for code in codes))
    assert ("error" in event) == (not event["ok"])


@given(st.text(max_size=5), st.text(max_size=5) | st.none(), st.booleans(), st.text(max_size=5))
def test_presence_and_disconnect_events_have_their_keys(
    client_id: str, username: str | None, connected: bool, reason: str
) -> None:
    incoming, event = presence_incoming(client_id, username, connected, reason)
    assert has_the_keys_of(event, PresenceEvent)
    assert event == presence_event(client_id, username, connected, reason)
    assert incoming.client == {"client_id": client_id, "username": username}
    assert has_the_keys_of(disconnect_event(reason), DisconnectEvent)
