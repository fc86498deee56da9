"""``gateway web``: the command-line face of :class:`WebServer` (a protocols.launch.Launcher).

:class:`WebOptions` holds the options as given (``gateway web``'s flags, or
Python callers: ``manage.py runserver``, the live-server test case);
:func:`web_config` turns them into the server's :class:`Config`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
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


#: The flags that take a value: ``(flag, type, help)``. Each flag's ``dest`` is the
#: :class:`WebOptions` field of the same name, and that field's default is the flag's.
VALUE_FLAGS: tuple[tuple[str, type, str | None], ...] = (
    ("--host", str, "address to bind (default: %(default)s)"),
    ("--port", int, "TCP port (default: %(default)s)"),
    ("--uds", str, "bind this Unix domain socket instead of host/port"),
    ("--fd", int, "serve on this inherited, listening socket fd"),
    ("--ssl-certfile", str, "TLS certificate (PEM); enables https/wss"),
    ("--ssl-keyfile", str, "TLS private key (PEM)"),
    (
        "--forwarded-allow-ips",
        str,
        "comma-separated proxy addresses/networks to trust, or '*' (default: %(default)s)",
    ),
    ("--root-path", str, "ASGI root_path: the URL prefix the app is mounted at"),
    (
        "--ws-max-size",
        int,
        f"largest WebSocket message in bytes; larger close with 1009 (default: {MIB})",
    ),
    ("--ws-ping-interval", float, None),
    ("--ws-ping-timeout", float, None),
    ("--ws-connect-timeout", float, "seconds the application has to accept a WebSocket"),
    (
        "--timeout-keep-alive",
        float,
        "seconds an idle keep-alive connection stays open (default: %(default)s)",
    ),
    (
        "--timeout-request-head",
        float,
        "seconds a client has to send a request head, else 408 (default: %(default)s)",
    ),
    (
        "--timeout-body",
        float,
        "seconds a request body may pause between pieces, else 408 (default: %(default)s)",
    ),
    (
        "--body-min-rate",
        float,
        "bytes/s a request body must average after its first --timeout-body seconds, "
        "else 408 (default: %(default)s)",
    ),
    (
        "--max-header-size",
        int,
        "largest request head in bytes; larger get 431 (default: %(default)s)",
    ),
    (
        "--limit-concurrency",
        int,
        "open connections (HTTP and WebSocket) beyond which requests get 503; "
        "0: no limit (default: %(default)s)",
    ),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = WebOptions()
    add = parser.add_argument
    for flag, kind, text in VALUE_FLAGS:
        default = getattr(defaults, flag[2:].replace("-", "_"))
        add(flag, type=kind, default=default, help=text)
    add(
        "--proxy-headers",
        action="store_true",
        help="trust X-Forwarded-For/-Proto/-Port from --forwarded-allow-ips",
    )
    add("--no-access-log", dest="access_log", action="store_false", help="do not log each request")
    add(
        "--no-health-probes",
        dest="health_probes",
        action="store_false",
        help="hand /healthz and /readyz to the application instead of answering them "
        "in the server (docs/deploy.md)",
    )
    add("--lifespan", choices=["auto", "on", "off"], default=defaults.lifespan)


def wanted(application: Any, options: WebOptions) -> bool:
    """True unless the application is a protocol router without http or websocket."""
    mapping = getattr(application, "application_mapping", None)
    if not isinstance(mapping, dict):
        return True  # a plain ASGI application serves HTTP
    return "http" in mapping or "websocket" in mapping


def web_config(options: WebOptions) -> Config:
    """The server's :class:`Config` for ``options``; ImproperlyConfigured when invalid.

    Every option is the :class:`Config` field of the same name; three are converted.
    """
    given = {field.name: getattr(options, field.name) for field in fields(options)}
    try:
        return Config(
            **{
                **given,
                "forwarded_allow_ips": TrustedProxies.parse(options.forwarded_allow_ips),
                "root_path": options.root_path.rstrip("/"),
                "limit_concurrency": options.limit_concurrency or None,
            }
        )
    except ValueError as exc:
        raise ImproperlyConfigured(f"gateway web: {exc}") from exc


def build(application: Any, options: WebOptions) -> WebServer:
    return WebServer(application, web_config(options))
