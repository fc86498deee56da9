"""A command/keyboard bot end to end over HTTP: polling and webhook, several bots."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from gateway.botapi import BotAPIServer
from gateway.generic.telegram import AsyncTelegramConsumer, TelegramConsumer
from gateway.routing import BotRouter, ProtocolTypeRouter
from protocols.telegram.webhook import WebhookApp
from tests.protocols.telegram.conftest import serving, serving_webhook


class ShopBot(TelegramConsumer):
    def command_start(self, args: list[str], message: dict[str, Any]) -> None:
        self.reply("Welcome!", keyboard=[[("Subscribe", "sub"), ("Help", "help")]])

    def command_subscribe(self, args: list[str], message: dict[str, Any]) -> None:
        self.reply(f"Subscribed to {args[0]}" if args else "Usage: /subscribe ID")

    def receive_text(self, text: str, message: dict[str, Any]) -> None:
        self.chat_action("typing")
        self.reply(f"You said: {text}")

    def button(self, data: str | None, message: dict[str, Any]) -> None:
        original = message["callback_query"]["message"]
        if data == "sub":
            self.answer("Subscribed!")
        self.edit(original["message_id"], f"You chose {data}")


class EchoBot(AsyncTelegramConsumer):
    async def receive_text(self, text: str, message: dict[str, Any]) -> None:
        await self.reply(text.upper())


async def converse(api: BotAPIServer, token: str, chat_id: int) -> None:
    api.user_message(token, "/start", chat_id=chat_id)
    (welcome,) = await api.wait_sent(token, chat_id)
    assert welcome["text"] == "Welcome!"
    assert welcome["reply_markup"]["inline_keyboard"][0][0] == {
        "text": "Subscribe",
        "callback_data": "sub",
    }
    api.user_message(token, "/subscribe 42", chat_id=chat_id)
    api.user_message(token, "/unknown thing", chat_id=chat_id)
    sent = await api.wait_sent(token, chat_id, 3)
    assert [m["text"] for m in sent[1:]] == ["Subscribed to 42", "You said: /unknown thing"]
    pressed = [
        api.press_button(token, welcome, data)["callback_query"]["id"] for data in ("sub", "help")
    ]

    def answers() -> dict[str, Any]:
        calls = api.calls(token, "answerCallbackQuery")
        return {a["callback_query_id"]: a.get("text") for a in calls}

    await api.wait_for(token, lambda: set(pressed) <= set(answers()))
    assert [answers()[query] for query in pressed] == ["Subscribed!", None]  # 2nd: automatic
    assert api.sent(token, chat_id)[0]["text"] == "You chose help"
    actions = api.calls(token, "sendChatAction")
    assert {"chat_id": chat_id, "action": "typing"} in actions


async def test_command_keyboard_bot_polling(
    api: BotAPIServer, caplog: pytest.LogCaptureFixture
) -> None:
    token = api.add_bot("shop_bot")
    async with serving(ShopBot.as_asgi(), api, token):
        await asyncio.gather(converse(api, token, 1), converse(api, token, 2))
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_command_keyboard_bot_webhook_through_the_web_server(api: BotAPIServer) -> None:
    token = api.add_bot("shop_bot")
    async with serving_webhook(ShopBot.as_asgi(), api, token) as server:
        await converse(api, token, 5)
        (scope,) = [i.scope for i in server.runners[0].manager.instances.values()]
    assert scope["transport"] == "webhook"


async def test_webhook_route_checks_secret_and_body(api: BotAPIServer) -> None:
    import httpx

    token = api.add_bot("shop_bot")
    bot_id = token.split(":")[0]
    async with serving(
        ShopBot.as_asgi(),
        api,
        token,
        transport="webhook",
        bot_config={"webhook_url": "http://127.0.0.1:9/unused", "webhook_secret": "right"},
    ) as server:
        app = WebhookApp(server)
        # httpx types ASGI scopes and messages as MutableMappings, gateway as dicts.
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            path = f"/telegram/webhook/{bot_id}"
            header = "X-Telegram-Bot-Api-Secret-Token"
            wrong = await client.post(path, json={"update_id": 1}, headers={header: "wrong"})
            bad = await client.post(path, content=b"{not json", headers={header: "right"})
            other = await client.post("/telegram/webhook/1", json={}, headers={header: "right"})
    assert (wrong.status_code, bad.status_code, other.status_code) == (403, 400, 404)


async def test_several_bots_routed_by_username(api: BotAPIServer) -> None:
    shop = api.add_bot("shop_bot")
    echo = api.add_bot("Echo_Bot")
    app = ProtocolTypeRouter(
        {"telegram": BotRouter({"shop_bot": ShopBot.as_asgi(), "@echo_bot": EchoBot.as_asgi()})}
    )
    async with serving(app, api, shop, echo):
        api.user_message(shop, "hello", chat_id=8)
        api.user_message(echo, "hello", chat_id=8)
        (from_shop,) = await api.wait_sent(shop, 8)
        (from_echo,) = await api.wait_sent(echo, 8)
    assert (from_shop["text"], from_echo["text"]) == ("You said: hello", "HELLO")


class PhotoBot(AsyncTelegramConsumer):
    async def receive_text(self, text: str, message: dict[str, Any]) -> None:
        await self.reply_photo(b"\x89PNG\r\n", caption=text, filename="chart.png")
        await self.call("getWebhookInfo", request_id="info")

    async def result(self, message: dict[str, Any]) -> None:
        await self.reply(f"{message['request_id']}: ok={message['ok']}")


async def test_photo_upload_and_any_method_call_with_a_result(api: BotAPIServer) -> None:
    token = api.add_bot("photo_bot")
    async with serving(PhotoBot.as_asgi(), api, token):
        api.user_message(token, "chart please", chat_id=9)
        photo, answer = await api.wait_sent(token, 9, 2)
    assert photo["caption"] == "chart please"
    assert photo["photo"][0]["file_size"] == 6
    assert answer["text"] == "info: ok=True"
