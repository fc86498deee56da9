"""The webhook route: Telegram POSTs updates here (https://core.telegram.org/bots/api#setwebhook).

:class:`WebhookApp` is a plain ASGI HTTP application serving
``POST <path>/<bot id>`` for every bot of a :class:`~protocols.telegram.server.TelegramServer`.
A request must carry the bot's ``X-Telegram-Bot-Api-Secret-Token`` (else 403); its
body must be one JSON ``Update`` (else 400). The answer, 200, comes once the update
is queued to its conversation's instance, so an update Telegram saw acknowledged
is never lost by a crash of one consumer; anything else makes Telegram retry.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from typing import Any

from gateway.types import Receive, Scope, Send
from protocols.service import Service
from protocols.telegram.server import TelegramServer

logger = logging.getLogger("gateway.telegram")

#: Telegram's updates are far smaller; larger bodies are refused with 413.
MAX_BODY = 1024 * 1024


class WebhookApp:
    """ASGI app for the webhook route (the web server or uvicorn serves it)."""

    def __init__(self, server: TelegramServer, path: str = "/telegram/webhook") -> None:
        self.server = server
        self.path = path.rstrip("/")

    def url_path(self, bot_id: int) -> str:
        return f"{self.path}/{bot_id}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        status = await self._handle(scope, receive)
        body = b"ok" if status == 200 else b""
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"text/plain"),
                    (b"content-length", b"%d" % len(body)),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _handle(self, scope: Scope, receive: Receive) -> int:
        prefix, _, bot_id = str(scope["path"]).rstrip("/").rpartition("/")
        runner = self.server.runner_for(int(bot_id)) if bot_id.isdigit() else None
        if prefix != self.path or runner is None:
            return 404
        if scope["method"] != "POST":
            return 405
        headers = dict(scope["headers"])
        secret = headers.get(b"x-telegram-bot-api-secret-token", b"")
        if not hmac.compare_digest(secret, runner.secret.encode()):
            logger.warning("webhook for %s: wrong or missing secret token", runner.name)
            return 403
        body = await _read_body(receive)
        if body is None:
            return 413
        try:
            update: Any = json.loads(body)
        except ValueError:
            update = None
        if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
            logger.warning("webhook for %s: body is not a JSON Update", runner.name)
            return 400
        await runner.handle_update(update, "webhook")
        return 200


async def _read_body(receive: Receive) -> bytes | None:
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        if len(body) > MAX_BODY:
            return None
        if not message.get("more_body"):
            return bytes(body)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class WebhookListener(Service):
    """Serve a :class:`WebhookApp` on its own port with uvicorn (``gateway telegram``).

    In tests and under ``gateway run`` the app can be served by any ASGI server
    instead; this is the standalone process's way. uvicorn is then required.
    """

    name = "telegram webhook"

    def __init__(self, app: WebhookApp, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server: Any = None
        self._loop_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            import uvicorn
        except ImportError:
            raise RuntimeError("the webhook transport needs uvicorn: pip install uvicorn") from None
        config = uvicorn.Config(
            self.app, host=self.host, port=self.port, lifespan="off", access_log=False
        )
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        try:
            await server.startup()
        except SystemExit:  # uvicorn exits the process when it cannot bind
            raise RuntimeError(f"cannot listen for webhooks on {self.host}:{self.port}") from None
        self._server = server
        self._loop_task = asyncio.create_task(server.main_loop(), name="webhook listener")

    async def stop(self, timeout: float) -> None:
        if self._server is None or self._loop_task is None:
            return
        self._server.should_exit = True
        await self._loop_task
        async with asyncio.timeout(timeout):
            await self._server.shutdown()
