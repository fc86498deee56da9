"""The application ``tests.settings.ASGI_APPLICATION`` names: the example chat project."""

from tests.example.asgi import application

__all__ = ["application"]
