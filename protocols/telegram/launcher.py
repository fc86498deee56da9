"""``gateway telegram``: the face of :class:`TelegramServer` (a protocols.launch.Launcher).

Bots come from ``TELEGRAM_BOT_TOKEN`` (several: comma-separated) and talk to
``TELEGRAM_API_URL`` (python-telegram-bot's ``base_url`` form). ``--local-api``
instead starts the project's local Bot API server in the same process and a console:
type a line, your bot answers, with no Telegram account at all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Literal

from django.core.exceptions import ImproperlyConfigured

from gateway.botapi import BotAPIServer
from gateway.conf import setting
from gateway.startup import Summary
from protocols.http_routes import HttpRoute
from protocols.service import Service
from protocols.telegram.client import DEFAULT_API_URL
from protocols.telegram.flood import FloodLimits
from protocols.telegram.server import BotConfig, ServerOptions, TelegramServer
from protocols.telegram.webhook import WebhookApp

HELP = "serve Telegram bots by long polling or webhook (--local-api: try one offline)"

logger = logging.getLogger("gateway.telegram")


@dataclass(frozen=True)
class TelegramOptions:
    """The Telegram server's options, one field per ``gateway telegram`` flag.

    The flags' defaults from environment variables are read by the command line.
    """

    telegram_transport: Literal["polling", "webhook"] = "polling"
    webhook_url: str | None = None
    webhook_host: str = "127.0.0.1"
    webhook_port: int = 8443
    webhook_path: str = "/telegram/webhook"
    telegram_idle_timeout: float = 300.0
    telegram_max_instances: int = 10_000
    telegram_allowed_updates: str | None = None
    telegram_connections: int = 8
    telegram_no_retry: bool = False
    no_flood_control: bool = False
    local_api: bool = False
    local_api_port: int = 8081


OPTIONS = TelegramOptions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "--telegram-transport",
        choices=["polling", "webhook"],
        default=os.environ.get("TELEGRAM_TRANSPORT", "polling"),
        help="how updates arrive (default: %(default)s, or $TELEGRAM_TRANSPORT)",
    )
    add(
        "--webhook-url",
        default=os.environ.get("TELEGRAM_WEBHOOK_URL"),
        help="public URL Telegram posts to; each bot gets <url>/<bot id> ($TELEGRAM_WEBHOOK_URL)",
    )
    add(
        "--webhook-host",
        default="127.0.0.1",
        help="address for webhooks in `gateway telegram` (`gateway run`: the web server's; "
        "default: %(default)s)",
    )
    add(
        "--webhook-port",
        type=int,
        default=8443,
        help="port for webhooks in `gateway telegram` (`gateway run`: the web server's; "
        "default: %(default)s)",
    )
    add(
        "--webhook-path",
        default="/telegram/webhook",
        help="path the web server routes to the bots (default: %(default)s)",
    )
    add(
        "--telegram-idle-timeout",
        type=float,
        default=300.0,
        help="seconds before an idle conversation ends (default: %(default)s)",
    )
    add(
        "--telegram-max-instances",
        type=int,
        default=10_000,
        help="live conversations at most; the least recently used ends (default: %(default)s)",
    )
    add(
        "--telegram-allowed-updates",
        default=os.environ.get("TELEGRAM_ALLOWED_UPDATES"),
        help="comma-separated update kinds to receive, e.g. message,callback_query "
        "(default: Telegram's; $TELEGRAM_ALLOWED_UPDATES)",
    )
    add(
        "--telegram-connections",
        type=int,
        default=8,
        help="HTTP connections (and calls in flight) per bot (default: %(default)s)",
    )
    add(
        "--telegram-no-retry",
        action="store_true",
        help="never retry a send that may have reached Telegram (a timeout, a 5xx): at most "
        'once instead of a possible duplicate; events may still say "retry": true',
    )
    add(
        "--no-flood-control",
        action="store_true",
        help="do not pace sends (only for a local Bot API server)",
    )
    add(
        "--local-api",
        action="store_true",
        help="run a local Bot API server in this process and chat with the bot on the console",
    )
    add("--local-api-port", type=int, default=8081, help="its port (default: %(default)s)")


def _split(value: str | None) -> list[str] | None:
    items = [item.strip() for item in (value or "").split(",") if item.strip()]
    return items or None


def configured_tokens() -> list[str]:
    return _split(setting("TELEGRAM_BOT_TOKEN")) or []


def api_url() -> str:
    return str(setting("TELEGRAM_API_URL", DEFAULT_API_URL))


def wanted(application: Any, options: TelegramOptions) -> bool:
    """When the application routes ``telegram`` and a token (or ``--local-api``) is given."""
    mapping = getattr(application, "application_mapping", None)
    if not isinstance(mapping, dict) or "telegram" not in mapping:
        return False
    return bool(configured_tokens()) or options.local_api


def server_options(args: TelegramOptions) -> ServerOptions:
    """The server's :class:`ServerOptions` for ``args``; ImproperlyConfigured when invalid."""
    if min(args.telegram_idle_timeout, args.telegram_max_instances, args.telegram_connections) <= 0:
        raise ImproperlyConfigured(
            "--telegram-idle-timeout, --telegram-max-instances and --telegram-connections "
            "must be positive"
        )
    return ServerOptions(
        transport=args.telegram_transport,
        idle_timeout=args.telegram_idle_timeout,
        max_instances=args.telegram_max_instances,
        connections=args.telegram_connections,
        allowed_updates=_split(args.telegram_allowed_updates),
        flood_limits=FloodLimits.off() if args.no_flood_control else FloodLimits(),
        retry_ambiguous=not args.telegram_no_retry,
        commands=command_menu(),
    )


