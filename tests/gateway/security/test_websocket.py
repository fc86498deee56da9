from typing import Any

import pytest
from django.test import override_settings

from gateway.security.websocket import (
    AllowedHostsOriginValidator,
    OriginValidator,
    WebsocketDenier,
)
from gateway.testing import WebsocketCommunicator
from gateway.types import Receive, Scope, Send


async def accept_all(scope: Scope, receive: Receive, send: Send) -> None:
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    assert (await receive())["type"] == "websocket.disconnect"


async def connects(application: Any, origin: bytes | None) -> bool:
    headers = [(b"origin", origin)] if origin is not None else []
    communicator = WebsocketCommunicator(application, "/ws/", headers=headers)
    connected, _ = await communicator.connect()
    await communicator.disconnect()  # The server reports a refused socket as disconnected too.
    return bool(connected)


@pytest.mark.parametrize(
    ("allowed", "origin", "expected"),
    [
        (["example.com"], b"http://example.com", True),
        (["example.com"], b"https://example.com:8443", True),  # Host patterns ignore scheme/port.
        (["example.com"], b"http://www.example.com", False),
        ([".example.com"], b"http://www.example.com", True),
        ([".example.com"], b"http://example.com", True),
        ([".example.com"], b"http://badexample.com", False),
        (["http://example.com"], b"http://example.com:80", True),  # Default port.
        (["http://example.com"], b"https://example.com", False),  # Scheme differs.
        (["http://example.com"], b"http://example.com:8080", False),
        (["http://example.com:8080"], b"http://example.com:8080", True),
        (["https://.example.com"], b"https://api.example.com", True),
        (["https://.example.com"], b"wss://api.example.com:443", False),
        (["HTTP://EXAMPLE.COM"], b"http://Example.com", True),
        (["[::1]"], b"http://[::1]:8000", True),
        (["*"], b"http://anything.test", True),
        (["*"], None, True),
        (["example.com"], None, False),
        (["example.com"], b"null", False),
        (["example.com"], b"http://example.com:notaport", False),
        (["example.com"], b"http://[::1", False),
        ([], b"http://example.com", False),
    ],
)
async def test_origin_patterns(allowed: list[str], origin: bytes | None, expected: bool) -> None:
    assert await connects(OriginValidator(accept_all, allowed), origin) is expected


async def test_refusal_closes_before_accepting() -> None:
    communicator = WebsocketCommunicator(
        OriginValidator(accept_all, ["example.com"]),
        "/",
        headers=[(b"origin", b"http://evil.test")],
    )
    await communicator.send_input({"type": "websocket.connect"})

    assert (await communicator.receive_output())["type"] == "websocket.close"
    await communicator.disconnect()


async def test_non_websocket_scope_is_refused() -> None:
    with pytest.raises(ValueError, match="checks WebSocket connections only"):
        await OriginValidator(accept_all, ["*"])({"type": "http"}, None, None)  # type: ignore[arg-type]


@override_settings(ALLOWED_HOSTS=[".example.com"])
async def test_allowed_hosts_origin_validator_uses_allowed_hosts() -> None:
    validator = AllowedHostsOriginValidator(accept_all)

    assert validator.allowed_origins == [".example.com"]
    assert await connects(validator, b"https://chat.example.com")
    assert not await connects(validator, b"https://example.org")


@override_settings(ALLOWED_HOSTS=[], DEBUG=True)
async def test_allowed_hosts_origin_validator_in_debug_allows_localhost() -> None:
    validator = AllowedHostsOriginValidator(accept_all)

    assert await connects(validator, b"http://localhost:8000")
    assert await connects(validator, b"http://127.0.0.1:8000")
    assert not await connects(validator, b"http://example.com")


async def test_websocket_denier_can_be_routed_to() -> None:
    assert not await connects(WebsocketDenier.as_asgi(), b"http://example.com")
