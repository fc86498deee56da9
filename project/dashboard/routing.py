"""The dashboard's WebSocket routes, mounted by ``project.asgi``."""

from django.urls import path

from project.dashboard.consumers import TelemetryFeedConsumer

websocket_routes = [
    path("ws/telemetry/", TelemetryFeedConsumer.as_asgi()),
]
