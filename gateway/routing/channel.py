"""Dispatch ``channel`` scopes (background workers) on the channel name they came from."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.routing.validation import require_asgi_application
from gateway.types import ASGIApp, Receive, Scope, Send


class ChannelNameRouter:
    """Route a worker's ``channel`` scope by ``scope["channel"]``.

    Example::

        ChannelNameRouter({"thumbnail.generate": GenerateConsumer.as_asgi()})

    The keys are exactly the channel names ``runworker`` / ``gateway worker`` listen
    on. A scope without a ``channel`` key, or for a name not in the mapping, raises
    :class:`ValueError` saying which.
    """

    def __init__(self, application_mapping: Mapping[str, ASGIApp]) -> None:
        for channel, application in application_mapping.items():
            require_asgi_application(application, f"ChannelNameRouter[{channel!r}]")
        self.application_mapping = application_mapping

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        if "channel" not in scope:
            raise ValueError(
                "ChannelNameRouter got a scope without a 'channel' key. Did you make sure "
                "it's only being used for 'channel' type messages?"
            )
        application = self.application_mapping.get(scope["channel"])
        if application is None:
            configured = ", ".join(sorted(self.application_mapping)) or "none"
            raise ValueError(
                f"No application configured for channel name {scope['channel']!r} "
                f"(configured: {configured})."
            )
        return await application(scope, receive, send)
