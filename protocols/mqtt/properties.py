"""MQTT 5 properties (5.0 §3.3.2.3) between paho objects and the spec's plain dicts.

Only the properties an application can use end to end are carried; keys are the
snake_case names of docs/specs/mqtt.md.
"""

from __future__ import annotations

from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.mqtt.events import PROPERTY_NAMES

_PROPERTY_ATTRS = {key: attr for attr, key in PROPERTY_NAMES.items()}


def properties_to_dict(properties: Properties | None) -> dict[str, Any]:
    if properties is None:
        return {}
    found: dict[str, Any] = {}
    for attr, key in PROPERTY_NAMES.items():
        value = getattr(properties, attr, None)
        if value is not None:
            found[key] = [list(pair) for pair in value] if attr == "UserProperty" else value
    return found


def properties_from_dict(values: dict[str, Any]) -> Properties | None:
    if not values:
        return None
    properties = Properties(PacketTypes.PUBLISH)
    for key, value in values.items():
        attr = _PROPERTY_ATTRS[key]  # keys were checked by events.parse_outgoing
        if attr == "UserProperty":
            value = [tuple(pair) for pair in value]
        setattr(properties, attr, value)
    return properties
