"""Checks that fail at routing-table construction instead of at the first connection.

Channels accepts anything as a route target and fails on the first scope, often with
an unrelated ``TypeError`` deep in asgiref. The routers here call
:func:`require_asgi_application` for every target so that the classic mistakes —
routing to a consumer class instead of ``Consumer.as_asgi()``, or to a Django view —
are reported at import time, naming the route.
"""

from __future__ import annotations

import inspect
from typing import Any

from django.core.exceptions import ImproperlyConfigured


def require_asgi_application(application: Any, where: str) -> None:
    """Raise ImproperlyConfigured unless ``application`` is ``app(scope, receive, send)``.

    ``where`` says which route or mapping key the application was given for.
    """
    if inspect.isclass(application):
        hint = (
            f" Did you mean {application.__name__}.as_asgi()?"
            if hasattr(application, "as_asgi")
            else ""
        )
        raise ImproperlyConfigured(
            f"{where}: {application!r} is a class, not an ASGI application.{hint}"
        )
    if not callable(application):
        raise ImproperlyConfigured(
            f"{where}: {application!r} is not callable, so it is not an ASGI application."
        )
    if hasattr(application, "view_class") or hasattr(application, "csrf_exempt"):
        raise ImproperlyConfigured(
            f"{where}: {application!r} is a Django view, not an ASGI application; "
            "route views through django.urls and serve them with get_asgi_application()."
        )
    try:
        signature = inspect.signature(application, follow_wrapped=False)
    except (TypeError, ValueError):
        return  # Builtins and C callables: nothing to inspect, trust the caller.
    try:
        signature.bind(None, None, None)
    except TypeError:
        raise ImproperlyConfigured(
            f"{where}: {application!r} does not take (scope, receive, send), "
            "so it is not an ASGI 3 application."
        ) from None
