"""Routing: the ASGI applications that pick which application handles a scope.

Every router here is itself an ASGI application, so routers nest: a
:class:`ProtocolTypeRouter` dispatches on ``scope["type"]``, a :class:`URLRouter` on
the path, a :class:`ChannelNameRouter` on the channel a worker received from.
:func:`get_default_application` loads the project's ``ASGI_APPLICATION``.

These are the names ``channels.routing`` exports, with the same behaviour.
"""

from gateway.routing.bot import BotRouter
from gateway.routing.channel import ChannelNameRouter
from gateway.routing.default import get_default_application
from gateway.routing.protocol import ProtocolTypeRouter
from gateway.routing.topic import TopicRouter, topic
from gateway.routing.url import URLRouter

__all__ = [
    "BotRouter",
    "ChannelNameRouter",
    "ProtocolTypeRouter",
    "TopicRouter",
    "URLRouter",
    "get_default_application",
    "topic",
]
