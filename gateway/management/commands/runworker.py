"""``manage.py runworker [--layer ALIAS] CHANNEL [CHANNEL ...]``, as in Channels.

Runs a :class:`~gateway.worker.Worker` for the named channels with the project's
``ASGI_APPLICATION`` (whose ``"channel"`` route, a ``ChannelNameRouter``, maps the
names to consumers) until SIGINT/SIGTERM. The worker is built by the launch layer
(:func:`protocols.launch.worker`), as ``gateway worker`` builds it; ``worker_class``
is Channels' hook for a subclass.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateway import DEFAULT_CHANNEL_LAYER
from gateway.routing import get_default_application
from gateway.worker import Worker
from gateway.worker_launcher import WorkerOptions
from protocols.launch import worker

logger = logging.getLogger("gateway.worker")


class Command(BaseCommand):
    help = "Runs background consumers listening on fixed channel names."
    leave_locale_alone = True
    worker_class = Worker

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--layer",
            default=DEFAULT_CHANNEL_LAYER,
            help="the CHANNEL_LAYERS alias to use (default: %(default)s)",
        )
        parser.add_argument("channels", nargs="+", metavar="CHANNEL", help="channels to listen on")

    def handle(self, *args: Any, **options: Any) -> None:
        application = get_default_application()
        chosen = WorkerOptions(layer=options["layer"], channels=tuple(options["channels"]))
        try:
            self.worker = worker(application, chosen, self.worker_class)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        logger.info("Running worker for channels %s", options["channels"])
        self.worker.run()
