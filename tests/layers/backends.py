"""The channel layer backends the contract suite (test_contract.py) runs over.

Each backend is a factory: ``await factory(**config)`` returns a ready layer
built with the given Channels-style config (``expiry``, ``capacity``,
``channel_capacity``, ``group_expiry``, ...). Backends that need a service add
their entries here, with a ``marks`` tuple (e.g. ``pytest.mark.redis``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

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


BACKENDS: list[Backend] = [Backend("memory", memory_layer)]
