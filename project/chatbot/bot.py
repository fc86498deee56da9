"""The bot people talk to: commands, device cards with buttons, and one conversation step.

One :class:`DeviceBot` per conversation (the Telegram server's scope), behind
``TelegramMiddlewareStack`` for the conversation's Django session. The Django user
is looked up from the sender of every update, not once per conversation: in a
group each member acts as themselves, and an unlink on the dashboard holds at once.

What a conversation is in the middle of (the device whose command name the bot
asked for) lives in the session, so it survives a restart of the process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.utils import timezone

from gateway.db import database_sync_to_async
from gateway.generic.telegram import AsyncTelegramConsumer
from gateway.telegram.accounts import linked_user
from gateway.types import Message
from project.chatbot import cards, services
from project.chatbot.services import ChatRef, NoSuchDevice

T = TypeVar("T")

#: Session key of the pending conversation step: ``{"device": pk, "card": message_id}``.
AWAITING_COMMAND = "chatbot.awaiting_command"
GONE = "That device is not yours, or it no longer exists."


def _sender(message: Message) -> dict[str, Any] | None:
    for kind in ("message", "edited_message", "callback_query"):
        payload = message.get(kind)
        if isinstance(payload, dict) and isinstance(payload.get("from"), dict):
            sender: dict[str, Any] = payload["from"]
            return sender
    return None


def _card_message_id(message: Message) -> int | None:
    carrier = (message.get("callback_query") or {}).get("message") or {}
    message_id = carrier.get("message_id")
    return message_id if isinstance(message_id, int) else None


class DeviceBot(AsyncTelegramConsumer):
    """Watch and command the devices of the Django user the chat is linked to."""

    # -- plumbing ------------------------------------------------------------------

    @property
    def chat_id(self) -> int:
        return int(self.scope["chat"]["id"])

    def where(self, message_id: int | None = None) -> ChatRef:
        return ChatRef(
            bot=self.scope["bot"]["username"], chat_id=self.chat_id, message_id=message_id
        )

    async def user_of(self, message: Message) -> Any:
        """The sender's linked, active Django user; None (and the chat told how to link)."""
        sender = _sender(message)
        user = None
        if sender is not None and isinstance(sender.get("id"), int):
            user = await database_sync_to_async(linked_user)(sender["id"])
        if user is None:
            await self.say(message, cards.NOT_LINKED)
        return user

    async def say(self, message: Message, text: str) -> None:
        """A short answer: a toast for a button press, a message otherwise."""
        if message.get("type") == "telegram.callback_query":
            await self.answer(text[:200])
        else:
            await self.reply(text)

    async def run(
        self, message: Message, work: Callable[..., T], *args: Any, **kwargs: Any
    ) -> T | None:
        """``work(*args, **kwargs)`` in the database thread; a device that is not the
        user's is answered with :data:`GONE` (None is returned)."""
        try:
            return await database_sync_to_async(work)(*args, **kwargs)
        except NoSuchDevice:
            await self.say(message, GONE)
            return None

    @property
    def session(self) -> Any:
        """The conversation's Django session (use its async methods: ``aget``, ``aset``)."""
        return self.scope["session"]

    # -- commands ------------------------------------------------------------------

    async def command_start(self, args: list[str], message: Message) -> None:
        if args:  # a t.me/<bot>?start=<code> deep link carries the link code
            await self.command_link(args, message)
            return
        await self.reply(cards.HELP)

    async def command_help(self, args: list[str], message: Message) -> None:
        await self.reply(cards.HELP)

    async def command_link(self, args: list[str], message: Message) -> None:
        sender = _sender(message)
        if len(args) != 1 or sender is None:
            await self.reply("Send the code from the dashboard: /link <code>")
            return
        user, why = await database_sync_to_async(services.link_chat)(args[0], sender)
        if user is None:
            await self.reply(why or "That code is not valid.")
            return
        await self.reply(f"Linked to {user.get_username()}. /devices shows your devices.")

    async def command_unlink(self, args: list[str], message: Message) -> None:
        sender = _sender(message)
        unlinked = sender is not None and await database_sync_to_async(services.unlink_chat)(
            int(sender["id"]), self.chat_id
        )
        await self.session.apop(AWAITING_COMMAND, None)
        await self.reply(
            "Unlinked: this chat no longer sees your devices." if unlinked else cards.NOT_LINKED
        )

    async def command_cancel(self, args: list[str], message: Message) -> None:
        asked = await self.session.apop(AWAITING_COMMAND, None)
        await self.reply("Cancelled." if asked else "Nothing to cancel.")

    async def command_devices(self, args: list[str], message: Message) -> None:
        user = await self.user_of(message)
        if user is not None:
            things = await database_sync_to_async(services.devices_of)(user)
            text, keyboard = cards.device_list(things)
            await self.reply(text, keyboard=keyboard)

    async def command_status(self, args: list[str], message: Message) -> None:
        await self._by_name(args, message, "status", self._send_card)

    async def command_subscribe(self, args: list[str], message: Message) -> None:
        await self._by_name(args, message, "subscribe", self._subscribe)

    async def command_unsubscribe(self, args: list[str], message: Message) -> None:
        await self._by_name(args, message, "unsubscribe", self._unsubscribe)

    async def _by_name(
        self, args: list[str], message: Message, command: str, then: Callable[..., Any]
    ) -> None:
        user = await self.user_of(message)
        if user is None:
            return
        if not args:
            await self.reply(f"Which device? /{command} <device id or name>, or see /devices")
            return
        thing = await self.run(message, services.find_device, user, " ".join(args))
        if thing is not None:
            await then(user, thing.pk, message)

    async def unknown_command(self, name: str, args: list[str], message: Message) -> None:
        await self.reply(f"I don't know /{name}. /help lists what I can do.")

    async def receive_text(self, text: str, message: Message) -> None:
        asked = await self.session.aget(AWAITING_COMMAND)
        if not asked:
            await self.reply("Send /devices to see your devices, or /help.")
            return
        user = await self.user_of(message)
        if user is None:
            return
        await self.session.apop(AWAITING_COMMAND)
        await self._command(user, asked["device"], text.strip(), asked.get("card"), message)

    # -- buttons -------------------------------------------------------------------

    async def button(self, data: str | None, message: Message) -> None:
        action, _, rest = (data or "").partition(":")
        pk_text, _, index = rest.partition(":")
        if action != "list" and (action not in self.BUTTONS or not pk_text.isdigit()):
            await self.answer("This button is no longer used.")
            return
        user = await self.user_of(message)
        if user is None:
            return
        if action == "list":
            things = await database_sync_to_async(services.devices_of)(user)
            await self._put(_card_message_id(message), *cards.device_list(things))
        else:
            await self.BUTTONS[action](self, user, int(pk_text), message, index)

    async def _show_here(self, user: Any, pk: int, message: Message, _: str = "") -> None:
        """Turn the pressed message into the device's card (from the list, or refresh)."""
        await self._render(user, pk, message, _card_message_id(message))

    async def _show_new(self, user: Any, pk: int, message: Message, _: str = "") -> None:
        await self._send_card(user, pk, message)

    async def _subscribe(self, user: Any, pk: int, message: Message, _: str = "") -> None:
        thing = await self.run(message, services.subscribe, user, pk, self.where())
        if thing is not None:
            await self._after_change(user, pk, message, f"Alerts of {thing.name} come here now.")

    async def _unsubscribe(self, user: Any, pk: int, message: Message, _: str = "") -> None:
        result = await self.run(message, services.unsubscribe, user, pk, self.chat_id)
        if result is not None:
            thing, was = result
            note = f"No more alerts of {thing.name}." if was else "Not subscribed."
            await self._after_change(user, pk, message, note)

    async def _mute(self, user: Any, pk: int, message: Message, _: str = "") -> None:
        until = timezone.now() + services.MUTE_FOR
        muted = await self.run(message, services.mute, user, pk, self.chat_id, until=until)
        if muted is not None:
            note = "Muted for an hour." if muted else "Subscribe first."
            await self._after_change(user, pk, message, note)

    async def _unmute(self, user: Any, pk: int, message: Message, _: str = "") -> None:
        unmuted = await self.run(message, services.mute, user, pk, self.chat_id, until=None)
        if unmuted is not None:
            await self._after_change(user, pk, message, "Unmuted.")

    async def _press_command(self, user: Any, pk: int, message: Message, index: str) -> None:
        thing = await self.run(message, services.device_of, user, pk)
        if thing is None:
            return
        if not index.isdigit() or int(index) >= len(thing.commands):
            await self.answer("That command is no longer offered; refreshed.")
            await self._render(user, pk, message, _card_message_id(message))
            return
        name = thing.commands[int(index)]
        await self._command(user, pk, name, _card_message_id(message), message)

    async def _ask_command(self, user: Any, pk: int, message: Message, _: str = "") -> None:
        thing = await self.run(message, services.device_of, user, pk)
        if thing is not None:
            step = {"device": pk, "card": _card_message_id(message)}
            await self.session.aset(AWAITING_COMMAND, step)
            await self.answer()
            await self.reply(f"Type the command for {thing.name} (e.g. reboot), or /cancel.")

    BUTTONS: dict[str, Callable[..., Any]] = {
        "dev": _show_here,
        "ref": _show_here,
        "show": _show_new,
        "sub": _subscribe,
        "uns": _unsubscribe,
        "mute": _mute,
        "unmute": _unmute,
        "cmd": _press_command,
        "ask": _ask_command,
    }

    # -- cards ---------------------------------------------------------------------

    async def _command(
        self, user: Any, pk: int, name: str, card: int | None, message: Message
    ) -> None:
        sent = await self.run(message, services.command, user, pk, name, self.where(card))
        if sent is None:
            return
        await self.say(message, cards.command_toast(sent))
        # The card is drawn from the database after the command was remembered on it:
        # an acknowledgement that came first shows here, a later one edits it again.
        await self._render(user, pk, message, card)

    async def _after_change(self, user: Any, pk: int, message: Message, note: str) -> None:
        await self.say(message, note)
        await self._render(user, pk, message, _card_message_id(message))

    async def _send_card(self, user: Any, pk: int, message: Message, _: str = "") -> None:
        await self._render(user, pk, message, None)

    async def _render(self, user: Any, pk: int, message: Message, card: int | None) -> None:
        """Draw the device's card: edit message ``card`` in place, or send a new one."""
        data = await self.run(message, services.card_data, user, pk, self.chat_id)
        if data is not None:
            await self._put(card, *cards.device_card(data, timezone.now()))

    async def _put(self, card: int | None, text: str, keyboard: cards.Keyboard) -> None:
        """Edit message ``card`` in place; without one, send the text as a new message."""
        if card is None:
            await self.reply(text, keyboard=keyboard)
        else:
            await self.edit(card, text, keyboard=keyboard)
