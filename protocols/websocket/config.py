"""Everything the web server can be told, in one immutable object.

Defaults follow what Daphne and uvicorn users expect; every limit here is what
bounds a buffer or a wait somewhere in the server (see docs/web.md).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Literal

from protocols.websocket.proxy import TrustedProxies

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True)
class Config:
    """Options of :class:`protocols.websocket.server.WebServer`.

    Exactly one of ``uds`` and ``fd`` may replace ``host``/``port``. ``port=0``
    binds an ephemeral port; read it back from ``WebServer.port`` after start.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    uds: str | None = None
    fd: int | None = None
    backlog: int = 2048
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_keyfile_password: str | None = field(default=None, repr=False)

    #: Honour X-Forwarded-For/-Proto/-Port, only from ``forwarded_allow_ips``.
    proxy_headers: bool = False
    forwarded_allow_ips: TrustedProxies = field(default_factory=TrustedProxies)
    #: The ASGI ``root_path`` (mount point); never taken from a client header.
    root_path: str = ""
    access_log: bool = True
    #: Answer ``/healthz`` and ``/readyz`` in the server, before the application
    #: (:mod:`protocols.readiness`); off hands those paths to the application.
    health_probes: bool = True
    lifespan: Literal["auto", "on", "off"] = "auto"

    #: Close a keep-alive connection idle this long between requests (seconds).
    timeout_keep_alive: float = 5.0
    #: A client must send a complete request head within this time (slowloris), else 408.
    timeout_request_head: float = 10.0
    #: A request body may pause at most this long between two pieces, else 408 ...
    timeout_body: float = 20.0
    #: ... and after the first ``timeout_body`` seconds must average this many bytes
    #: per second (Apache mod_reqtimeout's ``body=20,MinRate=500``; see body_deadline).
    body_min_rate: float = 500.0
    #: A peer that reads nothing for this long while we wait to write is dropped.
    timeout_send: float = 30.0
    #: After ``*.disconnect``, an application has this long to return before it is cancelled.
    app_close_timeout: float = 10.0

    #: The application must accept or close a WebSocket within this time.
    ws_connect_timeout: float = 10.0
    #: Wait this long for the client's Close frame after sending ours (RFC 6455 7.1.1).
    ws_close_timeout: float = 5.0
    #: Send a Ping this often; None disables keepalive pings.
    ws_ping_interval: float | None = 20.0
    #: Close with 1011 when the Pong does not arrive within this time.
    ws_ping_timeout: float | None = 20.0
    #: Largest incoming WebSocket message; bigger ones close the connection with 1009.
    ws_max_size: int = MIB
    #: Incoming WebSocket messages queued for an application that is not receiving,
    #: before the server stops reading from that socket.
    ws_max_queue: int = 32
    #: Accept permessage-deflate offers, without context takeover (protocols.websocket.deflate).
    ws_per_message_deflate: bool = True
    #: With permessage-deflate, messages shorter than this many bytes go uncompressed.
    ws_compress_min_size: int = 128

    #: Largest request head (request line plus headers); bigger ones get 431.
    max_header_size: int = 64 * KIB
    #: Request body bytes buffered for an application that is not receiving,
    #: before the server stops reading from that socket.
    max_body_buffer: int = 64 * KIB
    #: Transport write buffer that pauses senders (high-water mark).
    write_buffer_high: int = 64 * KIB
    #: Write buffer beyond which a connection is dropped (only writes that do not wait,
    #: such as Pongs to a client that never reads, can grow it this far).
    write_buffer_limit: int = 4 * MIB
    #: Open connections (HTTP and WebSocket) beyond this get 503 and are closed; None
    #: means no limit. Each is a file descriptor: see protocols.fd_limit.
    limit_concurrency: int | None = 10_000

    def __post_init__(self) -> None:
        if self.uds is not None and self.fd is not None:
            raise ValueError("give at most one of uds and fd")
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise ValueError("TLS needs both ssl_certfile and ssl_keyfile")
        if self.root_path and (not self.root_path.startswith("/") or self.root_path.endswith("/")):
            raise ValueError("root_path must start with '/' and not end with '/', e.g. /app")
        if self.ws_max_size <= 0 or self.max_header_size <= 0:
            raise ValueError("ws_max_size and max_header_size must be positive")
        if min(self.timeout_request_head, self.timeout_body, self.body_min_rate) <= 0:
            raise ValueError(
                "timeout_request_head, timeout_body and body_min_rate must be positive"
            )
        if self.limit_concurrency is not None and self.limit_concurrency <= 0:
            raise ValueError("limit_concurrency must be positive (or None for no limit)")

    @property
    def is_ssl(self) -> bool:
        return self.ssl_certfile is not None

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.ssl_certfile is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(
            self.ssl_certfile, self.ssl_keyfile, password=self.ssl_keyfile_password
        )
        context.set_alpn_protocols(["http/1.1"])
        return context
