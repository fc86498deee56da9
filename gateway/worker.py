"""Background workers: consumers listening on fixed channel names.

A project routes fixed channel names to consumers::

    application = ProtocolTypeRouter({
        "channel": ChannelNameRouter({"thumbnail.generate": GenerateConsumer.as_asgi()}),
    })

and ``manage.py runworker thumbnail.generate`` (or ``gateway worker
thumbnail.generate``) runs a :class:`Worker` for it: every message any process
sends to ``"thumbnail.generate"`` through the channel layer reaches one
application instance with the scope ``{"type": "channel", "channel":
"thumbnail.generate"}``, in the order the layer delivered them, as in Channels.

Unlike Channels 4.3, a worker listening on several channels keeps serving all of
them whatever happens on one:

* an application instance that raises is logged with its traceback and replaced
  by a fresh one, which takes the channel's next message (messages queued for
  the failed instance are kept for the new one; the message it failed on is
  gone, as the layer's at-most-once promise allows);
* a message without a ``type`` is logged and dropped;
* a layer error in ``receive`` (Redis restarting) is logged and retried with
  backoff.

Overflow policy: each channel's instance is fed through a queue of at most
``queue_size`` messages. While it is full the worker stops receiving from that
channel, so a slow consumer leaves messages in the layer, where the channel's
capacity and expiry apply (senders then get ``ChannelFull``), rather than in
this process's memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping

from gateway import metrics
from gateway.backoff import Backoff
from gateway.layers.base import BaseChannelLayer
from gateway.layers.receiving import receive_retrying
from gateway.metrics import ProtocolCounters, ServerReading
from gateway.stopping import stop_on_signals
from gateway.types import ASGIApp, Message

logger = logging.getLogger("gateway.worker")

#: Backoff between retries after a layer error or an instance that read nothing.
MIN_RETRY_DELAY = 0.05
MAX_RETRY_DELAY = 5.0


def routed_channel_names(application: object) -> list[str]:
    """The names a ``ProtocolTypeRouter``'s ``"channel"`` ``ChannelNameRouter`` maps.

    Empty when the application routes no channel names, or routes them in a way
    that cannot be inspected (any other ASGI application).
    """
    mapping = getattr(application, "application_mapping", None)
    if not isinstance(mapping, Mapping):
        return []
    names = getattr(mapping.get("channel"), "application_mapping", None)
    if not isinstance(names, Mapping):
        return []
    return sorted(names)


class Worker:
    """Serve ``channels`` (fixed channel names) from ``channel_layer`` with ``application``.

    ``await worker.start()`` starts listening and returns; ``await
    worker.stop(timeout)`` stops receiving, lets the instances finish the messages
    already taken from the layer for up to ``timeout`` seconds, then cancels them.
    ``worker.run()`` does both around a wait for SIGINT/SIGTERM, as ``runworker``
    does. ``worker.restarts[channel]`` counts the instances replaced after an error.
    """

    def __init__(
        self,
        application: ASGIApp,
        channels: Iterable[str],
        channel_layer: BaseChannelLayer | None,
        *,
        queue_size: int = 100,
    ) -> None:
        if channel_layer is None:
            raise ValueError("A Worker needs a channel layer; CHANNEL_LAYERS configures none")
        self.channels = list(dict.fromkeys(channels))
        if not self.channels:
            raise ValueError("A Worker needs at least one channel name to listen on")
        for channel in self.channels:
            channel_layer.require_valid_channel_name(channel)
        routed = routed_channel_names(application)
        unrouted = [channel for channel in self.channels if routed and channel not in routed]
        if unrouted:
            raise ValueError(
                f"The application's ChannelNameRouter does not route {', '.join(unrouted)} "
                f"(it routes: {', '.join(routed)})"
            )
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.application = application
        self.channel_layer = channel_layer
        self.restarts: Counter[str] = Counter()
        self._queue_size = queue_size
        self._feeds: list[_ChannelFeed] = []
        self._stop_requested: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unregister: Callable[[], None] | None = None

    async def start(self) -> None:
        """Start listening on every channel; return once the listeners run."""
        if self._feeds:
            raise RuntimeError("This Worker is already started")
        self._loop = asyncio.get_running_loop()
        self._feeds = [_ChannelFeed(self, channel, self._queue_size) for channel in self.channels]
        self._unregister = metrics.registry.register("worker", self.reading)
        logger.info("worker listening on %s", ", ".join(self.channels))

    def reading(self) -> ServerReading:
        """Messages taken from the channels (scope type ``channel``), running instances."""
        feeds = self._feeds
        taken = ProtocolCounters(messages_in=sum(feed.read for feed in feeds))
        return ServerReading({"channel": taken}, sum(feed.running for feed in feeds))

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop receiving; give queued messages ``timeout`` seconds; cancel the rest."""
        feeds, self._feeds = self._feeds, []
        for feed in feeds:
            await feed.stop_listening()
        try:
            async with asyncio.timeout(timeout):
                await asyncio.gather(*(feed.drained() for feed in feeds))
        except TimeoutError:
            unfinished = [feed.channel for feed in feeds if not feed.idle]
            logger.warning(
                "worker: %s still busy after %.1fs; cancelling", ", ".join(unfinished), timeout
            )
        for feed in feeds:
            await feed.stop_instances()
        if self._unregister is not None:
            self._unregister()
        if feeds:
            logger.info("worker stopped listening on %s", ", ".join(self.channels))

    def request_stop(self) -> None:
        """Ask a worker running :meth:`arun` (possibly in another thread) to stop."""
        if self._loop is None or self._stop_requested is None:
            raise RuntimeError("This Worker is not running")
        self._loop.call_soon_threadsafe(self._stop_requested.set)

    async def arun(self, shutdown_timeout: float = 10.0) -> None:
        """Serve until SIGINT/SIGTERM (in the main thread) or :meth:`request_stop`."""
        self._stop_requested = asyncio.Event()
        with stop_on_signals(self._stop_requested):
            try:
                await self.start()
                await self._stop_requested.wait()
            finally:
                await self.stop(shutdown_timeout)

    def run(self) -> None:
        """Serve in a new event loop until SIGINT/SIGTERM (what ``runworker`` calls)."""
        asyncio.run(self.arun())


