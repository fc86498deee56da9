"""A live-server test case: the project's own web server on a real socket.

``ChannelsLiveServerTestCase`` keeps the name Channels gives it, so ported tests
(typically browser tests with Selenium or Playwright) run unchanged::

    class ChatTests(ChannelsLiveServerTestCase):
        def test_page(self):
            urlopen(self.live_server_url + "/chat/")
            websockets.sync.client.connect(self.live_server_ws_url + "/ws/chat/lobby/")

It serves ``ASGI_APPLICATION`` with gateway's web server (built by the launch
layer, :func:`protocols.launch.web_server`, as ``gateway web`` builds it, and run
by :class:`protocols.runner.ServiceThread`) on an ephemeral port of 127.0.0.1, for the test
class (started in ``setUpClass``, like Django's ``LiveServerTestCase``). Unlike
Channels, which starts Daphne in a child process, the server runs in a thread of
the test process: it shares the channel layer with the test (an in-memory layer
works) and starts in milliseconds. It is a ``TransactionTestCase``: the server's
threads use their own database connections, so they see what the test has
committed, and the tables are flushed after each test. An in-memory SQLite
database cannot be shared that way and is refused.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.db.backends.sqlite3.creation import DatabaseCreation as SQLiteCreation
from django.test import TransactionTestCase
from django.test.utils import modify_settings

from gateway.routing import get_default_application
from gateway.types import ASGIApp
from protocols.launch import web_server
from protocols.runner import ServiceThread
from protocols.websocket.launcher import WebOptions

__all__ = ["ChannelsLiveServerTestCase"]


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
        server = web_server(cls._get_application(), WebOptions(host=cls._bind_address, port=0))
        cls._server = ServiceThread(server, shutdown_timeout=cls._server_timeout)
        cls._server.start(cls._server_timeout)
        cls.addClassCleanup(cls._server.stop)
        cls._port = server.port
