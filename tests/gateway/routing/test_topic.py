"""TopicRouter and topic(): declared filters, resolution, nesting, dispatch."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.mqtt.events import BrokerInfo, build_scope
from gateway.routing import ProtocolTypeRouter, TopicRouter, topic
from gateway.topics import InvalidTopic
from gateway.types import Receive, Scope, Send


def app(name: str) -> Any:
    async def application(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "test.called", "name": name, "route": scope["route"]})

    return application


class Middleware:
    """A stand-in for auth/session middleware: wraps an inner application."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.inner({**scope, "wrapped": True}, receive, send)


def make_router() -> TopicRouter:
    return TopicRouter(
        [
            topic("devices/<device_id>/telemetry", app("telemetry"), qos=1),
            topic("devices/+/status", app("status")),
            topic(
                "fleet/<fleet>/",
                Middleware(TopicRouter([topic("<device_id>/cmd", app("cmd"), qos=2)])),
            ),
            topic("devices/#", app("catchall")),
        ]
    )


def test_filters_are_exactly_what_the_routes_declare() -> None:
    assert make_router().filters == {
        "devices/+/telemetry": 1,
        "devices/+/status": 0,
        "fleet/+/+/cmd": 2,
        "devices/#": 0,
    }


def test_resolve_first_declared_route_wins() -> None:
    router = make_router()
    match = router.resolve("devices/d1/telemetry")
    assert match is not None
    assert (match.pattern.pattern, match.kwargs) == (
        "devices/<device_id>/telemetry",
        {"device_id": "d1"},
    )
    catchall = router.resolve("devices/d1/other")
    assert catchall is not None
    assert catchall.pattern.pattern == "devices/#"
    nested = router.resolve("fleet/f1/d2/cmd")
    assert nested is not None
    assert nested.kwargs == {"fleet": "f1", "device_id": "d2"}
    assert nested.key == ("fleet/<fleet>/<device_id>/cmd", (("device_id", "d2"), ("fleet", "f1")))
    assert router.resolve("elsewhere") is None


async def _call(application: Any, topic_name: str) -> dict[str, Any]:
    router = make_router()
    match = router.resolve(topic_name)
    assert match is not None
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        raise AssertionError("not used")

    broker: BrokerInfo = {"host": "h", "port": 1883, "tls": False}
    scope = build_scope(match, role="bridge", mqtt_version="5.0", broker=broker)
    await application(dict(scope), receive, send)
    return sent[0]


async def test_router_dispatches_to_the_resolved_route() -> None:
    router = make_router()
    called = await _call(router, "devices/d1/status")
    assert called["name"] == "status"


async def test_nested_router_behind_middleware_and_protocol_router() -> None:
    router = make_router()
    outer = ProtocolTypeRouter({"mqtt": router})
    called = await _call(outer, "fleet/f1/d2/cmd")
    assert called["name"] == "cmd"
    assert called["route"]["kwargs"] == {"fleet": "f1", "device_id": "d2"}


async def test_scope_without_route_is_an_error() -> None:
    async def receive() -> dict[str, Any]:
        return {}

    async def send(message: dict[str, Any]) -> None:
        pass

    with pytest.raises(ValueError, match="route"):
        await make_router()({"type": "mqtt"}, receive, send)
    with pytest.raises(ValueError, match="No route"):
        await make_router()({"type": "mqtt", "route": {"pattern": "x/y"}}, receive, send)


def test_bad_declarations_fail_at_routing_time() -> None:
    with pytest.raises(ValueError, match="qos"):
        topic("a/b", app("x"), qos=3)
    with pytest.raises(InvalidTopic):
        topic("a/b/", app("x"))
    with pytest.raises(TypeError):
        TopicRouter(["a/b"])  # type: ignore[list-item]
