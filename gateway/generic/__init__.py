"""Generic consumers, one module per protocol, as in Channels.

``gateway.generic.websocket`` (``WebsocketConsumer``, ``AsyncWebsocketConsumer`` and
their JSON variants) and ``gateway.generic.http`` (``AsyncHttpConsumer``); the
``mqtt`` and ``telegram`` modules follow the same pattern for gateway's own
protocols. Import from the module, as Channels users do.
"""
