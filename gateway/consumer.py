"""Consumers: one instance per scope, a handler method per event type.

An interface server creates one application instance per scope (a WebSocket
connection, an HTTP request, an MQTT route key, a Telegram conversation) and feeds
it that scope's events in order. A consumer is such an instance::

    class ChattyBotConsumer(SyncConsumer):
        def telegram_message(self, message):
            self.send({"type": "telegram.message", "text": "You said: %s" % message["text"]})

    application = ChattyBotConsumer.as_asgi()

Each event is dispatched to the method named after its ``type`` with dots turned
into underscores (``telegram.message`` -> ``telegram_message``). When a channel
layer is configured the instance also gets ``channel_layer`` and a ``channel_name``
of its own, joins its ``groups`` when the first event arrives, and layer messages
sent to that channel or those groups are dispatched the same way, one at a time,
interleaved with the scope's events.

A consumer ends when a handler raises :class:`~gateway.exceptions.StopConsumer`,
or once its scope's terminal event (``<scope type>.disconnect``, e.g.
``websocket.disconnect``) has been handled: after it the scope has nothing left to
deliver (ASGI spec, "disconnect"). Any ``<protocol>.disconnect`` event that has no
handler ends the consumer cleanly too, so a consumer written for one event type
(the seed's ``telegram_message``) needs no boilerplate.

Differences from Channels 4.3, on purpose:

* ``as_asgi(**initkwargs)`` sets the keyword arguments as attributes of every
  instance (Channels 4.3.2 passes them to a constructor that takes none), and
  rejects names that are not already attributes of the class, as Django's
  ``View.as_view`` does.
* Sync handlers run, as in Channels, in Django's single thread-sensitive thread
  (where ``database_sync_to_async`` also runs), so the ordering and transaction
  semantics Channels users rely on hold. ``thread_sensitive = False`` on a
  consumer opts it into a pool of threads (``GATEWAY_SYNC_CONSUMER_THREADS``,
  default ``min(32, CPUs + 4)``) where one blocking consumer does not stall others.
* Async consumers do not hop to a thread to close old database connections
  before every event; that happens once when the scope starts and once when it
  ends (see :mod:`gateway.db`).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import CoroutineType
from typing import Any, ClassVar, Protocol

from asgiref.sync import async_to_sync, iscoroutinefunction
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from gateway import DEFAULT_CHANNEL_LAYER
from gateway.db import DatabaseSyncToAsync, aclose_old_connections
from gateway.exceptions import InvalidChannelLayerError, StopConsumer
from gateway.layers import get_channel_layer
from gateway.layers.base import BaseChannelLayer
from gateway.types import Message, Receive, Scope, Send

__all__ = ["AsyncConsumer", "SyncConsumer", "get_handler_name"]

logger = logging.getLogger("gateway.consumer")


def get_handler_name(message: Message) -> str:
    """The name of the method that handles ``message``: its type with ``.`` as ``_``.

    Raises ``ValueError`` for a message without a string ``type`` and for types
    that would name a private method (a leading ``_`` or ``.``).
    """
    message_type = message.get("type") if isinstance(message, dict) else None
    if type(message_type) is str:  # a str subclass takes the long way
        name = _handler_names.get(message_type)
        if name is not None:
            return name
    if not isinstance(message_type, str):
        raise ValueError(f"Incoming message has no 'type' attribute (a string): {message!r:.200}")
    handler_name = message_type.replace(".", "_")
    if handler_name.startswith("_"):
        raise ValueError(f"Malformed type in message (leading underscore): {message_type!r}")
    if len(_handler_names) < 4096 and type(message_type) is str:
        _handler_names[message_type] = handler_name
    return handler_name


#: Message type -> handler name, for the types seen (every message is dispatched by
#: it; a broadcast to thousands of members asks thousands of times). Bounded.
_handler_names: dict[str, str] = {}


def _is_disconnect(message_type: str) -> bool:
    """Whether ``message_type`` is a protocol's terminal event, ``<protocol>.disconnect``."""
    protocol, _, event = message_type.partition(".")
    return event == "disconnect" and bool(protocol)


class PolledSource(Protocol):
    """A source read without a Task: :meth:`take` what is queued, else :meth:`wait`:
    the future resolves with a message handed over, or with None when one is there
    to take (False, and nothing registered, if one is already). :meth:`unwait`
    after a wake-up that handed nothing over. ``InMemoryChannelLayer``'s channels
    are read so."""

    def take(self) -> Message | None: ...
    def wait(self, waiter: asyncio.Future[Message | None]) -> bool: ...
    def unwait(self, waiter: asyncio.Future[Message | None]) -> None: ...


