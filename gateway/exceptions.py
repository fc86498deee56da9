"""Every exception gateway raises on purpose, in one tree.

::

    Exception
    ├── RequestAborted            the client went away while a request body was read
    ├── RequestTimeout            the request body did not arrive in time
    ├── InvalidChannelLayerError  CHANNEL_LAYERS is misconfigured (names the alias)
    ├── AcceptConnection          raised in websocket_connect: accept the socket
    ├── DenyConnection            raised in websocket_connect: refuse it (HTTP 403)
    ├── ChannelFull               a channel is at capacity; the message was not queued
    ├── MessageTooLarge           a message exceeds what the layer or wire allows
    ├── ChannelLayerUnavailable   the layer's backend (e.g. Redis) cannot be reached
    └── StopConsumer              raised by a handler to end its consumer cleanly

``ChannelFull``, ``AcceptConnection``, ``DenyConnection``, ``StopConsumer``,
``InvalidChannelLayerError``, ``RequestAborted`` and ``RequestTimeout`` keep the names
and meaning they have in Channels; the others are gateway's additions.
"""


class RequestAborted(Exception):
    """The client disconnected before the request body was completely read."""


class RequestTimeout(RequestAborted):
    """The client did not send the request body in time."""


class InvalidChannelLayerError(ValueError):
    """``CHANNEL_LAYERS`` names a backend that cannot be found or built."""


class AcceptConnection(Exception):
    """Raised during a WebSocket connect handler to accept the connection."""


class DenyConnection(Exception):
    """Raised during a WebSocket connect handler to refuse the connection."""


class ChannelFull(Exception):
    """The destination channel is at capacity; the message was not delivered."""


class MessageTooLarge(ValueError):
    """A message is larger than the channel layer or the wire protocol accepts."""


class ChannelLayerUnavailable(ConnectionError):
    """The channel layer's backend cannot be reached right now.

    Raised instead of hanging when, for example, Redis is restarting; the
    operation can be retried once the backend is back.
    """


class StopConsumer(Exception):
    """Raised by a consumer handler to stop the consumer after that event."""
