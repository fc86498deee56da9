"""Shared fixtures: service URLs and unique names so tests never collide."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import pytest_django
from hypothesis import settings

#: Property tests are part of the fast suite: few examples, and the same ones every
#: run (derandomize), so a failure replays; HYPOTHESIS_PROFILE=thorough digs deeper.
settings.register_profile(
    "gateway", max_examples=100, derandomize=True, deadline=None, database=None
)
settings.register_profile("thorough", max_examples=5_000, deadline=None, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "gateway"))


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


@pytest.fixture(scope="session")
def django_db_setup(
    django_db_setup: None, django_db_blocker: pytest_django.DjangoDbBlocker
) -> Iterator[None]:
    """Let pytest-django drop the test database even if a worker thread kept a connection.

    Threads that ran ORM code (sync consumers on their pool, asgiref's sync
    thread) keep thread-local connections that the main thread cannot close;
    PostgreSQL then refuses to drop the database "being accessed by other
    users". Ending those sessions server-side just before the drop is exact.
    """
    yield
    from django.db import connection

    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
