"""Scope building: data in, data out (ASGI www spec 2.4)."""

from __future__ import annotations

from protocols.websocket.proxy import TrustedProxies
from protocols.websocket.scope import ConnectionInfo, http_scope, split_target, websocket_scope

INFO = ConnectionInfo(("127.0.0.1", 50000), ("127.0.0.1", 8000), secure=False)


def test_split_target_decodes_path_and_keeps_raw_bytes() -> None:
    target = split_target(b"/caf%C3%A9/a%2Fb?x=1&y=%20")
    assert target.path == "/café/a/b"
    assert target.raw_path == b"/caf%C3%A9/a%2Fb"
    assert target.query_string == b"x=1&y=%20"


def test_split_target_absolute_form() -> None:
    target = split_target(b"http://example.com/p?q=1")
    assert (target.path, target.query_string) == ("/p", b"q=1")


def test_http_scope_has_every_required_key() -> None:
    headers = [(b"host", b"example.com")]
    scope = http_scope("POST", b"/a?b=c", "1.1", headers, INFO, state={"db": 1})
    assert scope == {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/a",
        "raw_path": b"/a",
        "query_string": b"b=c",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {"db": 1},
    }


def test_state_is_a_copy_per_scope() -> None:
    state = {"n": 1}
    scope = http_scope("GET", b"/", "1.1", [], INFO, state=state)
    scope["state"]["n"] = 2
    assert state == {"n": 1}


def test_root_path_prefixes_path_once() -> None:
    scope = http_scope("GET", b"/items", "1.1", [], INFO, root_path="/app")
    assert (scope["root_path"], scope["path"]) == ("/app", "/app/items")
    scope = http_scope("GET", b"/app/items", "1.1", [], INFO, root_path="/app")
    assert scope["path"] == "/app/items"


def test_tls_connection_gives_https_and_wss() -> None:
    info = ConnectionInfo(("127.0.0.1", 1), ("127.0.0.1", 443), secure=True)
    assert http_scope("GET", b"/", "1.1", [], info)["scheme"] == "https"
    assert websocket_scope(b"/", "1.1", [], info)["scheme"] == "wss"


def test_websocket_scope_lists_offered_subprotocols_and_extensions() -> None:
    headers = [(b"sec-websocket-protocol", b"chat, superchat"), (b"sec-websocket-protocol", b"v3")]
    scope = websocket_scope(b"/ws/room/?t=1", "1.1", headers, INFO)
    assert scope["type"] == "websocket"
    assert scope["scheme"] == "ws"
    assert scope["path"] == "/ws/room/"
    assert scope["query_string"] == b"t=1"
    assert scope["subprotocols"] == ["chat", "superchat", "v3"]
    assert scope["extensions"] == {"websocket.http.response": {}}
    assert "method" not in scope


def test_proxy_headers_apply_only_when_enabled() -> None:
    headers = [
        (b"x-forwarded-for", b"203.0.113.7"),
        (b"x-forwarded-proto", b"https"),
        (b"x-forwarded-port", b"443"),
    ]
    plain = http_scope("GET", b"/", "1.1", headers, INFO)
    assert plain["client"] == ("127.0.0.1", 50000)
    proxied = http_scope("GET", b"/", "1.1", headers, INFO, proxies=TrustedProxies())
    assert proxied["client"] == ("203.0.113.7", 0)
    assert proxied["scheme"] == "https"
    assert proxied["server"] == ("127.0.0.1", 443)
    ws = websocket_scope(b"/", "1.1", headers, INFO, proxies=TrustedProxies())
    assert ws["scheme"] == "wss"
