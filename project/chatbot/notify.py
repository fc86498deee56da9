"""The bot's worker: alerts to subscribed chats, command outcomes onto their cards.

:class:`ChatNotifier` serves the channel ``chatbot.notify`` (``IOT_NOTIFY_CHANNELS``),
where the IoT side sends each ``iot.alert`` and ``iot.command`` once, whichever
process opened the alert or saw the acknowledgement. A channel message reaches
one worker, so with any number of web, MQTT, Telegram and worker processes each
alert becomes one Telegram message per subscribed chat: exactly once, not once per
process as a group would make it.

The messages go to the Telegram server's fixed channel ``telegram.send``, whose
flood control paces them within Telegram's limits and keeps each chat's order. A
burst larger than that channel's room waits here (the worker stops taking
``chatbot.notify`` meanwhile, so the burst waits in the layer): nothing is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from django.utils import timezone

from gateway.consumer import AsyncConsumer
from gateway.db import database_sync_to_async
from gateway.exceptions import ChannelFull, ChannelLayerUnavailable
from gateway.types import Message
from project.chatbot import cards, services
from project.chatbot.services import NoSuchDevice

logger = logging.getLogger("project.chatbot")

NOTIFY_CHANNEL = "chatbot.notify"
TELEGRAM_SEND = "telegram.send"
#: The longest pause between two tries of a send that found ``telegram.send`` full.
MAX_PAUSE = 1.0


class ChatNotifier(AsyncConsumer):
    async def iot_alert(self, event: Message) -> None:
        info = event["alert"]
        subscriptions = await database_sync_to_async(services.recipients)(info["device_id"])
        text = cards.alert_text(info)
        for subscription in subscriptions:
            await self.deliver(
                {
                    "type": "telegram.message",
                    "bot": subscription.bot,
                    "chat_id": subscription.chat_id,
                    "text": text,
                    "keyboard": cards.alert_keyboard(subscription.thing_id),
                }
            )

    async def iot_command(self, event: Message) -> None:
        info = event["command"]
        for card in await database_sync_to_async(services.cards_of)(info["id"]):
            try:
                data = await database_sync_to_async(services.card_data)(
                    card.user, card.command.thing_id, card.chat_id
                )
            except NoSuchDevice:  # no longer the user's: the card keeps what it showed
                continue
            text, keyboard = cards.device_card(data, timezone.now())
            await self.deliver(
                {
                    "type": "telegram.edit",
                    "bot": card.bot,
                    "chat_id": card.chat_id,
                    "message_id": card.message_id,
                    "text": text,
                    "keyboard": keyboard,
                }
            )

    async def deliver(self, message: dict[str, Any]) -> None:
        """Send to ``telegram.send``, waiting while it is full or the layer is away."""
        layer = self.channel_layer
        assert layer is not None  # a worker's consumer: it runs on a channel layer
        pause = 0.05
        while True:
            try:
                await layer.send(TELEGRAM_SEND, message)
                return
            except (ChannelFull, ChannelLayerUnavailable) as exc:
                logger.debug("chatbot: %s busy (%s); retrying in %.2f s", TELEGRAM_SEND, exc, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, MAX_PAUSE)
