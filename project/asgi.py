"""The appliance's ASGI application: one ProtocolTypeRouter for every protocol.

Every WebSocket passes the Origin check and has its session's user resolved before
a route sees it; the dashboard's sockets then admit logged-in users only
(``project.dashboard.sockets``). :class:`~project.traffic.TrafficTap` reports
WebSocket and Telegram traffic to the traffic log. The bot (``project.chatbot``)
answers each conversation with the Django session and user of its chat; its worker
channel delivers alerts to the chats subscribed to them.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application
from django.urls import re_path

# Django must be set up before anything imports models. The appliance serves its
# static files (the admin's CSS and JS) itself: there is no web server in front.
django_asgi_app = ASGIStaticFilesHandler(get_asgi_application())

from gateway.auth import AuthMiddlewareStack  # noqa: E402
from gateway.routing import ChannelNameRouter, ProtocolTypeRouter, TopicRouter, URLRouter  # noqa: E402
from gateway.security.websocket import AllowedHostsOriginValidator, WebsocketDenier  # noqa: E402
from gateway.telegram.middleware import TelegramMiddlewareStack  # noqa: E402
from project.chatbot.bot import DeviceBot  # noqa: E402
from project.chatbot.notify import NOTIFY_CHANNEL, ChatNotifier  # noqa: E402
from project.dashboard.routing import websocket_routes  # noqa: E402
from project.iot.routing import mqtt_routes  # noqa: E402
from project.traffic import TrafficTap  # noqa: E402

application = ProtocolTypeRouter(
    {
        # django-stubs has Django's handler send Mappings; gateway's Send takes dicts.
        "http": django_asgi_app,  # type: ignore[dict-item]
        # A socket on any other path (a scanner, a stale page) is refused at the
        # handshake (HTTP 403), not routed into an error with a traceback in the log.
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(
                # django-stubs types re_path() for views only.
                TrafficTap(URLRouter([*websocket_routes, re_path(r"", WebsocketDenier.as_asgi())]))  # type: ignore[arg-type]
            )
        ),
        "mqtt": TopicRouter(mqtt_routes),
        # Each conversation has its Django session; the traffic log sees the bot's traffic.
        "telegram": TrafficTap(TelegramMiddlewareStack(DeviceBot.as_asgi())),
        # The bot's worker: alerts and command outcomes to chats (`gateway worker chatbot.notify`).
        "channel": ChannelNameRouter({NOTIFY_CHANNEL: ChatNotifier.as_asgi()}),
    }
)
