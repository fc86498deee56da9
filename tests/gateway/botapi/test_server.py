"""The local Bot API server, checked against python-telegram-bot itself."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from telegram import Update
from telegram.ext import ApplicationBuilder, ContextTypes, MessageHandler, filters

from gateway.botapi import BotAPIServer, EnforcedLimits
from gateway.botapi.http import HttpServer, Request, Response


@pytest.fixture
async def server():
    async with BotAPIServer() as api:
        yield api


async def call(api: BotAPIServer, token: str, method: str, **kwargs: object) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(f"{api.base_url}{token}/{method}", **kwargs)  # type: ignore[arg-type]


async def test_plain_ptb_application_echo_bot_runs_unmodified(server: BotAPIServer) -> None:
    token = server.add_bot("echo_bot")

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        await update.message.reply_text(update.message.text or "")

    app = ApplicationBuilder().token(token).base_url(server.base_url).build()
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=1)
        server.user_message(token, "hi", chat_id=42)
        server.user_message(token, "there", chat_id=42)
        sent = await server.wait_sent(token, 42, count=2)
        await app.updater.stop()
        await app.stop()
    assert [m["text"] for m in sent] == ["hi", "there"]
    assert app.bot.username == "echo_bot"
    assert server.pending_updates(token) == 0  # offsets were confirmed


async def test_envelope_status_equals_error_code(server: BotAPIServer) -> None:
    token = server.add_bot("b")
    response = await call(server, token, "sendMessage", data={"chat_id": "5", "text": "x"})
    assert response.status_code == 400
    assert response.json() == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: chat not found",
    }
    response = await call(server, "1:nope", "getMe")
    assert (response.status_code, response.json()["error_code"]) == (401, 401)
    response = await call(server, token, "noSuchMethod")
    assert response.status_code == 404


async def test_form_json_and_multipart_bodies(server: BotAPIServer) -> None:
    token = server.add_bot("b")
    server.user_message(token, "hello", chat_id=7)
    markup = {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}
    form = await call(
        server,
        token,
        "sendMessage",
        data={"chat_id": "7", "text": "form", "reply_markup": json.dumps(markup)},
    )
    as_json = await call(server, token, "sendMessage", json={"chat_id": 7, "text": "json"})
    photo = await call(
        server,
        token,
        "sendPhoto",
        data={"chat_id": "7", "caption": "pic"},
        files={"photo": ("p.png", b"\x89PNG", "image/png")},
    )
    assert form.json()["result"]["reply_markup"] == markup
    assert as_json.json()["result"]["text"] == "json"
    assert photo.json()["result"]["photo"][0]["file_size"] == 4
    assert [m.get("text", m.get("caption")) for m in server.sent(token, 7)] == [
        "form",
        "json",
        "pic",
    ]


async def test_get_updates_offsets_long_poll_and_allowed_updates(server: BotAPIServer) -> None:
    token = server.add_bot("b")
    first = server.user_message(token, "one", chat_id=3)
    server.inject(token, "poll", {"id": "p1", "question": "?", "options": []})
    got = (await call(server, token, "getUpdates", json={"allowed_updates": ["message"]})).json()
    assert [u["update_id"] for u in got["result"]] == [first["update_id"]]
    # confirming with offset drops it; a long poll then waits for the next update
    poll = asyncio.create_task(
        call(server, token, "getUpdates", json={"offset": first["update_id"] + 1, "timeout": 5})
    )
    await asyncio.sleep(0)
    later = server.user_message(token, "two", chat_id=3)
    async with asyncio.timeout(5):
        result = (await poll).json()["result"]
    assert [u["update_id"] for u in result] == [later["update_id"]]
    assert result[0]["message"]["text"] == "two"


async def test_second_poller_and_webhook_get_409(server: BotAPIServer) -> None:
    token = server.add_bot("b")
    first = asyncio.create_task(call(server, token, "getUpdates", json={"timeout": 5}))
    async with asyncio.timeout(5):
        await server.wait_polling(token)
    second = asyncio.create_task(call(server, token, "getUpdates", json={"timeout": 0}))
    async with asyncio.timeout(5):
        loser = await first
        await second
    assert loser.status_code == 409
    assert "terminated by other getUpdates request" in loser.json()["description"]
    await call(server, token, "setWebhook", json={"url": "http://127.0.0.1:9/hook"})
    response = await call(server, token, "getUpdates")
    assert response.status_code == 409
    assert "webhook is active" in response.json()["description"]


async def test_flood_limit_answers_429_with_retry_after() -> None:
    limits = EnforcedLimits(per_chat_per_second=2, retry_after=3)
    async with BotAPIServer(limits=limits, clock=lambda: 100.0) as api:
        token = api.add_bot("b")
        api.user_message(token, "x", chat_id=9)
        responses = [
            await call(api, token, "sendMessage", json={"chat_id": 9, "text": "m"})
            for _ in range(3)
        ]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[2].json()["parameters"] == {"retry_after": 3}
    assert responses[2].json()["description"] == "Too Many Requests: retry after 3"


async def test_callback_queries_edits_and_chat_actions(server: BotAPIServer) -> None:
    token = server.add_bot("b")
    server.user_message(token, "menu", chat_id=4)
    sent = (await call(server, token, "sendMessage", json={"chat_id": 4, "text": "pick"})).json()
    update = server.press_button(token, sent["result"], "yes")
    query_id = update["callback_query"]["id"]
    answer = await call(server, token, "answerCallbackQuery", json={"callback_query_id": query_id})
    again = await call(server, token, "answerCallbackQuery", json={"callback_query_id": query_id})
    edit = await call(
        server,
        token,
        "editMessageText",
        json={"chat_id": 4, "message_id": sent["result"]["message_id"], "text": "picked"},
    )
    same = await call(
        server,
        token,
        "editMessageText",
        json={"chat_id": 4, "message_id": sent["result"]["message_id"], "text": "picked"},
    )
    action = await call(server, token, "sendChatAction", json={"chat_id": 4, "action": "typing"})
    assert answer.json() == {"ok": True, "result": True}
    assert again.status_code == 400
    assert edit.json()["result"]["text"] == "picked"
    assert "message is not modified" in same.json()["description"]
    assert action.json()["result"] is True
    assert server.sent(token, 4)[0]["text"] == "picked"


async def test_webhook_delivery_carries_secret_and_retries(server: BotAPIServer) -> None:
    token = server.add_bot("b")
    received: asyncio.Queue[tuple[str | None, dict[str, Any]]] = asyncio.Queue()
    failures = [503]

    async def hook(request: Request) -> Response:
        if failures:
            return Response(failures.pop())
        secret = request.headers.get("x-telegram-bot-api-secret-token")
        await received.put((secret, json.loads(request.body)))
        return Response(200)

    receiver = HttpServer(hook)
    await receiver.start()
    try:
        url = f"http://127.0.0.1:{receiver.port}/hook"
        set_hook = await call(server, token, "setWebhook", json={"url": url, "secret_token": "tok"})
        assert set_hook.json() == {"ok": True, "result": True}
        update = server.user_message(token, "via webhook", chat_id=2)
        async with asyncio.timeout(5):
            secret, body = await received.get()
        info = (await call(server, token, "getWebhookInfo")).json()["result"]
    finally:
        await receiver.close()
    assert (secret, body) == ("tok", update)
    assert info["url"] == url
    assert info["pending_update_count"] == 0
    assert info["last_error_message"] == "Wrong response from the webhook: 503"


async def test_malformed_http_gets_400_and_the_server_goes_on(server: BotAPIServer) -> None:
    token = server.add_bot("b")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    async with asyncio.timeout(5):
        status_line = await reader.readline()
        await reader.read()
    writer.close()
    await writer.wait_closed()
    assert status_line.startswith(b"HTTP/1.1 400")
    assert (await call(server, token, "getMe")).json()["result"]["username"] == "b"


async def test_user_side_over_http(server: BotAPIServer) -> None:
    token = server.add_bot("my_bot")
    base = f"http://127.0.0.1:{server.port}/_user/my_bot"
    async with httpx.AsyncClient() as client:
        written = await client.post(f"{base}/message", data={"chat_id": "3", "text": "hi"})
        await call(server, token, "sendMessage", json={"chat_id": 3, "text": "menu"})
        sent = await client.get(f"{base}/sent", params={"chat_id": "3"})
        pressed = await client.post(
            f"{base}/press", json={"chat_id": 3, "message_id": 2, "data": "go"}
        )
        unknown = await client.post(f"http://127.0.0.1:{server.port}/_user/nobody/sent")
    assert written.json()["result"]["message"]["text"] == "hi"
    assert [m["text"] for m in sent.json()["result"]] == ["menu"]
    assert pressed.json()["result"]["callback_query"]["data"] == "go"
    assert unknown.status_code == 404
    assert server.pending_updates(token) == 2
