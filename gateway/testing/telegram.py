"""Drive a Telegram consumer without any server: :class:`TelegramCommunicator`.

::

    async with TelegramCommunicator(ChattyBotConsumer.as_asgi(), chat_id=42) as bot:
        await bot.send_message("hi")
        assert (await bot.receive_output())["text"] == "You said: hi"
        await bot.disconnect()

The scope and the events are built by the same code the Telegram server uses
(:mod:`gateway.telegram.events`), from Bot API dicts made here.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from gateway.telegram.events import (
    BotIdentity,
    Transport,
    build_scope,
    conversation_of,
    disconnect_event,
    update_to_event,
)
from gateway.testing.application import ApplicationCommunicator
from gateway.types import ASGIApp

__all__ = ["TelegramCommunicator"]


class TelegramCommunicator(ApplicationCommunicator):
    """One conversation with ``application``: a private chat, or a group (negative id)."""

    def __init__(
        self,
        application: ASGIApp,
        *,
        chat_id: int = 1001,
        user: dict[str, Any] | None = None,
        bot_username: str = "test_bot",
        bot_id: int = 100001,
        thread_id: int | None = None,
        transport: Transport = "polling",
    ) -> None:
        self.bot = BotIdentity(bot_id, bot_username)
        self.user = user or {
            "id": abs(chat_id),
            "is_bot": False,
            "first_name": "Test",
            "username": f"user{abs(chat_id)}",
        }
        self.chat: dict[str, Any] = {"id": chat_id, "type": "private" if chat_id > 0 else "group"}
        if thread_id is not None:
            self.chat.update(type="supergroup", is_forum=True)
        self.thread_id = thread_id
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        first = self.message_update("")
        scope = build_scope(self.bot, conversation_of(bot_id, first), transport)
        super().__init__(application, dict(scope))

    def message_update(self, text: str, kind: str = "message") -> dict[str, Any]:
        """A Bot API ``Update`` with a message from the user (a ``/command`` gets its entity)."""
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "from": self.user,
            "chat": self.chat,
            "date": int(time.time()),
            "text": text,
        }
        if text.startswith("/"):
            length = len(text.split(maxsplit=1)[0])
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
        if self.thread_id is not None:
            message.update(message_thread_id=self.thread_id, is_topic_message=True)
        return {"update_id": next(self._update_ids), kind: message}

    async def send_update(self, update: dict[str, Any]) -> None:
        """Deliver any Bot API update as the server would."""
        await self.send_input(update_to_event(update))

    async def send_message(self, text: str) -> None:
        await self.send_update(self.message_update(text))

    async def press_button(self, data: str, message: dict[str, Any] | None = None) -> str:
        """Press an inline button with ``data`` (under ``message``); return the query id."""
        query_id = str(next(self._update_ids))
        bot_message = message or {
            "message_id": next(self._message_ids),
            "from": {"id": self.bot.id, "is_bot": True, "first_name": self.bot.username},
            "chat": self.chat,
            "date": int(time.time()),
            "text": "",
        }
        query = {
            "id": query_id,
            "from": self.user,
            "message": bot_message,
            "chat_instance": str(self.chat["id"]),
            "data": data,
        }
        await self.send_update({"update_id": next(self._update_ids), "callback_query": query})
        return query_id

    async def send_result(self, request_id: Any, result: Any = True) -> None:
        """Answer a ``telegram.call`` the consumer made with ``request_id``, successfully."""
        await self.send_input(
            {"type": "telegram.result", "request_id": request_id, "ok": True, "result": result}
        )

    async def disconnect(self, timeout: float = 1) -> None:
        """End the scope (``telegram.disconnect``) and wait for the consumer to finish."""
        await self.send_input(dict(disconnect_event()))
        await self.wait(timeout)
