"""Each class users import or subclass has Channels' public names, and no others.

A Channels project, or a third-party library built on Channels, subclasses
gateway's consumers, middleware, layers and communicators after the rename. A
public name gateway adds can collide with one the subclass defines (a library's
``connected`` attribute did); a name gateway lacks is an ``AttributeError``.
So every public name of a gateway class — of the class, and of an instance once
it ran (``__init__`` and, for consumers, a whole connection) — is compared with
the class of the same name in Channels 4.3.2 / channels_redis 4.3.0.

The differences allowed live in ONE place: the table "Public names that differ"
in docs/porting.md, parsed here. A row documented for a class covers its
subclasses too (``groups`` added to ``AsyncConsumer`` is added to every
consumer). A row that no longer describes a real difference fails as well, so
the table cannot go stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

PORTING = Path(__file__).resolve().parents[1] / "docs" / "porting.md"
TABLE_TITLE = "### Public names that differ from Channels' classes"
ROW = re.compile(r"^\| `(gateway\.[\w.]+)` \| (added|missing) \| ([^|]+) \| [^|]+ \|$")

#: gateway class -> the Channels class(es) whose public names it must have.
#: channels_redis' pub/sub layer is a proxy forwarding to a per-loop layer, so
#: its surface is the union of both.
PAIRS: dict[str, tuple[str, ...]] = {
    "gateway.consumer.AsyncConsumer": ("channels.consumer.AsyncConsumer",),
    "gateway.consumer.SyncConsumer": ("channels.consumer.SyncConsumer",),
    **{
        f"gateway.generic.websocket.{name}": (f"channels.generic.websocket.{name}",)
        for name in (
            "WebsocketConsumer",
            "AsyncWebsocketConsumer",
            "JsonWebsocketConsumer",
            "AsyncJsonWebsocketConsumer",
        )
    },
    "gateway.generic.http.AsyncHttpConsumer": ("channels.generic.http.AsyncHttpConsumer",),
    **{
        f"gateway.routing.{name}": (f"channels.routing.{name}",)
        for name in ("ProtocolTypeRouter", "URLRouter", "ChannelNameRouter")
    },
    "gateway.middleware.BaseMiddleware": ("channels.middleware.BaseMiddleware",),
    "gateway.sessions.CookieMiddleware": ("channels.sessions.CookieMiddleware",),
    "gateway.sessions.SessionMiddleware": ("channels.sessions.SessionMiddleware",),
    "gateway.auth.AuthMiddleware": ("channels.auth.AuthMiddleware",),
    "gateway.security.websocket.OriginValidator": ("channels.security.websocket.OriginValidator",),
    "gateway.security.websocket.WebsocketDenier": ("channels.security.websocket.WebsocketDenier",),
    **{
        f"gateway.layers.{name}": (f"channels.layers.{name}",)
        for name in ("BaseChannelLayer", "InMemoryChannelLayer", "ChannelLayerManager")
    },
    "gateway.layers.redis.RedisChannelLayer": ("channels_redis.core.RedisChannelLayer",),
    "gateway.layers.redis.RedisPubSubChannelLayer": (
        "channels_redis.pubsub.RedisPubSubChannelLayer",
        "channels_redis.pubsub.RedisPubSubLoopLayer",
    ),
    **{
        f"gateway.testing.{name}": (f"channels.testing.{name}",)
        for name in (
            "ApplicationCommunicator",
            "WebsocketCommunicator",
            "HttpCommunicator",
            "ChannelsLiveServerTestCase",
        )
    },
    "gateway.worker.Worker": ("channels.worker.Worker",),
    "gateway.db.DatabaseSyncToAsync": ("channels.db.DatabaseSyncToAsync",),
    **{
        f"gateway.exceptions.{name}": (f"channels.exceptions.{name}",)
        for name in (
            "RequestAborted",
            "RequestTimeout",
            "InvalidChannelLayerError",
            "AcceptConnection",
            "DenyConnection",
            "ChannelFull",
            "MessageTooLarge",
            "StopConsumer",
        )
    },
}


def load(path: str) -> Any:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def public(names: Iterator[str] | set[str] | list[str]) -> set[str]:
    return {name for name in names if not name.startswith("_")}


def documented() -> dict[str, dict[str, set[str]]]:
    """The table in docs/porting.md: class -> {"added": names, "missing": names}."""
    text = PORTING.read_text()
    if TABLE_TITLE not in text:
        raise AssertionError(f"docs/porting.md has no section {TABLE_TITLE!r}")
    table: dict[str, dict[str, set[str]]] = {}
    for line in text.split(TABLE_TITLE, 1)[1].splitlines():
        if line.startswith("#"):
            break
        match = ROW.match(line.strip())
        if match:
            path, kind, names = match.groups()
            entry = table.setdefault(path, {"added": set(), "missing": set()})
            entry[kind] |= set(re.findall(r"`(\w+)`", names))
    return table


def allowed(gateway_class: type, kind: str, table: dict[str, dict[str, set[str]]]) -> set[str]:
    """What the table allows for ``gateway_class``: its own rows and its bases'."""
    names: set[str] = set()
    for path, entry in table.items():
        documented_class = load(path)
        if isinstance(documented_class, type) and issubclass(gateway_class, documented_class):
            names |= entry[kind]
    return names


# Instances ------------------------------------------------------------------------
# Public attributes set on instances count too: a consumer's are set while it
# runs, so each one is run through a connection and captured.


