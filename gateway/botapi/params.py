"""Bot API request parameters from a query string and a form, JSON or multipart body.

The Bot API accepts all three encodings (https://core.telegram.org/bots/api#making-requests).
Form and multipart values are strings: objects arrive JSON-serialized, numbers as
digits, so :func:`coerce` types the fields this server reads. Uploaded files are
kept as :class:`Upload`.
"""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl


class BadParams(ValueError):
    """The body cannot be read as Bot API parameters (answered 400)."""


@dataclass(frozen=True)
class Upload:
    """A file sent as a multipart part."""

    filename: str
    content_type: str
    data: bytes


_INT_FIELDS = frozenset(
    {
        "chat_id",
        "message_id",
        "offset",
        "limit",
        "timeout",
        "message_thread_id",
        "cache_time",
        "max_connections",
        "reply_to_message_id",
        "user_id",
    }
)
_BOOL_FIELDS = frozenset({"show_alert", "drop_pending_updates", "disable_notification"})
_JSON_FIELDS = frozenset(
    {
        "reply_markup",
        "allowed_updates",
        "entities",
        "reply_parameters",
        "link_preview_options",
        "commands",
    }
)


def coerce(params: dict[str, Any]) -> dict[str, Any]:
    """Type the string values of form/multipart fields the way the Bot API reads them."""
    typed: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, str):
            if key in _INT_FIELDS:
                with contextlib.suppress(ValueError):  # e.g. chat_id "@channelusername"
                    value = int(value)
            elif key in _BOOL_FIELDS:
                value = value.lower() in {"true", "1"}
            elif key in _JSON_FIELDS:
                try:
                    value = json.loads(value)
                except ValueError:
                    raise BadParams(f"Bad Request: can't parse {key} JSON object") from None
        typed[key] = value
    return typed


def parse(query: str, content_type: str, body: bytes) -> dict[str, Any]:
    """All parameters of one request; the body wins over the query string."""
    params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    media_type = content_type.split(";", 1)[0].strip().lower()
    if not body.strip():
        return coerce(params)
    if media_type == "application/json":
        try:
            data = json.loads(body)
        except ValueError:
            raise BadParams("Bad Request: can't parse JSON body") from None
        if not isinstance(data, dict):
            raise BadParams("Bad Request: the JSON body must be an object")
        params.update(data)
    elif media_type == "application/x-www-form-urlencoded":
        params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    elif media_type == "multipart/form-data":
        params.update(_multipart(content_type, body))
    else:
        raise BadParams(f"Bad Request: unsupported content type {media_type or 'none'}")
    return coerce(params)


def _multipart(content_type: str, body: bytes) -> dict[str, Any]:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise BadParams("Bad Request: malformed multipart body")
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or not name:
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            fields[name] = Upload(filename, part.get_content_type(), data)
        else:
            fields[name] = data.decode(part.get_content_charset() or "utf-8", "replace")
    return fields
