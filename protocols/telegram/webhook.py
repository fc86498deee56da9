"""The webhook route: Telegram POSTs updates here (https://core.telegram.org/bots/api#setwebhook).

:class:`WebhookApp` is a plain ASGI HTTP application serving
``POST <path>/<bot id>`` for every bot of a :class:`~protocols.telegram.server.TelegramServer`;
the launcher describes it as an :class:`~protocols.http_routes.HttpRoute` for the
web server to serve.

A request must be for a bot of this server (else 404: the id is ASCII digits, at most
20 of them, checked before anything is parsed), carry the bot's
``X-Telegram-Bot-Api-Secret-Token`` (else 403), and have a body of at most
:data:`MAX_BODY` bytes (else 413) that is one JSON ``Update`` (else 400, nesting too
deep for the parser included). Each refusal is logged in one line, then counted per
minute (DESIGN §8), never with a traceback. The answer, 200, comes once the update is
queued to its conversation's instance, so an update Telegram saw acknowledged is never
lost by a crash of one consumer; anything else makes Telegram retry.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from typing import Any, cast

from gateway.failure_log import FailureLog
from gateway.types import Message, Receive, Scope, Send
from gateway.web.events import response_body, response_start
from protocols.telegram.server import TelegramServer

logger = logging.getLogger("gateway.telegram")

#: Telegram's updates are far smaller; larger bodies are refused with 413.
MAX_BODY = 1024 * 1024
#: A bot id as Telegram writes it: ASCII digits (``str.isdigit`` also takes ``"١٢٣"``,
#: and ``int()`` refuses more than 4,300 digits).
_BOT_ID = re.compile(r"[0-9]{1,20}")


class WebhookApp:
    """ASGI app for the webhook route; ``protocols.launch`` has gateway's web server serve it.

    It answers ``http`` scopes only (serve it with ASGI lifespan off): the web server
    routes ``lifespan`` to the project's application, never here.
    """

    def __init__(self, server: TelegramServer, path: str = "/telegram/webhook") -> None:
        self.server = server
        self.path = path.rstrip("/")
        self.refusals = FailureLog(logger, level=logging.WARNING)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        status = await self._handle(scope, receive)
        body = b"ok" if status == 200 else b""
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
        await send(cast(Message, response_start(status, headers)))
        await send(cast(Message, response_body(body)))

    async def _handle(self, scope: Scope, receive: Receive) -> int:
        path = str(scope["path"])
        prefix, _, bot_id = path.rstrip("/").rpartition("/")
        runner = self.server.runner_for(int(bot_id)) if _BOT_ID.fullmatch(bot_id) else None
        if prefix != self.path or runner is None:
            return self._refuse(404, "no bot at this path", f"{path[:64]!r}")
        if scope["method"] != "POST":
            return self._refuse(405, "not a POST", runner.name)
        headers = dict(scope["headers"])
        secret = headers.get(b"x-telegram-bot-api-secret-token", b"")
        if not hmac.compare_digest(secret, runner.secret.encode()):
            return self._refuse(403, "wrong or missing secret token", runner.name)
        body = await _read_body(receive, headers.get(b"content-length", b""))
        if body is None:
            return self._refuse(413, f"body over {MAX_BODY} bytes", runner.name)
        try:
            update: Any = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: nested too deep to parse
            update = None
        if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
            return self._refuse(400, "body is not a JSON Update", runner.name)
        await runner.handle_update(update, "webhook")
        return 200

    def _refuse(self, status: int, why: str, where: str) -> int:
        self.refusals.repeated(f"webhook {status}", f"webhook {status}: {why} ({where})")
        return status


async def _read_body(receive: Receive, content_length: bytes) -> bytes | None:
    """The request body, or None if it is longer than MAX_BODY (said or sent).

    A client that leaves mid-body yields what arrived, which then fails as JSON.
    """
    digits = content_length.lstrip(b"0")
    if content_length.isdigit() and (
        len(digits) > len(str(MAX_BODY)) or int(digits or b"0") > MAX_BODY
    ):
        return None
    body = bytearray()
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > MAX_BODY:
            return None
        if not message.get("more_body"):
            return bytes(body)
