"""``manage.py runworker [--layer ALIAS] CHANNEL [CHANNEL ...]``, as in Channels.

Runs a :class:`~gateway.worker.Worker` for the named channels with the project's
``ASGI_APPLICATION`` (whose ``"channel"`` route, a ``ChannelNameRouter``, maps the
names to consumers) until SIGINT/SIGTERM.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateway import DEFAULT_CHANNEL_LAYER
from gateway.exceptions import InvalidChannelLayerError
from gateway.layers import get_channel_layer
from gateway.routing import get_default_application
from gateway.worker import Worker

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
        alias = options["layer"]
        try:
            channel_layer = get_channel_layer(alias)
        except InvalidChannelLayerError as exc:
            raise CommandError(str(exc)) from exc
        if channel_layer is None:
            raise CommandError(
                f"No channel layer {alias!r} in CHANNEL_LAYERS: a worker receives "
                "through a channel layer; configure one"
            )
        try:
            self.worker = self.worker_class(
                application=get_default_application(),
                channels=options["channels"],
                channel_layer=channel_layer,
            )
        except (TypeError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        logger.info("Running worker for channels %s", options["channels"])
        self.worker.run()
