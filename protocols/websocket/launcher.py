"""``gateway web``: the command-line face of :class:`WebServer` (a protocols.launch.Launcher).

:class:`WebOptions` holds the options as given (``gateway web``'s flags, or
Python callers: ``manage.py runserver``, the live-server test case);
:func:`web_config` turns them into the server's :class:`Config`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Literal

from django.core.exceptions import ImproperlyConfigured

from protocols.websocket.config import MIB, Config
from protocols.websocket.proxy import TrustedProxies
from protocols.websocket.server import WebServer

HELP = "serve HTTP/1.1 and WebSocket (the browser-facing server)"

_CONFIG = Config()


@dataclass(frozen=True)
class WebOptions:
    """The web server's options, one field per ``gateway web`` flag (defaults alike)."""

    host: str = _CONFIG.host
    port: int = _CONFIG.port
    uds: str | None = None
    fd: int | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    proxy_headers: bool = False
    forwarded_allow_ips: str = "127.0.0.1,::1"
    root_path: str = ""
    ws_max_size: int = _CONFIG.ws_max_size
    ws_ping_interval: float | None = _CONFIG.ws_ping_interval
    ws_ping_timeout: float | None = _CONFIG.ws_ping_timeout
    ws_connect_timeout: float = _CONFIG.ws_connect_timeout
    timeout_keep_alive: float = _CONFIG.timeout_keep_alive
    timeout_request_head: float = _CONFIG.timeout_request_head
    timeout_body: float = _CONFIG.timeout_body
    body_min_rate: float = _CONFIG.body_min_rate
    max_header_size: int = _CONFIG.max_header_size
    #: 0: no limit.
    limit_concurrency: int = _CONFIG.limit_concurrency or 0
    access_log: bool = True
    health_probes: bool = True
    lifespan: Literal["auto", "on", "off"] = "auto"


OPTIONS = WebOptions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = WebOptions()
    add = parser.add_argument
    add("--host", default=defaults.host, help="address to bind (default: %(default)s)")
    add("--port", type=int, default=defaults.port, help="TCP port (default: %(default)s)")
    add("--uds", default=None, help="bind this Unix domain socket instead of host/port")
    add("--fd", type=int, default=None, help="serve on this inherited, listening socket fd")
    add("--ssl-certfile", default=None, help="TLS certificate (PEM); enables https/wss")
    add("--ssl-keyfile", default=None, help="TLS private key (PEM)")
    add(
        "--proxy-headers",
        action="store_true",
        help="trust X-Forwarded-For/-Proto/-Port from --forwarded-allow-ips",
    )
    add(
        "--forwarded-allow-ips",
        default=defaults.forwarded_allow_ips,
        help="comma-separated proxy addresses/networks to trust, or '*' (default: %(default)s)",
    )
    add("--root-path", default="", help="ASGI root_path: the URL prefix the app is mounted at")
    add(
        "--ws-max-size",
        type=int,
        default=defaults.ws_max_size,
        help=f"largest WebSocket message in bytes; larger close with 1009 (default: {MIB})",
    )
    add("--ws-ping-interval", type=float, default=defaults.ws_ping_interval)
    add("--ws-ping-timeout", type=float, default=defaults.ws_ping_timeout)
    add(
        "--ws-connect-timeout",
        type=float,
        default=defaults.ws_connect_timeout,
        help="seconds the application has to accept a WebSocket",
    )
    add(
        "--timeout-keep-alive",
        type=float,
        default=defaults.timeout_keep_alive,
        help="seconds an idle keep-alive connection stays open (default: %(default)s)",
    )
    add(
        "--timeout-request-head",
        type=float,
        default=defaults.timeout_request_head,
        help="seconds a client has to send a request head, else 408 (default: %(default)s)",
    )
    add(
        "--timeout-body",
        type=float,
        default=defaults.timeout_body,
        help="seconds a request body may pause between pieces, else 408 (default: %(default)s)",
    )
    add(
        "--body-min-rate",
        type=float,
        default=defaults.body_min_rate,
        help="bytes/s a request body must average after its first --timeout-body seconds, "
        "else 408 (default: %(default)s)",
    )
    add(
        "--max-header-size",
        type=int,
        default=defaults.max_header_size,
        help="largest request head in bytes; larger get 431 (default: %(default)s)",
    )
    add(
        "--limit-concurrency",
        type=int,
        default=defaults.limit_concurrency,
        help="open connections (HTTP and WebSocket) beyond which requests get 503; "
        "0: no limit (default: %(default)s)",
    )
    add(
        "--no-access-log",
        dest="access_log",
        action="store_false",
        help="do not log each request",
    )
    add(
        "--no-health-probes",
        dest="health_probes",
        action="store_false",
        help="hand /healthz and /readyz to the application instead of answering them "
        "in the server (docs/deploy.md)",
    )
    add("--lifespan", choices=["auto", "on", "off"], default="auto")


def wanted(application: Any, options: WebOptions) -> bool:
    """True unless the application is a protocol router without http or websocket."""
    mapping = getattr(application, "application_mapping", None)
    if not isinstance(mapping, dict):
        return True  # a plain ASGI application serves HTTP
    return "http" in mapping or "websocket" in mapping


def web_config(options: WebOptions) -> Config:
    """The server's :class:`Config` for ``options``; ImproperlyConfigured when invalid."""
    try:
        return Config(
            host=options.host,
            port=options.port,
            uds=options.uds,
            fd=options.fd,
            ssl_certfile=options.ssl_certfile,
            ssl_keyfile=options.ssl_keyfile,
            proxy_headers=options.proxy_headers,
            forwarded_allow_ips=TrustedProxies.parse(options.forwarded_allow_ips),
            root_path=options.root_path.rstrip("/"),
            ws_max_size=options.ws_max_size,
            ws_ping_interval=options.ws_ping_interval,
            ws_ping_timeout=options.ws_ping_timeout,
            ws_connect_timeout=options.ws_connect_timeout,
            timeout_keep_alive=options.timeout_keep_alive,
            timeout_request_head=options.timeout_request_head,
            timeout_body=options.timeout_body,
            body_min_rate=options.body_min_rate,
            max_header_size=options.max_header_size,
            limit_concurrency=options.limit_concurrency or None,
            access_log=options.access_log,
            health_probes=options.health_probes,
            lifespan=options.lifespan,
        )
    except ValueError as exc:
        raise ImproperlyConfigured(f"gateway web: {exc}") from exc


def build(application: Any, options: WebOptions) -> WebServer:
    return WebServer(application, web_config(options))
