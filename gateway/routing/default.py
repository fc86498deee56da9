"""Loading the project's ASGI application from the ``ASGI_APPLICATION`` setting."""

from __future__ import annotations

from importlib import import_module

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from gateway.types import ASGIApp


def get_default_application() -> ASGIApp:
    """Import and return the application named by ``settings.ASGI_APPLICATION``.

    The setting is a dotted path, ``"myproject.asgi.application"``. Each way it can
    be wrong (missing, not dotted, module not importable, attribute absent) raises
    :class:`~django.core.exceptions.ImproperlyConfigured` naming the setting.
    """
    dotted = getattr(settings, "ASGI_APPLICATION", None)
    if not dotted or not isinstance(dotted, str):
        raise ImproperlyConfigured(
            "ASGI_APPLICATION is not set: name your application in settings, "
            'for example ASGI_APPLICATION = "myproject.asgi.application".'
        )
    module_path, _, name = dotted.rpartition(".")
    if not module_path or not name:
        raise ImproperlyConfigured(
            f"ASGI_APPLICATION {dotted!r} is not a dotted path of the form 'module.attribute'."
        )
    try:
        module = import_module(module_path)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"ASGI_APPLICATION {dotted!r}: cannot import module {module_path!r}: {exc}"
        ) from exc
    try:
        application: ASGIApp = getattr(module, name)
    except AttributeError as exc:
        raise ImproperlyConfigured(
            f"ASGI_APPLICATION {dotted!r}: module {module_path!r} has no attribute {name!r}."
        ) from exc
    return application
