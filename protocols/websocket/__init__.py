"""The HTTP/1.1 + WebSocket interface server (``gateway web``); see docs/web.md."""

from protocols.websocket.config import Config
from protocols.websocket.proxy import TrustedProxies
from protocols.websocket.server import WebServer
from protocols.websocket.thread import ServerThread

__all__ = ["Config", "ServerThread", "TrustedProxies", "WebServer"]
