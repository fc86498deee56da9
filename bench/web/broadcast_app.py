"""The live-dashboard consumer of the broadcast benchmark, for gateway and Channels 4.3.

``/ws`` joins the group ``dash`` and forwards each group message to its socket;
``/ws/pub`` turns each text message it receives into one ``group_send`` to ``dash``.
The same code for both frameworks, as a user would write it.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.web.broadcast_settings")

import django

django.setup()

from channels.generic.websocket import (  # noqa: E402
    AsyncWebsocketConsumer as ChannelsWebsocketConsumer,
)
from channels.routing import URLRouter as ChannelsURLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from gateway.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from gateway.routing import URLRouter  # noqa: E402
from gateway.types import Message  # noqa: E402

GROUP = "dash"


class GatewayDashboard(AsyncWebsocketConsumer):
    channel_layer_alias = "gateway"
    groups = [GROUP]

    async def dash_message(self, event: Message) -> None:
        await self.send(text_data=event["text"])


class GatewayPublisher(AsyncWebsocketConsumer):
    channel_layer_alias = "gateway"

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        assert self.channel_layer is not None
        await self.channel_layer.group_send(GROUP, {"type": "dash.message", "text": text_data})


class ChannelsDashboard(ChannelsWebsocketConsumer):  # type: ignore[misc]
    channel_layer_alias = "channels"
    groups = [GROUP]

    async def dash_message(self, event: Message) -> None:
        await self.send(text_data=event["text"])


class ChannelsPublisher(ChannelsWebsocketConsumer):  # type: ignore[misc]
    channel_layer_alias = "channels"

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.channel_layer.group_send(GROUP, {"type": "dash.message", "text": text_data})


gateway_app = URLRouter(
    [path("ws/pub", GatewayPublisher.as_asgi()), path("ws", GatewayDashboard.as_asgi())]
)
channels_app = ChannelsURLRouter(
    [path("ws/pub", ChannelsPublisher.as_asgi()), path("ws", ChannelsDashboard.as_asgi())]
)
