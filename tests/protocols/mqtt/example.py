"""A small IoT project for the end-to-end tests: thermostats report, the gateway answers.

Served by ``gateway mqtt tests.protocols.mqtt.example:application`` in either role.
"""

from typing import Any

from gateway.generic.mqtt import JsonMqttConsumer
from gateway.routing import ProtocolTypeRouter, TopicRouter, topic


class ThermostatConsumer(JsonMqttConsumer):
    """Acknowledges each reading and tells the heater what to do (sync consumer)."""

    def receive_json(self, topic: str, content: Any, **details: Any) -> None:
        device = self.scope["route"]["kwargs"]["device_id"]
        heat = content["temperature"] < 19.0
        self.publish_json(f"devices/{device}/cmd", {"seq": content["seq"], "heat": heat}, qos=1)


application = ProtocolTypeRouter(
    {
        "mqtt": TopicRouter(
            [topic("devices/<device_id>/telemetry", ThermostatConsumer.as_asgi(), qos=1)]
        )
    }
)
