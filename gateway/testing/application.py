"""Drive one ASGI application instance from a test, without a server.

:class:`ApplicationCommunicator` runs the application as a task, feeds it input
messages and hands back what it sends. It waits on events, never polls, and the
application runs under :func:`gateway.db.context_keeping_connections`, so consumers that
close "old" database connections leave the test's connection (and its
transaction) alone: communicators work inside ``pytest.mark.django_db`` tests and
Django ``TestCase`` async tests alike.

Both queues are bounded (:attr:`ApplicationCommunicator._max_queue`): an
application that sends more than that without the test reading waits, as it
would against a slow client.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Self
from urllib.parse import unquote, urlparse

from gateway.db import context_keeping_connections
from gateway.types import ASGIApp, Message, Scope

__all__ = ["ApplicationCommunicator"]


def path_scope_keys(path: str) -> Scope:
    """The ``path``, ``raw_path``, ``query_string`` and ``root_path`` of a scope for ``path``.

    ``path`` is a request target as a test writes it, ``"/chat/?room=1"``.
    """
    parsed = urlparse(path)
    return {
        "path": unquote(parsed.path),
        "raw_path": parsed.path.encode("latin-1"),
        "query_string": parsed.query.encode("utf-8"),
        "root_path": "",
    }


class ApplicationCommunicator:
    """Runs ``application(scope, receive, send)`` and talks to it.

    Use it as an async context manager (or call :meth:`wait`/:meth:`stop`) so the
    application never outlives the test::

        async with ApplicationCommunicator(app, {"type": "channel"}) as communicator:
            await communicator.send_input({"type": "thumbnail.generate", "id": 1})
            assert await communicator.receive_output(timeout=1) == {...}

    Timeouts default to 1 second like Channels'; a timeout in
    :meth:`receive_output` or :meth:`wait` cancels the application.
    """

    #: Bound of the input and output queues; a full queue makes its writer wait.
    _max_queue = 10_000
    #: Seconds :meth:`stop` waits for a cancelled application to finish.
    _cancel_timeout = 5.0

    def __init__(self, application: ASGIApp, scope: Scope) -> None:
        self.application = application
        self.scope = scope
        self.input_queue: asyncio.Queue[Message] = asyncio.Queue(maxsize=self._max_queue)
        self.output_queue: asyncio.Queue[Message] = asyncio.Queue(maxsize=self._max_queue)
        self._peeked: Message | None = None
        self.future: asyncio.Task[None] = asyncio.get_running_loop().create_task(
            self._run(), context=context_keeping_connections()
        )

    async def _run(self) -> None:
        await self.application(self.scope, self.input_queue.get, self.output_queue.put)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop(exceptions=exc_type is None)

    async def send_input(self, message: Message) -> None:
        """Give ``message`` to the application's ``receive``."""
        if self.future.done():
            self.future.result()
            raise RuntimeError(f"The application has exited; it cannot receive {message!r:.200}")
        await self.input_queue.put(message)

    async def _next_output(self, timeout: float) -> Message | None:
        """The next message sent, or None after ``timeout`` seconds of silence.

        If the application exits first: its exception is raised, or, when it
        ended cleanly, a ``TimeoutError`` saying nothing more can come.
        """
        if self._peeked is not None:
            message, self._peeked = self._peeked, None
            return message
        getter = asyncio.ensure_future(self.output_queue.get())
        try:
            await asyncio.wait(
                [getter, self.future], timeout=timeout, return_when="FIRST_COMPLETED"
            )
        finally:
            if not getter.done():
                getter.cancel()
                await asyncio.wait([getter])
        if getter.done() and not getter.cancelled():
            return getter.result()
        if self.future.done():
            self.future.result()
            raise TimeoutError("The application exited without sending another message")
        return None

    async def receive_output(self, timeout: float = 1) -> Message:
        """The next message the application sends; on timeout it is cancelled."""
        message = await self._next_output(timeout)
        if message is None:
            await self.stop(exceptions=False)
            raise TimeoutError(f"No message from the application within {timeout} s")
        return message

    async def receive_nothing(self, timeout: float = 0.1) -> bool:
        """True if the application sends nothing for ``timeout`` seconds.

        Unlike :meth:`receive_output` a message that does arrive is kept for the
        next call, and the application is not cancelled.
        """
        try:
            message = await self._next_output(timeout)
        except TimeoutError:
            return True  # exited cleanly: it will never send anything
        if message is None:
            return True
        self._peeked = message
        return False

    async def wait(self, timeout: float = 1) -> None:
        """Wait for the application to exit; re-raise its error; cancel it on timeout."""
        done, _ = await asyncio.wait([self.future], timeout=timeout)
        if not done:
            await self.stop(exceptions=False)
            raise TimeoutError(f"The application did not exit within {timeout} s")
        self.future.result()

    async def stop(self, exceptions: bool = True) -> None:
        """Cancel the application if it still runs; re-raise its error if ``exceptions``."""
        if not self.future.done():
            self.future.cancel()
            await asyncio.wait([self.future], timeout=self._cancel_timeout)
            if not self.future.done():
                raise RuntimeError(
                    f"The application ignored cancellation for {self._cancel_timeout} s "
                    "(is it blocked in a thread?)"
                )
        if self.future.cancelled():
            return
        error = self.future.exception()
        if error is not None and exceptions:
            raise error

    def __repr__(self) -> str:
        state = "exited" if self.future.done() else "running"
        return f"<{type(self).__name__} {self.scope.get('type')!r} {state}>"
