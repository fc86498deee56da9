"""The dashboard's WebSocket routes, mounted by ``project.asgi``."""

from django.urls import path

from project.dashboard.consumers import HealthConsumer, TrafficConsumer
from project.dashboard.device_socket import DeviceSocket
from project.dashboard.fleet_socket import FleetSocket

# django-stubs types path() for views only; URLRouter takes ASGI applications.
websocket_routes = [
    path("ws/fleet/", FleetSocket.as_asgi()),  # type: ignore[arg-type]
    path("ws/devices/<str:device_id>/", DeviceSocket.as_asgi()),  # type: ignore[arg-type]
    path("ws/health/", HealthConsumer.as_asgi()),  # type: ignore[arg-type]
    path("ws/traffic/", TrafficConsumer.as_asgi()),  # type: ignore[arg-type]
]
