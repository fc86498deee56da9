"""How the JSON consumers of every protocol turn content into text and back.

Channels' JSON consumers have ``decode_json``/``encode_json`` classmethods that a
subclass overrides to use another encoder (``DjangoJSONEncoder``, orjson); gateway's
WebSocket and MQTT JSON consumers share these two, so the hook is the same for both.
"""

from __future__ import annotations

import json
from typing import Any


class JsonCodec:
    """The JSON hooks of the JSON consumers; override them to customise."""

    @classmethod
    def decode_json(cls, data: str | bytes) -> Any:
        """The content of a text frame or a payload (bytes: UTF-8, as ``json.loads``)."""
        return json.loads(data)

    @classmethod
    def encode_json(cls, content: Any) -> str:
        return json.dumps(content)
