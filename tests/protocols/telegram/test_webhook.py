"""The webhook door: strange paths and bodies get clean 4xx answers, one log line per
kind (then counts), never a traceback."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gateway.botapi import BotAPIServer
from gateway.types import Receive, Scope, Send
from protocols.telegram.webhook import MAX_BODY, WebhookApp
from protocols.websocket import Config, WebServer
from tests.protocols.telegram.conftest import serving

SECRET = "right"
HEADERS = {"X-Telegram-Bot-Api-Secret-Token": SECRET}


async def ignore_updates(scope: Scope, receive: Receive, send: Send) -> None:
    while (await receive())["type"] != "telegram.disconnect":
        pass


@contextlib.asynccontextmanager
async def webhook(api: BotAPIServer) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A client of gateway's web server serving the webhook route, and the bot's path."""
    token = api.add_bot("hook_bot")
    bot_config = {"webhook_url": "http://127.0.0.1:9/unused", "webhook_secret": SECRET}
    async with serving(
        ignore_updates, api, token, transport="webhook", bot_config=bot_config
    ) as server:
        web = WebServer(WebhookApp(server), Config(port=0, access_log=False, lifespan="off"))
        await web.start()
        try:
            async with httpx.AsyncClient(base_url=web.url, timeout=10) as client:
                yield client, f"/telegram/webhook/{token.split(':')[0]}"
        finally:
            await web.stop(2)


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    "bot_id",
    ["١٢٣", "²", "9" * 5000, "-1", "1" * 21],  # non-ASCII digits, a superscript, too long
)
async def test_odd_bot_ids_get_404_before_anything_else(
    api: BotAPIServer, caplog: pytest.LogCaptureFixture, bot_id: str
) -> None:
    async with webhook(api) as (client, _):
        response = await client.post(f"/telegram/webhook/{bot_id}", json={"update_id": 1})
    assert response.status_code == 404
    assert not tracebacks(caplog)
    assert any("webhook 404" in r.getMessage() for r in caplog.records)


async def test_deeply_nested_json_with_the_right_secret_is_400(
    api: BotAPIServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with webhook(api) as (client, path):
        response = await client.post(path, content=b"[" * 100_000, headers=HEADERS)
    assert response.status_code == 400
    assert not tracebacks(caplog)
    assert any("webhook 400: body is not a JSON Update" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("declared", [True, False])
async def test_bodies_over_the_limit_are_413(
    api: BotAPIServer, caplog: pytest.LogCaptureFixture, declared: bool
) -> None:
    body = b" " * (MAX_BODY + 1)
    async with webhook(api) as (client, path):
        if declared:
            response = await client.post(path, content=body, headers=HEADERS)
        else:  # chunked: the length shows only while reading
            response = await client.post(path, content=chunks(body), headers=HEADERS)
    assert response.status_code == 413
    assert not tracebacks(caplog)


async def test_refusals_are_logged_once_then_counted(
    api: BotAPIServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with webhook(api) as (client, path):
        for _ in range(10):
            assert (await client.post(path, json={"update_id": 1})).status_code == 403
        accepted = await client.post(path, json=update(), headers=HEADERS)
    assert accepted.status_code == 200
    lines = [r for r in caplog.records if "webhook 403" in r.getMessage()]
    assert len(lines) == 1


async def chunks(body: bytes) -> AsyncIterator[bytes]:
    yield body


def update() -> dict[str, Any]:
    return {
        "update_id": 7,
        "message": {"message_id": 1, "chat": {"id": 3, "type": "private"}, "text": "hi"},
    }
