"""Message serialization: msgpack by default, pluggable, optionally encrypted.

The public face is channels_redis 4.3's, so custom serializers written for it work
unchanged: :data:`registry` maps a ``serializer_format`` name to a
:class:`BaseMessageSerializer` subclass (``registry.register_serializer(name, cls)``,
``registry.get_serializer(name, **options)``, :class:`SerializerDoesNotExist` for an
unknown name); a subclass implements ``as_bytes`` and ``from_bytes``, and the base
class adds encryption on top of any format in ``serialize``/``deserialize``.

Payloads may hold bytes (MQTT payloads), so the default format is msgpack with the
bin type, which round-trips ``bytes`` and ``str`` distinctly. With
``symmetric_encryption_keys`` every serialized message is encrypted with Fernet
(AES-128-CBC + HMAC-SHA256); the first key encrypts, all keys decrypt, so keys can be
rotated by prepending a new one. Keys are derived as channels_redis derives them
(``urlsafe_b64encode(sha256(key))``), so the same settings interoperate.
"""

from __future__ import annotations

import abc
import base64
import hashlib
import json
import os
from collections.abc import Sequence
from typing import Any

import msgpack
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from gateway.types import Message


class SerializerDoesNotExist(KeyError):
    """No serializer is registered under the requested format name."""


class DecryptionError(ValueError):
    """A message could not be decrypted with any configured key."""


class BaseMessageSerializer(abc.ABC):
    """Turns a message into bytes and back; subclasses define the format.

    ``random_prefix_length`` random bytes are put before each serialized message
    (channels_redis uses them to keep equal messages distinct in its sorted sets;
    gateway's layers need none and pass 0). ``expiry`` (seconds) bounds how old an
    encrypted message may be when it is decrypted.
    """

    def __init__(
        self,
        symmetric_encryption_keys: Sequence[str | bytes] | None = None,
        random_prefix_length: int = 0,
        expiry: float | None = None,
    ) -> None:
        self.random_prefix_length = random_prefix_length
        self.expiry = expiry
        self.crypter = self._make_crypter(symmetric_encryption_keys)

    @staticmethod
    def _make_crypter(keys: Sequence[str | bytes] | None) -> MultiFernet | None:
        if not keys:
            return None
        if isinstance(keys, str | bytes):
            raise ValueError("symmetric_encryption_keys must be a list of possible keys")
        return MultiFernet([BaseMessageSerializer.make_fernet(key) for key in keys])

    @staticmethod
    def make_fernet(key: str | bytes) -> Fernet:
        """The Fernet instance for one configured key."""
        raw = key.encode() if isinstance(key, str) else key
        return Fernet(base64.urlsafe_b64encode(hashlib.sha256(raw).digest()))

    @abc.abstractmethod
    def as_bytes(self, message: Any, *args: Any, **kwargs: Any) -> bytes:
        """The message in this format."""

    @abc.abstractmethod
    def from_bytes(self, message: bytes, *args: Any, **kwargs: Any) -> Any:
        """The message read back from this format."""

    def serialize(self, message: Any) -> bytes:
        data = self.as_bytes(message)
        if self.crypter is not None:
            data = self.crypter.encrypt(data)
        if self.random_prefix_length > 0:
            data = os.urandom(self.random_prefix_length) + data
        return data

    def deserialize(self, message: bytes) -> Any:
        data = message[self.random_prefix_length :]
        if self.crypter is not None:
            ttl = None if self.expiry is None else int(self.expiry) + 10
            try:
                data = self.crypter.decrypt(data, ttl)
            except InvalidToken:
                raise DecryptionError(
                    "A channel layer message could not be decrypted with any of "
                    "symmetric_encryption_keys (wrong key, tampered or expired data)"
                ) from None
        return self.from_bytes(data)


class MsgPackSerializer(BaseMessageSerializer):
    def as_bytes(self, message: Any, *args: Any, **kwargs: Any) -> bytes:
        data: bytes = msgpack.packb(message, use_bin_type=True)
        return data

    def from_bytes(self, message: bytes, *args: Any, **kwargs: Any) -> Any:
        return msgpack.unpackb(message, raw=False)


class JSONSerializer(BaseMessageSerializer):
    """JSON (UTF-8), for non-Python readers; cannot carry bytes."""

    def as_bytes(self, message: Any, *args: Any, **kwargs: Any) -> bytes:
        return json.dumps(message, *args, **kwargs).encode()

    def from_bytes(self, message: bytes, *args: Any, **kwargs: Any) -> Any:
        return json.loads(message, *args, **kwargs)


class SerializersRegistry:
    """Serializer classes by format name, as ``django.core.serializers`` keeps them."""

    def __init__(self) -> None:
        self._registry: dict[str, type[Any]] = {}

    def register_serializer(self, format: str, serializer_class: type[Any]) -> None:
        """Make ``serializer_format=format`` build ``serializer_class``.

        Any class with ``serialize`` and ``deserialize`` methods will do; subclassing
        :class:`BaseMessageSerializer` gives encryption for free.
        """
        usable = isinstance(serializer_class, type) and (
            issubclass(serializer_class, BaseMessageSerializer)
            or (hasattr(serializer_class, "serialize") and hasattr(serializer_class, "deserialize"))
        )
        if not usable:
            raise TypeError(
                f"{serializer_class!r} is neither a BaseMessageSerializer subclass nor a "
                "class with serialize() and deserialize() methods"
            )
        self._registry[format] = serializer_class

    def get_serializer(self, format: str, *args: Any, **kwargs: Any) -> Any:
        """A new serializer for ``format``, built with the given options."""
        try:
            serializer_class = self._registry[format]
        except KeyError:
            raise SerializerDoesNotExist(format) from None
        return serializer_class(*args, **kwargs)


registry = SerializersRegistry()
registry.register_serializer("json", JSONSerializer)
registry.register_serializer("msgpack", MsgPackSerializer)


def require_dict(message: object) -> None:
    """Channel layer messages are dicts (ASGI); refuse anything else up front."""
    if not isinstance(message, dict):
        raise TypeError(f"message must be a dict, not {type(message).__name__}")


def load_message(serializer: Any, data: bytes) -> Message:
    """``serializer.deserialize(data)``, checked to be a message (a dict)."""
    message = serializer.deserialize(data)
    require_dict(message)
    message_dict: Message = message
    return message_dict
