"""The two frameworks the differential tests run: Channels 4.3.2 and gateway.

A :class:`Framework` holds one framework's modules under Channels' module names,
so a scenario is written once — ``fw.websocket.AsyncWebsocketConsumer``,
``fw.testing.WebsocketCommunicator`` — and run on each. :func:`on_both` runs a
scenario on both, each with its own in-memory channel layer as the default, and
returns both results for the test to compare.

Channels and channels_redis are test dependencies (the ``test`` extra of
pyproject.toml), so the suite always has them.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar

from django.test import override_settings

T = TypeVar("T")


@dataclass(frozen=True)
class Framework:
    """One framework's public modules, by their Channels names."""

    name: str
    consumer: ModuleType
    websocket: ModuleType
    http: ModuleType
    routing: ModuleType
    layers: ModuleType
    testing: ModuleType
    middleware: ModuleType
    sessions: ModuleType
    auth: ModuleType
    security: ModuleType
    db: ModuleType
    exceptions: ModuleType

    @property
    def memory_layer(self) -> str:
        """The ``BACKEND`` path of the in-memory layer."""
        return f"{self.name}.layers.InMemoryChannelLayer"

    def __repr__(self) -> str:
        return self.name


def load(package: str) -> Framework:
    def module(name: str) -> ModuleType:
        return importlib.import_module(f"{package}.{name}")

    return Framework(
        name=package,
        consumer=module("consumer"),
        websocket=module("generic.websocket"),
        http=module("generic.http"),
        routing=module("routing"),
        layers=module("layers"),
        testing=module("testing"),
        middleware=module("middleware"),
        sessions=module("sessions"),
        auth=module("auth"),
        security=module("security.websocket"),
        db=module("db"),
        exceptions=module("exceptions"),
    )


CHANNELS = load("channels")
GATEWAY = load("gateway")


async def on(fw: Framework, scenario: Callable[[Framework], Awaitable[T]], **config: Any) -> T:
    """Run ``scenario(fw)`` with ``fw``'s in-memory layer (``config`` its CONFIG) as default."""
    layers = {"default": {"BACKEND": fw.memory_layer, "CONFIG": config}}
    with override_settings(CHANNEL_LAYERS=layers):
        return await scenario(fw)


async def on_both(scenario: Callable[[Framework], Awaitable[T]], **config: Any) -> tuple[T, T]:
    """``(result on Channels, result on gateway)``."""
    return await on(CHANNELS, scenario, **config), await on(GATEWAY, scenario, **config)


async def outcome(call: Awaitable[Any]) -> tuple[str, Any]:
    """``("ok", result)`` or ``(exception type name, message)``: comparable across frameworks."""
    try:
        return "ok", await call
    except Exception as error:
        return type(error).__name__, str(error)
