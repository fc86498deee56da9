"""The MQTT routes of the IoT bridge, mounted by ``project.asgi``."""

from gateway.routing import topic
from project.iot.consumers import TelemetryConsumer

mqtt_routes = [
    topic("devices/<device_id>/telemetry", TelemetryConsumer.as_asgi(), qos=1),
]
