"""The chat room: signed-in users talk in rooms; every message is also sent to the log worker."""

import json

from gateway.generic.websocket import AsyncWebsocketConsumer

LOG_CHANNEL = "chat.log"


class ChatConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.user = self.scope["user"]
        if not self.user.is_authenticated:
            await self.close()
            return
        self.room_name = self.scope["url_route"]["kwargs"]["room_name"]
        self.room_group_name = f"chat_{self.room_name}"
        assert self.channel_layer is not None  # the project configures CHANNEL_LAYERS
        await self.channel_layer.group_add(self.room_group_name, self.channel_name)
        await self.accept()

    async def disconnect(self, close_code):
        if self.user.is_authenticated:
            assert self.channel_layer is not None
            await self.channel_layer.group_discard(self.room_group_name, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        message = json.loads(text_data)["message"]
        event = {"room": self.room_name, "username": self.user.username, "message": message}
        assert self.channel_layer is not None
        await self.channel_layer.group_send(self.room_group_name, {"type": "chat.message", **event})
        await self.channel_layer.send(LOG_CHANNEL, {"type": "chat.log", **event})

    async def chat_message(self, event):
        await self.send(
            text_data=json.dumps({"username": event["username"], "message": event["message"]})
        )