async def dispatch_from(
    sources: Sequence[Callable[[], Awaitable[Message]]],
    dispatch: Callable[[Message], Awaitable[None]],
    polled: PolledSource | None = None,
) -> None:
    """Wait on every source at once and dispatch each message, one at a time.

    Channels' ``await_many_dispatch``, step for step, because the order it gives
    is what Channels code relies on: a consumer reads its scope's ``receive`` and
    its layer channel concurrently, and after each wake-up takes the sources in
    order (the scope first, ``polled`` last), dispatching each one that has a
    message *by the time its turn comes*. So a layer message that arrived while a
    scope event was being handled goes next, before scope events that queued
    behind it: messages are handled in the order they arrived, even across the
    sources. A source is read again only once its message has been handled. Runs
    until ``dispatch`` or a source raises; the pending reads are then cancelled
    and awaited, so no task outlives the call.

    With a single source (no channel layer) there is nothing to wait on
    concurrently, so it is read directly: no Task and no ``asyncio.wait`` per
    message, which is most of a message's cost in a fast echo consumer. Otherwise
    the loop waits on one future of its own, resolved by whichever source has
    something first; the :class:`PolledSource` (the in-memory layer's channel)
    resolves it directly, with the message in hand, so a group broadcast costs
    each member one wake-up of its task, not a receive Task, its completion and
    ``asyncio.wait``'s bookkeeping.
    """
    if polled is None and len(sources) == 1:
        source = sources[0]
        while True:
            await dispatch(await source())
    wake: asyncio.Future[Message | None] | None = None

    def woken(_: object) -> None:
        if wake is not None and not wake.done():
            wake.set_result(None)

    def read(source: Callable[[], Awaitable[Message]]) -> asyncio.Future[Message]:
        task = asyncio.ensure_future(source())
        task.add_done_callback(woken)
        return task

    loop = asyncio.get_running_loop()
    tasks = [read(source) for source in sources]
    handed: Message | None = None
    # Reads just started run at the loop's next turn: the first pass comes after
    # it, or the polled source, always ready at once, could overtake a scope event.
    rearmed = bool(tasks)
    try:
        while True:
            if rearmed:
                await asyncio.sleep(0)
                rearmed = False
            for index, task in enumerate(tasks):
                if task.done():
                    await dispatch(task.result())
                    tasks[index] = read(sources[index])
                    rearmed = True
            if polled is not None:
                message, handed = handed, None
                if message is None:
                    message = polled.take()
                if message is not None:
                    await dispatch(message)
            if rearmed:
                continue
            waiter = wake = loop.create_future()
            if polled is not None and not polled.wait(waiter):
                wake = None
                continue  # a message is queued already
            try:
                for task in tasks:
                    if task.done():
                        break  # finished while the pass dispatched: go round again
                else:
                    handed = await waiter
            finally:
                wake = None
                if polled is not None and handed is None:
                    polled.unwait(waiter)
    finally:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        for task in tasks:
            if not task.cancelled() and task.exception() is not None:
                logger.debug("A consumer source failed while stopping", exc_info=task.exception())


_sync_executor: ThreadPoolExecutor | None = None


def sync_executor() -> ThreadPoolExecutor:
    """The thread pool sync consumer handlers run in (created on first use).

    Sized by the ``GATEWAY_SYNC_CONSUMER_THREADS`` setting. Each consumer instance
    runs at most one handler at a time, so the pool's work queue never holds more
    than one entry per live sync consumer; when every thread is busy, further
    handlers wait their turn (the overflow policy).
    """
    global _sync_executor
    if _sync_executor is None:
        size = getattr(settings, "GATEWAY_SYNC_CONSUMER_THREADS", None)
        if size is None:
            size = min(32, (os.cpu_count() or 1) + 4)
        if not isinstance(size, int) or size < 1:
            raise ImproperlyConfigured(
                f"GATEWAY_SYNC_CONSUMER_THREADS must be a positive integer, not {size!r}"
            )
        _sync_executor = ThreadPoolExecutor(
            max_workers=size, thread_name_prefix="gateway-sync-consumer"
        )
    return _sync_executor


class ConsumerApplication(Protocol):
    """What ``as_asgi()`` returns: an ASGI application that remembers its consumer."""

    consumer_class: type[AsyncConsumer]
    consumer_initkwargs: dict[str, Any]
    #: The consumer class's name (and docstring, module...: ``functools.update_wrapper``).
    __name__: str

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...


