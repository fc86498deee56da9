"""The Bot API client: bounded calls in flight served in order, and which failures it retries.

Retries are checked against Bot API stand-ins on real sockets that perform a call and
then answer an error, the way a call can succeed at Telegram while its answer is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from telegram.error import TelegramError

from gateway.botapi.http import HttpServer, Request, Response
from protocols.telegram.client import (
    ApiClient,
    BotApiError,
    BotConnection,
    LaneRequest,
    never_performed,
)
from protocols.telegram.flood import FloodControl, FloodLimits

TOKEN = "123456:test-token"


class HeldServer:
    """A Bot API stand-in that answers each call only once the test releases it."""

    def __init__(self) -> None:
        self.arrivals: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.arrived = asyncio.Condition()
        self.release = asyncio.Event()
        self.http = HttpServer(self.handle)

    async def handle(self, request: Request) -> Response:
        method = request.target.rsplit("/", 1)[-1]
        async with self.arrived:
            self.arrivals.append(method)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self.arrived.notify_all()
        await self.release.wait()
        self.in_flight -= 1
        if method == "refused":
            body = {"ok": False, "error_code": 400, "description": "Bad Request: refused"}
            return Response(400, json.dumps(body).encode())
        return Response(200, json.dumps({"ok": True, "result": method}).encode())

    async def wait_arrivals(self, count: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout), self.arrived:
            await self.arrived.wait_for(lambda: len(self.arrivals) >= count)


async def test_calls_beyond_the_connections_wait_their_turn_in_order() -> None:
    server = HeldServer()
    await server.http.start()
    connection = BotConnection(TOKEN, f"http://127.0.0.1:{server.http.port}/bot", connections=2)
    try:
        calls = [asyncio.create_task(connection.bot.call(f"call{n}", {"n": n})) for n in range(6)]
        await server.wait_arrivals(2)
        with pytest.raises(TimeoutError):  # the other four wait for a connection
            await server.wait_arrivals(3, timeout=0.3)
        assert server.arrivals == ["call0", "call1"]
        server.release.set()
        async with asyncio.timeout(5):
            results = await asyncio.gather(*calls)
        assert results == [f"call{n}" for n in range(6)]
        assert server.most_in_flight == 2
        assert sorted(server.arrivals[2:4]) == ["call2", "call3"]  # the first two waiting
    finally:
        await connection.close()
        await server.http.close()


async def test_a_failed_call_frees_its_connection() -> None:
    server = HeldServer()
    server.release.set()
    await server.http.start()
    connection = BotConnection(TOKEN, f"http://127.0.0.1:{server.http.port}/bot", connections=1)
    try:
        async with asyncio.timeout(5):
            with pytest.raises(BotApiError) as refused:
                await connection.bot.call("refused", {})
            assert (refused.value.error_code, refused.value.description) == (
                400,
                "Bad Request: refused",
            )
            assert await connection.bot.call("after", {}) == "after"
    finally:
        await connection.close()
        await server.http.close()


def test_a_bot_needs_a_connection() -> None:
    with pytest.raises(ValueError, match="at least one connection"):
        LaneRequest(0)


class ScriptedServer:
    """Performs every call it gets (``performed``), then answers the next scripted
    ``(status, envelope)`` for its method, or ``200 {"ok": true}`` once the script is out."""

    def __init__(self, script: dict[str, list[tuple[int, dict[str, object]]]]) -> None:
        self.script = script
        self.performed: list[str] = []
        self.http = HttpServer(self.handle)

    async def handle(self, request: Request) -> Response:
        method = request.target.rsplit("/", 1)[-1]
        self.performed.append(method)
        status, body = (self.script.get(method) or [(200, {"ok": True, "result": True})]).pop(0)
        return Response(status, json.dumps(body).encode())


BAD_GATEWAY = (502, {"ok": False, "error_code": 502, "description": "Bad Gateway"})
TOO_MANY = (
    429,
    {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 0",
        "parameters": {"retry_after": 0},
    },
)


@pytest.fixture
async def bad_gateway_once() -> AsyncIterator[ScriptedServer]:
    server = ScriptedServer({"sendMessage": [BAD_GATEWAY]})
    await server.http.start()
    yield server
    await server.http.close()


@contextlib.asynccontextmanager
async def client_for(port: int, **options: Any) -> AsyncIterator[ApiClient]:
    connection = BotConnection(TOKEN, f"http://127.0.0.1:{port}/bot", connections=1)
    try:
        yield ApiClient(
            connection.bot,
            FloodControl(FloodLimits.off()),
            backoff=0.01,
            **options,
        )
    finally:
        await connection.close()


HELLO = {"chat_id": 1, "text": "hello"}


async def test_an_ambiguous_failure_is_retried_by_default_and_can_duplicate(
    bad_gateway_once: ScriptedServer,
) -> None:
    async with client_for(bad_gateway_once.http.port) as client, asyncio.timeout(5):
        assert await client.call("sendMessage", HELLO) is True
    # Performed twice: the user got the message twice (docs/telegram.md, "Retries").
    assert bad_gateway_once.performed == ["sendMessage", "sendMessage"]


async def test_retry_false_sends_at_most_once(
    bad_gateway_once: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with client_for(bad_gateway_once.http.port) as client, asyncio.timeout(5):
        with pytest.raises(BotApiError) as failed:
            await client.call("sendMessage", HELLO, retry=False)
    assert (failed.value.error_code, bad_gateway_once.performed) == (502, ["sendMessage"])
    assert any("not retried" in r.getMessage() for r in caplog.records)


async def test_a_client_without_retries_still_lets_one_call_ask_for_them(
    bad_gateway_once: ScriptedServer,
) -> None:
    bad_gateway_once.script["sendMessage"].append(BAD_GATEWAY)
    async with client_for(bad_gateway_once.http.port, retry_ambiguous=False) as client:
        async with asyncio.timeout(5):
            with pytest.raises(BotApiError):
                await client.call("sendMessage", HELLO)
            assert await client.call("sendMessage", HELLO, retry=True) is True
    assert bad_gateway_once.performed == ["sendMessage"] * 3


async def test_a_429_is_retried_even_without_retries_as_telegram_did_nothing() -> None:
    server = ScriptedServer({"sendMessage": [TOO_MANY]})
    await server.http.start()
    try:
        async with client_for(server.http.port) as client, asyncio.timeout(5):
            assert await client.call("sendMessage", HELLO, retry=False) is True
    finally:
        await server.http.close()
    assert server.performed == ["sendMessage", "sendMessage"]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_request_that_never_left_is_retried_even_without_retries(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with client_for(closed_port(), max_attempts=3) as client, asyncio.timeout(5):
        with pytest.raises(BotApiError) as failed:
            await client.call("sendMessage", HELLO, retry=False)
    assert failed.value.error_code == 0
    assert "ConnectError" in failed.value.description
    assert len([r for r in caplog.records if "retry in" in r.getMessage()]) == 2


async def test_only_refusals_and_requests_that_never_left_count_as_never_performed() -> None:
    held = HeldServer()  # takes the call, never answers: a read timeout
    await held.http.start()
    connection = BotConnection(TOKEN, f"http://127.0.0.1:{held.http.port}/bot")
    refused = BotConnection(TOKEN, f"http://127.0.0.1:{closed_port()}/bot")
    errors: list[TelegramError] = []
    try:
        async with asyncio.timeout(5):
            for bot, timeout in ((connection.bot, 0.2), (refused.bot, 5.0)):
                with pytest.raises(TelegramError) as failed:
                    await bot.call("sendMessage", HELLO, timeout=timeout)
                errors.append(failed.value)
    finally:
        held.release.set()
        await asyncio.gather(connection.close(), refused.close())
        await held.http.close()
    timed_out, not_connected = errors
    assert (never_performed(timed_out), never_performed(not_connected)) == (False, True)
    assert never_performed(BotApiError(429, "Too Many Requests: retry after 1"))
    assert not never_performed(BotApiError(502, "Bad Gateway"))


def test_python_telegram_bot_is_used_through_its_public_api_only() -> None:
    """No private module of python-telegram-bot, and no private name of the classes
    gateway subclasses (``Bot._post`` was one), appears in the shipped code."""
    import ast
    from pathlib import Path

    from telegram import Bot
    from telegram.request import HTTPXRequest

    private = {
        name
        for cls in (Bot, HTTPXRequest)
        for name in dir(cls)
        if name.startswith("_") and not name.startswith("__")
    }
    root = Path(__file__).resolve().parents[3]
    used = []
    for path in [*(root / "protocols").rglob("*.py"), *(root / "gateway").rglob("*.py")]:
        source = path.read_text(encoding="utf-8")
        if "from telegram" not in source and "import telegram" not in source:
            continue  # private names of other classes may coincide (``_client``)
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.stmt | ast.expr):
                continue  # imports are statements, attributes expressions: both have a line
            modules = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            names = [m for m in modules if m.startswith("telegram._")]
            if isinstance(node, ast.Attribute) and node.attr in private:
                names.append(node.attr)
            used += [f"{path.relative_to(root)}:{node.lineno} {name}" for name in names]
    assert used == []
