"""HTTP routes that an interface server other than the web server needs served.

A Telegram server using webhooks takes its updates as HTTP requests, yet it must
not depend on the web server (``protocols.<name>`` packages never import each
other). Its launcher describes the route as an :class:`HttpRoute`; the launch layer
(:mod:`protocols.launch`) composes: under ``gateway run`` the web server's application becomes a
:class:`PathDispatcher` sending the route's requests to its app and everything else
to the project's application; standing alone, the process runs the web server for
the route only, on the route's own host and port.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.types import ASGIApp, Receive, Scope, Send


@dataclass(frozen=True)
class HttpRoute:
    """An ASGI app serving every request whose path is ``path`` or below it."""

    path: str
    app: ASGIApp
    #: Where to listen when no web server runs in the process (``gateway telegram``).
    host: str
    port: int


class PathDispatcher:
    """ASGI app: ``http``/``websocket`` requests under a route's path go to its app.

    Everything else, ``lifespan`` included, goes to ``fallback`` (the project's
    application). The scope is passed on unchanged: a route's app sees the full
    ``path`` (ASGI HTTP & WebSocket spec, ``path`` includes ``root_path``).
    """

    def __init__(self, routes: Mapping[str, ASGIApp], fallback: ASGIApp) -> None:
        self.routes = {path.rstrip("/"): app for path, app in routes.items()}
        self.fallback = fallback

    def app_for(self, scope: Scope) -> ASGIApp:
        if scope["type"] in ("http", "websocket"):
            path = str(scope["path"])
            for prefix, app in self.routes.items():
                if path == prefix or path.startswith(prefix + "/"):
                    return app
        return self.fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app_for(scope)(scope, receive, send)
