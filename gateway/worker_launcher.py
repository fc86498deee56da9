"""``gateway worker CHANNEL...`` and the workers of ``gateway run`` (a protocols.launch.Launcher).

``gateway worker thumbnail.generate`` serves the named channels, like ``manage.py
runworker``. ``gateway run`` starts a worker on its own whenever the application
is a ``ProtocolTypeRouter`` whose ``"channel"`` route is a ``ChannelNameRouter``:
it listens on exactly the channel names that router maps.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from gateway import DEFAULT_CHANNEL_LAYER
from gateway.exceptions import InvalidChannelLayerError
from gateway.layers import get_channel_layer
from gateway.startup import Summary
from gateway.worker import Worker, routed_channel_names
from protocols.service import Service

HELP = "run background consumers on fixed channel names (the project's ChannelNameRouter)"


@dataclass(frozen=True)
class WorkerOptions:
    """The workers' options: the layer alias, and the channels (none: every routed one)."""

    layer: str = DEFAULT_CHANNEL_LAYER
    channels: tuple[str, ...] = ()


OPTIONS = WorkerOptions


class WorkerService(Service):
    """A :class:`~gateway.worker.Worker` as one service of a gateway process."""

    name = "worker"

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    async def start(self) -> None:
        await self.worker.start()

    async def stop(self, timeout: float) -> None:
        await self.worker.stop(timeout)

    def describe(self, summary: Summary) -> None:
        summary.add("Worker", f"channels {', '.join(self.worker.channels)}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--layer",
        default=WorkerOptions.layer,
        help="the CHANNEL_LAYERS alias workers receive from (default: %(default)s)",
    )
    if isinstance(parser, argparse.ArgumentParser):  # `gateway worker`, not `gateway run`
        parser.add_argument(
            "channels",
            nargs="+",
            metavar="CHANNEL",
            help="channel names to listen on, routed by the application's ChannelNameRouter",
        )


def wanted(application: Any, options: WorkerOptions) -> bool:
    return bool(routed_channel_names(application))


def build(
    application: Any, options: WorkerOptions, worker_class: type[Worker] = Worker
) -> WorkerService:
    """A ``worker_class`` for ``options.channels`` (none: every routed name) on ``options.layer``.

    The errors are ``manage.py runworker``'s, as Channels users know them.
    """
    channels = list(options.channels) or routed_channel_names(application)
    if not channels:
        raise ImproperlyConfigured("the application routes no channel names to run workers for")
    try:
        channel_layer = get_channel_layer(options.layer)
    except InvalidChannelLayerError as exc:
        raise ImproperlyConfigured(str(exc)) from exc
    if channel_layer is None:
        raise ImproperlyConfigured(
            f"No channel layer {options.layer!r} in CHANNEL_LAYERS: a worker receives "
            "through a channel layer; configure one"
        )
    try:
        return WorkerService(worker_class(application, channels, channel_layer))
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured(str(exc)) from exc
