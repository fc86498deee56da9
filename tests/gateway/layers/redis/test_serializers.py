"""gateway.layers.redis.serializers: formats, custom serializers, random prefixes, encryption."""

from __future__ import annotations

import json as json_module
from typing import Any

import pytest

from gateway.layers.redis import RedisChannelLayer
from gateway.layers.redis.serializers import (
    BaseMessageSerializer,
    DecryptionError,
    SerializerDoesNotExist,
    registry,
)


def test_msgpack_keeps_bytes_and_json_is_a_registered_format() -> None:
    message = {"type": "mqtt.message", "payload": b"\x00\xff", "topic": "a/b"}
    msgpack = registry.get_serializer("msgpack")
    assert msgpack.deserialize(msgpack.serialize(message)) == message
    json = registry.get_serializer("json")
    assert json.deserialize(json.serialize({"type": "x"})) == {"type": "x"}
    with pytest.raises(SerializerDoesNotExist):
        registry.get_serializer("yaml")
    with pytest.raises(SerializerDoesNotExist):
        RedisChannelLayer(serializer_format="yaml")


class ReversedJSON(BaseMessageSerializer):
    """A custom format written against channels_redis' serializer API."""

    def as_bytes(self, message: Any, *args: Any, **kwargs: Any) -> bytes:
        return json_module.dumps(message).encode()[::-1]

    def from_bytes(self, message: bytes, *args: Any, **kwargs: Any) -> Any:
        return json_module.loads(message[::-1])


def test_a_custom_format_registers_and_gets_encryption_on_top() -> None:
    registry.register_serializer("reversed-json", ReversedJSON)
    plain = registry.get_serializer("reversed-json")
    assert plain.serialize({"type": "x"}) == b'}"x" :"epyt"{'
    sealed = registry.get_serializer("reversed-json", symmetric_encryption_keys=["k"])
    data = sealed.serialize({"type": "x"})
    assert b"epyt" not in data
    assert sealed.deserialize(data) == {"type": "x"}
    layer = RedisChannelLayer(serializer_format="reversed-json")
    assert isinstance(layer._serializer, ReversedJSON)
    with pytest.raises(TypeError, match="serialize"):
        registry.register_serializer("broken", dict)


def test_random_prefix_is_stripped_again() -> None:
    prefixed = registry.get_serializer("msgpack", random_prefix_length=12)
    data = prefixed.serialize({"type": "x"})
    assert len(data) == len(registry.get_serializer("msgpack").serialize({"type": "x"})) + 12
    assert prefixed.deserialize(data) == {"type": "x"}


def test_encryption_rotates_keys_and_refuses_foreign_data() -> None:
    old = registry.get_serializer("msgpack", symmetric_encryption_keys=["old-key"])
    rotated = registry.get_serializer("msgpack", symmetric_encryption_keys=["new-key", "old-key"])
    data = old.serialize({"type": "secret", "payload": b"\x01"})
    assert b"secret" not in data
    assert rotated.deserialize(data) == {"type": "secret", "payload": b"\x01"}
    with pytest.raises(DecryptionError, match="decrypted"):
        registry.get_serializer("msgpack", symmetric_encryption_keys=["other"]).deserialize(data)
    with pytest.raises(ValueError, match="list"):
        registry.get_serializer("msgpack", symmetric_encryption_keys="one-key")
