"""Django database connection hygiene for code that runs outside a request.

Django closes stale connections at the start and end of every HTTP request (the
``request_started``/``request_finished`` signals). A consumer has no requests, so
code that touches the ORM from a consumer must do the same itself:
:func:`database_sync_to_async` closes unusable or expired connections
(``CONN_MAX_AGE``) before and after the wrapped call, in the thread that owns them.

Test clients must not let that happen to the *test* database connection: inside a
Django ``TestCase`` (or ``pytest.mark.django_db``) the test's connection holds an
open transaction, and closing it would break the test. :func:`context_keeping_connections`
gives a context in which connections inside a transaction are never closed; the
communicators in :mod:`gateway.testing` run applications under it. It is a context
variable, not a patched function, so concurrent tests and servers never see each
other's setting.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextvars import Context, ContextVar, copy_context
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import SyncToAsync, sync_to_async
from django import db
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created

__all__ = [
    "DatabaseSyncToAsync",
    "aclose_old_connections",
    "close_old_connections",
    "context_keeping_connections",
    "database_sync_to_async",
]

P = ParamSpec("P")
R = TypeVar("R")

_keeping_connections: ContextVar[bool] = ContextVar("gateway_keep_db_connections", default=False)


def close_old_connections() -> None:
    """Close this thread's unusable or expired connections.

    Under :func:`context_keeping_connections` (tests) a connection inside a
    transaction (``atomic``) is left alone: that is the test's connection. Every
    other open connection of the thread is closed, without the health check (a
    test database may refuse new queries), so no idle connection outlives a test
    and blocks dropping the test database.
    """
    if not _keeping_connections.get():
        db.close_old_connections()
        return
    for connection in db.connections.all(initialized_only=True):
        if connection.connection is not None and not connection.in_atomic_block:
            connection.close()


def context_keeping_connections() -> Context:
    """A copy of the current context in which no connection is closed.

    Run a task in it (``loop.create_task(coro, context=...)``) and that task, the
    tasks it starts and the threads ``sync_to_async`` runs for it keep their
    database connections open.
    """
    context = copy_context()
    context.run(_keeping_connections.set, True)
    return context


def _closing_connections(func: Callable[P, R]) -> Callable[P, R]:
    @wraps(func)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        close_old_connections()
        try:
            return func(*args, **kwargs)
        finally:
            close_old_connections()

    return call


class DatabaseSyncToAsync(SyncToAsync[P, R]):
    """``SyncToAsync`` that closes old database connections around the call.

    The connections closed are those of the thread the function runs in, which
    is the thread that used them. Usable as a decorator, also on methods::

        @database_sync_to_async
        def get_name(self) -> str:
            return User.objects.get(pk=self.scope["user"].pk).username
    """

    def __init__(
        self,
        func: Callable[P, R],
        thread_sensitive: bool = True,
        executor: ThreadPoolExecutor | None = None,
        context: Context | None = None,
    ) -> None:
        super().__init__(
            _closing_connections(func),
            thread_sensitive=thread_sensitive,
            executor=executor,
            context=context,
        )


#: The name Channels users know.
database_sync_to_async = DatabaseSyncToAsync


async def aclose_old_connections() -> None:
    """Close stale connections of the thread-sensitive thread (where Django's async ORM runs).

    One thread hop, and none while no database connection is open in the process
    (nothing could be stale; a socket that never touches the database pays nothing).
    Consumers call it once when a scope starts and once when it ends, not before
    every event as Channels 4.2+ does (DESIGN.md §5).
    """
    if _any_connection_open():
        await sync_to_async(close_old_connections)()


#: Every database wrapper that opened a connection in this process, in any thread.
_opened: weakref.WeakSet[BaseDatabaseWrapper] = weakref.WeakSet()
_opened_lock = threading.Lock()


def _remember_opened(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    with _opened_lock:
        _opened.add(connection)


def _any_connection_open() -> bool:
    """Whether some wrapper holds an open connection; forgets the closed ones.

    Read from the event loop thread while other threads may open or close theirs:
    a connection opened meanwhile is in use by its thread, not stale, and the next
    check sees it.
    """
    with _opened_lock:
        for wrapper in list(_opened):
            if wrapper.connection is not None:
                return True
            _opened.discard(wrapper)
    return False


connection_created.connect(_remember_opened, dispatch_uid="gateway.db.opened")
