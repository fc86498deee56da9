"""ASGI ``http`` and ``websocket`` scopes from a parsed request head (pure functions).

Follows the ASGI HTTP & WebSocket spec 2.4: ``path`` is percent-decoded UTF-8 and
includes ``root_path`` (the mount point, from configuration only); ``raw_path`` and
``query_string`` are the bytes the client sent; header names are lower-cased.
Each scope gets a shallow copy of the lifespan ``state`` (lifespan spec 2.0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from protocols.websocket.proxy import Address, TrustedProxies, header_values, resolve_forwarded

ASGI_VERSION = "3.0"
SPEC_VERSION = "2.4"
Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """What the socket says about one connection, before any proxy header."""

    client: Address | None
    #: (host, port), or (path, None) on a Unix socket (ASGI www spec, ``server``).
    server: tuple[str, int | None] | None
    secure: bool


@dataclass(frozen=True, slots=True)
class Target:
    path: str
    raw_path: bytes
    query_string: bytes


def split_target(target: bytes) -> Target:
    """Split a request-target (RFC 9112 3.2: origin or absolute form) into ASGI fields.

    Never raises: the target is whatever the client sent (``urlsplit`` would reject
    an authority such as ``http://[/``, which is not ours to judge: Host is).
    """
    if not target.startswith(b"/") and b"://" in target:
        rest = target.partition(b"://")[2]  # RFC 3986 3.2: the authority ends at / ? #
        ends = [i for i in (rest.find(b"/"), rest.find(b"?"), rest.find(b"#")) if i >= 0]
        target = rest[min(ends, default=len(rest)) :]
        if not target.startswith(b"/"):
            target = b"/" + target
    raw_path, _, query = target.partition(b"?")
    return Target(unquote(raw_path.decode("latin-1")), raw_path, query)


def _mounted(path: str, root_path: str) -> str:
    if root_path and not path.startswith(root_path):
        return root_path + path
    return path


def _common(
    target: bytes,
    headers: Headers,
    info: ConnectionInfo,
    root_path: str,
    state: dict[str, Any] | None,
    proxies: TrustedProxies | None,
) -> tuple[dict[str, Any], bool]:
    """The keys shared by both scopes, and whether the client-facing hop was TLS."""
    parts = split_target(target)
    client, server, secure = info.client, info.server, info.secure
    if proxies is not None:
        forwarded = resolve_forwarded(client, headers, proxies)
        if forwarded is not None:
            if forwarded.client is not None:
                client = forwarded.client
            if forwarded.scheme is not None:
                secure = forwarded.scheme in ("https", "wss")
            if forwarded.server_port is not None and server is not None:
                server = (server[0], forwarded.server_port)
    scope: dict[str, Any] = {
        "asgi": {"version": ASGI_VERSION, "spec_version": SPEC_VERSION},
        "path": _mounted(parts.path, root_path),
        "raw_path": parts.raw_path,
        "query_string": parts.query_string,
        "root_path": root_path,
        "headers": headers,
        "client": client,
        "server": server,
    }
    if state is not None:
        scope["state"] = state.copy()
    return scope, secure


def http_scope(
    method: str,
    target: bytes,
    http_version: str,
    headers: Headers,
    info: ConnectionInfo,
    *,
    root_path: str = "",
    state: dict[str, Any] | None = None,
    proxies: TrustedProxies | None = None,
) -> dict[str, Any]:
    """The ``http`` connection scope for one request.

    ``proxies`` is the trusted-proxy list when proxy headers are enabled, else None.
    """
    scope, secure = _common(target, headers, info, root_path, state, proxies)
    scope["type"] = "http"
    scope["http_version"] = http_version
    scope["method"] = method
    scope["scheme"] = "https" if secure else "http"
    return scope


def websocket_scope(
    target: bytes,
    http_version: str,
    headers: Headers,
    info: ConnectionInfo,
    *,
    root_path: str = "",
    state: dict[str, Any] | None = None,
    proxies: TrustedProxies | None = None,
) -> dict[str, Any]:
    """The ``websocket`` connection scope for one upgrade request.

    ``subprotocols`` lists what the client offered in ``Sec-WebSocket-Protocol``;
    the ``websocket.http.response`` extension (denial responses) is advertised.
    """
    scope, secure = _common(target, headers, info, root_path, state, proxies)
    scope["type"] = "websocket"
    scope["http_version"] = http_version
    scope["scheme"] = "wss" if secure else "ws"
    scope["subprotocols"] = header_values(headers, b"sec-websocket-protocol")
    scope["extensions"] = {"websocket.http.response": {}}
    return scope
