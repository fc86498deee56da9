"""ASGI entry point of the example chat project (``ASGI_APPLICATION`` in tests.settings)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
# Set up Django (and its app registry) before importing code that uses models.
django_asgi_app = get_asgi_application()

from gateway.auth import AuthMiddlewareStack  # noqa: E402
from gateway.routing import ChannelNameRouter, ProtocolTypeRouter, URLRouter  # noqa: E402
from gateway.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from tests.example.consumers import LOG_CHANNEL  # noqa: E402
from tests.example.routing import websocket_urlpatterns  # noqa: E402
from tests.example.workers import ChatLogConsumer  # noqa: E402

application = ProtocolTypeRouter(
    {
        # django-stubs has Django's handler send Mappings; gateway's Send takes dicts.
        "http": django_asgi_app,  # type: ignore[dict-item]
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
        "channel": ChannelNameRouter({LOG_CHANNEL: ChatLogConsumer.as_asgi()}),
    }
)
