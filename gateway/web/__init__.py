"""HTTP and WebSocket, as ASGI's "HTTP & WebSocket" spec 2.4 has them.

:mod:`gateway.web.events` defines the ``http`` and ``websocket`` scopes and every
event and message of that spec once, with their builders and readers, for the
interface server (:mod:`protocols.websocket`), the generic consumers
(:mod:`gateway.generic.http`, :mod:`gateway.generic.websocket`) and the test
communicators (:mod:`gateway.testing.http`, :mod:`gateway.testing.websocket`).
"""