class AsyncConsumer:
    """A consumer whose handlers are coroutines running on the event loop.

    Attributes an instance has while it runs: ``scope``; ``channel_layer`` (None
    when no layer is configured under ``channel_layer_alias``) and, with a layer,
    ``channel_name``; ``groups``, the groups it joins for its lifetime.
    """

    _sync: ClassVar[bool] = False

    #: The ``CHANNEL_LAYERS`` alias this consumer uses.
    channel_layer_alias: str = DEFAULT_CHANNEL_LAYER
    #: Groups joined when the consumer starts and left when it ends.
    groups: Sequence[str] | None = ()

    scope: Scope
    channel_layer: BaseChannelLayer | None
    channel_name: str
    #: Reads this instance's channel (set with ``channel_name``, as in Channels).
    channel_receive: Callable[[], Awaitable[Message]]
    #: The server's ``send`` callable, always async.
    _asgi_send: Send
    #: What :meth:`send` uses: ``_asgi_send`` here, a sync wrapper in SyncConsumer.
    base_send: Callable[[Message], Any]

    def __init__(self, **initkwargs: Any) -> None:
        for key, value in initkwargs.items():
            setattr(self, key, value)

    @classmethod
    def as_asgi(cls, **initkwargs: Any) -> ConsumerApplication:
        """An ASGI application making one instance of this consumer per scope.

        Every keyword argument becomes an attribute of each instance, so
        ``ChatConsumer.as_asgi(groups=["lobby"])`` joins ``lobby``. Only names that
        are already attributes of the class are accepted, so a misspelt name fails
        here, at routing time, not silently later. A class with an ``__init__`` of
        its own is called with the keywords, as Channels does (strawberry's
        ``GraphQLWSConsumer.as_asgi(schema=...)``): they must fit its signature.
        """
        if cls.__init__ is not AsyncConsumer.__init__:
            try:
                inspect.signature(cls).bind_partial(**initkwargs)
            except TypeError as error:
                raise TypeError(f"{cls.__name__}.as_asgi(): {error}") from None
        else:
            for key in initkwargs:
                if not hasattr(cls, key):
                    raise TypeError(
                        f"{cls.__name__}.as_asgi() received an invalid keyword {key!r}: "
                        "as_asgi only accepts arguments that are already attributes of the class"
                    )

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            await cls(**initkwargs)(scope, receive, send)

        app.consumer_class = cls  # type: ignore[attr-defined]
        app.consumer_initkwargs = initkwargs  # type: ignore[attr-defined]
        functools.update_wrapper(app, cls, updated=())
        application: ConsumerApplication = app  # type: ignore[assignment]
        return application

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        self._joined_groups: list[str] = []
        self._asgi_send = send
        self.base_send = async_to_sync(send) if self._sync else send
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        sources: list[Callable[[], Awaitable[Message]]] = [receive]
        polled: PolledSource | None = None
        if self.channel_layer is not None:
            self.channel_name = await self.channel_layer.new_channel()
            self.channel_receive = functools.partial(self.channel_layer.receive, self.channel_name)
            reader = getattr(self.channel_layer, "_local_reader", None)
            if reader is not None:
                polled = reader(self.channel_name)
            else:
                sources.append(self.channel_receive)
        groups = self._checked_groups(self.groups or ())
        if not self._sync:
            await aclose_old_connections()
        try:
            if groups:
                # Join just before the first event is handled (for WebSocket: before
                # connect(), as Channels does), so no group message can arrive before
                # it and find nothing accepted yet. That first event is the scope's:
                # the new channel is in no group yet, and nobody knows its name.
                first = await receive()
                await self._join_groups(groups)
                await self.dispatch(first)
            await dispatch_from(sources, self.dispatch, polled)
        except StopConsumer:
            pass
        finally:
            await self._leave_groups()
            if not self._sync:
                await aclose_old_connections()

    # Groups -----------------------------------------------------------------

    def _checked_groups(self, groups: Iterable[str]) -> list[str]:
        """``groups`` as a list, or a clear error now if they cannot be joined."""
        if isinstance(groups, str):
            raise TypeError(f"groups must be a list of group names, not the string {groups!r}")
        groups = list(groups)
        layer = self.channel_layer
        if groups and (layer is None or "groups" not in layer.extensions):
            raise InvalidChannelLayerError(
                f"{type(self).__name__} has groups {groups!r} but the channel layer "
                f"{self.channel_layer_alias!r} is not configured or does not support groups"
            )
        return groups

    async def join_groups(self, groups: Iterable[str]) -> None:
        """Add this consumer's channel to more ``groups``, left again when it ends.

        A gateway addition (docs/porting.md); the consumer itself joins
        :attr:`groups` through :meth:`_join_groups`, so a subclass that defines a
        ``join_groups`` of its own, as Channels code may, does not change that.
        """
        await self._join_groups(groups)

    async def _join_groups(self, groups: Iterable[str]) -> None:
        names = self._checked_groups(groups)
        layer = self.channel_layer
        if layer is None:  # then names is empty: _checked_groups refused any
            return
        for group in names:
            await layer.group_add(group, self.channel_name)
            self._joined_groups.append(group)

    async def _leave_groups(self) -> None:
        """Remove this consumer's channel from every group it joined. Safe to call twice."""
        while self._joined_groups and self.channel_layer is not None:
            group = self._joined_groups.pop()
            try:
                await self.channel_layer.group_discard(group, self.channel_name)
            except Exception:
                logger.exception("Could not remove %s from group %r", self.channel_name, group)

    # Dispatch ---------------------------------------------------------------

    async def dispatch(self, message: Message) -> None:
        """Run the handler for ``message``; stop after the scope's terminal event
        (``<scope type>.disconnect``)."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            if _is_disconnect(message["type"]):
                raise StopConsumer()
            raise ValueError(f"No handler for message type {message['type']}")
        if self._sync:
            await self._call_hook(handler, message)
        else:  # _call_hook's work without its argument packing: once per group member
            await self._awaitable(handler, handler(message))
        kind = message["type"]
        if kind.endswith(".disconnect") and kind == f"{self.scope.get('type')}.disconnect":
            raise StopConsumer()

    async def _call_hook(self, hook: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run a handler or user hook the way this kind of consumer runs them.

        Here: await the coroutine on the event loop. Generic consumers call their
        users' hooks (``connect``, ``receive`` ...) through this, which is what
        lets one async implementation serve both the async and the sync classes.
        """
        await self._awaitable(hook, hook(*args, **kwargs))

    def _awaitable(self, hook: Callable[..., Any], result: Any) -> Awaitable[Any]:
        """``result`` of calling ``hook``, if it can be awaited; else a clear error."""
        if type(result) is not CoroutineType and not inspect.isawaitable(result):
            raise TypeError(
                f"{type(self).__name__}.{getattr(hook, '__name__', hook)} must be a "
                "coroutine function (async def) in an async consumer; "
                "subclass the sync consumer for sync handlers"
            )
        return result

    async def send(self, message: Message) -> None:
        """Send ``message`` to the interface server (for this scope)."""
        await self.base_send(message)


