"""gateway: Django Channels' programming model, for WebSocket, MQTT and Telegram.

Application code imports the Channels-compatible modules (``gateway.consumer``,
``gateway.routing``, ``gateway.layers`` ...); this package itself only names the
default channel layer alias, as ``channels`` does.
"""

__version__ = "0.1.0"

DEFAULT_CHANNEL_LAYER = "default"
