"""``BaseMiddleware``: the base class for ASGI middleware that adds to the scope."""

from __future__ import annotations

from typing import Any

from gateway.types import ASGIApp, Receive, Scope, Send


class BaseMiddleware:
    """Wrap an ASGI application, giving it a copy of the scope to add keys to.

    Subclass and either fill the two hooks, which run for every scope before the
    inner application is called::

        class TenantMiddleware(BaseMiddleware):
            def populate_scope(self, scope):        # synchronous, cheap
                scope.setdefault("tenant", None)

            async def resolve_scope(self, scope):   # may await (database, cache)
                scope["tenant"] = await find_tenant(scope["headers"])

    or override ``__call__`` as in Channels and finish with
    ``return await super().__call__(scope, receive, send)``.

    The scope is copied first, so keys added here never leak to middleware or
    routers above. One middleware instance serves every connection: keep
    per-connection state in the scope, never on ``self``.
    """

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        scope = dict(scope)
        self.populate_scope(scope)
        await self.resolve_scope(scope)
        return await self.inner(scope, receive, send)

    def populate_scope(self, scope: Scope) -> None:
        """Add keys to ``scope`` synchronously; the default adds nothing."""

    async def resolve_scope(self, scope: Scope) -> None:
        """Fill scope values that need awaiting; the default does nothing."""
