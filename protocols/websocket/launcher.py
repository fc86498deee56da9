"""``gateway web``: the command-line face of :class:`WebServer` (a gateway.cli.Launcher)."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from protocols.websocket.config import MIB, Config
from protocols.websocket.proxy import TrustedProxies
from protocols.websocket.server import WebServer

HELP = "serve HTTP/1.1 and WebSocket (the browser-facing server)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = Config()
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
        default="127.0.0.1,::1",
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
    add("--no-access-log", action="store_true", help="do not log each request")
    add(
        "--no-health-probes",
        action="store_true",
        help="hand /healthz and /readyz to the application instead of answering them "
        "in the server (docs/deploy.md)",
    )
    add("--lifespan", choices=["auto", "on", "off"], default="auto")


def wanted(application: Any, args: argparse.Namespace) -> bool:
    """True unless the application is a protocol router without http or websocket."""
    mapping = getattr(application, "application_mapping", None)
    if not isinstance(mapping, dict):
        return True  # a plain ASGI application serves HTTP
    return "http" in mapping or "websocket" in mapping


def config_from_args(args: argparse.Namespace) -> Config:
    try:
        return Config(
            host=args.host,
            port=args.port,
            uds=args.uds,
            fd=args.fd,
            ssl_certfile=args.ssl_certfile,
            ssl_keyfile=args.ssl_keyfile,
            proxy_headers=args.proxy_headers,
            forwarded_allow_ips=TrustedProxies.parse(args.forwarded_allow_ips),
            root_path=args.root_path.rstrip("/"),
            ws_max_size=args.ws_max_size,
            ws_ping_interval=args.ws_ping_interval,
            ws_ping_timeout=args.ws_ping_timeout,
            ws_connect_timeout=args.ws_connect_timeout,
            timeout_keep_alive=args.timeout_keep_alive,
            timeout_request_head=args.timeout_request_head,
            timeout_body=args.timeout_body,
            body_min_rate=args.body_min_rate,
            max_header_size=args.max_header_size,
            limit_concurrency=args.limit_concurrency or None,
            access_log=not args.no_access_log,
            health_probes=not args.no_health_probes,
            lifespan=args.lifespan,
        )
    except ValueError as exc:
        raise ImproperlyConfigured(f"gateway web: {exc}") from exc


def build(application: Any, args: argparse.Namespace) -> WebServer:
    return WebServer(application, config_from_args(args))
