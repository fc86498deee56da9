"""Application instances per scope: create, feed in order, time out, clean up.

Every interface server needs the same machinery between its wire and the ASGI
application: one application instance per scope (a WebSocket connection, an
MQTT route key such as one device, a Telegram conversation), its events fed to
it strictly in order through a bounded queue, an error boundary so one failing
instance never disturbs the others, an idle timeout and an upper bound on live
instances that both end an instance with its protocol's terminal event (never
silently), and a bounded graceful shutdown.

Overflow policy: :meth:`ApplicationInstance.put` *waits* while the instance's
queue is full, so a slow consumer slows down the producer feeding it (the
server then stops reading from that source: backpressure, not memory growth).
Servers that cannot wait use :meth:`ApplicationInstance.put_nowait`, which
raises :class:`asyncio.QueueFull` so the server applies its own stated policy;
:meth:`ApplicationInstance.wait_for_room` waits for room without queueing, and
:meth:`ApplicationInstance.drain` hands back what an ended instance never read
(so a server can deliver it to a fresh instance instead of losing it).

A message may carry a ``handled`` callback, called once the application has
handled it: when it asks for the next message (consumers handle one at a time) or
ends normally. A message the application was handling when it raised stays
unsettled in ``in_hand``, for its server to decide (the MQTT server acknowledges
a QoS 1 message only once it was handled).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

from gateway.failure_log import FailureLog
from gateway.types import ASGIApp, Message, Scope, Send
from protocols.background import BackgroundTasks

logger = logging.getLogger("gateway.server")
#: Instances failing the same way (a bug, an outage) log one traceback, then counts.
failures = FailureLog(logger)

Clock = Callable[[], float]
#: Called once the application has handled a message.
Handled = Callable[[], None]
#: A queued message and what to call once it was handled.
Delivery = tuple[Message, Handled | None]


class NoInstanceError(LookupError):
    """A key has no live instance, and no scope came to start one."""


class ApplicationInstance:
    """One running ASGI application instance and the queue that feeds it."""

    def __init__(
        self,
        application: ASGIApp,
        scope: Scope,
        send: Send,
        *,
        queue_size: int = 100,
        name: str = "application instance",
        on_exit: Callable[[ApplicationInstance], None] | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.scope = scope
        self.name = name
        self.clock = clock
        self.last_activity = clock()
        self.failed: BaseException | None = None
        #: The message being handled (the last one received) and its callback.
        self.in_hand: Delivery | None = None
        self._queue: asyncio.Queue[Delivery] = asyncio.Queue(maxsize=queue_size)
        self._on_exit = on_exit
        self._application = application
        self._send = send
        self._room = asyncio.Event()
        self.task: asyncio.Task[None] = asyncio.create_task(self._run(), name=name)

    @property
    def done(self) -> bool:
        return self.task.done()

    async def _receive(self) -> Message:
        self._settle()  # asking for the next message: the previous one was handled
        self.in_hand = await self._queue.get()
        self._room.set()
        return self.in_hand[0]

    def _settle(self) -> None:
        in_hand, self.in_hand = self.in_hand, None
        if in_hand is not None and in_hand[1] is not None:
            in_hand[1]()

    async def _run(self) -> None:
        try:
            await self._application(self.scope, self._receive, self._send)
            self._settle()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failed = exc
            failures.failed(f"{self.name} raised; its scope is closed", exc)
        finally:
            if self._on_exit is not None:
                self._on_exit(self)

    async def put(self, message: Message, handled: Handled | None = None) -> None:
        """Queue ``message`` for the instance, waiting while its queue is full."""
        self.last_activity = self.clock()
        await self._queue.put((message, handled))

    def put_nowait(self, message: Message, handled: Handled | None = None) -> None:
        """Queue ``message`` or raise :class:`asyncio.QueueFull`."""
        self._queue.put_nowait((message, handled))
        self.last_activity = self.clock()

    def put_soon(self, message: Message, tasks: BackgroundTasks) -> None:
        """Queue ``message`` now, or in one of ``tasks`` once there is room; never waits.

        For what a server itself tells an instance (an ack, a result, the link's
        state): the instance may be the very sender the server is serving, so the
        server must not wait on its queue. Dropped if the instance ends first.
        """
        try:
            self.put_nowait(message)
        except asyncio.QueueFull:
            tasks.spawn(self._put_when_room(message))

    async def _put_when_room(self, message: Message) -> None:
        await self.wait_for_room()
        if not self.done:
            self.put_nowait(message)

    async def wait_for_room(self) -> None:
        """Return once the queue has room or the instance has ended."""
        while self._queue.full() and not self.task.done():
            self._room.clear()
            room = asyncio.ensure_future(self._room.wait())
            try:
                await asyncio.wait({room, self.task}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                room.cancel()
                await asyncio.gather(room, return_exceptions=True)

    def drain(self) -> list[Delivery]:
        """Remove and return every message queued but not received (oldest first)."""
        left: list[Delivery] = []
        while not self._queue.empty():
            left.append(self._queue.get_nowait())
        return left

    async def close(self, terminal_message: Message | None, timeout: float) -> None:
        """Deliver ``terminal_message`` after what is queued, then wait for the instance.

        The whole close, including waiting for room in a full queue, takes at
        most ``timeout`` seconds; an instance still running then is cancelled.
        """
        try:
            async with asyncio.timeout(timeout):
                if not self.task.done() and terminal_message is not None:
                    await self._queue.put((terminal_message, None))
                await asyncio.shield(self.task)
        except TimeoutError:
            logger.warning("%s did not end within %.1fs of its scope closing", self.name, timeout)
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        except asyncio.CancelledError:
            self.task.cancel()
            raise


class InstanceManager:
    """Keyed application instances with an idle timeout and a bound on their number.

    ``dispatch(key, message, scope=...)`` routes a message to the instance for
    ``key``, creating it from ``scope`` (and ``send_factory``) when none lives. An
    instance idle for ``idle_timeout`` seconds, or the least recently used one
    when ``max_instances`` would be exceeded, receives ``terminal_message(reason)``
    and is given ``close_timeout`` seconds to finish before it is cancelled. The
    reason is ``"idle"``, ``"evicted"``, ``"closed"`` (:meth:`close`) or ``"shutdown"``.
    ``on_exit(key, instance)`` is called whenever an instance has ended, for any
    reason (its ``failed`` attribute holds the exception of one that raised).
    """

    def __init__(
        self,
        application: ASGIApp,
        *,
        send_factory: Callable[[Hashable, Scope], Send],
        terminal_message: Callable[[str], Message],
        idle_timeout: float | None = 300.0,
        max_instances: int = 10_000,
        queue_size: int = 100,
        close_timeout: float = 5.0,
        clock: Clock = time.monotonic,
        name: str = "instance",
        on_exit: Callable[[Hashable, ApplicationInstance], None] | None = None,
    ) -> None:
        if max_instances < 1:
            raise ValueError("max_instances must be at least 1")
        self.application = application
        self.send_factory = send_factory
        self.terminal_message = terminal_message
        self.on_exit = on_exit
        self.idle_timeout = idle_timeout
        self.max_instances = max_instances
        self.queue_size = queue_size
        self.close_timeout = close_timeout
        self.clock = clock
        self.name = name
        self.instances: OrderedDict[Hashable, ApplicationInstance] = OrderedDict()
        self._closing: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self.instances)

    def live(self, key: Hashable) -> ApplicationInstance | None:
        """The instance running for ``key``, if any (it does not count as a use)."""
        instance = self.instances.get(key)
        return None if instance is None or instance.done else instance

    def get(self, key: Hashable, scope: Scope | None = None) -> ApplicationInstance:
        """The live instance for ``key``, else a new one of ``scope`` (evicting the LRU one).

        ``scope`` is read only when no instance lives for ``key``; then it is
        required, and :class:`NoInstanceError` is raised without it.
        """
        instance = self.instances.get(key)
        if instance is not None and not instance.done:
            self.instances.move_to_end(key)
            return instance
        if scope is None:
            raise NoInstanceError(
                f"{self.name} {key!r} has no live instance and no scope came to start one"
            )
        while len(self.instances) >= self.max_instances:
            old_key = next(iter(self.instances))
            logger.info("%s %r evicted: more than %d live", self.name, old_key, self.max_instances)
            self._close_in_background(old_key, "evicted")
        instance = ApplicationInstance(
            self.application,
            scope,
            self.send_factory(key, scope),
            queue_size=self.queue_size,
            name=f"{self.name} {key!r}",
            on_exit=functools.partial(self._forget, key),
            clock=self.clock,
        )
        self.instances[key] = instance
        self._ensure_sweeper()
        return instance

    async def dispatch(
        self, key: Hashable, message: Message, *, scope: Scope | None = None
    ) -> ApplicationInstance:
        """Feed ``message`` to ``key``'s instance, waiting while its queue is full.

        ``scope`` starts the instance if none lives (see :meth:`get`).
        """
        instance = self.get(key, scope)
        await instance.put(message)
        return instance

    def _forget(self, key: Hashable, instance: ApplicationInstance) -> None:
        if self.instances.get(key) is instance:
            del self.instances[key]
        if self.on_exit is not None:
            self.on_exit(key, instance)

    def _close_in_background(self, key: Hashable, reason: str) -> None:
        instance = self.instances.pop(key)
        task = asyncio.create_task(
            instance.close(self.terminal_message(reason), self.close_timeout)
        )
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def expire_idle(self, now: float | None = None) -> list[Hashable]:
        """End every instance idle for longer than ``idle_timeout``; return their keys."""
        if self.idle_timeout is None:
            return []
        now = self.clock() if now is None else now
        expired = [
            key
            for key, instance in self.instances.items()
            if now - instance.last_activity >= self.idle_timeout
        ]
        for key in expired:
            logger.debug("%s %r idle for %.0fs: closing", self.name, key, self.idle_timeout)
            self._close_in_background(key, "idle")
        return expired

    def _ensure_sweeper(self) -> None:
        if self.idle_timeout is not None and (self._sweeper is None or self._sweeper.done()):
            interval = max(min(self.idle_timeout / 4, 1.0), 0.01)
            self._sweeper = asyncio.create_task(self._sweep(interval), name=f"{self.name} sweeper")

    async def _sweep(self, interval: float) -> None:
        while self.instances:
            await asyncio.sleep(interval)
            self.expire_idle()

    async def close(self, key: Hashable) -> None:
        """End ``key``'s instance now (terminal event, then bounded wait)."""
        instance = self.instances.pop(key, None)
        if instance is not None:
            await instance.close(self.terminal_message("closed"), self.close_timeout)

    async def shutdown(self, timeout: float | None = None) -> None:
        """End every instance, in parallel, each within ``timeout`` seconds."""
        timeout = self.close_timeout if timeout is None else timeout
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        instances = list(self.instances.values())
        self.instances.clear()
        await asyncio.gather(
            *(inst.close(self.terminal_message("shutdown"), timeout) for inst in instances),
            *self._closing,
            return_exceptions=True,
        )
