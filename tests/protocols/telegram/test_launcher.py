"""``gateway telegram``: options, when ``gateway run`` wants it, what it builds."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from django.core.exceptions import ImproperlyConfigured

from gateway.botapi import BotAPIServer
from gateway.cli import build_parser, build_services, launcher_options
from gateway.routing import ProtocolTypeRouter
from gateway.telegram.events import event_to_call
from protocols.runner import ServiceGroup
from protocols.telegram import launcher
from protocols.telegram.server import TelegramServer
from protocols.websocket.server import WebServer
from tests.ports import free_port
from tests.protocols.telegram.test_client import BAD_GATEWAY, ScriptedServer
from tests.protocols.telegram.test_seed import ChattyBotConsumer

APP = ProtocolTypeRouter({"telegram": ChattyBotConsumer.as_asgi()})


def options(*argv: str) -> launcher.TelegramOptions:
    """``gateway telegram ARGV...``'s options, as the command line builds them."""
    built: launcher.TelegramOptions = launcher_options(
        launcher, build_parser().parse_args(["telegram", *argv])
    )
    return built


def test_wanted_when_routed_and_a_token_is_configured(settings: object) -> None:
    args = options()
    settings.TELEGRAM_BOT_TOKEN = None  # type: ignore[attr-defined]
    assert not launcher.wanted(APP, args)
    settings.TELEGRAM_BOT_TOKEN = "123:abc"  # type: ignore[attr-defined]
    assert launcher.wanted(APP, args)
    assert not launcher.wanted(ProtocolTypeRouter({"websocket": APP}), args)


def test_build_needs_a_token_and_a_webhook_url(settings: object) -> None:
    settings.TELEGRAM_BOT_TOKEN = None  # type: ignore[attr-defined]
    with pytest.raises(ImproperlyConfigured, match="TELEGRAM_BOT_TOKEN is not set"):
        launcher.build(APP, options())
    settings.TELEGRAM_BOT_TOKEN = "123:abc,456:def"  # type: ignore[attr-defined]
    server = launcher.build(APP, options())
    assert isinstance(server, TelegramServer)
    assert len(server.runners) == 2
    webhook = options("--telegram-transport", "webhook")
    with pytest.raises(ImproperlyConfigured, match="--webhook-url"):
        launcher.build(APP, webhook)


async def test_local_api_mode_serves_a_bot_offline(settings: object) -> None:
    settings.TELEGRAM_BOT_TOKEN = None  # type: ignore[attr-defined]
    args = options("--local-api", "--local-api-port", str(free_port()))
    assert launcher.wanted(APP, args)
    service = launcher.build(APP, args)
    assert isinstance(service, launcher.LocalBotService)
    await service.start()
    try:
        service.api.user_message(service.token, "hi", chat_id=service.CHAT_ID)
        (reply,) = await service.api.wait_sent(service.token, service.CHAT_ID)
    finally:
        await service.stop(2)
    assert reply["text"] == "You said: hi"


async def test_webhook_mode_standalone_is_served_by_the_web_server(settings: object) -> None:
    async with BotAPIServer() as api:
        token = api.add_bot("hook_bot")
        settings.TELEGRAM_BOT_TOKEN = token  # type: ignore[attr-defined]
        settings.TELEGRAM_API_URL = api.base_url  # type: ignore[attr-defined]
        port = free_port()
        args = build_parser().parse_args(
            [
                "telegram",
                f"{__name__}:APP",
                "--telegram-transport=webhook",
                f"--webhook-url=http://127.0.0.1:{port}/hooks",
                f"--webhook-port={port}",
                "--webhook-path=/hooks",
            ]
        )
        web, telegram = build_services(args)
        assert isinstance(web, WebServer)
        assert isinstance(telegram, TelegramServer)
        stop = asyncio.Event()
        running = asyncio.create_task(ServiceGroup([web, telegram]).serve(2, stop))
        try:
            api.user_message(token, "hook", chat_id=3)
            (reply,) = await api.wait_sent(token, 3)
            (webhook,) = api.calls(token, "setWebhook")
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                elsewhere = await client.post("/telegram/webhook/1", json={})
        finally:
            stop.set()
            async with asyncio.timeout(10):
                await running
    assert reply["text"] == "You said: hook"
    assert webhook["url"] == f"http://127.0.0.1:{port}/hooks/{token.split(':')[0]}"
    assert elsewhere.status_code == 404


def test_webhook_path_must_be_below_the_root(settings: object) -> None:
    settings.TELEGRAM_BOT_TOKEN = "123:abc"  # type: ignore[attr-defined]
    args = options(
        "--telegram-transport=webhook", "--webhook-url=https://bot.example.com/", "--webhook-path=/"
    )
    with pytest.raises(ImproperlyConfigured, match="--webhook-path"):
        launcher.build(APP, args)


def test_polling_needs_no_http_route(settings: object) -> None:
    settings.TELEGRAM_BOT_TOKEN = "123:abc"  # type: ignore[attr-defined]
    args = options()
    assert launcher.http_route(launcher.build(APP, args), args) is None


async def test_no_retry_sends_at_most_once_unless_the_event_asks(settings: object) -> None:
    api = ScriptedServer({"sendMessage": [BAD_GATEWAY, BAD_GATEWAY]})
    await api.http.start()
    settings.TELEGRAM_BOT_TOKEN = "123:abc"  # type: ignore[attr-defined]
    settings.TELEGRAM_API_URL = f"http://127.0.0.1:{api.http.port}/bot"  # type: ignore[attr-defined]
    server = launcher.build(APP, options("--telegram-no-retry"))
    assert isinstance(server, TelegramServer)
    runner = server.runners[0]
    send = {"type": "telegram.message", "text": "hi"}
    try:
        async with asyncio.timeout(5):
            once = await runner.perform(event_to_call({**send, "request_id": 1}, chat_id=1))
            retried = await runner.perform(
                event_to_call({**send, "request_id": 2, "retry": True}, chat_id=1)
            )
    finally:
        await runner.connection.close()
        await api.http.close()
    assert once is not None
    assert (once["ok"], once["error_code"]) == (False, 502)
    assert retried is not None
    assert retried["ok"] is True
    assert api.performed == ["sendMessage"] * 3
