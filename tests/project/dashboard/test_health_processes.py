"""One health dashboard sees every process: heartbeats of two processes over Redis.

This test process runs a heartbeat and the dashboard's health socket; a real
``gateway worker`` in a child process runs its own heartbeat. Both use the Redis
layer under a key prefix private to the test. The dashboard sees the child start
(its first heartbeat goes out at once) and stop (its last word on SIGTERM).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings

from gateway.layers import get_channel_layer
from gateway.metrics import registry
from gateway.testing import WebsocketCommunicator
from project.asgi import application
from protocols.health import HealthService
from tests.example.consumers import LOG_CHANNEL
from tests.project.dashboard.conftest import logged_in
from tests.project.processes import GatewayProcess

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]

WAIT = 15.0


@pytest.fixture
async def redis_layer(settings: Any, redis_url: str, unique: str) -> AsyncIterator[None]:
    """This process on the Redis layer, under the test's own prefix (flushed after)."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "gateway.layers.redis.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_url], "prefix": unique},
        }
    }
    yield
    layer = get_channel_layer()
    assert layer is not None
    await layer.flush()
    await layer.close()


async def health_socket(user: Any) -> WebsocketCommunicator:
    client = await sync_to_async(logged_in)(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    socket = WebsocketCommunicator(
        application,
        "/ws/health/",
        headers=[(b"origin", b"http://127.0.0.1:8000"), (b"cookie", cookie.encode())],
    )
    accepted, _ = await socket.connect(WAIT)
    assert accepted
    return socket


async def next_heartbeat(
    socket: WebsocketCommunicator, wanted: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The next message ``wanted`` accepts (heartbeats of other processes pass by)."""
    while True:
        message: dict[str, Any] = await socket.receive_json_from(WAIT)
        if wanted(message):
            return message


@pytest.mark.usefixtures("redis_layer")
async def test_a_dashboard_sees_this_process_and_a_worker_process(
    member: Any, redis_url: str, unique: str
) -> None:
    dashboard = await health_socket(member)
    ours = registry.process.id
    first = await dashboard.receive_json_from(WAIT)
    assert first["process"]["id"] == ours  # sent directly, before any heartbeat

    heartbeat = HealthService()
    await heartbeat.start()
    child = await GatewayProcess.start(
        dict(
            os.environ,
            DJANGO_SETTINGS_MODULE="tests.example.settings_redis",
            GATEWAY_TEST_REDIS_URL=redis_url,
            GATEWAY_TEST_REDIS_PREFIX=unique,
            PYTHONUNBUFFERED="1",
        ),
        "worker",
        LOG_CHANNEL,
    )
    try:
        mine = await next_heartbeat(dashboard, lambda m: m["process"]["id"] == ours)
        theirs = await next_heartbeat(dashboard, lambda m: m["process"]["kind"] == "worker")
        assert theirs["process"]["pid"] == child.process.pid != mine["process"]["pid"]
        assert theirs["state"] == "running"
        assert theirs["process"]["servers"] == {"worker": {"instances": 0, "link_up": None}}
        assert "default" in theirs["process"]["layers"]

        assert await child.stop() == 0
        gone = await next_heartbeat(dashboard, lambda m: m["process"]["kind"] == "worker")
        assert (gone["process"]["id"], gone["state"]) == (theirs["process"]["id"], "stopped")
    finally:
        await child.kill()
        await heartbeat.stop(5)
        await dashboard.disconnect()
    assert "Traceback" not in child.text, child.text
