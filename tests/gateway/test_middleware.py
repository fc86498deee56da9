from typing import Any

from gateway.middleware import BaseMiddleware
from gateway.types import Receive, Scope, Send


class Recorder:
    def __init__(self) -> None:
        self.scope: Scope = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope


async def test_plain_base_middleware_passes_a_copy_of_the_scope() -> None:
    inner = Recorder()
    scope: Scope = {"type": "websocket", "path": "/"}

    await BaseMiddleware(inner)(scope, None, None)  # type: ignore[arg-type]

    assert inner.scope == scope
    assert inner.scope is not scope


async def test_hooks_add_to_the_scope_without_leaking_upstream() -> None:
    class TenantMiddleware(BaseMiddleware):
        def populate_scope(self, scope: Scope) -> None:
            scope.setdefault("tenant", None)

        async def resolve_scope(self, scope: Scope) -> None:
            for name, value in scope["headers"]:
                if name == b"x-tenant":
                    scope["tenant"] = value.decode()

    inner = Recorder()
    scope: Scope = {"type": "http", "headers": [(b"x-tenant", b"acme")]}

    await TenantMiddleware(inner)(scope, None, None)  # type: ignore[arg-type]

    assert inner.scope["tenant"] == "acme"
    assert "tenant" not in scope


async def test_channels_style_call_override_and_wrapped_send() -> None:
    """The Channels 4 idiom: override __call__, change scope/send, then call super()."""

    class StampingMiddleware(BaseMiddleware):
        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
            scope = dict(scope, stamped=True)

            async def stamped_send(message: dict[str, Any]) -> None:
                await send({**message, "stamp": 1})

            return await super().__call__(scope, receive, stamped_send)

    sent: list[dict[str, Any]] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "x", "stamped": scope["stamped"]})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await StampingMiddleware(inner)({"type": "x"}, None, send)  # type: ignore[arg-type]

    assert sent == [{"type": "x", "stamped": True, "stamp": 1}]
