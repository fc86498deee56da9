"""``manage.py runserver`` serving ``ASGI_APPLICATION`` through gateway's web server.

Django's own runserver speaks WSGI only; with ``gateway`` in INSTALLED_APPS (listed
before ``django.contrib.staticfiles``, whose runserver would otherwise win) this
command keeps Django's options, checks and autoreloader, and serves HTTP and
WebSocket. Static files are served in DEBUG (or with ``--insecure``) by
``django.contrib.staticfiles``' ASGI handler, as Django's runserver does.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from datetime import datetime
from typing import Any, cast

from django.apps import apps
from django.conf import settings
from django.core.management.base import CommandParser
from django.core.management.commands.runserver import Command as DjangoRunserver
from django.db import connections
from django.utils.version import get_docs_version

from gateway import metrics
from gateway.types import ASGIApp
from protocols.health import HealthService
from protocols.launch import web_server
from protocols.runner import ServiceGroup, ServiceStartError
from protocols.websocket.accesslog import access_logger
from protocols.websocket.launcher import WebOptions


class Command(DjangoRunserver):
    help = "Starts gateway's HTTP/WebSocket development server (ASGI_APPLICATION)."
    addr: str  # set by Django's handle() from the addrport argument
    port: str

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--nostatic",
            action="store_false",
            dest="use_static_handler",
            help="Do NOT serve static files at STATIC_URL.",
        )
        parser.add_argument(
            "--insecure",
            action="store_true",
            dest="insecure_serving",
            help="Serve static files even if DEBUG is False.",
        )

    def get_application(self, options: dict[str, Any]) -> ASGIApp:
        from gateway.routing import get_default_application

        application: ASGIApp = get_default_application()
        serve_static = options.get("use_static_handler", True) and (
            settings.DEBUG or options.get("insecure_serving", False)
        )
        if serve_static and apps.is_installed("django.contrib.staticfiles"):
            from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

            # Django types the wrapped application as its own ASGIHandler; any ASGI app works.
            application = cast(ASGIApp, ASGIStaticFilesHandler(cast(Any, application)))
        return application

    def on_bind(self, server_port: int) -> None:
        """Django's banner, naming the server that runs: Django 6 says "WSGI" in it, which
        this is not (Daphne's runserver says "ASGI/Daphne" the same way)."""
        if getattr(self, "_raw_ipv6", False):  # set by Django's handle() for [::1]:8000
            addr = f"[{self.addr}]"
        else:
            addr = "0.0.0.0" if self.addr == "0" else self.addr
        quit_command = "CTRL-BREAK" if sys.platform == "win32" else "CONTROL-C"
        self.stdout.write(
            f"{datetime.now().strftime('%B %d, %Y - %X')}\n"
            f"Django version {self.get_version()}, using settings {settings.SETTINGS_MODULE!r}\n"
            f"Starting ASGI/gateway development server at http://{addr}:{server_port}/\n"
            f"Quit the server with {quit_command}."
        )
        if os.environ.get("DJANGO_RUNSERVER_HIDE_WARNING") != "true":
            self.stdout.write(
                self.style.WARNING(
                    "WARNING: This is a development server. Do not use it in a production "
                    "setting. Use `gateway run` (or `gateway web`) instead.\n"
                    "For more information on production servers see: https://docs."
                    f"djangoproject.com/en/{get_docs_version()}/howto/deployment/"
                )
            )

    def inner_run(self, *args: Any, **options: Any) -> None:
        from django.utils import autoreload

        autoreload.raise_last_exception()
        if not options["skip_checks"]:
            self.stdout.write("Performing system checks...\n\n")
            self.check(display_num_errors=True)
        self.check_migrations()
        for conn in connections.all(initialized_only=True):
            conn.close()
        if not access_logger.handlers:  # show requests, as Django's runserver does
            access_logger.addHandler(logging.StreamHandler())
            access_logger.setLevel(logging.INFO)
        host = "0.0.0.0" if self.addr == "0" else self.addr
        server = web_server(
            self.get_application(options), WebOptions(host=host, port=int(self.port))
        )
        metrics.registry.identify("runserver")
        services = ServiceGroup([server, HealthService()])
        try:
            services.run(
                loop="asyncio", shutdown_timeout=5.0, started=lambda: self.on_bind(server.port)
            )
        except ServiceStartError as exc:  # Django's words for the bind errors it knows
            messages = {
                errno.EACCES: "You don't have permission to access that port.",
                errno.EADDRINUSE: "That port is already in use.",
                errno.EADDRNOTAVAIL: "That IP address can't be assigned to.",
            }
            cause = exc.__cause__
            number = cause.errno if isinstance(cause, OSError) else None
            self.stderr.write(f"Error: {messages.get(number or 0, exc)}")
            os._exit(1)  # sys.exit does not end the process from the reloader's thread
        except KeyboardInterrupt:
            sys.exit(0)
