"""The Bot API client's connections: bounded calls in flight, waiting callers served in order."""

from __future__ import annotations

import asyncio
import json

import pytest

from gateway.botapi.http import HttpServer, Request, Response
from protocols.telegram.client import BotApiError, BotConnection, LaneRequest

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
