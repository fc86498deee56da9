"""Every exception gateway raises into code that uses it, in one tree.

Defined here unless a module is named; each line is the class's real base, which is
what an ``except`` clause catches (``tests/gateway/test_exceptions.py`` keeps the tree true)::

    Exception
    ├── RequestAborted                the client went away while a request body was read
    │   └── RequestTimeout            the request body did not arrive in time
    ├── AcceptConnection              raised in websocket_connect: accept the socket
    ├── DenyConnection                raised in websocket_connect: refuse it (HTTP 403)
    ├── ChannelFull                   a channel is at capacity; the message was not queued
    ├── StopConsumer                  raised by a handler to end its consumer cleanly
    ├── ValueError
    │   ├── InvalidChannelLayerError  CHANNEL_LAYERS is misconfigured (names the alias)
    │   ├── MessageTooLarge           a message exceeds what the layer or wire allows
    │   ├── InvalidTopic              gateway.topics: a topic or filter breaks MQTT §4.7
    │   └── DecryptionError           gateway.layers.redis: no key decrypts a message
    ├── LookupError
    │   └── KeyError
    │       └── SerializerDoesNotExist  gateway.layers.redis: no serializer of that format
    ├── OSError
    │   ├── ConnectionError
    │   │   └── ChannelLayerUnavailable  the layer's backend (e.g. Redis) cannot be reached
    │   └── ClientDisconnected        protocols.websocket.errors: send() after the client left
    ├── RuntimeError
    │   └── ProtocolViolation         protocols.websocket.errors: an ASGI event out of order
    └── telegram.error.TelegramError
        └── BotApiError               protocols.telegram.client: a Bot API call failed

``ChannelFull``, ``AcceptConnection``, ``DenyConnection``, ``StopConsumer``,
``InvalidChannelLayerError``, ``RequestAborted``, ``RequestTimeout`` and
``SerializerDoesNotExist`` keep the names and meaning they have in Channels and
channels_redis; the others are gateway's additions.

Raised and handled inside gateway, never reaching an application: the Redis layer's
``CommandNotSent`` (a ``ChannelLayerUnavailable`` it retries itself), the MQTT codec's
``ProtocolViolation`` and its kinds ``MalformedPacket``, ``PacketTooLarge`` and
``UnsupportedProtocol`` (the peer broke MQTT: the connection closes), the web server's
``RequestRefused`` (answered with a status), the Bot API server's ``BadParams`` and
``ApiError`` (answered to its client), the device check's ``LaneFull`` (the connect
is refused), the instance manager's ``NoInstanceError`` (a server asked for an
instance without the scope to start one: a bug in that server), ``LifespanFailed`` and
the launcher's ``EventLoopUnavailable`` and ``ServiceStartError`` (one line on the
command line, exit status 1).
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