def command_menu() -> list[tuple[str, str]]:
    """``TELEGRAM_COMMANDS``: ``{command: description}``, the menu each bot gets at start."""
    menu = setting("TELEGRAM_COMMANDS", {})
    if not isinstance(menu, dict) or not all(
        isinstance(c, str) and isinstance(d, str) and c and d for c, d in menu.items()
    ):
        raise ImproperlyConfigured(
            "TELEGRAM_COMMANDS must map command names to descriptions, not " + repr(menu)
        )
    return list(menu.items())


def build(application: Any, args: TelegramOptions) -> Service:
    # Bot API URLs contain the token: httpx logs every request URL at INFO, and
    # python-telegram-bot logs its base URL at DEBUG. Keep both out of the log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("telegram").setLevel(max(logging.INFO, logging.getLogger().level))
    options = server_options(args)
    if args.local_api:
        return LocalBotService(application, options, args.local_api_port)
    tokens = configured_tokens()
    if not tokens:
        raise ImproperlyConfigured("TELEGRAM_BOT_TOKEN is not set (or use --local-api)")
    for token in tokens:
        if ":" not in token or not token.split(":", 1)[0].isdigit():
            raise ImproperlyConfigured("TELEGRAM_BOT_TOKEN must look like 123456:ABC-def")
    if options.transport == "polling":
        bots = [BotConfig(token, api_url()) for token in tokens]
    else:
        if not args.webhook_url:
            raise ImproperlyConfigured(
                "webhook transport needs --webhook-url (TELEGRAM_WEBHOOK_URL)"
            )
        if not args.webhook_path.startswith("/") or not args.webhook_path.strip("/"):
            raise ImproperlyConfigured("--webhook-path must start with '/' and not be '/'")
        base = args.webhook_url.rstrip("/")
        secret = os.environ.get("TELEGRAM_WEBHOOK_SECRET") or None
        bots = [
            BotConfig(token, api_url(), f"{base}/{token.split(':', 1)[0]}", secret)
            for token in tokens
        ]
    return TelegramServer(application, bots, options)


def http_route(service: Service, args: TelegramOptions) -> HttpRoute | None:
    """The webhook route the web server must serve for ``service`` (webhook transport only).

    :mod:`protocols.launch` mounts it into the web server of ``gateway run``, or runs a web
    server for it alone on ``--webhook-host``/``--webhook-port`` in ``gateway telegram``.
    """
    if not isinstance(service, TelegramServer) or service.options.transport != "webhook":
        return None
    app = WebhookApp(service, args.webhook_path)
    return HttpRoute(app.path, app, args.webhook_host, args.webhook_port)


class Together(Service):
    """Several services started in order and stopped in reverse, as one."""

    def __init__(self, name: str, services: list[Service]) -> None:
        self.name = name
        self.services = services
        self._started: list[Service] = []

    async def start(self) -> None:
        for service in self.services:
            try:
                await service.start()
            except BaseException:
                await self.stop(5.0)
                raise
            self._started.append(service)

    async def stop(self, timeout: float) -> None:
        while self._started:
            await self._started.pop().stop(timeout)

    def describe(self, summary: Summary) -> None:
        for service in self.services:
            service.describe(summary)


