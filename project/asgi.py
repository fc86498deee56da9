"""The appliance's ASGI application: one ProtocolTypeRouter for every protocol."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

# Django must be set up before anything imports models. The appliance serves its
# static files (the admin's CSS and JS) itself: there is no web server in front.
django_asgi_app = ASGIStaticFilesHandler(get_asgi_application())

from django.urls import path  # noqa: E402

from gateway.auth import AuthMiddlewareStack  # noqa: E402
from gateway.routing import ProtocolTypeRouter, TopicRouter, URLRouter, topic  # noqa: E402
from gateway.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from project.consumers import (  # noqa: E402
    ChattyBotConsumer,
    TelemetryConsumer,
    TelemetryFeedConsumer,
)

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter([path("ws/telemetry/", TelemetryFeedConsumer.as_asgi())]))
        ),
        "mqtt": TopicRouter(
            [topic("devices/<device_id>/telemetry", TelemetryConsumer.as_asgi(), qos=1)]
        ),
        "telegram": ChattyBotConsumer.as_asgi(),
    }
)
