"""Fixtures: a local Bot API server and a Telegram interface server talking to it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.botapi import BotAPIServer
from gateway.types import Receive, Scope, Send
from protocols.telegram.flood import FloodLimits
from protocols.telegram.server import BotConfig, ServerOptions, TelegramServer
from protocols.telegram.webhook import WebhookApp
from protocols.websocket.config import Config
from protocols.websocket.server import WebServer

#: Quick backoffs and short polls so tests never wait long; flood pacing off.
FAST = ServerOptions(
    poll_timeout=2,
    flood_limits=FloodLimits.off(),
    retry_backoff=0.02,
    poll_backoff=0.02,
    max_backoff=0.2,
    channel_layer=None,
    close_timeout=2,
)


@pytest.fixture
async def api() -> AsyncIterator[BotAPIServer]:
    async with BotAPIServer() as server:
        yield server


@contextlib.asynccontextmanager
async def serving(
    application: Any, api: BotAPIServer, *tokens: str, **options: Any
) -> AsyncIterator[TelegramServer]:
    """A started TelegramServer for ``tokens`` on ``api``, stopped at the end."""
    fields = {**FAST.__dict__, **options}
    server = TelegramServer(
        application,
        [BotConfig(token, api.base_url, **fields.pop("bot_config", {})) for token in tokens],
        ServerOptions(**fields),
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop(2)


class _Mount:
    """The web server's application: the webhook route, once the Telegram server exists."""

    app: WebhookApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is None:  # not yet mounted: Telegram retries anything but 200
            if scope["type"] == "http":
                await send({"type": "http.response.start", "status": 503, "headers": []})
                await send({"type": "http.response.body", "body": b""})
            return
        await self.app(scope, receive, send)


@contextlib.asynccontextmanager
async def serving_webhook(
    application: Any, api: BotAPIServer, token: str, **options: Any
) -> AsyncIterator[TelegramServer]:
    """Like :func:`serving`, by webhook: gateway's web server serves the route."""
    mount = _Mount()
    web = WebServer(mount, Config(host="127.0.0.1", port=0, lifespan="off", access_log=False))
    await web.start()
    try:
        url = f"http://127.0.0.1:{web.port}/telegram/webhook/{token.split(':')[0]}"
        bot_config = {"webhook_url": url, "webhook_secret": "s3cret"}
        async with serving(
            application, api, token, transport="webhook", bot_config=bot_config, **options
        ) as server:
            mount.app = WebhookApp(server)
            yield server
    finally:
        await web.stop(2)
