"""``gateway telegram``: options, when ``gateway run`` wants it, what it builds."""

from __future__ import annotations

import socket

import pytest
from django.core.exceptions import ImproperlyConfigured

from gateway.cli import build_parser
from gateway.routing import ProtocolTypeRouter
from protocols.telegram import launcher
from protocols.telegram.server import TelegramServer
from tests.protocols.telegram.test_seed import ChattyBotConsumer

APP = ProtocolTypeRouter({"telegram": ChattyBotConsumer.as_asgi()})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_wanted_when_routed_and_a_token_is_configured(settings: object) -> None:
    args = build_parser().parse_args(["telegram"])
    settings.TELEGRAM_BOT_TOKEN = None  # type: ignore[attr-defined]
    assert not launcher.wanted(APP, args)
    settings.TELEGRAM_BOT_TOKEN = "123:abc"  # type: ignore[attr-defined]
    assert launcher.wanted(APP, args)
    assert not launcher.wanted(ProtocolTypeRouter({"websocket": APP}), args)


def test_build_needs_a_token_and_a_webhook_url(settings: object) -> None:
    settings.TELEGRAM_BOT_TOKEN = None  # type: ignore[attr-defined]
    with pytest.raises(ImproperlyConfigured, match="TELEGRAM_BOT_TOKEN is not set"):
        launcher.build(APP, build_parser().parse_args(["telegram"]))
    settings.TELEGRAM_BOT_TOKEN = "123:abc,456:def"  # type: ignore[attr-defined]
    server = launcher.build(APP, build_parser().parse_args(["telegram"]))
    assert isinstance(server, TelegramServer)
    assert len(server.runners) == 2
    webhook = build_parser().parse_args(["telegram", "--telegram-transport", "webhook"])
    with pytest.raises(ImproperlyConfigured, match="--webhook-url"):
        launcher.build(APP, webhook)


async def test_local_api_mode_serves_a_bot_offline(settings: object) -> None:
    settings.TELEGRAM_BOT_TOKEN = None  # type: ignore[attr-defined]
    args = build_parser().parse_args(
        ["telegram", "--local-api", "--local-api-port", str(free_port())]
    )
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


async def test_webhook_mode_standalone_listener(settings: object) -> None:
    from gateway.testing.botapi import BotAPIServer

    async with BotAPIServer() as api:
        token = api.add_bot("hook_bot")
        settings.TELEGRAM_BOT_TOKEN = token  # type: ignore[attr-defined]
        settings.TELEGRAM_API_URL = api.base_url  # type: ignore[attr-defined]
        port = free_port()
        args = build_parser().parse_args(
            [
                "telegram",
                "--telegram-transport=webhook",
                f"--webhook-url=http://127.0.0.1:{port}/telegram/webhook",
                f"--webhook-port={port}",
            ]
        )
        service = launcher.build(APP, args)
        await service.start()
        try:
            api.user_message(token, "hook", chat_id=3)
            (reply,) = await api.wait_sent(token, 3)
        finally:
            await service.stop(2)
    assert reply["text"] == "You said: hook"