class SyncConsumer(AsyncConsumer):
    """A consumer whose handlers are plain functions, run in a worker thread.

    Handlers may block and use the ORM directly: stale database connections are
    closed before and after each call, in the thread that ran it. ``self.send`` is
    synchronous. Handlers of one instance run one at a time and in order.

    As in Channels, every sync consumer's handlers run in Django's one
    thread-sensitive thread, the thread ``database_sync_to_async`` uses: work
    from different consumers and from async code's database calls runs in the
    order it was asked for, on one connection (inside a Django ``TestCase`` async
    test that is the test's own thread, which sees its uncommitted data). The
    price is that one slow handler delays every other. ``thread_sensitive =
    False`` (class attribute or ``as_asgi(thread_sensitive=False)``) opts a
    consumer into a pool of threads instead (see :func:`sync_executor`): its
    instances then run in parallel, each on its own database connection.
    """

    _sync: ClassVar[bool] = True

    #: False: run handlers on gateway's thread pool, not Django's one
    #: thread-sensitive thread (a gateway addition, see docs/porting.md).
    thread_sensitive: bool = True

    async def _call_hook(self, hook: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Await coroutine hooks on the loop; run sync ones in a worker thread."""
        if iscoroutinefunction(hook):
            await hook(*args, **kwargs)
            return
        runner: DatabaseSyncToAsync[..., Any] = DatabaseSyncToAsync(
            hook,
            thread_sensitive=self.thread_sensitive,
            executor=None if self.thread_sensitive else sync_executor(),
        )
        await runner(*args, **kwargs)

    def send(self, message: Message) -> None:  # type: ignore[override]
        """Send ``message`` to the interface server; call from a handler's thread."""
        self.base_send(message)
