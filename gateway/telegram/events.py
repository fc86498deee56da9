"""Bot API update ⇄ ``telegram`` ASGI event translation, without I/O.

Everything here is data in, data out (docs/specs/telegram.md): which conversation an
update belongs to, the scope a conversation gets, the event an update becomes, and
the Bot API call an outgoing event becomes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, TypedDict

from gateway.types import Message

SPEC_VERSION = "1.1"

#: Update fields whose object is a ``Message`` (text at the top level of the event).
MESSAGE_KINDS = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "business_message",
        "edited_business_message",
    }
)

#: Every ``Update`` field of Bot API 9.x; an update with another field becomes ``telegram.update``.
KNOWN_KINDS = MESSAGE_KINDS | frozenset(
    {
        "business_connection",
        "deleted_business_messages",
        "message_reaction",
        "message_reaction_count",
        "inline_query",
        "chosen_inline_result",
        "callback_query",
        "shipping_query",
        "pre_checkout_query",
        "purchased_paid_media",
        "poll",
        "poll_answer",
        "my_chat_member",
        "chat_member",
        "chat_join_request",
        "chat_boost",
        "removed_chat_boost",
    }
)

#: Where the sender is for kinds that carry one under another name.
_USER_FIELDS = ("from", "user")

Transport = Literal["polling", "webhook"]


class ConversationKey(NamedTuple):
    """Which scope an update belongs to (spec §1)."""

    kind: Literal["chat", "user", "bot"]
    bot_id: int
    id: int
    thread_id: int | None


class AsgiInfo(TypedDict):
    version: str
    spec_version: str


class BotInfo(TypedDict):
    id: int
    username: str


class TelegramScope(TypedDict):
    """The scope of spec §1, before middleware adds ``session`` and replaces ``user``."""

    type: Literal["telegram"]
    asgi: AsgiInfo
    bot: BotInfo
    chat: dict[str, Any] | None
    user: dict[str, Any] | None
    telegram_user: dict[str, Any] | None
    message_thread_id: int | None
    conversation: list[Any]
    transport: Transport


class DisconnectEvent(TypedDict):
    type: Literal["telegram.disconnect"]
    reason: str


class ResultEvent(TypedDict, total=False):
    """``telegram.result`` (spec §2): ``result`` on success, the error fields otherwise."""

    type: Literal["telegram.result"]
    request_id: Any
    ok: bool
    result: Any
    error_code: int
    description: str
    parameters: dict[str, Any] | None


@dataclass(frozen=True)
class BotIdentity:
    """The bot a scope talks for, from ``getMe``."""

    id: int
    username: str


def update_kind(update: dict[str, Any]) -> str:
    """The update's field name (``message``, ``callback_query`` …); ``""`` if it has none."""
    for key in update:
        if key != "update_id":
            return key
    return ""


def _chat_object(kind: str, payload: dict[str, Any]) -> tuple[dict[str, Any] | None, Any]:
    """The chat (and the message, for thread ids) an update's payload belongs to."""
    if kind == "callback_query":
        message = payload.get("message")
        if isinstance(message, dict) and isinstance(message.get("chat"), dict):
            return message["chat"], message
        return None, None
    chat = payload.get("chat")
    if isinstance(chat, dict):
        return chat, payload
    return None, None


def _sender(payload: dict[str, Any]) -> dict[str, Any] | None:
    for name in _USER_FIELDS:
        user = payload.get(name)
        if isinstance(user, dict) and "id" in user:
            return user
    return None


def _thread_id(chat: dict[str, Any], message: Any) -> int | None:
    """Forum topics are separate conversations (Bot API ``message_thread_id``)."""
    if not chat.get("is_forum") or not isinstance(message, dict):
        return None
    if not message.get("is_topic_message"):
        return None
    thread = message.get("message_thread_id")
    return thread if isinstance(thread, int) else None


@dataclass(frozen=True)
class Conversation:
    """What one update says about its conversation."""

    key: ConversationKey
    chat: dict[str, Any] | None = None
    user: dict[str, Any] | None = None


def conversation_of(bot_id: int, update: dict[str, Any]) -> Conversation:
    """The conversation ``update`` belongs to (spec §1, in its order of precedence)."""
    kind = update_kind(update)
    payload = update.get(kind)
    if not isinstance(payload, dict):
        return Conversation(ConversationKey("bot", bot_id, 0, None))
    user = _sender(payload)
    chat, message = _chat_object(kind, payload)
    if chat is not None and isinstance(chat.get("id"), int):
        key = ConversationKey("chat", bot_id, chat["id"], _thread_id(chat, message))
        return Conversation(key, chat, user)
    if user is not None and isinstance(user.get("id"), int):
        return Conversation(ConversationKey("user", bot_id, user["id"], None), None, user)
    return Conversation(ConversationKey("bot", bot_id, 0, None))


def build_scope(
    bot: BotIdentity, conversation: Conversation, transport: Transport
) -> TelegramScope:
    """The scope of a new application instance for ``conversation`` (spec §1)."""
    return {
        "type": "telegram",
        "asgi": {"version": "3.0", "spec_version": SPEC_VERSION},
        "bot": {"id": bot.id, "username": bot.username},
        "chat": conversation.chat,
        "user": conversation.user,
        "telegram_user": conversation.user,
        "message_thread_id": conversation.key.thread_id,
        "conversation": list(conversation.key),
        "transport": transport,
    }


