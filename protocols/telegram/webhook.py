"""The webhook route: Telegram POSTs updates here (https://core.telegram.org/bots/api#setwebhook).

:class:`WebhookApp` is a plain ASGI HTTP application serving
``POST <path>/<bot id>`` for every bot of a :class:`~protocols.telegram.server.TelegramServer`;
the launcher describes it as an :class:`~protocols.http_routes.HttpRoute` for the
web server to serve.

A request must carry the bot's ``X-Telegram-Bot-Api-Secret-Token`` (else 403); its
body must be one JSON ``Update`` (else 400). The answer, 200, comes once the update
is queued to its conversation's instance, so an update Telegram saw acknowledged
is never lost by a crash of one consumer; anything else makes Telegram retry.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from gateway.types import Receive, Scope, Send
from protocols.telegram.server import TelegramServer

logger = logging.getLogger("gateway.telegram")

#: Telegram's updates are far smaller; larger bodies are refused with 413.
MAX_BODY = 1024 * 1024


class WebhookApp:
    """ASGI app for the webhook route; ``gateway.cli`` has gateway's web server serve it.

    It answers ``http`` scopes only (serve it with ASGI lifespan off): the web server
    routes ``lifespan`` to the project's application, never here.
    """

    def __init__(self, server: TelegramServer, path: str = "/telegram/webhook") -> None:
        self.server = server
        self.path = path.rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
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