def consumer_probe(framework: str, path: str) -> Any:
    """A subclass of the consumer at ``path`` that records its running instance."""
    base = load(PAIRS[path][0] if framework == "channels" else path)
    seen: list[Any] = []
    name = base.__name__
    if "Http" in name:

        async def handle(self: Any, body: bytes) -> None:
            seen.append(self)
            await self.send_response(200, b"ok")

        probe = type(name, (base,), {"handle": handle})
    elif "Websocket" in name and "Denier" not in name:
        is_async = "Async" in name

        async def connect_async(self: Any) -> None:
            seen.append(self)
            await self.accept()

        def connect_sync(self: Any) -> None:
            seen.append(self)
            self.accept()

        probe = type(name, (base,), {"connect": connect_async if is_async else connect_sync})
    elif "Denier" in name:
        probe = type(name, (base,), {})
        original = base.websocket_connect

        async def websocket_connect(self: Any, message: Any) -> None:
            seen.append(self)
            await original(self, message)

        probe.websocket_connect = websocket_connect  # type: ignore[attr-defined]
    elif name == "SyncConsumer":

        def probe_event(self: Any, message: Any) -> None:
            seen.append(self)
            self.send({"type": "probe.done"})

        probe = type(name, (base,), {"probe_event": probe_event})
    else:

        async def async_probe_event(self: Any, message: Any) -> None:
            seen.append(self)
            await self.send({"type": "probe.done"})

        probe = type(name, (base,), {"probe_event": async_probe_event})
    probe.seen = seen  # type: ignore[attr-defined]
    return probe


async def run_consumer(framework: str, path: str) -> Any:
    """Run one connection of the consumer at ``path`` and return the instance."""
    testing = importlib.import_module(f"{framework}.testing")
    probe = consumer_probe(framework, path)
    if "Http" in path:
        http = testing.HttpCommunicator(probe.as_asgi(), "GET", "/")
        await http.get_response(timeout=5)
    elif "Websocket" in path:
        websocket = testing.WebsocketCommunicator(probe.as_asgi(), "/")
        await websocket.connect(timeout=5)
        await websocket.disconnect(timeout=5)
    else:
        communicator = testing.ApplicationCommunicator(probe.as_asgi(), {"type": "probe"})
        await communicator.send_input({"type": "probe.event"})
        await communicator.receive_output(timeout=5)
        communicator.future.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await communicator.future
    (instance,) = probe.seen
    return instance


async def app(scope: Any, receive: Any, send: Any) -> None:
    """An application for wrappers to wrap."""


async def build_instance(framework: str, path: str) -> Any:
    """An instance of the class at ``path`` (renamed to ``framework``), or None."""
    name = path.rsplit(".", 1)[1]
    if path.startswith(("gateway.consumer.", "gateway.generic.")) or name == "WebsocketDenier":
        return await run_consumer(framework, path)
    cls = load(PAIRS[path][0] if framework == "channels" else path)
    factories: dict[str, Callable[[], Any]] = {
        "ProtocolTypeRouter": lambda: cls({"websocket": app}),
        "URLRouter": lambda: cls([]),
        "ChannelNameRouter": lambda: cls({"probe": app}),
        "OriginValidator": lambda: cls(app, ["*"]),
        "Worker": lambda: cls(app, ["probe"], load(f"{framework}.layers.InMemoryChannelLayer")()),
        "ApplicationCommunicator": lambda: cls(app, {"type": "probe"}),
        "WebsocketCommunicator": lambda: cls(app, "/"),
        "HttpCommunicator": lambda: cls(app, "GET", "/"),
    }
    if name in factories:
        instance = factories[name]()
    elif name in ("BaseMiddleware", "CookieMiddleware", "SessionMiddleware", "AuthMiddleware"):
        instance = cls(app)
    elif "Layer" in name and "Manager" not in name:
        instance = cls()
    else:
        return None
    if "Communicator" in name:
        await instance.wait(timeout=5)  # touches Channels' lazy queues and future
    return instance


@pytest.mark.parametrize("path", sorted(PAIRS))
async def test_public_names_match_channels_or_are_documented(path: str) -> None:
    table = documented()
    gateway_class = load(path)
    gateway_names = public(dir(gateway_class))
    channels_names: set[str] = set()
    for channels_path in PAIRS[path]:
        channels_names |= public(dir(load(channels_path)))
    gateway_instance = await build_instance("gateway", path)
    if gateway_instance is not None:
        gateway_names |= public(vars(gateway_instance))
        channels_instance = await build_instance("channels", path)
        channels_names |= public(vars(channels_instance))

    added = allowed(gateway_class, "added", table)
    missing = allowed(gateway_class, "missing", table)
    extra = sorted(gateway_names - channels_names - added)
    assert not extra, (
        f"{path} has public names Channels' class lacks: {extra}; rename them with a "
        "leading underscore, or document them in docs/porting.md"
    )
    lacking = sorted(channels_names - gateway_names - missing)
    assert not lacking, (
        f"{path} lacks {lacking}, which Channels' class has: add them, or document why not"
    )
    own = table.get(path, {"added": set(), "missing": set()})
    assert own["added"] - (gateway_names - channels_names) == set(), "stale 'added' row"
    assert own["missing"] - (channels_names - gateway_names) == set(), "stale 'missing' row"


def test_every_documented_class_is_compared() -> None:
    assert set(documented()) <= set(PAIRS)
