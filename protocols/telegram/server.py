"""The Telegram interface server: Bot API updates in, ASGI scopes and events out.

One :class:`BotRunner` per bot token owns that bot's Bot API client (flood control
and retries, :mod:`protocols.telegram.client`), its conversations (one application
instance each, on :class:`protocols.instances.InstanceManager`), and its transport:
a long-polling loop or the webhook route of :mod:`protocols.telegram.webhook`.
:class:`TelegramServer` runs several bots in one process and listens on the fixed
channel ``telegram.send`` so any process can send to any chat (docs/specs/telegram.md).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from telegram.error import TelegramError

from gateway import metrics
from gateway.backoff import Backoff
from gateway.layers import get_channel_layer
from gateway.layers.receiving import receive_retrying
from gateway.metrics import ProtocolCounters, ServerReading
from gateway.startup import Summary
from gateway.telegram.events import (
    ApiCall,
    BotIdentity,
    ConversationKey,
    Transport,
    build_scope,
    conversation_of,
    disconnect_event,
    event_to_call,
    result_event,
    update_to_event,
)
from gateway.types import ASGIApp, Message, Receive, Scope, Send
from protocols.background import BackgroundTasks
from protocols.instances import InstanceManager
from protocols.service import Service
from protocols.telegram.client import (
    DEFAULT_API_URL,
    ApiClient,
    BotApiError,
    BotConnection,
    as_api_error,
)
from protocols.telegram.flood import FloodControl, FloodLimits

logger = logging.getLogger("gateway.telegram")

SEND_CHANNEL = "telegram.send"


@dataclass(frozen=True)
class BotConfig:
    """One bot: its token, the Bot API it talks to and, for webhooks, its public URL."""

    token: str
    api_url: str = DEFAULT_API_URL
    #: The public URL Telegram posts updates to (webhook transport only).
    webhook_url: str | None = None
    #: ``X-Telegram-Bot-Api-Secret-Token``; generated at start when None.
    webhook_secret: str | None = None

    def __repr__(self) -> str:  # never show the token
        return f"BotConfig(bot_id={self.token.split(':', 1)[0]}, api_url={self.api_url!r})"


@dataclass(frozen=True)
class ServerOptions:
    transport: Transport = "polling"
    poll_timeout: float = 25.0
    allowed_updates: Sequence[str] | None = None
    idle_timeout: float | None = 300.0
    max_instances: int = 10_000
    queue_size: int = 100
    close_timeout: float = 5.0
    flood_limits: FloodLimits = field(default_factory=FloodLimits)
    max_attempts: int = 5
    retry_backoff: float = 0.5
    max_backoff: float = 10.0
    #: Retry failures after which a call may have been performed (a timeout, a lost
    #: connection, a 5xx), which can send a message twice; False: at most once, unless
    #: an event says ``"retry": true`` (spec §5). 429s are retried either way.
    retry_ambiguous: bool = True
    #: Backoff after a failed ``getUpdates`` (network error, 409), doubling to ``max_backoff``.
    poll_backoff: float = 1.0
    #: HTTP connections per bot, and Bot API calls in flight at once (more wait their turn).
    connections: int = 8
    #: Listen on ``telegram.send`` on this channel layer alias (None: don't).
    channel_layer: str | None = "default"
    #: Messages from ``telegram.send`` being sent at once (backpressure beyond that).
    send_concurrency: int = 100
    #: The command menu (``setMyCommands``) set at start: ``(command, description)`` pairs.
    commands: Sequence[tuple[str, str]] = ()


class BotRunner:
    """One bot: its client, its conversations and (when polling) its poller."""

    def __init__(self, application: ASGIApp, config: BotConfig, options: ServerOptions) -> None:
        self.application = application
        self.config = config
        self.options = options
        self.connection = BotConnection(config.token, config.api_url, options.connections)
        self.bot = self.connection.bot
        self.client = ApiClient(
            self.bot,
            FloodControl(options.flood_limits),
            max_attempts=options.max_attempts,
            backoff=options.retry_backoff,
            max_backoff=options.max_backoff,
            retry_ambiguous=options.retry_ambiguous,
        )
        self.secret = config.webhook_secret or secrets.token_urlsafe(32)
        self.identity = BotIdentity(0, "")
        self.manager = InstanceManager(
            self._restarting(application),
            send_factory=self._send_for,
            terminal_message=lambda reason: dict(disconnect_event(reason)),
            idle_timeout=options.idle_timeout,
            max_instances=options.max_instances,
            queue_size=options.queue_size,
            close_timeout=options.close_timeout,
            name="telegram conversation",
        )
        self._poller: asyncio.Task[None] | None = None
        self._background = BackgroundTasks(logger, "telegram")
        #: Updates taken in, and Bot API calls made for the application, since start.
        self.updates = 0
        self.calls = 0
        #: Why the last ``getUpdates`` failed; None once one succeeds (``/readyz``).
        self.poll_error: str | None = None

    @property
    def name(self) -> str:
        return f"@{self.identity.username}" if self.identity.username else "bot"

    async def start(self) -> None:
        """``getMe``, then start polling or set the webhook, and set the command menu;
        raises if the API refuses."""
        try:
            me = await self._get_me()
            self.identity = BotIdentity(int(me["id"]), str(me.get("username") or me["id"]))
            if self.options.transport == "webhook":
                await self.client.call("setWebhook", self._webhook_params())
            else:
                await self.client.call("deleteWebhook", {})
            if self.options.commands:
                menu = [{"command": c, "description": d} for c, d in self.options.commands]
                await self.client.call("setMyCommands", {"commands": menu})
        except BaseException:
            await self.connection.close()
            raise
        if self.options.transport == "polling":
            self._poller = asyncio.create_task(self._poll(), name=f"{self.name} poller")
        logger.info("%s serving by %s", self.name, self.options.transport)

    def _webhook_params(self) -> dict[str, Any]:
        if not self.config.webhook_url:
            raise ValueError(f"{self.name}: webhook transport needs a webhook URL")
        params: dict[str, Any] = {"url": self.config.webhook_url, "secret_token": self.secret}
        if self.options.allowed_updates is not None:
            params["allowed_updates"] = list(self.options.allowed_updates)
        return params

    async def _get_me(self) -> dict[str, Any]:
        """``getMe`` (retried on network errors); a refused token is a configuration error."""
        try:
            me: dict[str, Any] = await self.client.call("getMe", {})
        except BotApiError as error:
            bot_id = self.config.token.split(":", 1)[0]
            if error.error_code in (401, 404):
                raise ImproperlyConfigured(
                    f"TELEGRAM_BOT_TOKEN: the Bot API refused bot {bot_id} ({error.description})"
                ) from None
            raise RuntimeError(f"bot {bot_id}: getMe failed: {error}") from None
        return me

    async def stop(self, timeout: float) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        await self.manager.shutdown(timeout)
        await self._background.cancel()
        await self.connection.close()

    def _restarting(self, application: ASGIApp) -> ASGIApp:
        """``application``, started again with the same scope when it ends early (spec §1).

        A consumer that raises loses only the update it was handling, and one that
        stops (``StopConsumer``) before its scope ends loses nothing: the updates
        queued for its conversation go to a fresh instance, in order. An instance
        that ends before taking any event, or after ``telegram.disconnect``, is done.
        """

        async def run(scope: Scope, receive: Receive, send: Send) -> None:
            last: list[str] = []  # the type of the event the current instance took last

            async def tracking_receive() -> Message:
                message = await receive()
                last[:] = [message["type"]]
                return message

            while True:
                last.clear()
                try:
                    await application(dict(scope), tracking_receive, send)
                except Exception:
                    if not last or last[0] == "telegram.disconnect":
                        raise
                    logger.exception(
                        "%s: the consumer of %s raised on %s; a new instance takes the next update",
                        self.name,
                        scope["conversation"],
                        last[0],
                    )
                    continue
                if not last or last[0] == "telegram.disconnect":
                    return

        return run

    # --- incoming ------------------------------------------------------------------

    async def handle_update(self, update: dict[str, Any], transport: Transport) -> None:
        """Queue ``update`` to its conversation's instance (waiting while that queue is full)."""
        self.updates += 1
        conversation = conversation_of(self.identity.id, update)
        event = update_to_event(update)
        if event["type"] == "telegram.update":
            logger.info(
                "%s: update %s of unknown kind %r", self.name, event["update_id"], event["kind"]
            )
        key = conversation.key
        scope = None
        if self.manager.live(key) is None:  # the first update of the conversation (again)
            scope = dict(build_scope(self.identity, conversation, transport))
        await self.manager.dispatch(key, event, scope=scope)

    async def _poll(self) -> None:
        """Long-poll ``getUpdates``; confirm an update only once it is queued (spec §6)."""
        offset: int | None = None
        backoff = Backoff(self.options.poll_backoff, self.options.max_backoff)
        params: dict[str, Any] = {"timeout": int(self.options.poll_timeout)}
        if self.options.allowed_updates is not None:
            params["allowed_updates"] = list(self.options.allowed_updates)
        while True:
            if offset is not None:
                params["offset"] = offset
            try:
                updates = await self.bot.call(
                    "getUpdates", params, timeout=self.options.poll_timeout + 10
                )
            except TelegramError as exc:
                error = as_api_error(exc)
                self.poll_error = f"{self.name}: getUpdates failed ({error})"
                self._report_poll_error(error, backoff.delay)
                await backoff.wait()
                continue
            backoff.succeeded()
            self.poll_error = None
            for update in updates:
                await self.handle_update(update, "polling")
                offset = int(update["update_id"]) + 1

    def _report_poll_error(self, error: BotApiError, delay: float) -> None:
        if error.error_code == 409:
            logger.error(
                "%s: getUpdates conflict (409): %s. Another process polls with this token, "
                "or a webhook is set; retrying in %.1fs",
                self.name,
                error.description,
                delay,
            )
        elif error.error_code in (401, 404):
            logger.error("%s: the Bot API rejected the token (%d)", self.name, error.error_code)
        else:
            logger.warning("%s: getUpdates failed (%s); retrying in %.1fs", self.name, error, delay)

    # --- outgoing ------------------------------------------------------------------

    def _send_for(self, key: Hashable, scope: Scope) -> Send:
        conversation = ConversationKey(*key)  # type: ignore[misc]
        chat_id = conversation.id if conversation.kind != "bot" else None
        thread_id = conversation.thread_id

        async def send(message: Message) -> None:
            call = event_to_call(message, chat_id=chat_id, thread_id=thread_id)
            result = await self.perform(call)
            if result is not None:
                self._reply_to_instance(key, result)

        return send

    async def perform(self, call: ApiCall) -> Message | None:
        """Make ``call``; the ``telegram.result`` to deliver if it asked for one."""
        self.calls += 1
        try:
            # Without a request_id nobody would hear of a failure: wait out any 429s.
            result = await self.client.call(
                call.method, call.params, retry=call.retry, until_accepted=call.request_id is None
            )
        except BotApiError as error:
            if call.request_id is None:
                logger.warning(
                    "%s: %s to chat %s failed: %s", self.name, call.method, call.chat_id, error
                )
                return None
            return dict(result_event(call.request_id, False, error=error))
        if call.request_id is None:
            return None
        return dict(result_event(call.request_id, True, result))

    def _reply_to_instance(self, key: Hashable, result: Message) -> None:
        """Queue a ``telegram.result``; never wait on the queue of the sender itself."""
        instance = self.manager.instances.get(key)
        if instance is None:
            return
        instance.put_soon(result, self._background)


