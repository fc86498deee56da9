"""Plain ASGI applications that record the scopes routed to them, and the route makers."""

from __future__ import annotations

from typing import Any, Protocol, cast

from django import urls
from django.urls import URLPattern

from gateway.types import ASGIApp, Receive, Scope, Send


class RouteMaker(Protocol):
    def __call__(
        self, route: str, view: ASGIApp, kwargs: dict[str, Any] | None = None
    ) -> URLPattern: ...


#: Django's own ``path()`` and ``re_path()``, typed as URLRouter uses them: with an ASGI
#: application where a view would be (django-stubs types them for views only).
path = cast(RouteMaker, urls.path)
re_path = cast(RouteMaker, urls.re_path)


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
