"""One log line per HTTP response and per WebSocket connect/disconnect.

Logged on ``gateway.web.access`` at INFO; formatting costs nothing when that logger
is disabled. Query strings are left out: they often carry tokens.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

access_logger = logging.getLogger("gateway.web.access")


def _client(scope: Mapping[str, Any]) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "-"


def log_http(scope: Mapping[str, Any], status: int, size: int) -> None:
    if access_logger.isEnabledFor(logging.INFO):
        access_logger.info(
            '%s - "%s %s HTTP/%s" %d %d',
            _client(scope),
            scope["method"],
            scope["path"],
            scope["http_version"],
            status,
            size,
        )


def log_websocket(scope: Mapping[str, Any], event: str, detail: object) -> None:
    """``event`` is "accept", "reject" or "disconnect"; ``detail`` a status or close code."""
    if access_logger.isEnabledFor(logging.INFO):
        access_logger.info("%s - WebSocket %s %s %s", _client(scope), scope["path"], event, detail)
