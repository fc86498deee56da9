"""Plain ASGI applications that record the scopes routed to them."""

from __future__ import annotations

from gateway.types import Receive, Scope, Send


class RecordingApp:
    """An ASGI application that remembers every scope it was called with."""

    def __init__(self, name: str = "app") -> None:
        self.name = name
        self.scopes: list[Scope] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scopes.append(scope)

    @property
    def scope(self) -> Scope:
        (scope,) = self.scopes
        return scope

    def __repr__(self) -> str:
        return f"RecordingApp({self.name!r})"


async def never_receive() -> dict[str, object]:
    raise AssertionError("the application should not receive")


async def never_send(message: dict[str, object]) -> None:
    raise AssertionError(f"the application should not send {message!r}")
