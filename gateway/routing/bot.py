"""Route Telegram scopes by bot, when one process serves several bots.

::

    application = ProtocolTypeRouter({
        "telegram": BotRouter({
            "shop_bot": ShopConsumer.as_asgi(),
            "alerts_bot": AlertsConsumer.as_asgi(),
        }),
    })

Keys are bot usernames (``scope["bot"]["username"]``, with or without ``@``,
case-insensitive) or bot ids. An unknown bot raises ``ValueError`` naming it, which
ends only that conversation's instance (and is logged by the server).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.types import ASGIApp, Receive, Scope, Send

__all__ = ["BotRouter"]


class BotRouter:
    """Dispatch ``telegram`` scopes to an application per bot, else ``default``."""

    def __init__(self, routes: Mapping[str | int, ASGIApp], default: ASGIApp | None = None) -> None:
        self.routes: dict[str | int, ASGIApp] = {}
        for key, app in routes.items():
            if not callable(app):
                raise ValueError(f"BotRouter route {key!r} is not an ASGI application")
            name = key.lstrip("@").lower() if isinstance(key, str) else key
            self.routes[name] = app
        self.default = default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        if scope.get("type") != "telegram":
            raise ValueError(f"BotRouter routes telegram scopes, not {scope.get('type')!r}")
        bot = scope.get("bot") or {}
        username = str(bot.get("username") or "").lower()
        app = self.routes.get(username) or self.routes.get(bot.get("id", "")) or self.default
        if app is None:
            raise ValueError(
                f"No route for bot @{username} (BotRouter has {sorted(map(str, self.routes))})"
            )
        return await app(scope, receive, send)
