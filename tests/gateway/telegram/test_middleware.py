"""Per-conversation Django sessions and linked accounts (PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from gateway.db import database_sync_to_async
from gateway.generic.telegram import TelegramConsumer
from gateway.telegram.accounts import issue_link_code, linked_user, redeem_link_code, unlink
from gateway.telegram.middleware import TelegramMiddlewareStack
from gateway.telegram.models import ConversationSession
from gateway.testing import TelegramCommunicator

pytestmark = pytest.mark.django_db(transaction=True)


class Counter(TelegramConsumer):
    def command_start(self, args: list[str], message: dict[str, Any]) -> None:
        user = redeem_link_code(args[0], self.scope["telegram_user"]) if args else None
        self.reply(f"linked {user.username}" if user else "no such code")

    def receive_text(self, text: str, message: dict[str, Any]) -> None:
        session = self.scope["session"]
        session["count"] = session.get("count", 0) + 1
        user = self.scope["user"]
        name = user.username if user.is_authenticated else "anonymous"
        self.reply(f"{name} #{session['count']}")


async def converse(text: str, chat_id: int = 77) -> str:
    app = TelegramMiddlewareStack(Counter.as_asgi())
    async with TelegramCommunicator(app, chat_id=chat_id) as bot:
        await bot.send_message(text)
        reply = await bot.receive_output(timeout=5)
        await bot.disconnect(timeout=5)
    return str(reply["text"])


async def test_session_survives_the_scope_and_is_per_conversation() -> None:
    assert await converse("hi") == "anonymous #1"
    assert await converse("hi again") == "anonymous #2"  # a new scope, as after a restart
    assert await converse("hi", chat_id=78) == "anonymous #1"
    assert await database_sync_to_async(ConversationSession.objects.count)() == 2


async def test_linked_account_becomes_scope_user() -> None:
    user = await database_sync_to_async(User.objects.create_user)("ann")
    code = await database_sync_to_async(issue_link_code)(user)
    assert await converse("/start wrong") == "no such code"
    assert await converse(f"/start {code}") == "linked ann"
    assert await converse(f"/start {code}") == "no such code"  # one-time
    assert await converse("hello") == "ann #1"
    assert (await database_sync_to_async(linked_user)(77)).username == "ann"
    assert await database_sync_to_async(unlink)(77)
    assert await converse("hello") == "anonymous #2"