def update_to_event(update: dict[str, Any]) -> Message:
    """The ``telegram.<kind>`` event for ``update`` (spec §2); never raises."""
    kind = update_kind(update)
    update_id = update.get("update_id")
    if kind not in KNOWN_KINDS:
        return {"type": "telegram.update", "update_id": update_id, "update": update, "kind": kind}
    payload = update[kind]
    event: Message = {
        "type": f"telegram.{kind}",
        "update_id": update_id,
        "update": update,
        kind: payload,
    }
    if kind in MESSAGE_KINDS:
        text = payload.get("text") if isinstance(payload, dict) else None
        if not isinstance(text, str):
            text = payload.get("caption") if isinstance(payload, dict) else None
        event["text"] = text if isinstance(text, str) else ""
    elif kind == "callback_query" and isinstance(payload, dict):
        event["data"] = payload.get("data")
        event["callback_query_id"] = payload.get("id")
    return event


def disconnect_event(reason: str = "closed") -> DisconnectEvent:
    """The terminal event of a scope (spec §2): ``idle``, ``evicted``, ``closed``, ``shutdown``."""
    return {"type": "telegram.disconnect", "reason": reason}


# --- outgoing ------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiCall:
    """One Bot API method call an outgoing event asks for."""

    method: str
    params: dict[str, Any]
    request_id: Any = None
    #: Retry failures after which the call may have been performed (None: the server's
    #: default, which is to retry); False sends at most once (spec §3).
    retry: bool | None = None

    @property
    def chat_id(self) -> Any:
        return self.params.get("chat_id")


#: type -> (method, required keys)
OUTGOING: dict[str, tuple[str, tuple[str, ...]]] = {
    "telegram.message": ("sendMessage", ("text",)),
    "telegram.photo": ("sendPhoto", ("photo",)),
    "telegram.edit": ("editMessageText", ("message_id", "text")),
    "telegram.answer": ("answerCallbackQuery", ("callback_query_id",)),
    "telegram.chat_action": ("sendChatAction", ("action",)),
}

#: Methods that address no chat, so no default ``chat_id`` is added.
_CHATLESS = frozenset({"answerCallbackQuery"})
_ENVELOPE_KEYS = frozenset({"type", "request_id", "keyboard", "bot", "reply_channel", "retry"})


def inline_keyboard(rows: Any) -> dict[str, Any]:
    """``reply_markup`` for the ``keyboard`` shortcut: rows of ``[text, data]`` or button dicts."""
    if not isinstance(rows, list | tuple):
        raise ValueError("keyboard must be a list of rows of buttons")
    markup: list[list[dict[str, Any]]] = []
    for row in rows:
        if not isinstance(row, list | tuple):
            raise ValueError("each keyboard row must be a list of buttons")
        buttons: list[dict[str, Any]] = []
        for button in row:
            if isinstance(button, dict):
                buttons.append(button)
            elif isinstance(button, list | tuple) and len(button) == 2:
                buttons.append({"text": str(button[0]), "callback_data": str(button[1])})
            else:
                raise ValueError(
                    f"a keyboard button is [text, callback_data] or a dict: {button!r}"
                )
        markup.append(buttons)
    return {"inline_keyboard": markup}


def event_to_call(
    message: Message, *, chat_id: Any = None, thread_id: int | None = None
) -> ApiCall:
    """The Bot API call for an outgoing event (spec §3).

    ``chat_id`` and ``thread_id`` are the conversation's defaults. Raises
    ``ValueError`` for an unknown type or a missing required key.
    """
    kind = message.get("type")
    request_id = message.get("request_id")
    if not isinstance(kind, str):  # e.g. a list, which `in OUTGOING` would raise TypeError on
        raise ValueError(f"an outgoing telegram event needs a str 'type', got {kind!r}")
    retry = message.get("retry")
    if retry is not None and not isinstance(retry, bool):
        raise ValueError(f"{kind}: 'retry' must be true or false, got {retry!r}")
    if kind == "telegram.call":
        method = message.get("method")
        params = message.get("params", {})
        if not isinstance(method, str) or not method:
            raise ValueError("telegram.call needs a 'method' (a Bot API method name)")
        if not isinstance(params, dict):
            raise ValueError("telegram.call 'params' must be a dict")
        return ApiCall(method, dict(params), request_id, retry)
    if kind not in OUTGOING:
        raise ValueError(f"unknown outgoing telegram event type {kind!r}")
    method, required = OUTGOING[kind]
    missing = [key for key in required if message.get(key) is None]
    if missing:
        raise ValueError(f"{kind} needs {', '.join(repr(key) for key in missing)}")
    params = {key: value for key, value in message.items() if key not in _ENVELOPE_KEYS}
    if "keyboard" in message:
        if "reply_markup" in message:
            raise ValueError(f"{kind}: give 'keyboard' or 'reply_markup', not both")
        params["reply_markup"] = inline_keyboard(message["keyboard"])
    if method not in _CHATLESS:
        if params.get("chat_id") is None:
            if chat_id is None:
                raise ValueError(f"{kind} needs a 'chat_id' outside a chat conversation")
            params["chat_id"] = chat_id
        if params.get("message_thread_id") is None:
            params.pop("message_thread_id", None)
            if thread_id is not None and method != "editMessageText":
                params["message_thread_id"] = thread_id
    return ApiCall(method, params, request_id, retry)


def result_event(
    request_id: Any, ok: bool, result: Any = None, *, error: Any = None
) -> ResultEvent:
    """The ``telegram.result`` answering a call with a ``request_id`` (spec §2)."""
    if ok:
        return {"type": "telegram.result", "request_id": request_id, "ok": True, "result": result}
    return {
        "type": "telegram.result",
        "request_id": request_id,
        "ok": False,
        "error_code": getattr(error, "error_code", 0),
        "description": getattr(error, "description", str(error)),
        "parameters": getattr(error, "parameters", None),
    }
