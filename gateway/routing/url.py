"""Dispatch on the URL path with Django's ``path()`` and ``re_path()``.

Matching is Django's own (``django.urls`` patterns, converters included), applied
the way Channels 4.3 applies it: the outermost router strips ``scope["root_path"]``
from ``scope["path"]``, each router strips a leading ``/``, and a matched route passes
``path_remaining`` (what its pattern did not consume) to the application it routes
to, so a nested :class:`URLRouter` continues from there. Positional and keyword
captures accumulate across nesting in ``scope["url_route"]``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.urls.exceptions import Resolver404
from django.urls.resolvers import RegexPattern, RoutePattern, URLPattern, URLResolver

from gateway.routing.validation import require_asgi_application
from gateway.types import ASGIApp, Receive, Scope, Send


class _NoRouteInNestedRouter(Resolver404):
    """A nested router matched nothing: the enclosing router tries its next route.

    A subclass of Django's ``Resolver404`` (what Channels raises there) so code that
    catches that keeps working, while the enclosing router reacts only to this one and
    never mistakes a ``Resolver404`` raised inside a consumer for "no match".
    """


def routes_further(application: Any) -> bool:
    """Whether ``application`` routes on ``path_remaining`` itself (a URLRouter).

    Middleware is looked through (``inner``/``application`` attributes), so
    ``path("chat/", AuthMiddlewareStack(URLRouter([...])))`` works as a prefix.
    """
    seen = 0
    while application is not None and seen < 32:
        if getattr(application, "_path_routing", False) is True:
            return True
        application = getattr(application, "inner", None) or getattr(
            application, "application", None
        )
        seen += 1
    return False


def _as_prefix(route: URLPattern) -> URLPattern:
    """A copy of ``route`` that matches a path prefix, as ``include()`` routes do.

    ``path()`` compiles endpoint patterns anchored at the end (``\\Z``); a route to a
    nested router must leave the rest of the path for it. The caller's pattern object is
    left untouched (Channels rewrites it in place).
    """
    pattern = route.pattern
    prefix: RoutePattern | RegexPattern
    if isinstance(pattern, RoutePattern):
        prefix = RoutePattern(
            pattern._route,  # type: ignore[attr-defined]
            pattern.name,
            is_endpoint=False,
        )
    elif isinstance(pattern, RegexPattern):
        prefix = RegexPattern(
            pattern._regex,  # type: ignore[attr-defined]
            pattern.name,
            is_endpoint=False,
        )
    else:
        raise ImproperlyConfigured(
            f"URLRouter cannot nest a router under a {type(pattern).__name__}; "
            "use path() or re_path()."
        )
    return URLPattern(prefix, route.callback, route.default_args, route.name)


class URLRouter:
    """Route a scope with a ``path`` (HTTP, WebSocket) to the first matching route.

    Example::

        URLRouter([
            path("ws/chat/<str:room_name>/", ChatConsumer.as_asgi()),
            re_path(r"^ws/api/", URLRouter([path("v<int:version>/", ApiConsumer.as_asgi())])),
        ])

    The consumer then finds ``scope["url_route"] == {"args": (...), "kwargs": {...}}``
    (pattern ``kwargs=`` defaults included). A route whose target is another
    ``URLRouter`` matches as a prefix, like ``include()`` in ``urls.py``.

    Construction fails with ``ImproperlyConfigured`` for anything that is not a
    ``path()``/``re_path()`` to an ASGI application (``include()``, a consumer class
    without ``.as_asgi()``, a Django view). A path no route matches raises
    ``ValueError("No route found for path ...")``.
    """

    #: Marks routers that consume ``path_remaining``: the route leading to one is a prefix.
    _path_routing = True

    def __init__(self, routes: Iterable[URLPattern]) -> None:
        self.routes: list[URLPattern] = []
        for index, route in enumerate(routes):
            self._check_route(index, route)
            if routes_further(route.callback):
                route = _as_prefix(route)
            self.routes.append(route)

    @staticmethod
    def _check_route(index: int, route: object) -> None:
        if isinstance(route, URLResolver):
            raise ImproperlyConfigured(
                f"{route}: include() is not supported in URLRouter. Use nested URLRouter "
                f"instances instead (route {index}: path('prefix/', URLRouter([...])))."
            )
        if not isinstance(route, URLPattern):
            raise ImproperlyConfigured(
                f"URLRouter route {index} is {route!r}; routes must be made with "
                "django.urls.path() or re_path()."
            )
        require_asgi_application(route.callback, f"URLRouter route {index} ({route.pattern})")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        nested = "path_remaining" in scope
        path = self._path_to_match(scope, nested)
        for route in self.routes:
            match = route.pattern.match(path)
            if not match:
                continue
            remaining, args, kwargs = match
            kwargs = {**kwargs, **route.default_args}
            outer = scope.get("url_route", {})
            application: ASGIApp = route.callback
            inner_scope = {
                **scope,
                "path_remaining": remaining,
                "url_route": {
                    "args": tuple(outer.get("args", ())) + tuple(args),
                    "kwargs": {**outer.get("kwargs", {}), **kwargs},
                },
            }
            try:
                return await application(inner_scope, receive, send)
            except _NoRouteInNestedRouter:
                continue  # The nested router matched nothing: try the next route.
        if nested:
            raise _NoRouteInNestedRouter(f"No route found for path {path!r}.")
        raise ValueError(f"No route found for path {path!r}.")

    @staticmethod
    def _path_to_match(scope: Scope, nested: bool) -> str:
        if nested:
            path: str = scope["path_remaining"]
        else:
            if "path" not in scope:
                raise ValueError(
                    "No 'path' key in connection scope, cannot route URLs "
                    f"(URLRouter got a {scope.get('type')!r} scope without one)."
                )
            path = scope["path"]
            root_path: str = scope.get("root_path", "")
            if root_path:
                # ASGI: "path" includes "root_path"; routes are written without it.
                if not path.startswith(root_path):
                    raise ValueError(
                        f"No route found for path {path!r}: it is outside root_path {root_path!r}."
                    )
                path = path[len(root_path) :]
        return path.lstrip("/")
