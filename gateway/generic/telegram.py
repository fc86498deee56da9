"""Telegram bot consumers: commands, text, buttons and replies as one-line calls.

::

    class ShopBot(TelegramConsumer):
        def command_start(self, args, message):
            self.reply("Welcome!", keyboard=[[("Subscribe", "sub"), ("Help", "help")]])

        def command_subscribe(self, args, message):   # "/subscribe 42" -> args == ["42"]
            self.reply(f"Subscribed to {args[0]}")

        def receive_text(self, text, message):
            self.reply(f"You said: {text}")

        def button(self, data, message):               # an inline button was pressed
            self.answer("Noted")                       # else answered empty automatically
            self.edit(message["callback_query"]["message"]["message_id"], f"You chose {data}")

One implementation of the ``telegram`` events (:class:`TelegramHandlers`, see
docs/specs/telegram.md); :class:`AsyncTelegramConsumer` and :class:`TelegramConsumer`
differ only in whether hooks and helpers are coroutines or plain methods (run in a
worker thread, see :mod:`gateway.consumer`). The outgoing messages are built by
:class:`Replies`, shared by both.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.consumer import AsyncConsumer, SyncConsumer
from gateway.types import Message

__all__ = ["AsyncTelegramConsumer", "TelegramConsumer", "parse_command"]

_COMMAND = re.compile(r"^/(?P<name>[A-Za-z0-9_]{1,32})(?:@(?P<bot>[A-Za-z0-9_]+))?$")

Keyboard = list[list[Any]]


def parse_command(text: str, bot_username: str | None = None) -> tuple[str, list[str]] | None:
    """``("subscribe", ["42"])`` for ``"/subscribe 42"``; None if not a command for this bot.

    ``/cmd@other_bot`` (a command addressed to another bot in a group) is None.
    """
    words = text.split()
    if not words:
        return None
    match = _COMMAND.match(words[0])
    if match is None:
        return None
    addressed = match["bot"]
    if addressed and bot_username and addressed.lower() != bot_username.lower():
        return None
    return match["name"].lower(), words[1:]


class Replies:
    """The outgoing ``telegram.*`` messages behind the helpers (spec §3)."""

    current_callback_query_id: str | None = None

    def _answer_message(
        self, text: str | None, show_alert: bool, callback_query_id: str | None
    ) -> Message:
        query_id = callback_query_id or self.current_callback_query_id
        if query_id is None:
            raise RuntimeError("answer() outside a button press needs a callback_query_id")
        if query_id == self.current_callback_query_id:
            self.current_callback_query_id = None  # answered: no automatic answer
        message: Message = {"type": "telegram.answer", "callback_query_id": query_id}
        if text is not None:
            message["text"] = text
        if show_alert:
            message["show_alert"] = True
        return message

    @staticmethod
    def _with_keyboard(
        message: Message, keyboard: Keyboard | None, extra: dict[str, Any]
    ) -> Message:
        if keyboard is not None:
            message["keyboard"] = keyboard
        message.update(extra)
        return message

    def _reply_message(
        self, text: str, keyboard: Keyboard | None, extra: dict[str, Any]
    ) -> Message:
        return self._with_keyboard({"type": "telegram.message", "text": text}, keyboard, extra)

    @staticmethod
    def _photo_message(photo: bytes | str, caption: str | None, extra: dict[str, Any]) -> Message:
        message = {"type": "telegram.photo", "photo": photo, "caption": caption}
        return {k: v for k, v in {**message, **extra}.items() if v is not None}

    def _edit_message(
        self, message_id: int, text: str, keyboard: Keyboard | None, extra: dict[str, Any]
    ) -> Message:
        message: Message = {"type": "telegram.edit", "message_id": message_id, "text": text}
        return self._with_keyboard(message, keyboard, extra)

    @staticmethod
    def _chat_action_message(action: str) -> Message:
        return {"type": "telegram.chat_action", "action": action}

    @staticmethod
    def _call_message(
        method: str, request_id: Any, params: dict[str, Any], retry: bool | None = None
    ) -> Message:
        message: Message = {"type": "telegram.call", "method": method, "params": params}
        if request_id is not None:
            message["request_id"] = request_id
        if retry is not None:
            message["retry"] = retry
        return message


class TelegramHandlers(AsyncConsumer, Replies):
    """The ``telegram.*`` handlers shared by both consumers; hooks run through ``_call_hook``."""

    async def dispatch(self, message: Message) -> None:
        """Updates of kinds without a handler (``telegram.my_chat_member`` …): ``other_update``."""
        kind = message.get("type")
        if (
            isinstance(kind, str)
            and kind.startswith("telegram.")
            and not hasattr(self, kind.replace(".", "_"))
        ):
            await self._call_hook(self.other_update, message)
            return
        await super().dispatch(message)

    async def telegram_message(self, message: Message) -> None:
        text = message.get("text") or ""
        command = parse_command(text, self.scope.get("bot", {}).get("username"))
        if command is None:
            await self._call_hook(self.receive_text, text, message)
            return
        name, args = command
        hook = getattr(self, f"command_{name}", None)
        if callable(hook):
            await self._call_hook(hook, args, message)
        else:
            await self._call_hook(self.unknown_command, name, args, message)

    async def telegram_callback_query(self, message: Message) -> None:
        """Run ``button``; answer the query afterwards unless the hook did (Bot API asks for it)."""
        self.current_callback_query_id = message.get("callback_query_id")
        try:
            await self._call_hook(self.button, message.get("data"), message)
        finally:
            if self.current_callback_query_id is not None:
                await self._asgi_send(self._answer_message(None, False, None))
            self.current_callback_query_id = None

    async def telegram_result(self, message: Message) -> None:
        await self._call_hook(self.result, message)

    async def telegram_disconnect(self, message: Message) -> None:
        await self._leave_groups()
        await self._call_hook(self.disconnect)  # the consumer then ends (terminal event)

    # The hooks subclasses define (async or sync) ----------------------------------
    receive_text: Any
    other_update: Any
    unknown_command: Any
    button: Any
    result: Any
    disconnect: Any


class AsyncTelegramConsumer(TelegramHandlers):
    """A bot consumer with async hooks: ``command_<name>``, ``receive_text``, ``button``."""

    async def receive_text(self, text: str, message: Message) -> None:
        """A message that is not a command; does nothing by default."""

    async def unknown_command(self, name: str, args: list[str], message: Message) -> None:
        """A ``/command`` without a ``command_<name>`` method; treated as text by default."""
        await self.receive_text(message.get("text") or "", message)

    async def button(self, data: str | None, message: Message) -> None:
        """An inline keyboard button was pressed; does nothing by default."""

    async def other_update(self, message: Message) -> None:
        """Any other update (edits, chat members, unknown kinds); ignored by default."""

    async def result(self, message: Message) -> None:
        """A ``telegram.result`` for a call made with a ``request_id``; ignored by default."""

    async def disconnect(self) -> None:
        """The conversation's scope ends (idle, evicted or shutdown)."""

    async def reply(self, text: str, keyboard: Keyboard | None = None, **extra: Any) -> None:
        """Send ``text`` to this conversation; ``keyboard`` rows of ``(label, data)`` buttons."""
        await self.base_send(self._reply_message(text, keyboard, extra))

    async def reply_photo(
        self, photo: bytes | str, caption: str | None = None, **extra: Any
    ) -> None:
        """Send a photo (bytes are uploaded; a str is a file_id or URL)."""
        await self.base_send(self._photo_message(photo, caption, extra))

    async def edit(
        self, message_id: int, text: str, keyboard: Keyboard | None = None, **extra: Any
    ) -> None:
        """Replace the text (and keyboard) of a message the bot sent."""
        await self.base_send(self._edit_message(message_id, text, keyboard, extra))

    async def answer(
        self,
        text: str | None = None,
        show_alert: bool = False,
        callback_query_id: str | None = None,
    ) -> None:
        """Answer the button press being handled (or ``callback_query_id``)."""
        await self.base_send(self._answer_message(text, show_alert, callback_query_id))

    async def chat_action(self, action: str = "typing") -> None:
        await self.base_send(self._chat_action_message(action))

    async def call(
        self, method: str, request_id: Any = None, *, retry: bool | None = None, **params: Any
    ) -> None:
        """Call any Bot API ``method``; with ``request_id`` the answer comes to :meth:`result`.
        ``retry=False``: at most once (docs/telegram.md, "Retries can send a message twice")."""
        await self.base_send(self._call_message(method, request_id, params, retry))


