"""A live-server test case: the project's own web server on a real socket.

``ChannelsLiveServerTestCase`` keeps the name Channels gives it, so ported tests
(typically browser tests with Selenium or Playwright) run unchanged::

    class ChatTests(ChannelsLiveServerTestCase):
        def test_page(self):
            urlopen(self.live_server_url + "/chat/")
            websockets.sync.client.connect(self.live_server_ws_url + "/ws/chat/lobby/")

It serves ``ASGI_APPLICATION`` with gateway's web server (the one ``gateway web``
runs, found through its launcher) on an ephemeral port of 127.0.0.1, for the test
class (started in ``setUpClass``, like Django's ``LiveServerTestCase``). Unlike
Channels, which starts Daphne in a child process, the server runs in a thread of
the test process: it shares the channel layer with the test (an in-memory layer
works) and starts in milliseconds. It is a ``TransactionTestCase``: the server's
threads use their own database connections, so they see what the test has
committed, and the tables are flushed after each test. An in-memory SQLite
database cannot be shared that way and is refused.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
from typing import Any, ClassVar

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.db.backends.sqlite3.creation import DatabaseCreation as SQLiteCreation
from django.test import TransactionTestCase
from django.test.utils import modify_settings

from gateway.cli import load_launcher
from gateway.routing import get_default_application
from gateway.types import ASGIApp

__all__ = ["ChannelsLiveServerTestCase"]


class ServiceThread:
    """Runs one :class:`protocols.service.Service` on an event loop of its own thread."""

    def __init__(self, service: Any) -> None:
        self.service = service
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._stop_timeout = 5.0
        self._thread = threading.Thread(target=self._main, name="gateway-live-server", daemon=True)

    def start(self, timeout: float) -> None:
        """Return once the service is serving; raise what stopped it from starting."""
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError(f"The live server did not start within {timeout} s")
        if self._error is not None:
            self._thread.join(timeout)
            raise self._error

    def stop(self, timeout: float) -> None:
        """Stop the service (in-flight work gets ``timeout`` seconds) and join the thread."""
        self._stop_timeout = timeout
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout + 1)
        if self._thread.is_alive():
            raise TimeoutError(f"The live server did not stop within {timeout} s")

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        try:
            await self.service.start()
        except BaseException as exc:
            self._error = exc
            return
        finally:
            self._started.set()
        try:
            await self._stopping.wait()
        finally:
            await self.service.stop(self._stop_timeout)


class ChannelsLiveServerTestCase(TransactionTestCase):
    """Runs the project's ASGI application on a live web server during each test."""

    #: The host name in :attr:`live_server_url` (added to ``ALLOWED_HOSTS``).
    host = "localhost"
    #: The address the server binds.
    _bind_address = "127.0.0.1"
    #: Serve ``STATIC_URL`` with Django's static files handler, as runserver does.
    serve_static = True
    #: What wraps the application when ``serve_static`` is set (as in Channels).
    static_wrapper: Any = ASGIStaticFilesHandler
    #: Seconds the server has to start, and to stop.
    _server_timeout = 10.0

    _server: ClassVar[ServiceThread]
    _port: ClassVar[int]

    @property
    def live_server_url(self) -> str:
        return f"http://{self.host}:{self._port}"

    @property
    def live_server_ws_url(self) -> str:
        return f"ws://{self.host}:{self._port}"

    @classmethod
    def _get_application(cls) -> ASGIApp:
        """The application to serve: ``ASGI_APPLICATION``, with static files if asked."""
        application: Any = get_default_application()
        if cls.serve_static:
            # Django's handler wraps any ASGI application, whatever its stubs say.
            application = cls.static_wrapper(application)
        served: ASGIApp = application
        return served

    @classmethod
    def setUpClass(cls) -> None:
        for connection in connections.all():
            name = connection.settings_dict["NAME"]
            if connection.vendor == "sqlite" and SQLiteCreation.is_in_memory_db(name):
                raise ImproperlyConfigured(
                    "ChannelsLiveServerTestCase cannot be used with an in-memory SQLite "
                    "database: the server's threads could not see the test's data"
                )
        super().setUpClass()
        live_server_settings = modify_settings(ALLOWED_HOSTS={"append": cls.host})
        live_server_settings.enable()
        cls.addClassCleanup(live_server_settings.disable)
        launcher = load_launcher("web")
        if launcher is None:
            raise ImproperlyConfigured("ChannelsLiveServerTestCase needs gateway's web server")
        parser = argparse.ArgumentParser()
        launcher.add_arguments(parser)
        args = parser.parse_args(["--host", cls._bind_address, "--port", "0"])
        cls._server = ServiceThread(launcher.build(cls._get_application(), args))
        cls._server.start(cls._server_timeout)
        cls.addClassCleanup(cls._server.stop, cls._server_timeout)
        cls._port = cls._server.service.port
