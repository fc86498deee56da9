"""A local Bot API server: Telegram's HTTP API, for tests and for trying bots offline.

It serves ``POST|GET /bot<token>/<method>`` (so python-telegram-bot's
``base_url="http://127.0.0.1:PORT/bot"`` works unmodified) with the real API's
envelope: ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code": N,
"description": ..., "parameters": ...}`` with HTTP status ``N``
(https://core.telegram.org/bots/api#making-requests). Bodies may be form, JSON or
multipart. Implemented: getMe, getUpdates, sendMessage, sendPhoto, editMessageText,
answerCallbackQuery, sendChatAction, setWebhook, deleteWebhook, getWebhookInfo.

The *user side* (:meth:`BotAPIServer.user_message`, :meth:`press_button`,
:meth:`inject`, :meth:`sent`, :meth:`wait_sent`, :meth:`calls`) plays the people
talking to the bot; ``/_user/<bot username>/message|press|sent`` offers the same
over HTTP (e.g. ``curl -d chat_id=1 -d text=hi .../_user/my_bot/message``).

Example::

    server = BotAPIServer()
    token = server.add_bot("echo_bot")
    await server.start()
    bot = telegram.Bot(token, base_url=server.base_url)
    server.user_message(token, chat_id=42, text="hi")
    ...
    await server.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from gateway.botapi.http import HttpServer, Request, Response
from gateway.botapi.params import BadParams, Upload, parse
from gateway.botapi.state import ApiError, BotState, Poll, Webhook
from gateway.telegram.events import update_kind

logger = logging.getLogger("gateway.botapi")

_PATH = re.compile(r"^/bot(?P<token>[0-9]+:[A-Za-z0-9_-]+)/(?P<method>[A-Za-z]+)$")
#: A menu command: 1-32 lowercase letters, digits and underscores (Bot API ``BotCommand``).
_MENU_COMMAND = re.compile(r"[a-z0-9_]{1,32}")
_USER_PATH = re.compile(r"^/_user/(?P<bot>[A-Za-z0-9_]+)/(?P<action>message|press|sent)$")
_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_MESSAGE_METHODS = frozenset({"sendMessage", "sendPhoto"})


@dataclass
class EnforcedLimits:
    """Answer 429 beyond these rates (None: unlimited); ``retry_after`` in seconds.

    Real Telegram sends whole seconds; a fraction keeps tests quick.
    """

    per_chat_per_second: int | None = None
    per_second: int | None = None
    retry_after: float = 1


class _FloodCounter:
    """Fixed one-second windows of message-sending calls per chat and overall."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.window = -1
        self.counts: dict[Any, int] = {}

    def hit(self, limits: EnforcedLimits, chat_id: Any) -> None:
        window = int(self.clock())
        if window != self.window:
            self.window, self.counts = window, {}
        for key, limit in ((chat_id, limits.per_chat_per_second), (None, limits.per_second)):
            if limit is not None and self.counts.get(key, 0) >= limit:
                raise ApiError(
                    429,
                    f"Too Many Requests: retry after {limits.retry_after}",
                    {"retry_after": limits.retry_after},
                )
        for key in (chat_id, None):
            self.counts[key] = self.counts.get(key, 0) + 1


