"""Dispatch on the scope type: ``http``, ``websocket``, ``mqtt``, ``telegram``, ``channel``..."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.routing.validation import require_asgi_application
from gateway.types import ASGIApp, Receive, Scope, Send


class ProtocolTypeRouter:
    """Route each scope to the application mapped to its ``scope["type"]``.

    Example::

        application = ProtocolTypeRouter({
            "http": get_asgi_application(),
            "websocket": AuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
            "channel": ChannelNameRouter({"thumbnail.generate": GenerateConsumer.as_asgi()}),
        })

    A ``lifespan`` scope (ASGI lifespan spec, sent by servers such as uvicorn) that
    the mapping does not route is answered here: startup and shutdown are
    acknowledged with ``lifespan.startup.complete`` / ``lifespan.shutdown.complete``.
    Any other unmapped type raises :class:`ValueError` naming it.
    """

    def __init__(self, application_mapping: Mapping[str, ASGIApp]) -> None:
        for scope_type, application in application_mapping.items():
            require_asgi_application(application, f"ProtocolTypeRouter[{scope_type!r}]")
        self.application_mapping = application_mapping

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        scope_type = scope["type"]
        application = self.application_mapping.get(scope_type)
        if application is not None:
            return await application(scope, receive, send)
        elif scope_type == "lifespan":
            await _acknowledge_lifespan(receive, send)
        else:
            configured = ", ".join(sorted(self.application_mapping)) or "none"
            raise ValueError(
                f"No application configured for scope type {scope_type!r} "
                f"(configured: {configured})."
            )


async def _acknowledge_lifespan(receive: Receive, send: Send) -> None:
    """Answer the ASGI lifespan protocol for an application with nothing to start.

    Per the ASGI lifespan spec the server sends ``lifespan.startup`` then, at exit,
    ``lifespan.shutdown``; each must be answered with its ``.complete`` message.
    """
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
