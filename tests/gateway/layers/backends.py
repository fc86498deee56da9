"""The channel layer backends the contract suite (test_contract.py) runs over.

Each backend is a factory: ``await factory(**config)`` returns a ready layer
built with the given Channels-style config (``expiry``, ``capacity``,
``channel_capacity``, ``group_expiry``, ...). Backends that need a service add
their entries here, with a ``marks`` tuple (e.g. ``pytest.mark.redis``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from gateway.layers.base import BaseChannelLayer

LayerFactory = Callable[..., Awaitable[BaseChannelLayer]]


@dataclass(frozen=True)
class Backend:
    id: str
    factory: LayerFactory
    marks: tuple[Any, ...] = field(default=())


async def memory_layer(**config: Any) -> BaseChannelLayer:
    from gateway.layers import InMemoryChannelLayer

    return InMemoryChannelLayer(**config)


def _redis_config() -> dict[str, Any]:
    """The test Redis, under a key prefix of the layer's own (flushed after each test)."""
    url = os.environ.get("GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    return {"hosts": [url], "prefix": f"t{uuid.uuid4().hex[:12]}"}


async def redis_layer(**config: Any) -> BaseChannelLayer:
    from gateway.layers.redis import RedisChannelLayer

    return RedisChannelLayer(**_redis_config(), **config)


async def redis_pubsub_layer(**config: Any) -> BaseChannelLayer:
    from gateway.layers.redis import RedisPubSubChannelLayer

    return RedisPubSubChannelLayer(**_redis_config(), **config)


BACKENDS: list[Backend] = [
    Backend("memory", memory_layer),
    Backend("redis", redis_layer, marks=(pytest.mark.redis,)),
    Backend("redis-pubsub", redis_pubsub_layer, marks=(pytest.mark.redis,)),
]
