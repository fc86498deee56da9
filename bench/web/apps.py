"""The applications benchmarked: the same echo consumer written for gateway and for
Channels 4.3, a small Django view, and a raw ASGI HTTP app.

``gateway_app`` and ``channels_app`` route ``/`` (HTTP) to the Django view and
``/ws`` to the echo consumer; ``raw_http`` is the raw ASGI application.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.web.settings")

import django

django.setup()

from channels.generic.websocket import (  # noqa: E402
    AsyncWebsocketConsumer as ChannelsWebsocketConsumer,
)
from channels.routing import ProtocolTypeRouter as ChannelsRouter  # noqa: E402
from channels.routing import URLRouter as ChannelsURLRouter  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402

from gateway.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from gateway.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from gateway.types import Receive, Scope, Send  # noqa: E402


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"Hello, world!", content_type="text/plain")


urlpatterns = [path("", hello)]


class GatewayEcho(AsyncWebsocketConsumer):
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send(text_data=text_data, bytes_data=bytes_data)


class ChannelsEcho(ChannelsWebsocketConsumer):  # type: ignore[misc]
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send(text_data=text_data, bytes_data=bytes_data)


django_http = get_asgi_application()

gateway_app = ProtocolTypeRouter(
    {"http": django_http, "websocket": URLRouter([path("ws", GatewayEcho.as_asgi())])}
)
channels_app = ChannelsRouter(
    {"http": django_http, "websocket": ChannelsURLRouter([path("ws", ChannelsEcho.as_asgi())])}
)


async def raw_http(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
        }
    )
    await send({"type": "http.response.body", "body": b"Hello, world!"})
