"""Refuse WebSocket connections from pages on other sites (cross-site WebSocket hijacking).

Browsers send the page's origin in the ``Origin`` header of a WebSocket handshake
(RFC 6455 §4.1, §10.2) and, unlike XHR, do not enforce the same-origin policy on
WebSockets: the server must check it. A refused connection is closed before it is
accepted, which an ASGI server answers with HTTP 403 (ASGI WebSocket spec, "Close").
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import ParseResult, urlparse

from django.conf import settings
from django.utils.http import is_same_domain

from gateway.generic.websocket import AsyncWebsocketConsumer
from gateway.types import ASGIApp, Receive, Scope, Send

_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


class OriginValidator:
    """Pass a WebSocket scope on only if its ``Origin`` header matches ``allowed_origins``.

    Example::

        OriginValidator(AuthMiddlewareStack(URLRouter(routes)), [".example.com", "http://localhost:8000"])

    Each pattern is one of:

    * ``"*"``: any origin, including none at all;
    * a host, ``"example.com"``, or with a leading dot ``".example.com"`` for the
      domain and all its subdomains: any scheme and port;
    * a full origin, ``"https://example.com"`` or ``"http://.example.com:8000"``: the
      scheme, host (dots as above) and port must all match, a missing port meaning
      the scheme's default (80 for http/ws, 443 for https/wss).

    A missing or unparsable ``Origin`` header is refused unless ``"*"`` is allowed.
    Refused connections are handed to :class:`WebsocketDenier`.
    """

    def __init__(self, application: ASGIApp, allowed_origins: Iterable[str]) -> None:
        self.application = application
        self.allowed_origins = list(allowed_origins)
        self._denier = WebsocketDenier.as_asgi()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        if scope["type"] != "websocket":
            raise ValueError(
                f"OriginValidator got a {scope['type']!r} scope; it checks WebSocket "
                "connections only."
            )
        origin = _parse_origin(scope)
        if self.valid_origin(origin):
            return await self.application(scope, receive, send)
        else:
            return await self._denier(scope, receive, send)

    def valid_origin(self, parsed_origin: ParseResult | None) -> bool:
        """Whether the connection may proceed; ``None`` means no usable Origin header."""
        if parsed_origin is None and "*" not in self.allowed_origins:
            return False
        return self.validate_origin(parsed_origin)

    def validate_origin(self, parsed_origin: ParseResult | None) -> bool:
        """Whether any allowed pattern matches; override to add your own rule."""
        return any(
            pattern == "*" or self.match_allowed_origin(parsed_origin, pattern)
            for pattern in self.allowed_origins
        )

    def match_allowed_origin(self, parsed_origin: ParseResult | None, pattern: str) -> bool:
        """Whether ``parsed_origin`` matches one ``pattern`` (see the class docstring)."""
        if parsed_origin is None or not parsed_origin.hostname:
            return False
        pattern = pattern.lower()
        if "://" not in pattern:
            # A bare host, maybe with a port (which is then ignored, as in Channels).
            host = urlparse("//" + pattern).hostname or pattern
            return is_same_domain(parsed_origin.hostname, host)
        parsed_pattern = urlparse(pattern)
        return (
            parsed_pattern.scheme == parsed_origin.scheme
            and self.get_origin_port(parsed_pattern) == self.get_origin_port(parsed_origin)
            and is_same_domain(parsed_origin.hostname, parsed_pattern.hostname or "")
        )

    @staticmethod
    def get_origin_port(origin: ParseResult) -> int | None:
        """The explicit port, else the scheme's default (http/ws 80, https/wss 443), else None."""
        return origin.port if origin.port is not None else _DEFAULT_PORTS.get(origin.scheme)


def _parse_origin(scope: Scope) -> ParseResult | None:
    """The parsed ``Origin`` header; None if absent or malformed (bad port, bad IPv6)."""
    for name, value in scope.get("headers", ()):
        if name == b"origin":
            try:
                parsed: ParseResult = urlparse(value.decode("latin1").strip())
                parsed.port  # noqa: B018 - a malformed port raises here, not later.
            except ValueError:
                return None
            return parsed
    return None


def AllowedHostsOriginValidator(application: ASGIApp) -> OriginValidator:
    """An :class:`OriginValidator` allowing the hosts in ``settings.ALLOWED_HOSTS``.

    With ``DEBUG`` on and ``ALLOWED_HOSTS`` empty, allows localhost as Django does.
    """
    allowed_hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = ["localhost", "127.0.0.1", "[::1]"]
    return OriginValidator(application, allowed_hosts)


class WebsocketDenier(AsyncWebsocketConsumer):
    """A consumer that refuses every WebSocket connection (HTTP 403 at the handshake)."""

    async def connect(self) -> None:
        await self.close()
