"""Fixtures for the IoT app: users and devices, group listeners, a clean slate per test.

Every test gets the in-memory channel layer emptied afterwards and its event
loop's ``Ingest`` (writer, live updates, command sweep) closed, so no task,
thread or queued message outlives it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.auth.models import User

from gateway.db import DatabaseSyncToAsync
from gateway.layers import get_channel_layer
from gateway.layers.base import BaseChannelLayer
from gateway.routing import ProtocolTypeRouter, TopicRouter
from gateway.types import ASGIApp, Message
from project.iot.ingest import Ingest, close_current_ingest, current_ingest
from project.iot.models import Thing
from project.iot.routing import mqtt_routes
from project.iot.services import create_thing
from project.iot.state import LiveThing
from tests.protocols.mqtt.conftest import devices, serve  # noqa: F401 (fixtures)

#: Seconds any single expected event may take before a test fails.
WAIT = 10.0
#: A fixed moment for data made by hand.
AT = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
def layer() -> BaseChannelLayer:
    layer = get_channel_layer()
    assert layer is not None
    return layer


@pytest.fixture(autouse=True)
async def _clean_slate(layer: BaseChannelLayer) -> AsyncIterator[None]:
    yield
    await close_current_ingest()
    await layer.flush()


@pytest.fixture
def application() -> ASGIApp:
    """The project's MQTT routing, as project.asgi mounts it."""
    return ProtocolTypeRouter({"mqtt": TopicRouter(mqtt_routes)})


@pytest.fixture
async def ingest() -> Ingest:
    """The test loop's ingest (created now, so settings overrides made before apply)."""
    return current_ingest()


class Listener:
    """A channel that joined groups, read one event type at a time.

    ``next("iot.readings")`` returns the next event of that type; events of other
    types that arrive first are kept for the calls that ask for them.
    """

    def __init__(self, layer: BaseChannelLayer, channel: str) -> None:
        self.layer = layer
        self.channel = channel
        self.groups: list[str] = []
        self._held: list[Message] = []

    async def join(self, *groups: str) -> Listener:
        for group in groups:
            await self.layer.group_add(group, self.channel)
            self.groups.append(group)
        return self

    async def next(self, event_type: str | None = None, timeout: float = WAIT) -> Message:
        for index, event in enumerate(self._held):
            if event_type is None or event["type"] == event_type:
                return self._held.pop(index)
        async with asyncio.timeout(timeout):
            while True:
                event = await self.layer.receive(self.channel)
                if event_type is None or event["type"] == event_type:
                    return event
                self._held.append(event)

    async def until(self, event_type: str, done: Callable[[Message], bool]) -> Message:
        """The first ``event_type`` event for which ``done(event)`` holds (skipping others)."""
        while not done(event := await self.next(event_type)):
            pass
        return event

    async def nothing_more(self, event_type: str) -> bool:
        """Whether no ``event_type`` event is held or queued right now (never waits:
        the in-memory layer hands a queued message over without suspending)."""
        try:
            async with asyncio.timeout(0):
                unexpected = await self.next(event_type)
        except TimeoutError:
            return True
        raise AssertionError(f"unexpected {unexpected!r}")


@pytest.fixture
async def listen(layer: BaseChannelLayer) -> AsyncIterator[Callable[..., Any]]:
    """``await listen("iot.fleet", ...)``: a Listener that joined those groups."""
    made: list[Listener] = []

    async def make(*groups: str) -> Listener:
        listener = Listener(layer, await layer.new_channel())
        made.append(listener)
        return await listener.join(*groups)

    yield make
    for listener in made:
        for group in listener.groups:
            await layer.group_discard(group, listener.channel)


@pytest.fixture
def owner(db: None, unique: str) -> User:
    return User.objects.create_user(f"owner-{unique}", password="pw")


@pytest.fixture
def make_thing(owner: User, unique: str) -> Callable[..., tuple[Thing, str]]:
    """``make_thing(name="d1", **fields)``: a device (unique id) and its MQTT secret."""

    def make(name: str = "d1", **fields: Any) -> tuple[Thing, str]:
        thing, secret = create_thing(
            fields.pop("owner", owner),
            f"{name}-{unique}",
            name.title(),
            commands=fields.pop("commands", ()),
        )
        if fields:
            Thing.objects.filter(pk=thing.pk).update(**fields)
            thing.refresh_from_db()
        return thing, secret

    return make


@pytest.fixture
def thing(make_thing: Callable[..., tuple[Thing, str]]) -> Thing:
    return make_thing()[0]


async def in_thread(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run sync ORM code from an async test (a worker thread; its connection is closed)."""
    return await DatabaseSyncToAsync(func, thread_sensitive=False)(*args, **kwargs)


def live_thing(device_id: str = "d1") -> LiveThing:
    """A live device copy made by hand, for tests without a database."""
    return LiveThing(
        pk=1,
        device_id=device_id,
        name="D1",
        owner_id=7,
        online=True,
        last_seen=AT,
        presence_changed=None,
        last_values={},
        last_reading_at=None,
        bad_payloads=0,
    )