class TelegramServer(Service):
    """Serve ``application`` to the users of one or more bots (docs/specs/telegram.md)."""

    name = "telegram"

    def __init__(
        self,
        application: ASGIApp,
        bots: Sequence[BotConfig],
        options: ServerOptions | None = None,
    ) -> None:
        if not bots:
            raise ValueError("TelegramServer needs at least one bot")
        self.options = options or ServerOptions()
        self.runners = [BotRunner(application, config, self.options) for config in bots]
        self._listener: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self._chat_locks: dict[tuple[int, Any], tuple[asyncio.Lock, int]] = {}
        self._unregister: Callable[[], None] | None = None

    def runner_for(self, bot: Any = None) -> BotRunner | None:
        """The runner for a bot username (with or without ``@``) or id; None: the first."""
        if bot is None:
            return self.runners[0]
        for runner in self.runners:
            if bot in (
                runner.identity.id,
                runner.identity.username,
                f"@{runner.identity.username}",
            ):
                return runner
        return None

    async def start(self) -> None:
        started: list[BotRunner] = []
        try:
            for runner in self.runners:
                await runner.start()
                started.append(runner)
        except BaseException:
            for runner in started:
                await runner.stop(self.options.close_timeout)
            raise
        alias = self.options.channel_layer
        layer = get_channel_layer(alias) if alias is not None else None
        if layer is not None:
            self._listener = asyncio.create_task(self._listen(layer), name="telegram.send listener")
        self._unregister = metrics.registry.register(self.name, self.reading)

    async def ready(self) -> str | None:
        """Not ready while a bot's last ``getUpdates`` failed (the Bot API is unreachable
        or refuses); webhooks arrive through the web server, which has its own probe."""
        errors = [runner.poll_error for runner in self.runners if runner.poll_error]
        return "; ".join(errors) or None

    def describe(self, summary: Summary) -> None:
        for runner in self.runners:
            where = f" at {runner.config.webhook_url}" if runner.config.webhook_url else ""
            summary.add("Telegram", f"{runner.name} by {self.options.transport}{where}")

    def reading(self) -> ServerReading:
        """Conversations (one instance each), updates in and Bot API calls out."""
        conversations = sum(len(runner.manager) for runner in self.runners)
        telegram = ProtocolCounters(
            conversations,
            sum(runner.updates for runner in self.runners),
            sum(runner.calls for runner in self.runners),
        )
        return ServerReading({"telegram": telegram}, conversations)

    async def stop(self, timeout: float) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        if self._sending:  # sends from the channel get ``timeout`` seconds to finish
            _, unfinished = await asyncio.wait(self._sending, timeout=timeout)
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
        await asyncio.gather(*(runner.stop(timeout) for runner in self.runners))
        if self._unregister is not None:
            self._unregister()

    # --- the telegram.send channel (spec §4) ----------------------------------------

    async def _listen(self, layer: Any) -> None:
        slots = asyncio.Semaphore(self.options.send_concurrency)
        while True:
            message = await receive_retrying(
                layer, SEND_CHANNEL, logger, self.options.poll_backoff, self.options.max_backoff
            )
            await slots.acquire()
            task = asyncio.create_task(self._send_from_channel(layer, message))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
            task.add_done_callback(lambda _: slots.release())

    async def _send_from_channel(self, layer: Any, message: Message) -> None:
        runner = self.runner_for(message.get("bot"))
        if runner is None:
            logger.warning("%s: no bot %r here; message dropped", SEND_CHANNEL, message.get("bot"))
            return
        try:
            call = event_to_call(message)
        except ValueError as exc:
            logger.warning("%s: invalid message dropped: %s", SEND_CHANNEL, exc)
            return
        # Calls to one chat keep their order: asyncio locks are acquired first come, first
        # served; a lock lives while some message for its chat holds or awaits it.
        lock_key = (runner.identity.id, call.chat_id)
        lock, users = self._chat_locks.get(lock_key, (asyncio.Lock(), 0))
        self._chat_locks[lock_key] = (lock, users + 1)
        try:
            async with lock:
                result = await runner.perform(call)
        finally:
            lock, users = self._chat_locks[lock_key]
            if users == 1:
                del self._chat_locks[lock_key]
            else:
                self._chat_locks[lock_key] = (lock, users - 1)
        reply_channel = message.get("reply_channel")
        if result is not None and isinstance(reply_channel, str):
            try:
                await layer.send(reply_channel, result)
            except Exception as exc:
                logger.warning(
                    "%s: result to %s not delivered: %s", SEND_CHANNEL, reply_channel, exc
                )
