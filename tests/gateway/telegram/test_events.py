"""The pure translation core: conversations, scopes, events and calls (no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.telegram.events import (
    BotIdentity,
    ConversationKey,
    build_scope,
    conversation_of,
    event_to_call,
    inline_keyboard,
    result_event,
    update_to_event,
)
from protocols.telegram.client import BotApiError

USER = {"id": 7, "is_bot": False, "first_name": "Ann"}
PRIVATE = {"id": 7, "type": "private", "first_name": "Ann"}
FORUM = {"id": -100, "type": "supergroup", "title": "F", "is_forum": True}


def message(chat: dict[str, Any], **extra: object) -> dict[str, Any]:
    return {"message_id": 1, "date": 0, "chat": chat, "from": USER, **extra}


def test_message_event_carries_raw_update_and_text() -> None:
    update = {"update_id": 5, "message": message(PRIVATE, text="hi")}
    event = update_to_event(update)
    assert event == {
        "type": "telegram.message",
        "update_id": 5,
        "update": update,
        "message": update["message"],
        "text": "hi",
    }


@pytest.mark.parametrize(
    ("fields", "text"),
    [({"caption": "pic"}, "pic"), ({}, ""), ({"text": "t", "caption": "c"}, "t")],
)
def test_text_falls_back_to_caption_then_empty(fields: dict[str, Any], text: str) -> None:
    event = update_to_event({"update_id": 1, "edited_message": message(PRIVATE, **fields)})
    assert (event["type"], event["text"]) == ("telegram.edited_message", text)


def test_callback_query_event_has_data_and_id() -> None:
    query = {"id": "q1", "from": USER, "data": "yes", "message": message(PRIVATE)}
    event = update_to_event({"update_id": 2, "callback_query": query})
    assert (event["type"], event["data"], event["callback_query_id"]) == (
        "telegram.callback_query",
        "yes",
        "q1",
    )


@pytest.mark.parametrize("update", [{"update_id": 3, "future_thing": {"x": 1}}, {"update_id": 4}])
def test_unknown_kinds_become_telegram_update(update: dict[str, Any]) -> None:
    event = update_to_event(update)
    assert event["type"] == "telegram.update"
    assert event["update"] == update


def test_conversation_keys_follow_the_spec_precedence() -> None:
    assert conversation_of(1, {"update_id": 1, "message": message(PRIVATE)}).key == (
        ConversationKey("chat", 1, 7, None)
    )
    topic = message(FORUM, message_thread_id=9, is_topic_message=True)
    assert conversation_of(1, {"update_id": 1, "message": topic}).key == ("chat", 1, -100, 9)
    inline = {"id": "i", "from": USER, "query": "q", "offset": ""}
    assert conversation_of(1, {"update_id": 1, "inline_query": inline}).key == ("user", 1, 7, None)
    inline_button = {"id": "q", "from": USER, "inline_message_id": "m", "data": "d"}
    assert conversation_of(1, {"update_id": 1, "callback_query": inline_button}).key == (
        "user",
        1,
        7,
        None,
    )
    poll = {"id": "p", "question": "?", "options": []}
    assert conversation_of(1, {"update_id": 1, "poll": poll}).key == ("bot", 1, 0, None)
    assert conversation_of(1, {"update_id": 1, "weird": "x"}).key == ("bot", 1, 0, None)


def test_scope_has_every_spec_key() -> None:
    update = {"update_id": 1, "message": message(PRIVATE, text="x")}
    scope = build_scope(BotIdentity(1, "b"), conversation_of(1, update), "webhook")
    assert scope == {
        "type": "telegram",
        "asgi": {"version": "3.0", "spec_version": "1.1"},
        "bot": {"id": 1, "username": "b"},
        "chat": PRIVATE,
        "user": USER,
        "telegram_user": USER,
        "message_thread_id": None,
        "conversation": ["chat", 1, 7, None],
        "transport": "webhook",
    }


def test_outgoing_events_become_calls_with_conversation_defaults() -> None:
    call = event_to_call({"type": "telegram.message", "text": "hi"}, chat_id=7, thread_id=3)
    assert (call.method, call.params) == (
        "sendMessage",
        {"text": "hi", "chat_id": 7, "message_thread_id": 3},
    )
    call = event_to_call(
        {"type": "telegram.answer", "callback_query_id": "q", "request_id": 1}, chat_id=7
    )
    assert (call.method, call.params, call.request_id) == (
        "answerCallbackQuery",
        {"callback_query_id": "q"},
        1,
    )
    call = event_to_call({"type": "telegram.call", "method": "getChat", "params": {"chat_id": 1}})
    assert (call.method, call.params) == ("getChat", {"chat_id": 1})
    call = event_to_call({"type": "telegram.edit", "message_id": 4, "text": "t"}, chat_id=7)
    assert call.params == {"message_id": 4, "text": "t", "chat_id": 7}


def test_retry_is_the_servers_business_never_a_bot_api_parameter() -> None:
    default = event_to_call({"type": "telegram.message", "text": "hi"}, chat_id=7)
    once = event_to_call({"type": "telegram.message", "text": "hi", "retry": False}, chat_id=7)
    call = event_to_call(
        {"type": "telegram.call", "method": "sendDice", "params": {"chat_id": 1}, "retry": True}
    )
    assert (default.retry, once.retry, call.retry) == (None, False, True)
    assert once.params == default.params == {"text": "hi", "chat_id": 7}
    assert call.params == {"chat_id": 1}


def test_keyboard_shortcut() -> None:
    call = event_to_call(
        {"type": "telegram.message", "text": "?", "keyboard": [[("Yes", "y"), ("No", "n")]]},
        chat_id=1,
    )
    assert call.params["reply_markup"] == {
        "inline_keyboard": [
            [{"text": "Yes", "callback_data": "y"}, {"text": "No", "callback_data": "n"}]
        ]
    }
    with pytest.raises(ValueError, match="keyboard button is"):
        inline_keyboard([["just text"]])


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"type": "telegram.nope"}, "unknown outgoing"),
        ({"type": "telegram.message"}, "needs 'text'"),
        ({"type": "telegram.call", "params": {}}, "needs a 'method'"),
        ({"type": "telegram.message", "text": "x", "keyboard": [], "reply_markup": {}}, "not both"),
        ({"type": "telegram.message", "text": "x", "retry": "no"}, "'retry' must be true or false"),
    ],
)
def test_bad_outgoing_events_raise_clear_errors(message: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        event_to_call(message, chat_id=1)


def test_message_without_a_chat_outside_a_chat_conversation_is_an_error() -> None:
    with pytest.raises(ValueError, match="needs a 'chat_id'"):
        event_to_call({"type": "telegram.message", "text": "x"})


def test_results_are_data() -> None:
    assert result_event("r", True, {"message_id": 1}) == {
        "type": "telegram.result",
        "request_id": "r",
        "ok": True,
        "result": {"message_id": 1},
    }
    error = BotApiError(429, "Too Many Requests: retry after 5", {"retry_after": 5})
    assert result_event("r", False, error=error) == {
        "type": "telegram.result",
        "request_id": "r",
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 5",
        "parameters": {"retry_after": 5},
    }
