"""Fixtures for the bot: its users and devices, a linked chat, and the bot served by the
real Telegram server against the local Bot API server (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from gateway.botapi import BotAPIServer
from gateway.telegram.accounts import issue_link_code
from gateway.telegram.middleware import TelegramMiddlewareStack
from project.chatbot.bot import DeviceBot
from project.chatbot.menu import COMMANDS
from project.iot.models import Thing
from project.iot.services import create_thing
from protocols.telegram.server import TelegramServer
from tests.protocols.telegram.conftest import serving

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 10.0
ALICE_CHAT = 101
BOB_CHAT = 202


@dataclass
class Chat:
    """One user's private chat with the bot, on the local Bot API server."""

    api: BotAPIServer
    token: str
    chat_id: int

    def say(self, text: str) -> None:
        self.api.user_message(self.token, text, chat_id=self.chat_id)

    def press(self, message: dict[str, Any], data: str) -> None:
        self.api.press_button(self.token, message, data)

    def sent(self) -> list[dict[str, Any]]:
        return self.api.sent(self.token, self.chat_id)

    async def next_sent(self, count: int) -> dict[str, Any]:
        """The ``count``-th message the bot sent to this chat (1-based), once it is there."""
        return (await self.api.wait_sent(self.token, self.chat_id, count, timeout=WAIT))[count - 1]

    async def until(self, predicate: Any) -> None:
        await self.api.wait_for(self.token, predicate, timeout=WAIT)

    async def answers(self, count: int) -> list[dict[str, Any]]:
        """The first ``count`` answerCallbackQuery calls, once made."""
        return await self.api.wait_calls(self.token, "answerCallbackQuery", count, timeout=WAIT)


def buttons(message: dict[str, Any]) -> dict[str, str]:
    """A message's inline buttons: label -> callback data."""
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return {button["text"]: button["callback_data"] for row in rows for button in row}


@pytest.fixture
async def people() -> dict[str, Any]:
    """alice owns "Boiler" (commands reboot, purge) and "Pump" (any command); bob "Fridge"."""

    def make() -> dict[str, Any]:
        alice = User.objects.create_user("alice", password="pw")
        bob = User.objects.create_user("bob", password="pw")
        boiler, _ = create_thing(alice, "boiler-1", "Boiler", commands=["reboot", "purge"])
        pump, _ = create_thing(alice, "pump-1", "Pump")
        fridge, _ = create_thing(bob, "fridge-1", "Fridge", commands=["defrost"])
        Thing.objects.filter(pk=boiler.pk).update(online=True, last_values={"temperature": 21.5})
        Thing.objects.filter(pk=pump.pk).update(online=True)
        return {"alice": alice, "bob": bob, "boiler": boiler, "pump": pump, "fridge": fridge}

    return await sync_to_async(make)()


def bot_application() -> Any:
    return TelegramMiddlewareStack(DeviceBot.as_asgi())


@contextlib.asynccontextmanager
async def bot_server(
    api: BotAPIServer, token: str, **options: Any
) -> AsyncIterator[TelegramServer]:
    options = {"channel_layer": "default", **options}  # telegram.send too, as in production
    async with serving(
        bot_application(), api, token, commands=list(COMMANDS.items()), **options
    ) as server:
        yield server


@pytest.fixture
async def api() -> AsyncIterator[BotAPIServer]:
    async with BotAPIServer() as server:
        yield server


@pytest.fixture
def token(api: BotAPIServer) -> str:
    return api.add_bot("devices_bot")


@pytest.fixture
async def bot(api: BotAPIServer, token: str) -> AsyncIterator[TelegramServer]:
    async with bot_server(api, token) as server:
        yield server


async def link_code(user: User, ttl: datetime.timedelta = datetime.timedelta(minutes=5)) -> str:
    return await sync_to_async(issue_link_code)(user, ttl)


@pytest.fixture
async def alice(api: BotAPIServer, token: str, bot: TelegramServer, people: dict[str, Any]) -> Chat:
    """alice's chat, linked to her account."""
    chat = Chat(api, token, ALICE_CHAT)
    chat.say(f"/link {await link_code(people['alice'])}")
    assert (await chat.next_sent(1))["text"].startswith("Linked to alice")
    return chat