class BotAPIServer:
    """The local Bot API server; see the module docstring."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        limits: EnforcedLimits | None = None,
        webhook_retry: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.port = port
        self.limits = limits or EnforcedLimits()
        self.webhook_retry = webhook_retry
        self.bots: dict[str, BotState] = {}
        self._flood = _FloodCounter(clock)
        self._http: HttpServer | None = None
        self._deliveries: dict[str, asyncio.Task[None]] = {}
        self._client: httpx.AsyncClient | None = None
        self._ids = itertools.count(1)
        #: Called with (token, message) for every message a bot sends (e.g. to time replies).
        self.sent_listeners: list[Callable[[str, dict[str, Any]], None]] = []
        self._methods: dict[str, Callable[[BotState, dict[str, Any]], Awaitable[Any]]] = {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "sendMessage": self._send_message,
            "sendPhoto": self._send_photo,
            "editMessageText": self._edit_message_text,
            "answerCallbackQuery": self._answer_callback_query,
            "sendChatAction": self._send_chat_action,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
        }

    # --- lifecycle -----------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The ``base_url`` for python-telegram-bot (``TELEGRAM_API_URL``)."""
        return f"http://{self.host}:{self.port}/bot"

    def add_bot(
        self, username: str, token: str | None = None, first_name: str | None = None
    ) -> str:
        """Register a bot; return its token (``<id>:<secret>``, generated if not given)."""
        if token is None:
            token = f"{100000 + len(self.bots) + 1}:{secrets.token_urlsafe(24)}"
        if not _PATH.match(f"/bot{token}/getMe"):
            raise ValueError("a bot token looks like 123456:ABC-def_ghi")
        self.bots[token] = BotState(token, username, first_name or username)
        return token

    async def start(self) -> None:
        """Listen (again, after :meth:`stop`, on the same port); state is kept."""
        self._http = HttpServer(self._handle, self.host, self.port)
        await self._http.start()
        self.port = self._http.port
        self._client = httpx.AsyncClient(timeout=5.0)
        for state in self.bots.values():
            if state.webhook is not None:
                self._start_delivery(state)

    async def stop(self) -> None:
        """Stop listening and delivering; pending polls are cut off like a crash would."""
        for task in self._deliveries.values():
            task.cancel()
        await asyncio.gather(*self._deliveries.values(), return_exceptions=True)
        self._deliveries.clear()
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __aenter__(self) -> BotAPIServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # --- HTTP ----------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        path, _, query = request.target.partition("?")
        match = _PATH.match(path)
        try:
            if match is None and (user_side := _USER_PATH.match(path)) is not None:
                params = parse(query, request.headers.get("content-type", ""), request.body)
                result = self._user_side(user_side["bot"], user_side["action"], params)
                return _envelope(200, {"ok": True, "result": result})
            if match is None:
                raise ApiError(404, "Not Found")
            state = self.bots.get(match["token"])
            if state is None:
                raise ApiError(401, "Unauthorized")
            method = self._methods.get(match["method"])
            if method is None:
                raise ApiError(404, "Not Found")
            params = parse(query, request.headers.get("content-type", ""), request.body)
            name = match["method"]
            if name in _MESSAGE_METHODS:
                self._flood.hit(self.limits, params.get("chat_id"))
            result = await method(state, params)
            await state.record_call(name, params)
            return _envelope(200, {"ok": True, "result": result})
        except ApiError as exc:
            body: dict[str, Any] = {
                "ok": False,
                "error_code": exc.error_code,
                "description": exc.description,
            }
            if exc.parameters:
                body["parameters"] = exc.parameters
            return _envelope(exc.error_code, body)
        except BadParams as exc:
            return _envelope(400, {"ok": False, "error_code": 400, "description": str(exc)})

    def _user_side(self, username: str, action: str, params: dict[str, Any]) -> Any:
        """The user side over HTTP (``/_user/<bot username>/<action>``), for curl and scripts.

        ``message`` (chat_id, text), ``press`` (chat_id, message_id, data) and
        ``sent`` (chat_id) mirror :meth:`user_message`, :meth:`press_button`, :meth:`sent`.
        """
        token = next((t for t, bot in self.bots.items() if bot.username == username), None)
        if token is None:
            raise ApiError(404, f"Not Found: no bot @{username}")
        chat_id = params.get("chat_id", 1)
        if not isinstance(chat_id, int):
            raise ApiError(400, "Bad Request: chat_id must be an integer")
        if action == "message" and isinstance(params.get("text"), str) and params["text"]:
            return self.user_message(token, params["text"], chat_id=chat_id)
        if action == "press" and isinstance(params.get("message_id"), int):
            message = self.bots[token].messages.get(chat_id, {}).get(params["message_id"])
            if message is None:
                raise ApiError(400, "Bad Request: message not found")
            return self.press_button(token, message, str(params.get("data", "")))
        if action == "sent":
            return self.sent(token, chat_id)
        raise ApiError(400, f"Bad Request: {action} needs other parameters")

    # --- methods -------------------------------------------------------------------

    async def _get_me(self, state: BotState, params: dict[str, Any]) -> Any:
        return state.me()

    async def _get_updates(self, state: BotState, params: dict[str, Any]) -> Any:
        if state.webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        if state.poll is not None:  # the earlier poller loses, as with Telegram
            state.poll.conflict = True
            state.poll.wakeup.set()
        poll = state.poll = Poll()
        async with state.changed:
            state.changed.notify_all()
        try:
            if isinstance(params.get("offset"), int):
                state.confirm(params["offset"])
            if isinstance(params.get("allowed_updates"), list):
                state.allowed_updates = params["allowed_updates"] or None
            limit = min(max(int(params.get("limit") or 100), 1), 100)
            timeout = max(float(params.get("timeout") or 0), 0.0)
            deadline = asyncio.get_running_loop().time() + timeout
            while True:
                if poll.conflict:
                    raise ApiError(
                        409,
                        "Conflict: terminated by other getUpdates request; "
                        "make sure that only one bot instance is running",
                    )
                ready = [u for u in state.pending if state.wants(update_kind(u))][:limit]
                remaining = deadline - asyncio.get_running_loop().time()
                if ready or remaining <= 0:
                    return ready
                state.new_update.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await _first(state.new_update.wait(), poll.wakeup.wait())
        finally:
            if state.poll is poll:
                state.poll = None

    async def _send_message(self, state: BotState, params: dict[str, Any]) -> Any:
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            raise ApiError(400, "Bad Request: message is too long")
        message = state.message(
            _chat_id(params),
            state.user,
            text=text,
            message_thread_id=params.get("message_thread_id"),
            reply_markup=_markup(params),
            entities=params.get("entities"),
        )
        await self._record_sent(state, message)
        return message

    async def _send_photo(self, state: BotState, params: dict[str, Any]) -> Any:
        photo = params.get("photo")
        if isinstance(photo, Upload):
            if not photo.data:
                raise ApiError(400, "Bad Request: file must be non-empty")
            size = len(photo.data)
        elif isinstance(photo, str) and photo:
            size = 0
        else:
            raise ApiError(400, "Bad Request: there is no photo in the request")
        file_id = f"photo-{next(self._ids)}"
        sizes = [
            {
                "file_id": file_id,
                "file_unique_id": file_id,
                "width": 90,
                "height": 90,
                "file_size": size,
            }
        ]
        message = state.message(
            _chat_id(params),
            state.user,
            photo=sizes,
            caption=params.get("caption"),
            message_thread_id=params.get("message_thread_id"),
            reply_markup=_markup(params),
        )
        await self._record_sent(state, message)
        return message

    async def _record_sent(self, state: BotState, message: dict[str, Any]) -> None:
        await state.record_sent(message)
        for listener in self.sent_listeners:
            listener(state.token, message)

    async def _edit_message_text(self, state: BotState, params: dict[str, Any]) -> Any:
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if not isinstance(params.get("message_id"), int):
            raise ApiError(400, "Bad Request: message identifier is not specified")
        message = state.stored(_chat_id(params), params["message_id"])
        if message["from"]["id"] != state.id:
            raise ApiError(400, "Bad Request: message can't be edited")
        markup = _markup(params)
        if message.get("text") == text and message.get("reply_markup") == markup:
            raise ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and "
                "reply markup are exactly the same as a current content and reply markup "
                "of the message",
            )
        message["text"] = text
        message["edit_date"] = int(time.time())
        if markup is None:
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = markup
        return message

    async def _answer_callback_query(self, state: BotState, params: dict[str, Any]) -> Any:
        query_id = params.get("callback_query_id")
        if query_id not in state.open_callback_queries:
            raise ApiError(
                400,
                "Bad Request: query is too old and response timeout expired or query ID is invalid",
            )
        state.open_callback_queries.discard(query_id)
        return True

    async def _send_chat_action(self, state: BotState, params: dict[str, Any]) -> Any:
        chat_id = _chat_id(params)
        if chat_id not in state.chats:
            raise ApiError(400, "Bad Request: chat not found")
        if params.get("action") not in _CHAT_ACTIONS:
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        return True

    async def _set_my_commands(self, state: BotState, params: dict[str, Any]) -> Any:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise ApiError(400, "Bad Request: can't parse commands JSON object")
        menu = []
        for entry in commands:
            command = entry.get("command") if isinstance(entry, dict) else None
            description = entry.get("description") if isinstance(entry, dict) else None
            if not isinstance(command, str) or not _MENU_COMMAND.fullmatch(command):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not isinstance(description, str) or not 1 <= len(description) <= 256:
                raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
            menu.append({"command": command, "description": description})
        state.commands = menu
        return True

    async def _get_my_commands(self, state: BotState, params: dict[str, Any]) -> Any:
        return list(state.commands)

    async def _delete_my_commands(self, state: BotState, params: dict[str, Any]) -> Any:
        state.commands = []
        return True

    async def _set_webhook(self, state: BotState, params: dict[str, Any]) -> Any:
        url = params.get("url") or ""
        if not url:
            return await self._delete_webhook(state, params)
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ApiError(400, "Bad Request: bad webhook: invalid webhook URL specified")
        secret = params.get("secret_token")
        if secret is not None and not _SECRET.match(str(secret)):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        if isinstance(params.get("allowed_updates"), list):
            state.allowed_updates = params["allowed_updates"] or None
        if params.get("drop_pending_updates"):
            state.drop_pending()
        state.webhook = Webhook(url, secret, int(params.get("max_connections") or 40))
        if state.poll is not None:
            state.poll.conflict = True
            state.poll.wakeup.set()
        self._start_delivery(state)
        return True

    async def _delete_webhook(self, state: BotState, params: dict[str, Any]) -> Any:
        if params.get("drop_pending_updates"):
            state.drop_pending()
        state.webhook = None
        task = self._deliveries.pop(state.token, None)
        if task is not None:
            task.cancel()
        return True

    async def _get_webhook_info(self, state: BotState, params: dict[str, Any]) -> Any:
        webhook = state.webhook
        info: dict[str, Any] = {
            "url": webhook.url if webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(state.pending),
        }
        if webhook is not None:
            info["max_connections"] = webhook.max_connections
            if webhook.last_error_date is not None:
                info["last_error_date"] = webhook.last_error_date
                info["last_error_message"] = webhook.last_error_message
        if state.allowed_updates:
            info["allowed_updates"] = state.allowed_updates
        return info

    # --- webhook delivery ----------------------------------------------------------

    def _start_delivery(self, state: BotState) -> None:
        old = self._deliveries.pop(state.token, None)
        if old is not None:
            old.cancel()
        if self._client is not None:
            self._deliveries[state.token] = asyncio.create_task(
                self._deliver(state), name=f"webhook delivery for bot {state.id}"
            )

    async def _deliver(self, state: BotState) -> None:
        """POST pending updates one at a time, in order, retrying until accepted."""
        delay = self.webhook_retry
        while state.webhook is not None:
            webhook = state.webhook
            ready = [u for u in state.pending if state.wants(update_kind(u))]
            if not ready:
                state.new_update.clear()
                await state.new_update.wait()
                continue
            update = ready[0]
            headers = {"content-type": "application/json"}
            if webhook.secret_token:
                headers["x-telegram-bot-api-secret-token"] = webhook.secret_token
            assert self._client is not None  # set while serving
            try:
                response = await self._client.post(
                    webhook.url, content=json.dumps(update), headers=headers
                )
                error = None
                if not response.is_success:
                    error = f"Wrong response from the webhook: {response.status_code}"
            except httpx.HTTPError as exc:
                error = f"Connection failed: {type(exc).__name__}"
            if error is None:
                state.confirm(update["update_id"] + 1)
                delay = self.webhook_retry
                continue
            webhook.last_error_date = int(time.time())
            webhook.last_error_message = error
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    # --- user side -----------------------------------------------------------------

    def _state(self, token: str) -> BotState:
        try:
            return self.bots[token]
        except KeyError:
            raise ValueError("no bot with this token on this server") from None

    def _chat(
        self,
        state: BotState,
        chat_id: int,
        user: dict[str, Any],
        chat_type: str | None,
        title: str | None,
        is_forum: bool,
    ) -> dict[str, Any]:
        chat = state.chats.get(chat_id)
        if chat is None:
            kind = chat_type or ("private" if chat_id > 0 else "supergroup")
            chat = {"id": chat_id, "type": kind}
            if kind == "private":
                chat["first_name"] = user["first_name"]
                if "username" in user:
                    chat["username"] = user["username"]
            else:
                chat["title"] = title or f"Group {chat_id}"
                if is_forum:
                    chat["is_forum"] = True
            state.chats[chat_id] = chat
        return chat

    @staticmethod
    def make_user(user_id: int, first_name: str | None = None) -> dict[str, Any]:
        return {
            "id": user_id,
            "is_bot": False,
            "first_name": first_name or f"User{user_id}",
            "username": f"user{user_id}",
        }

    def user_message(
        self,
        token: str,
        text: str,
        *,
        chat_id: int = 1001,
        user: dict[str, Any] | None = None,
        chat_type: str | None = None,
        chat_title: str | None = None,
        thread_id: int | None = None,
        is_forum: bool = False,
        kind: str = "message",
    ) -> dict[str, Any]:
        """A user writes ``text`` (a ``/command`` gets its entity); return the update."""
        state = self._state(token)
        sender = user or self.make_user(abs(chat_id) if chat_id > 0 else 7000)
        self._chat(state, chat_id, sender, chat_type, chat_title, is_forum)
        fields: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            fields["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        if thread_id is not None:
            fields.update(message_thread_id=thread_id, is_topic_message=True)
        message = state.message(chat_id, sender, **fields)
        return state.add_update(kind, message)

    def press_button(
        self,
        token: str,
        message: dict[str, Any],
        data: str,
        *,
        user: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A user presses an inline button with ``data`` under the bot's ``message``."""
        state = self._state(token)
        query_id = str(next(self._ids))
        sender = user or self.make_user(abs(message["chat"]["id"]))
        state.open_callback_queries.add(query_id)
        query = {
            "id": query_id,
            "from": sender,
            "message": message,
            "chat_instance": str(message["chat"]["id"]),
            "data": data,
        }
        return state.add_update("callback_query", query)

    def inject(self, token: str, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Queue an update of any ``kind`` (``my_chat_member``, ``poll`` …) as given."""
        state = self._state(token)
        chat = payload.get("chat")
        if isinstance(chat, dict) and isinstance(chat.get("id"), int):
            state.chats.setdefault(chat["id"], chat)
        return state.add_update(kind, payload)

    def sent(self, token: str, chat_id: int) -> list[dict[str, Any]]:
        """Messages the bot sent to ``chat_id``, oldest first, as currently stored (edits show)."""
        return list(self._state(token).sent.get(chat_id, []))

    def calls(self, token: str, method: str) -> list[dict[str, Any]]:
        """Parameters of every successful ``method`` call the bot made, oldest first."""
        return [params for name, params in self._state(token).calls if name == method]

    def pending_updates(self, token: str) -> int:
        return len(self._state(token).pending)

    async def wait_for(
        self, token: str, predicate: Callable[[], Any], timeout: float = 5.0
    ) -> None:
        """Wait until ``predicate()`` is true, re-checked whenever the bot calls the API."""
        state = self._state(token)
        async with asyncio.timeout(timeout), state.changed:
            await state.changed.wait_for(predicate)

    async def wait_sent(
        self, token: str, chat_id: int, count: int = 1, timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        """Wait until the bot has sent ``count`` messages to ``chat_id``; return them all."""
        await self.wait_for(token, lambda: len(self.sent(token, chat_id)) >= count, timeout)
        return self.sent(token, chat_id)

    async def wait_calls(
        self, token: str, method: str, count: int = 1, timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        """Wait until the bot has made ``count`` successful ``method`` calls; return them."""
        await self.wait_for(token, lambda: len(self.calls(token, method)) >= count, timeout)
        return self.calls(token, method)

    async def wait_polling(self, token: str) -> None:
        """Wait until a ``getUpdates`` long poll of this bot is pending."""
        await self.wait_for(token, lambda: self._state(token).poll is not None)


def _chat_id(params: dict[str, Any]) -> int:
    chat_id = params.get("chat_id")
    if chat_id is None or chat_id == "":
        raise ApiError(400, "Bad Request: chat_id is empty")
    if not isinstance(chat_id, int):
        raise ApiError(400, "Bad Request: chat not found")
    return chat_id


def _markup(params: dict[str, Any]) -> dict[str, Any] | None:
    markup = params.get("reply_markup")
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
    return markup


def _envelope(status: int, body: dict[str, Any]) -> Response:
    return Response(status, json.dumps(body).encode(), [("content-type", "application/json")])


async def _first(*awaitables: Awaitable[Any]) -> None:
    """Wait until the first of ``awaitables`` finishes; cancel the others."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
