"""Shared fixtures: service URLs and unique names so tests never collide."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest


@pytest.fixture
def unique() -> str:
    """A short name unique to this test, for Redis key prefixes, topics and groups."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def redis_url() -> str:
    return os.environ.get("GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def mosquitto_url() -> str:
    return os.environ.get("GATEWAY_TEST_MOSQUITTO_URL", "mqtt://127.0.0.1:1883")


@pytest.fixture(autouse=True)
def _close_sync_thread_db_connections(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a database test, close the connections asgiref's sync thread opened.

    Async tests run ``sync_to_async`` code (sessions, auth, sync consumers) in
    asgiref's single sync thread; its connections would otherwise stay open and
    stop pytest-django from dropping the test database.
    """
    yield
    if request.node.get_closest_marker("django_db") is not None:
        from asgiref.sync import SyncToAsync
        from django.db import connections

        SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=10)
