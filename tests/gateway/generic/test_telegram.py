"""Generic bot consumers, driven by TelegramCommunicator (no server)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.generic.telegram import AsyncTelegramConsumer, TelegramConsumer, parse_command
from gateway.testing import TelegramCommunicator


class Menu(AsyncTelegramConsumer):
    async def command_start(self, args: list[str], message: dict[str, Any]) -> None:
        await self.reply("Pick", keyboard=[[("A", "a")]])

    async def command_subscribe(self, args: list[str], message: dict[str, Any]) -> None:
        await self.call("getChat", request_id="chat", chat_id=int(args[0]))

    async def result(self, message: dict[str, Any]) -> None:
        await self.reply(f"result ok={message['ok']}")

    async def button(self, data: str | None, message: dict[str, Any]) -> None:
        await self.answer(f"got {data}", show_alert=True)

    async def receive_text(self, text: str, message: dict[str, Any]) -> None:
        await self.reply_photo(b"\x89PNG", caption=text)


class SyncMenu(TelegramConsumer):
    def command_start(self, args: list[str], message: dict[str, Any]) -> None:
        self.reply("Pick", keyboard=[[("A", "a")]])

    def button(self, data: str | None, message: dict[str, Any]) -> None:
        self.edit(1, f"chose {data}")


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("/start", ("start", [])),
        ("/subscribe 42 7", ("subscribe", ["42", "7"])),
        ("/Help@my_bot", ("help", [])),
        ("/help@other_bot", None),
        ("hello /start", None),
        ("", None),
    ],
)
def test_parse_command(text: str, parsed: object) -> None:
    assert parse_command(text, "my_bot") == parsed


async def test_async_consumer_commands_keyboard_calls_buttons() -> None:
    async with TelegramCommunicator(Menu.as_asgi(), chat_id=5) as bot:
        await bot.send_message("/start")
        assert await bot.receive_output() == {
            "type": "telegram.message",
            "text": "Pick",
            "keyboard": [[("A", "a")]],
        }
        await bot.send_message("/subscribe 42")
        call = await bot.receive_output()
        assert call == {
            "type": "telegram.call",
            "method": "getChat",
            "params": {"chat_id": 42},
            "request_id": "chat",
        }
        await bot.send_result("chat", {"id": 42})
        assert (await bot.receive_output())["text"] == "result ok=True"
        query_id = await bot.press_button("a")
        assert await bot.receive_output() == {
            "type": "telegram.answer",
            "callback_query_id": query_id,
            "text": "got a",
            "show_alert": True,
        }
        assert await bot.receive_nothing()  # answered by the hook: no automatic answer
        await bot.send_message("a caption")
        assert (await bot.receive_output())["type"] == "telegram.photo"
        await bot.send_update({"update_id": 99, "my_chat_member": {"chat": {"id": 5}}})
        assert await bot.receive_nothing()  # other kinds are ignored, the consumer lives
        await bot.disconnect()


class AtMostOnce(AsyncTelegramConsumer):
    async def receive_text(self, text: str, message: dict[str, Any]) -> None:
        await self.reply("Paid", retry=False)
        await self.call("sendDice", retry=False, emoji="🎲")
        await self.call("getChat", chat_id=1)


async def test_helpers_pass_retry_to_the_server_not_to_the_bot_api() -> None:
    async with TelegramCommunicator(AtMostOnce.as_asgi(), chat_id=5) as bot:
        await bot.send_message("pay")
        assert [await bot.receive_output() for _ in range(3)] == [
            {"type": "telegram.message", "text": "Paid", "retry": False},
            {
                "type": "telegram.call",
                "method": "sendDice",
                "params": {"emoji": "🎲"},
                "retry": False,
            },
            {"type": "telegram.call", "method": "getChat", "params": {"chat_id": 1}},
        ]
        await bot.disconnect()


async def test_sync_consumer_and_automatic_callback_answer() -> None:
    async with TelegramCommunicator(SyncMenu.as_asgi(), chat_id=-100, thread_id=3) as bot:
        assert bot.scope["message_thread_id"] == 3
        await bot.send_message("/start")
        assert (await bot.receive_output())["text"] == "Pick"
        query_id = await bot.press_button("a")
        assert await bot.receive_output() == {
            "type": "telegram.edit",
            "message_id": 1,
            "text": "chose a",
        }
        assert await bot.receive_output() == {
            "type": "telegram.answer",
            "callback_query_id": query_id,
        }
        await bot.disconnect()
