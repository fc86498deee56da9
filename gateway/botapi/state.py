"""What the local Bot API server knows about one bot: its updates, chats and messages.

Updates are kept until confirmed by a ``getUpdates`` offset or delivered to the
webhook, as Telegram does (https://core.telegram.org/bots/api#getting-updates).
Overflow policy: at most :data:`MAX_PENDING` unconfirmed updates per bot; beyond
that the oldest is dropped with a warning (Telegram itself drops updates after 24 h).
The call log keeps the last :data:`MAX_CALLS` calls; chats and messages live as long
as the server object (it is a test and development tool).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("gateway.botapi")

MAX_PENDING = 100_000
#: The call log (for assertions) keeps the most recent calls only.
MAX_CALLS = 100_000

#: Kinds Telegram leaves out unless ``allowed_updates`` names them.
OPT_IN_KINDS = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


class ApiError(Exception):
    """Answered as ``{"ok": false, ...}`` with HTTP status ``error_code``."""

    def __init__(
        self, error_code: int, description: str, parameters: dict[str, Any] | None = None
    ) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.parameters = parameters


@dataclass
class Webhook:
    url: str
    secret_token: str | None = None
    max_connections: int = 40
    last_error_date: int | None = None
    last_error_message: str | None = None


@dataclass
class Poll:
    """One pending ``getUpdates`` long poll."""

    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    conflict: bool = False


class BotState:
    """One bot's account on the local server."""

    def __init__(self, token: str, username: str, first_name: str) -> None:
        self.token = token
        self.id = int(token.split(":", 1)[0])
        self.username = username
        self.first_name = first_name
        self.pending: deque[dict[str, Any]] = deque()
        self.next_update_id = 1
        self.allowed_updates: list[str] | None = None
        self.webhook: Webhook | None = None
        self.poll: Poll | None = None
        self.chats: dict[int, dict[str, Any]] = {}
        self.messages: dict[int, dict[int, dict[str, Any]]] = {}
        self.next_message_id: dict[int, int] = {}
        self.sent: dict[int, list[dict[str, Any]]] = {}
        self.calls: deque[tuple[str, dict[str, Any]]] = deque(maxlen=MAX_CALLS)
        self.open_callback_queries: set[str] = set()
        #: The command menu (``setMyCommands``), as the Bot API returns it.
        self.commands: list[dict[str, str]] = []
        self.changed = asyncio.Condition()
        self.new_update = asyncio.Event()

    @property
    def user(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "is_bot": True,
            "first_name": self.first_name,
            "username": self.username,
        }

    def me(self) -> dict[str, Any]:
        return {
            **self.user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    # --- updates -------------------------------------------------------------------

    def wants(self, kind: str) -> bool:
        if self.allowed_updates:
            return kind in self.allowed_updates
        return kind not in OPT_IN_KINDS

    def add_update(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": self.next_update_id, kind: payload}
        self.next_update_id += 1
        if not self.wants(kind):
            return update
        if len(self.pending) >= MAX_PENDING:
            dropped = self.pending.popleft()
            logger.warning("bot %s: dropped update %d (queue full)", self.id, dropped["update_id"])
        self.pending.append(update)
        self.new_update.set()
        return update

    def confirm(self, offset: int) -> None:
        """Forget updates before ``offset``; a negative offset keeps the last ``-offset``."""
        if offset < 0:
            while len(self.pending) > -offset:
                self.pending.popleft()
            return
        while self.pending and self.pending[0]["update_id"] < offset:
            self.pending.popleft()

    def drop_pending(self) -> None:
        self.pending.clear()

    # --- chats and messages --------------------------------------------------------

    def message(self, chat_id: int, sender: dict[str, Any], **fields: Any) -> dict[str, Any]:
        """Store a new message in ``chat_id`` (which must be known) and return it."""
        chat = self.chats.get(chat_id)
        if chat is None:
            raise ApiError(400, "Bad Request: chat not found")
        message_id = self.next_message_id.get(chat_id, 1)
        self.next_message_id[chat_id] = message_id + 1
        message = {
            "message_id": message_id,
            "from": sender,
            "chat": chat,
            "date": int(time.time()),
            **{key: value for key, value in fields.items() if value is not None},
        }
        self.messages.setdefault(chat_id, {})[message_id] = message
        return message

    def stored(self, chat_id: int, message_id: int) -> dict[str, Any]:
        message = self.messages.get(chat_id, {}).get(message_id)
        if message is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        return message

    async def record_sent(self, message: dict[str, Any]) -> None:
        async with self.changed:
            self.sent.setdefault(message["chat"]["id"], []).append(message)
            self.changed.notify_all()

    async def record_call(self, method: str, params: dict[str, Any]) -> None:
        async with self.changed:
            self.calls.append((method, params))
            self.changed.notify_all()
