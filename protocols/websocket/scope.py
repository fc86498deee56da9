"""ASGI ``http`` and ``websocket`` scopes from a parsed request head (pure functions).

The scopes themselves (their keys, builders and spec version) are
:mod:`gateway.web.events`'; this module reads their values off the request head, the
socket and the trusted proxy headers. Follows the ASGI HTTP & WebSocket spec 2.4:
``path`` is percent-decoded UTF-8 and includes ``root_path`` (the mount point, from
configuration only); ``raw_path`` and ``query_string`` are the bytes the client sent;
header names are lower-cased. Each scope gets a shallow copy of the lifespan
``state`` (lifespan spec 2.0)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, NamedTuple, TypedDict, TypeVar, Unpack
from urllib.parse import unquote

from gateway.web import events
from gateway.web.events import (
    DENIAL_RESPONSE,
    Address,
    ConnectionKeys,
    Headers,
    HttpScope,
    ServerAddress,
    WebsocketScope,
)
from protocols.websocket.proxy import TrustedProxies, header_values, resolve_forwarded

ScopeT = TypeVar("ScopeT", HttpScope, WebsocketScope)


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """What the socket says about one connection, before any proxy header."""

    client: Address | None
    #: (host, port), or (path, None) on a Unix socket (ASGI www spec, ``server``).
    server: ServerAddress | None
    secure: bool


def connection_info(transport: asyncio.BaseTransport) -> ConnectionInfo:
    """What ``transport`` says about its connection: peer, local address, TLS."""
    peer = transport.get_extra_info("peername")
    local = transport.get_extra_info("sockname")
    client = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple | list) and peer else None
    server: tuple[str, int | None] | None = None
    if isinstance(local, tuple | list) and local:
        server = (str(local[0]), int(local[1]))
    elif isinstance(local, str) and local:
        server = (local, None)  # a Unix socket path
    return ConnectionInfo(client, server, transport.get_extra_info("sslcontext") is not None)


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


class ServerSide(TypedDict, total=False):
    """What the server adds to a request head: the mount point (``root_path``, from
    configuration only), the lifespan ``state`` (each scope gets a shallow copy) and
    the trusted-proxy list when proxy headers are enabled (else None)."""

    root_path: str
    state: dict[str, Any] | None
    proxies: TrustedProxies | None


def _connection(
    target: bytes,
    http_version: str,
    headers: Headers,
    info: ConnectionInfo,
    server_side: ServerSide,
    schemes: tuple[str, str],
) -> ConnectionKeys:
    """The scope keys every connection has; ``schemes``: (plain, TLS), by the
    client-facing hop."""
    client, server, secure = info.client, info.server, info.secure
    proxies = server_side.get("proxies")
    if proxies is not None:
        forwarded = resolve_forwarded(client, headers, proxies)
        if forwarded is not None:
            if forwarded.client is not None:
                client = forwarded.client
            if forwarded.scheme is not None:
                secure = forwarded.scheme in ("https", "wss")
            if forwarded.server_port is not None and server is not None:
                server = (server[0], forwarded.server_port)
    parts = split_target(target)
    root_path = server_side.get("root_path", "")
    path = parts.path
    if root_path and not path.startswith(root_path):
        path = root_path + path
    return {
        "path": path,
        "raw_path": parts.raw_path,
        "query_string": parts.query_string,
        "headers": headers,
        "scheme": schemes[secure],
        "root_path": root_path,
        "http_version": http_version,
        "client": client,
        "server": server,
    }


def _with_state(scope: ScopeT, server_side: ServerSide) -> ScopeT:
    state = server_side.get("state")
    if state is not None:
        scope["state"] = state.copy()
    return scope


def http_scope(
    method: str,
    target: bytes,
    http_version: str,
    headers: Headers,
    info: ConnectionInfo,
    **server_side: Unpack[ServerSide],
) -> HttpScope:
    """The ``http`` connection scope for one request."""
    keys = _connection(target, http_version, headers, info, server_side, ("http", "https"))
    return _with_state(events.http_scope(method=method, **keys), server_side)


def websocket_scope(
    target: bytes,
    http_version: str,
    headers: Headers,
    info: ConnectionInfo,
    **server_side: Unpack[ServerSide],
) -> WebsocketScope:
    """The ``websocket`` connection scope for one upgrade request.

    ``subprotocols`` lists what the client offered in ``Sec-WebSocket-Protocol``;
    the ``websocket.http.response`` extension (denial responses) is advertised.
    """
    keys = _connection(target, http_version, headers, info, server_side, ("ws", "wss"))
    scope = events.websocket_scope(
        subprotocols=header_values(headers, b"sec-websocket-protocol"),
        extensions={DENIAL_RESPONSE: {}},
        **keys,
    )
    return _with_state(scope, server_side)
