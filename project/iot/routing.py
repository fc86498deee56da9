"""The MQTT routes of the IoT bridge, mounted by ``project.asgi``."""

from gateway.routing import topic
from project.iot.consumers import (
    CommandAckConsumer,
    PresenceConsumer,
    StatusConsumer,
    TelemetryConsumer,
)

mqtt_routes = [
    topic("devices/<device_id>/telemetry", TelemetryConsumer.as_asgi(), qos=1),
    topic("devices/<device_id>/status", StatusConsumer.as_asgi(), qos=1),
    topic("devices/<device_id>/commands/ack", CommandAckConsumer.as_asgi(), qos=1),
    # The embedded broker's presence events (broker role; never subscribed in a bridge).
    topic("$presence/<device_id>", PresenceConsumer.as_asgi()),
]
