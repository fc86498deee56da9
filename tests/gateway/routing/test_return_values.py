"""Routers and middleware return what the application they call returns, as Channels'.

User code and user tests rely on it (an application returning a value through a
``ProtocolTypeRouter`` and a middleware stack, a test awaiting the router directly).
"""

from __future__ import annotations

from typing import Any

from django.urls import path

from gateway.auth import AuthMiddlewareStack
from gateway.middleware import BaseMiddleware
from gateway.routing import ChannelNameRouter, ProtocolTypeRouter, TopicRouter, URLRouter, topic
from gateway.security.websocket import OriginValidator
from gateway.sessions import CookieMiddleware
from gateway.types import Receive, Scope, Send


async def answer(scope: Scope, receive: Receive, send: Send) -> Any:
    return ("answered", scope["type"])


async def nothing(_: Any = None) -> Any:
    return {"type": "none"}


async def test_routers_return_the_applications_value() -> None:
    router = ProtocolTypeRouter(
        {
            "websocket": URLRouter([path("ws/", URLRouter([path("inner/", answer)]))]),
            "channel": ChannelNameRouter({"work": answer}),
            "mqtt": TopicRouter([topic("a/<x>", answer)]),
        }
    )
    ws = {"type": "websocket", "path": "/ws/inner/", "headers": []}
    assert await router(ws, nothing, nothing) == ("answered", "websocket")
    assert await router({"type": "channel", "channel": "work"}, nothing, nothing) == (
        "answered",
        "channel",
    )
    mqtt = {"type": "mqtt", "route": {"pattern": "a/<x>", "kwargs": {"x": "1"}}}
    assert await router(mqtt, nothing, nothing) == ("answered", "mqtt")


async def test_middleware_returns_the_inner_applications_value() -> None:
    scope = {
        "type": "websocket",
        "path": "/",
        "headers": [(b"origin", b"http://example.com")],
    }
    assert await BaseMiddleware(answer)(scope, nothing, nothing) == ("answered", "websocket")
    assert await CookieMiddleware(answer)(scope, nothing, nothing) == ("answered", "websocket")
    validator = OriginValidator(answer, ["example.com"])
    assert await validator(scope, nothing, nothing) == ("answered", "websocket")
    stack = AuthMiddlewareStack(answer)
    assert await stack({**scope, "session": {}}, nothing, nothing) == ("answered", "websocket")
