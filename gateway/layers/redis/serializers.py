"""Message serialization: msgpack by default, pluggable, optionally encrypted.

Payloads may hold bytes (MQTT payloads), so the default format is msgpack with the
bin type, which round-trips ``bytes`` and ``str`` distinctly. With
``symmetric_encryption_keys`` every serialized message is encrypted with Fernet
(AES-128-CBC + HMAC-SHA256); the first key encrypts, all keys decrypt, so keys can be
rotated by prepending a new one. Keys are derived exactly as channels_redis derives
them (``urlsafe_b64encode(sha256(key))``), so the same settings interoperate.

Register another format with :func:`register_serializer`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from typing import Protocol

import msgpack
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from gateway.layers.base import Message


class MessageFormat(Protocol):
    """Turns a message dict into bytes and back."""

    def dumps(self, message: Message) -> bytes: ...

    def loads(self, data: bytes) -> Message: ...


class MsgpackFormat:
    def dumps(self, message: Message) -> bytes:
        data: bytes = msgpack.packb(message, use_bin_type=True)
        return data

    def loads(self, data: bytes) -> Message:
        message: Message = msgpack.unpackb(data, raw=False)
        return message


class JSONFormat:
    """JSON, for interoperability with non-Python readers; cannot carry bytes."""

    def dumps(self, message: Message) -> bytes:
        return json.dumps(message, separators=(",", ":")).encode()

    def loads(self, data: bytes) -> Message:
        message: Message = json.loads(data)
        return message


_FORMATS: dict[str, type[MessageFormat]] = {"msgpack": MsgpackFormat, "json": JSONFormat}


def register_serializer(name: str, format_class: type[MessageFormat]) -> None:
    """Make ``serializer_format=name`` available to the Redis layers."""
    _FORMATS[name] = format_class


class DecryptionError(ValueError):
    """A message could not be decrypted with any configured key."""


class Serializer:
    """A message format plus optional encryption: what the layers call."""

    def __init__(
        self,
        serializer_format: str = "msgpack",
        symmetric_encryption_keys: Sequence[str | bytes] | None = None,
    ) -> None:
        try:
            self.format = _FORMATS[serializer_format]()
        except KeyError:
            raise ValueError(
                f"Unknown serializer_format {serializer_format!r}; "
                f"known: {', '.join(sorted(_FORMATS))}"
            ) from None
        self.crypter = self._make_crypter(symmetric_encryption_keys)

    @staticmethod
    def _make_crypter(keys: Sequence[str | bytes] | None) -> MultiFernet | None:
        if not keys:
            return None
        if isinstance(keys, str | bytes):
            raise ValueError("symmetric_encryption_keys must be a list of keys, not one key")
        fernets = []
        for key in keys:
            raw = key.encode() if isinstance(key, str) else key
            fernets.append(Fernet(base64.urlsafe_b64encode(hashlib.sha256(raw).digest())))
        return MultiFernet(fernets)

    def dumps(self, message: Message) -> bytes:
        data = self.format.dumps(message)
        if self.crypter is not None:
            data = self.crypter.encrypt(data)
        return data

    def loads(self, data: bytes) -> Message:
        if self.crypter is not None:
            try:
                data = self.crypter.decrypt(data)
            except InvalidToken:
                raise DecryptionError(
                    "A channel layer message could not be decrypted with any of "
                    "symmetric_encryption_keys (wrong key or tampered data)"
                ) from None
        return self.format.loads(data)


def require_dict(message: object) -> None:
    """Channel layer messages are dicts (ASGI); refuse anything else up front."""
    if not isinstance(message, dict):
        raise TypeError(f"message must be a dict, not {type(message).__name__}")