class _ChannelFeed:
    """One channel: the listener taking messages from the layer, and its instance."""

    def __init__(self, worker: Worker, channel: str, queue_size: int) -> None:
        self.worker = worker
        self.channel = channel
        self.scope = {"type": "channel", "channel": channel}
        self.queue: asyncio.Queue[Message] = asyncio.Queue()
        # Free places in ``queue``. The listener takes one *before* receiving, so a
        # message taken from the layer is always queued at once and stopping the
        # listener never drops one it already holds.
        self.places = asyncio.Semaphore(queue_size)
        # A message taken from the queue to start an instance, not yet read by one.
        self.held: Message | None = None
        self.read = 0
        #: Whether an application instance runs for the channel now.
        self.running = False
        self.idle = True
        self._idle_changed = asyncio.Event()
        self.listener = asyncio.create_task(self._listen(), name=f"worker listener {channel}")
        self.supervisor = asyncio.create_task(self._supervise(), name=f"worker {channel}")

    # Layer -> queue ------------------------------------------------------------------

    async def _listen(self) -> None:
        layer = self.worker.channel_layer
        while True:
            await self.places.acquire()
            message = await receive_retrying(
                layer, self.channel, logger, MIN_RETRY_DELAY, MAX_RETRY_DELAY, logging.ERROR
            )
            if not isinstance(message.get("type"), str):
                logger.error(
                    "worker: message without a 'type' on channel %r dropped (keys: %s)",
                    self.channel,
                    ", ".join(sorted(map(str, message))),
                )
                self.places.release()
                continue
            self._set_idle(False)
            self.queue.put_nowait(message)

    # Queue -> application instance ---------------------------------------------------

    async def _take(self) -> Message:
        if self.queue.empty():
            self._set_idle(True)
        message = await self.queue.get()
        self.places.release()
        self._set_idle(False)
        return message

    async def _receive(self) -> Message:
        if self.held is not None:
            message, self.held = self.held, None
        else:
            message = await self._take()
        self.read += 1
        return message

    async def _send(self, message: Message) -> None:
        raise RuntimeError(
            f"A worker's channel scope ({self.channel!r}) has no client to send "
            f"{message.get('type')!r} to; send through self.channel_layer instead"
        )

    async def _supervise(self) -> None:
        """Run one instance at a time; replace it when it ends, with backoff if it read nothing."""
        backoff = Backoff(MIN_RETRY_DELAY, MAX_RETRY_DELAY)
        while True:
            if self.held is None:
                self.held = await self._take()  # an instance starts for a message
            read_before = self.read
            self.running = True
            try:
                await self.worker.application(dict(self.scope), self._receive, self._send)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.worker.restarts[self.channel] += 1
                logger.exception(
                    "worker: the application for channel %r raised; starting a new instance "
                    "for the channel's next message (other channels are unaffected)",
                    self.channel,
                )
            else:
                logger.debug("worker: the application for channel %r ended", self.channel)
            finally:
                self.running = False
            if self.read == read_before:
                await backoff.wait()
            else:
                backoff.succeeded()

    # Shutdown -----------------------------------------------------------------------------

    def _set_idle(self, idle: bool) -> None:
        if idle != self.idle:
            self.idle = idle
            self._idle_changed.set()
            self._idle_changed = asyncio.Event()

    async def stop_listening(self) -> None:
        self.listener.cancel()
        await asyncio.gather(self.listener, return_exceptions=True)

    async def drained(self) -> None:
        """Wait until every message taken from the layer has been read and handled."""
        while not (self.idle and self.queue.empty() and self.held is None):
            if self.supervisor.done():
                return
            await self._idle_changed.wait()

    async def stop_instances(self) -> None:
        self.supervisor.cancel()
        await asyncio.gather(self.supervisor, return_exceptions=True)
