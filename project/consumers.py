"""The seed bot."""

from __future__ import annotations

from typing import Any

from gateway.consumer import SyncConsumer


class ChattyBotConsumer(SyncConsumer):
    """The seed example, kept exactly as DESIGN.md writes it."""

    def telegram_message(self, message: dict[str, Any]) -> None:
        self.send({"type": "telegram.message", "text": "You said: %s" % message["text"]})  # noqa: UP031
