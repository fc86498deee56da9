"""The HTTP & WebSocket vocabulary (gateway/web/events.py), data in and data out:
every builder gives exactly its TypedDict's keys, and the readers give back what was
built, with the spec's defaults for what a message leaves out."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gateway.web import events

payloads = st.text() | st.binary()


def keys_of(typed: Any) -> tuple[frozenset[str], frozenset[str]]:
    return typed.__required_keys__, typed.__required_keys__ | typed.__optional_keys__


def assert_shape(message: dict[str, Any] | Any, typed: Any) -> None:
    required, allowed = keys_of(typed)
    assert required <= set(message) <= allowed


def test_scopes_have_exactly_their_keys() -> None:
    target: dict[str, Any] = {
        "path": "/a b",
        "raw_path": b"/a%20b",
        "query_string": b"x=1",
        "headers": [],
    }
    http = events.http_scope(method="GET", **target)
    websocket = events.websocket_scope(subprotocols=["chat"], **target)
    assert set(http) == keys_of(events.HttpScope)[0]
    assert set(websocket) == keys_of(events.WebsocketScope)[0]
    assert http["asgi"] == websocket["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert websocket["extensions"] == {}
    assert websocket["scheme"] == "ws"


@given(payloads)
def test_frames_round_trip(data: str | bytes) -> None:
    for message, typed in (
        (events.receive_event(data), events.ReceiveEvent),
        (events.send_message(data), events.SendMessage),
    ):
        assert_shape(message, typed)
        assert events.frame_data(message) == data
        assert type(events.frame_data(message)) is type(data)


@given(st.binary(), st.booleans())
def test_bodies_round_trip(body: bytes, more_body: bool) -> None:
    for message, typed in (
        (events.request_event(body, more_body), events.RequestEvent),
        (events.response_body(body, more_body), events.ResponseBodyMessage),
    ):
        assert_shape(message, typed)
        assert events.body_of(message) == (body, more_body)


def test_readers_default_as_the_spec_says() -> None:
    assert events.body_of({"type": "http.response.body"}) == (b"", False)
    assert list(events.headers_of({"type": "http.response.start", "status": 200})) == []
    assert events.close_of({"type": "websocket.close"}) == (1000, "")
    assert events.close_of({"type": "websocket.close", "code": None}) == (1000, "")


@given(st.none() | st.integers(1000, 4999), st.none() | st.text())
def test_close_round_trips(code: int | None, reason: str | None) -> None:
    message = events.close_message(code, reason)
    assert_shape(message, events.CloseMessage)
    assert events.close_of(message) == (code or 1000, reason or "")


def test_accept_has_headers_only_when_given() -> None:
    assert events.accept_message() == {"type": "websocket.accept", "subprotocol": None}
    accepted = events.accept_message("chat", [(b"x-a", b"1")])
    assert_shape(accepted, events.AcceptMessage)
    assert list(events.headers_of(accepted)) == [(b"x-a", b"1")]


def test_the_other_events() -> None:
    for message, typed in (
        (events.connect_event(), events.ConnectEvent),
        (events.disconnect_event(1006), events.DisconnectEvent),
        (events.http_disconnect_event(), events.HttpDisconnectEvent),
        (events.response_start(204, []), events.ResponseStartMessage),
    ):
        assert_shape(message, typed)
    assert events.disconnect_event(1001, "bye") == {
        "type": "websocket.disconnect",
        "code": 1001,
        "reason": "bye",
    }
