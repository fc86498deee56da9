"""Errors the web server raises into applications.

    OSError
     └── ClientDisconnected   send() on a WebSocket the client has closed (ASGI www 2.4)
    RuntimeError
     └── ProtocolViolation    an application sent an event out of order or malformed

Anything else an application raises stays inside that connection's error boundary:
it is logged and answered (HTTP 500, close code 1011); the server keeps serving.
"""

from __future__ import annotations


class ClientDisconnected(OSError):
    """The peer is gone; the message was not sent."""


class ProtocolViolation(RuntimeError):
    """The application broke the ASGI message order (e.g. ``websocket.send`` before accept)."""
