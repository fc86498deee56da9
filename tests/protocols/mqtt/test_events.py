"""protocols.mqtt.events and config: MQTT <-> ASGI translation, data in, data out."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from hypothesis import given
from hypothesis import strategies as st

from gateway.routing import TopicRouter, topic
from gateway.topics import InvalidTopic, filter_matches
from protocols.mqtt.config import BridgeConfig
from protocols.mqtt.events import (
    DynamicSubscriptions,
    Incoming,
    Publish,
    Subscribe,
    Unsubscribe,
    ack_event,
    build_scope,
    message_event,
    parse_outgoing,
    presence_incoming,
)
from protocols.mqtt.properties import properties_from_dict, properties_to_dict
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


def test_dynamic_subscriptions() -> None:
    subs = DynamicSubscriptions()
    subs.add("k1", "a/+", 0)
    subs.add("k2", "a/#", 1)
    subs.add("k2", "$share/g/b/#", 1)
    assert subs.filters() == {"a/+": 0, "a/#": 1, "$share/g/b/#": 1}
    assert subs.matches("a/x") == [("k1", "a/+"), ("k2", "a/#")]
    assert subs.matches("b/y") == [("k2", "$share/g/b/#")]
    subs.remove("k1", "a/+")
    assert not subs.in_use("a/+")
    assert sorted(subs.drop("k2")) == ["$share/g/b/#", "a/#"]
    assert subs.filters() == {}


def test_bridge_config_from_url() -> None:
    config = BridgeConfig.from_url(
        "mqtts://dev%40x:s3cret@broker.example:8884/?client_id=gw1&version=3.1.1"
        "&keepalive=10&share=workers&ca=/ca.pem&cert=/c.pem&key=/k.pem"
    )
    assert config == BridgeConfig(
        host="broker.example",
        port=8884,
        tls=True,
        username="dev@x",
        password="s3cret",
        client_id="gw1",
        version="3.1.1",
        keepalive=10,
        share_group="workers",
        ca_certs="/ca.pem",
        certfile="/c.pem",
        keyfile="/k.pem",
    )
    assert "s3cret" not in config.safe_url()
    assert BridgeConfig.from_url("mqtt://h").port == 1883
    assert BridgeConfig.from_url("mqtts://h").port == 8883


@pytest.mark.parametrize(
    "url",
    [
        "http://h",
        "mqtt://",
        "mqtt://h:99999",
        "mqtt://h?version=4.0",
        "mqtt://h?keepalive=x",
        "mqtt://h?cert=/c.pem",
        "mqtt://h?bogus=1",
    ],
)
def test_bad_mqtt_url_names_the_setting(url: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="MQTT_URL"):
        BridgeConfig.from_url(url)


def test_mqtt5_properties_round_trip_through_paho() -> None:
    values = {
        "content_type": "application/json",
        "response_topic": "replies/1",
        "correlation_data": b"\x01\x02",
        "message_expiry_interval": 60,
        "payload_format_indicator": 1,
        "user_properties": [["k", "v"], ["k", "w"]],
    }
    assert properties_to_dict(properties_from_dict(values)) == values
    assert properties_from_dict({}) is None
    assert properties_to_dict(None) == {}
    with pytest.raises(ValueError, match="unknown properties: topic_alias"):
        parse_outgoing({"type": "mqtt.publish", "topic": "a", "properties": {"topic_alias": 3}})


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


@given(st.dictionaries(st.integers(0, 3), st.lists(topic_filters(), max_size=3)), topic_names)
def test_dynamic_subscriptions_find_exactly_the_matching_keys(
    subscribed: dict[int, list[str]], name: str
) -> None:
    subscriptions = DynamicSubscriptions()
    for key, filters in subscribed.items():
        for topic_filter in filters:
            subscriptions.add(key, topic_filter, 0)
    found = dict(subscriptions.matches(name))
    wanted = {
        key for key, filters in subscribed.items() if any(filter_matches(f, name) for f in filters)
    }
    assert set(found) == wanted
    assert all(filter_matches(found[key], name) for key in found)