class TelegramConsumer(TelegramHandlers, SyncConsumer):
    """The same as :class:`AsyncTelegramConsumer` with plain methods, run in a worker thread."""

    def receive_text(self, text: str, message: Message) -> None:
        """A message that is not a command; does nothing by default."""

    def unknown_command(self, name: str, args: list[str], message: Message) -> None:
        """A ``/command`` without a ``command_<name>`` method; treated as text by default."""
        self.receive_text(message.get("text") or "", message)

    def button(self, data: str | None, message: Message) -> None:
        """An inline keyboard button was pressed; does nothing by default."""

    def other_update(self, message: Message) -> None:
        """Any other update (edits, chat members, unknown kinds); ignored by default."""

    def result(self, message: Message) -> None:
        """A ``telegram.result`` for a call made with a ``request_id``; ignored by default."""

    def disconnect(self) -> None:
        """The conversation's scope ends (idle, evicted or shutdown)."""

    def reply(self, text: str, keyboard: Keyboard | None = None, **extra: Any) -> None:
        """Send ``text`` to this conversation; ``keyboard`` rows of ``(label, data)`` buttons."""
        self.base_send(self._reply_message(text, keyboard, extra))

    def reply_photo(self, photo: bytes | str, caption: str | None = None, **extra: Any) -> None:
        """Send a photo (bytes are uploaded; a str is a file_id or URL)."""
        self.base_send(self._photo_message(photo, caption, extra))

    def edit(
        self, message_id: int, text: str, keyboard: Keyboard | None = None, **extra: Any
    ) -> None:
        """Replace the text (and keyboard) of a message the bot sent."""
        self.base_send(self._edit_message(message_id, text, keyboard, extra))

    def answer(
        self,
        text: str | None = None,
        show_alert: bool = False,
        callback_query_id: str | None = None,
    ) -> None:
        """Answer the button press being handled (or ``callback_query_id``)."""
        self.base_send(self._answer_message(text, show_alert, callback_query_id))

    def chat_action(self, action: str = "typing") -> None:
        self.base_send(self._chat_action_message(action))

    def call(
        self, method: str, request_id: Any = None, *, retry: bool | None = None, **params: Any
    ) -> None:
        """Call any Bot API ``method``; with ``request_id`` the answer comes to :meth:`result`.
        ``retry=False``: at most once (docs/telegram.md, "Retries can send a message twice")."""
        self.base_send(self._call_message(method, request_id, params, retry))
