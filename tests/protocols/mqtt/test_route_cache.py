"""protocols.mqtt.route_cache: the router's answers, remembered for the recent topics."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.routing.topic import RouteMatch, TopicRouter, topic
from gateway.types import Receive, Scope, Send
from protocols.mqtt.route_cache import RouteCache


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    pass


class CountingRouter(TopicRouter):
    """A real router that counts how often it was asked."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.asked: list[str] = []

    def resolve(self, topic_name: str) -> RouteMatch | None:
        self.asked.append(topic_name)
        return super().resolve(topic_name)


def make_router() -> CountingRouter:
    return CountingRouter([topic("devices/<device_id>/telemetry", app)])


def test_answers_are_the_routers_and_asked_once_per_topic() -> None:

    router = make_router()
    cache = RouteCache(router)
    match = cache.resolve("devices/d1/telemetry")
    assert match is not None
    assert match.kwargs == {"device_id": "d1"}
    assert cache.resolve("devices/d1/telemetry") is match
    assert cache.resolve("elsewhere") is None
    assert cache.resolve("elsewhere") is None  # an unroutable topic is remembered too
    assert router.asked == ["devices/d1/telemetry", "elsewhere"]


def test_the_least_recently_used_topic_is_forgotten_at_the_bound() -> None:

    router = make_router()
    cache = RouteCache(router, size=2)
    cache.resolve("devices/a/telemetry")
    cache.resolve("devices/b/telemetry")
    cache.resolve("devices/a/telemetry")  # a is now the most recently used
    cache.resolve("devices/c/telemetry")  # forgets b
    assert len(cache) == 2
    router.asked.clear()
    cache.resolve("devices/a/telemetry")
    cache.resolve("devices/b/telemetry")
    assert router.asked == ["devices/b/telemetry"]


def test_a_cache_must_hold_something() -> None:

    with pytest.raises(ValueError, match="at least 1"):
        RouteCache(make_router(), size=0)
