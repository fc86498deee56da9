"""The dashboard's WebSocket routes, mounted by ``project.asgi``."""

from django.urls import path

from project.dashboard.consumers import HealthConsumer, TrafficConsumer
from project.dashboard.device_socket import DeviceSocket
from project.dashboard.fleet_socket import FleetSocket

websocket_routes = [
    path("ws/fleet/", FleetSocket.as_asgi()),
    path("ws/devices/<str:device_id>/", DeviceSocket.as_asgi()),
    path("ws/health/", HealthConsumer.as_asgi()),
    path("ws/traffic/", TrafficConsumer.as_asgi()),
]
