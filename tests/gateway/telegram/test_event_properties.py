"""Properties of the Bot API update ⇄ ``telegram`` event translation (Hypothesis).

Updates come from Telegram, or from anyone who has the webhook secret: any JSON object
must become a conversation, a scope and an event without raising; outgoing events
become Bot API calls or a ValueError, never another exception.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gateway.telegram.events import (
    _ENVELOPE_KEYS,
    KNOWN_KINDS,
    MESSAGE_KINDS,
    OUTGOING,
    BotIdentity,
    build_scope,
    conversation_of,
    event_to_call,
    inline_keyboard,
    update_to_event,
)

KEYS = st.sampled_from(
    ["id", "chat", "from", "user", "text", "caption", "message", "data", "is_forum",
     "is_topic_message", "message_thread_id", "type", "update_id"]
) | st.text(max_size=8)  # fmt: skip
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=25,
)  # fmt: skip
KINDS = st.sampled_from(sorted(KNOWN_KINDS)) | st.text(max_size=10)
UPDATES = st.builds(
    lambda update_id, kind, payload, extra: {"update_id": update_id, kind: payload, **extra},
    JSON,
    KINDS,
    JSON,
    st.dictionaries(st.text(max_size=6), JSON, max_size=2),
)
BOT = BotIdentity(42, "prop_bot")


@given(UPDATES)
def test_any_update_has_a_conversation_scope_and_event(update: dict[str, Any]) -> None:
    conversation = conversation_of(BOT.id, update)
    key = conversation.key
    assert key.bot_id == BOT.id
    assert key.kind in ("chat", "user", "bot")
    assert isinstance(key.id, int)
    assert key.thread_id is None or isinstance(key.thread_id, int)
    scope = build_scope(BOT, conversation, "webhook")
    json.dumps(scope)  # JSON-safe, as the update was
    event = update_to_event(update)
    kind = next((k for k in update if k != "update_id"), "")
    assert event["type"] == (f"telegram.{kind}" if kind in KNOWN_KINDS else "telegram.update")
    assert event["update"] is update
    if kind in MESSAGE_KINDS:
        assert isinstance(event["text"], str)


MESSAGES = st.dictionaries(
    st.sampled_from(["type", "text", "chat_id", "method", "params", "keyboard", "reply_markup",
                     "request_id", "message_id", "photo", "action", "callback_query_id"]),
    JSON | st.sampled_from([*OUTGOING, "telegram.call"]),
    max_size=6,
)  # fmt: skip


@given(MESSAGES, JSON)
def test_outgoing_events_become_calls_or_value_errors(message: dict[str, Any], chat: Any) -> None:
    try:
        call = event_to_call(message, chat_id=chat)
    except ValueError:
        return
    assert isinstance(call.method, str)
    assert call.method
    if message.get("type") != "telegram.call":
        assert not _ENVELOPE_KEYS & call.params.keys()


@given(st.text(max_size=50), st.integers(-(2**53), 2**53), st.integers(1, 2**31))
def test_a_message_round_trips_into_send_message(text: str, chat_id: int, thread: int) -> None:
    call = event_to_call(
        {"type": "telegram.message", "text": text, "request_id": "r"},
        chat_id=chat_id,
        thread_id=thread,
    )
    assert (call.method, call.request_id) == ("sendMessage", "r")
    assert call.params == {"text": text, "chat_id": chat_id, "message_thread_id": thread}


@given(JSON)
def test_keyboards_are_built_or_refused_with_value_error(rows: Any) -> None:
    try:
        markup = inline_keyboard(rows)
    except ValueError:
        return
    assert all(isinstance(button, dict) for row in markup["inline_keyboard"] for button in row)
