"""protocols.mqtt.properties: MQTT 5 properties (§3.3.2.3) between paho and the events' dicts."""

from __future__ import annotations

import pytest

from gateway.mqtt.events import parse_outgoing
from protocols.mqtt.properties import properties_from_dict, properties_to_dict


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
