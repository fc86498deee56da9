"""ASGI ``http`` and ``websocket`` scopes from a parsed request head (pure functions).

The scopes themselves (their keys, builders and spec version) are
:mod:`gateway.web.events`'; this module reads their values off the request head, the
socket and the trusted proxy headers. Follows the ASGI HTTP & WebSocket spec 2.4:
``path`` is percent-decoded UTF-8 and includes ``root_path`` (the mount point, from
configuration only); ``raw_path`` and ``query_string`` are the bytes the client sent;
header names are lower-cased. Each scope gets a shallow copy of the lifespan
``state`` (lifespan spec 2.0)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import unquote

from gateway.web import events
from gateway.web.events import (
    DENIAL_RESPONSE,
    Address,
    Headers,
    HttpScope,
    ServerAddress,
    WebsocketScope,
)
from protocols.websocket.proxy import TrustedProxies, header_values, resolve_forwarded


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """What the socket says about one connection, before any proxy header."""

    client: Address | None
    #: (host, port), or (path, None) on a Unix socket (ASGI www spec, ``server``).
    server: ServerAddress | None
    secure: bool


class Target(NamedTuple):
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


def _connection(
    target: bytes,
    headers: Headers,
    info: ConnectionInfo,
    proxies: TrustedProxies | None,
) -> tuple[Target, Address | None, ServerAddress | None, bool]:
    """The target's parts, client, server and whether the client-facing hop was TLS."""
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
    return split_target(target), client, server, secure


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
) -> HttpScope:
    """The ``http`` connection scope for one request.

    ``proxies`` is the trusted-proxy list when proxy headers are enabled, else None.
    """
    parts, client, server, secure = _connection(target, headers, info, proxies)
    scope = events.http_scope(
        method=method,
        path=_mounted(parts.path, root_path),
        raw_path=parts.raw_path,
        query_string=parts.query_string,
        headers=headers,
        scheme="https" if secure else "http",
        root_path=root_path,
        http_version=http_version,
        client=client,
        server=server,
    )
    if state is not None:
        scope["state"] = state.copy()
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
) -> WebsocketScope:
    """The ``websocket`` connection scope for one upgrade request.

    ``subprotocols`` lists what the client offered in ``Sec-WebSocket-Protocol``;
    the ``websocket.http.response`` extension (denial responses) is advertised.
    """
    parts, client, server, secure = _connection(target, headers, info, proxies)
    scope = events.websocket_scope(
        path=_mounted(parts.path, root_path),
        raw_path=parts.raw_path,
        query_string=parts.query_string,
        headers=headers,
        subprotocols=header_values(headers, b"sec-websocket-protocol"),
        scheme="wss" if secure else "ws",
        root_path=root_path,
        http_version=http_version,
        client=client,
        server=server,
        extensions={DENIAL_RESPONSE: {}},
    )
    if state is not None:
        scope["state"] = state.copy()
    return scope
