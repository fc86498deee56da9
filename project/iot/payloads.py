"""What devices publish, validated: pure functions from payload bytes to values.

- telemetry (``devices/<id>/telemetry``): a UTF-8 JSON object of named numbers,
  ``{"temperature": 21.5, "humidity": 40}``; at most ``max_bytes`` bytes and
  ``max_metrics`` metrics; names of 1-64 letters, digits, ``_``, ``-``, ``.``;
  values finite numbers (``true``, ``"21"``, ``NaN``, ``1e999`` are refused);
- status (``devices/<id>/status``): ``online`` / ``offline`` (any case), or the
  JSON ``{"status": "online"}``;
- command acks (``devices/<id>/commands/ack``): ``{"id": "<uuid>", "ok": true,
  "result": ...}``, with an optional ``reason`` (or ``error``) string when not ok.

Anything else raises :class:`BadPayload`, whose ``reason`` is written for the
people who read it on the dashboard.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import dataclass
from typing import Any

#: Metric and command names.
NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}\Z")
#: How much of a refused payload is kept to show what was sent.
SAMPLE_CHARS = 200
#: The longest status payload: ``{"status": "offline"}`` with room for spaces.
MAX_STATUS_BYTES = 256
#: The longest reason kept from a device's failed ack.
MAX_REASON_CHARS = 200


class BadPayload(ValueError):
    """A payload refused, with the reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_metrics: int


@dataclass(frozen=True)
class Ack:
    command_id: uuid.UUID
    ok: bool
    result: Any
    reason: str


def sample(payload: bytes) -> str:
    """The start of ``payload`` as text, to show what a refused message looked like."""
    return payload[: SAMPLE_CHARS * 4].decode("utf-8", errors="replace")[:SAMPLE_CHARS]


def json_type(value: Any) -> str:
    """The JSON name of ``value``'s type, for reasons."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _refuse_constant(name: str) -> Any:
    raise BadPayload(f"{name} is not a number JSON allows")


def decode_json(payload: bytes, max_bytes: int) -> Any:
    """``payload`` as JSON, refusing oversized, non-UTF-8, invalid or too deep input."""
    if len(payload) > max_bytes:
        raise BadPayload(f"payload of {len(payload)} bytes exceeds the limit of {max_bytes}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise BadPayload("not UTF-8") from None
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except BadPayload:
        raise
    except ValueError as exc:
        raise BadPayload(f"not JSON ({exc})") from None
    except RecursionError:
        raise BadPayload("JSON nested too deeply") from None


def _metric(name: str, value: Any) -> float:
    if not NAME.match(name):
        raise BadPayload(f"metric name {name[:40]!r} is not 1-64 letters, digits, '_', '-' or '.'")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadPayload(f"metric {name!r} is not a number (got {json_type(value)})")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int too large for a float
        finite = False
    if not finite:
        raise BadPayload(f"metric {name!r} is not a finite number")
    return value


def parse_telemetry(payload: bytes, limits: Limits) -> dict[str, float]:
    """The metrics of a telemetry payload: ``{name: number}``."""
    content = decode_json(payload, limits.max_bytes)
    if not isinstance(content, dict):
        raise BadPayload(f"not a JSON object of metrics (got {json_type(content)})")
    if not content:
        raise BadPayload("no metrics")
    if len(content) > limits.max_metrics:
        raise BadPayload(f"{len(content)} metrics exceed the limit of {limits.max_metrics}")
    return {name: _metric(name, value) for name, value in content.items()}


def parse_status(payload: bytes) -> bool:
    """Whether a status payload says the device is online."""
    if len(payload) > MAX_STATUS_BYTES:
        raise BadPayload(f"status of {len(payload)} bytes exceeds the limit of {MAX_STATUS_BYTES}")
    status: Any = payload.decode("utf-8", errors="replace").strip()
    if status.startswith("{"):
        content = decode_json(payload, MAX_STATUS_BYTES)
        status = content.get("status") if isinstance(content, dict) else None
    if isinstance(status, str) and status.lower() in ("online", "offline"):
        return status.lower() == "online"
    raise BadPayload('status must be "online" or "offline", or {"status": "online"|"offline"}')


def parse_ack(payload: bytes, max_bytes: int) -> Ack:
    """A command acknowledgement: which command, whether it worked, what it returned."""
    content = decode_json(payload, max_bytes)
    if not isinstance(content, dict):
        raise BadPayload(f"an ack must be a JSON object (got {json_type(content)})")
    try:
        command_id = uuid.UUID(str(content.get("id")))
    except ValueError:
        raise BadPayload("ack 'id' is not a command id (a UUID)") from None
    ok = content.get("ok")
    if not isinstance(ok, bool):
        raise BadPayload(f"ack 'ok' must be true or false (got {json_type(ok)})")
    reason = content.get("reason", content.get("error", ""))
    if not isinstance(reason, str):
        raise BadPayload(f"ack 'reason' must be a string (got {json_type(reason)})")
    return Ack(command_id, ok, content.get("result"), reason[:MAX_REASON_CHARS])
