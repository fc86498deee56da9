"""The dashboard's sockets through ``project.asgi`` as deployed: origin, session, login.

Each socket gets the headers a browser sends: an Origin, and the session cookie of
a user logged in with Django's test client (committed, hence ``transaction=True``:
the session is read on another thread's connection).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings

from gateway.layers import get_channel_layer
from gateway.metrics import HEALTH_GROUP, health_event, registry
from gateway.testing import WebsocketCommunicator
from project.asgi import application
from project.dashboard.routing import websocket_routes
from project.dashboard.sockets import LOGIN_REQUIRED, STAFF_REQUIRED, DashboardSocket
from project.traffic import traffic
from tests.project.dashboard.conftest import logged_in

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 5.0
#: Every dashboard socket, a sample value in each path parameter.
SOCKETS = ["/" + re.sub(r"<[^>]+>", "sample", str(route.pattern)) for route in websocket_routes]
ORIGIN = (b"origin", b"http://127.0.0.1:8000")


async def session_of(user: Any) -> tuple[bytes, bytes]:
    """The cookie header of a session where ``user`` is logged in."""
    client = await sync_to_async(logged_in)(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    return (b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode())


async def opened(path: str, user: Any) -> WebsocketCommunicator:
    """A socket of ``user``'s, accepted."""
    socket = WebsocketCommunicator(application, path, headers=[ORIGIN, await session_of(user)])
    accepted, _ = await socket.connect(WAIT)
    assert accepted
    return socket


async def closed_with(path: str, *headers: tuple[bytes, bytes]) -> int:
    """Connect, expect an accept followed at once by a close; its code."""
    socket = WebsocketCommunicator(application, path, headers=[ORIGIN, *headers])
    accepted, _ = await socket.connect(WAIT)
    assert accepted
    close = await socket.receive_output(WAIT)
    assert close["type"] == "websocket.close"
    await socket.disconnect()
    return int(close["code"])


@pytest.mark.parametrize("path", SOCKETS)
async def test_every_socket_closes_at_once_without_a_login(path: str) -> None:
    assert {"/ws/health/", "/ws/traffic/"} <= set(SOCKETS)
    assert await closed_with(path) == LOGIN_REQUIRED


async def test_a_foreign_origin_is_refused_even_with_a_session(staff: Any) -> None:
    socket = WebsocketCommunicator(
        application,
        "/ws/health/",
        headers=[(b"origin", b"https://evil.example"), await session_of(staff)],
    )
    accepted, _ = await socket.connect(WAIT)
    assert not accepted


@pytest.mark.parametrize("path", ["/ws/telemetry/", "/ws/", "/nothing/here"])
async def test_a_socket_on_any_other_path_is_refused_at_the_handshake(
    path: str, staff: Any
) -> None:
    """Not routed into the router's ValueError (HTTP 500 and a traceback); the open
    feed of earlier versions, /ws/telemetry/, is one of them."""
    socket = WebsocketCommunicator(application, path, headers=[ORIGIN, await session_of(staff)])
    assert await socket.connect(WAIT) == (False, 1000)
    await socket.disconnect()


async def test_the_traffic_socket_is_for_staff_only(member: Any) -> None:
    assert await closed_with("/ws/traffic/", await session_of(member)) == STAFF_REQUIRED


async def test_health_sends_this_process_at_once_then_every_heartbeat(member: Any) -> None:
    socket = WebsocketCommunicator(
        application, "/ws/health/", headers=[ORIGIN, await session_of(member)]
    )
    accepted, _ = await socket.connect(WAIT)
    assert accepted
    first = await socket.receive_json_from(WAIT)
    assert (first["type"], first["state"]) == ("gateway.health", "running")
    assert first["process"]["id"] == registry.process.id
    other = {**registry.snapshot(), "id": "another", "kind": "mqtt"}
    layer = get_channel_layer()
    assert layer is not None
    await layer.group_send(HEALTH_GROUP, health_event(other, 2.0, "running"))
    forwarded = await socket.receive_json_from(WAIT)
    assert (forwarded["process"]["id"], forwarded["process"]["kind"]) == ("another", "mqtt")
    await socket.disconnect()


async def test_traffic_forwards_each_batch(staff: Any) -> None:
    socket = WebsocketCommunicator(
        application, "/ws/traffic/", headers=[ORIGIN, await session_of(staff)]
    )
    accepted, _ = await socket.connect(WAIT)
    assert accepted
    traffic.emit("mqtt", "in", "devices/d1/telemetry", "t=21.5", device="d1")
    await traffic.drain()
    batch = await socket.receive_json_from(WAIT)
    assert set(batch) == {"entries", "dropped"}
    # The tap reported this socket's own connect too, in the same batch.
    assert [(e["protocol"], e["summary"]) for e in batch["entries"]] == [
        ("websocket", "connect (alice)"),
        ("mqtt", "t=21.5"),
    ]
    await socket.disconnect()


def test_a_dashboard_socket_cannot_join_groups_before_the_login_check() -> None:
    with pytest.raises(TypeError, match="live_groups"):

        class Leaky(DashboardSocket):
            groups = ["everyone"]