class LocalBotService(Together):
    """A local Bot API server, the bot on it, and a console playing one user (chat 1)."""

    CHAT_ID = 1

    def __init__(self, application: Any, options: ServerOptions, port: int) -> None:
        if port <= 0:
            raise ImproperlyConfigured("--local-api-port must be a fixed port")
        self.api = BotAPIServer(port=port)
        tokens = configured_tokens()
        self.token = self.api.add_bot("local_bot", token=tokens[0] if tokens else None)
        polling = ServerOptions(**{**options.__dict__, "transport": "polling"})
        server = TelegramServer(application, [BotConfig(self.token, self.api.base_url)], polling)
        self._printer: asyncio.Task[None] | None = None
        super().__init__("telegram (local Bot API)", [_LocalApi(self.api), server])

    async def start(self) -> None:
        await super().start()
        print(
            f"Local Bot API server: TELEGRAM_API_URL={self.api.base_url}\n"
            f"You are user {self.CHAT_ID}. Type a message and press Enter; "
            "#N presses button [N] of the last message that has buttons.",
            flush=True,
        )
        with contextlib.suppress(OSError, ValueError, NotImplementedError):
            asyncio.get_running_loop().add_reader(sys.stdin.fileno(), self._read_line)
        self._printer = asyncio.create_task(self._print_replies())

    def _read_line(self) -> None:
        line = sys.stdin.readline()
        if not line:
            asyncio.get_running_loop().remove_reader(sys.stdin.fileno())
            return
        text = line.strip()
        press = re.fullmatch(r"#(\d+)", text)
        if press is not None:
            self._press(int(press.group(1)))
        elif text:
            self.api.user_message(self.token, text, chat_id=self.CHAT_ID)

    def _press(self, number: int) -> None:
        """Press button ``number`` (1-based) of the newest message that has buttons."""
        for message in reversed(self.api.sent(self.token, self.CHAT_ID)):
            labels = _buttons(message)
            if labels:
                if not 1 <= number <= len(labels):
                    print(f"(no button [{number}] there)", flush=True)
                else:
                    self.api.press_button(self.token, message, labels[number - 1][1])
                return
        print("(no message with buttons yet)", flush=True)

    async def _print_replies(self) -> None:
        """Print each message the bot sends to the console's chat, and again when edited."""
        shown: dict[int, Any] = {}

        def changed() -> list[dict[str, Any]]:
            sent = self.api.sent(self.token, self.CHAT_ID)
            return [m for m in sent if shown.get(m["message_id"]) != _face(m)]

        while True:
            with contextlib.suppress(TimeoutError):
                await self.api.wait_for(self.token, changed, timeout=3600)
                for message in changed():
                    edited = " (edited)" if message["message_id"] in shown else ""
                    shown[message["message_id"]] = _face(message)
                    text = message.get("text") or message.get("caption") or "[photo]"
                    print(f"bot{edited}> {text}", flush=True)
                    buttons = _buttons(message)
                    if buttons:
                        print(
                            "     "
                            + "  ".join(
                                f"[{i}] {label}" for i, (label, _) in enumerate(buttons, 1)
                            ),
                            flush=True,
                        )

    async def stop(self, timeout: float) -> None:
        with contextlib.suppress(OSError, ValueError, NotImplementedError):
            asyncio.get_running_loop().remove_reader(sys.stdin.fileno())
        if self._printer is not None:
            self._printer.cancel()
            await asyncio.gather(self._printer, return_exceptions=True)
        await super().stop(timeout)


def _face(message: dict[str, Any]) -> Any:
    """What the console shows of a message: a change means it was edited."""
    return (message.get("text"), message.get("caption"), message.get("reply_markup"))


def _buttons(message: dict[str, Any]) -> list[tuple[str, str]]:
    """A message's inline buttons as ``(label, callback data)``, row by row."""
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return [(b["text"], b.get("callback_data", "")) for row in rows for b in row]


class _LocalApi(Service):
    """The local Bot API server as a Service."""

    name = "local Bot API"

    def __init__(self, api: BotAPIServer) -> None:
        self.api = api

    async def start(self) -> None:
        await self.api.start()

    async def stop(self, timeout: float) -> None:
        await self.api.stop()

    def describe(self, summary: Summary) -> None:
        summary.add("Bot API", f"{self.api.base_url} (local: type in this console to chat)")
