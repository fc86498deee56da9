"""protocols.mqtt.events and config: MQTT <-> ASGI translation, data in, data out."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from gateway.routing import TopicRouter, topic
from gateway.topics import InvalidTopic
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
