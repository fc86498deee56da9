"""Shared fixtures: service URLs and unique names so tests never collide."""

from __future__ import annotations

import logging
import os
import threading
import traceback
import uuid
from collections.abc import Iterator
from typing import Any

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


#: Every database connection opened during the run: id -> (connection, its thread, where).
_opened: dict[int, tuple[Any, threading.Thread, str]] = {}


def _remember_where_opened(sender: Any, connection: Any, **kwargs: Any) -> None:
    if connection.vendor != "postgresql":  # psycopg's warning is the one this is about
        return
    raw = connection.connection
    _opened[id(raw)] = (raw, threading.current_thread(), "".join(traceback.format_stack(limit=30)))


@pytest.fixture(scope="session", autouse=True)
def _track_connections() -> None:
    from django.db.backends.signals import connection_created

    connection_created.connect(_remember_where_opened, weak=False)


@pytest.fixture(autouse=True)
def _close_connections_of_ended_threads() -> Iterator[None]:
    """Close, and report, database connections whose thread ended with them open.

    A thread's connections live in its thread-local storage: when the thread ends
    with one open, it is closed only when the garbage collector gets to it, and
    psycopg then warns (an error here) in whichever test happens to be running. Held
    here until their thread ends, they are closed after the test instead, and where
    they were opened is logged (on ``tests.connections``) for whoever hunts the cause.
    """
    yield
    for key, (raw, thread, where) in list(_opened.items()):
        if raw.closed:
            del _opened[key]
        elif not thread.is_alive():
            del _opened[key]
            logging.getLogger("tests.connections").warning(
                "closing a database connection left open by ended thread %s, opened at:\n%s",
                thread.name,
                where,
            )
            raw.close()


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
