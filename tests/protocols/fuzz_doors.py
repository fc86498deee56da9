"""The doors the fuzz campaigns knock on, each as a running server on 127.0.0.1: the
HTTP and WebSocket doors of the web server, and the Telegram webhook behind it.

:func:`door` yields a :class:`Door`: the port, how to make one input, and a
well-formed client's check. The suite's fuzz tests and ``bench/fuzz`` use the same.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from websockets.asyncio.client import connect

from gateway.botapi import BotAPIServer
from gateway.types import Receive, Scope, Send
from protocols.telegram.flood import FloodLimits
from protocols.telegram.server import BotConfig, ServerOptions, TelegramServer
from protocols.telegram.webhook import WebhookApp
from protocols.websocket import Config, TrustedProxies, WebServer
from tests.protocols import fuzzing

DOORS = ("http", "websocket", "webhook")
#: The web server as fuzzed: proxy headers on (more code reached), small frames,
#: short timeouts (a campaign's inputs each end within them).
CONFIG = Config(
    port=0,
    access_log=False,
    lifespan="off",
    proxy_headers=True,
    forwarded_allow_ips=TrustedProxies.parse("*"),
    ws_max_size=64 * 1024,
    timeout_request_head=2.0,
    timeout_body=2.0,
)
WEBHOOK = b"/telegram/webhook"
SECRET = b"s3cret"
HEALTH_CHECK = (
    b'{"update_id": 1, "message": {"message_id": 1, "chat": {"id": 1, "type": "private"}, '
    b'"from": {"id": 1}, "text": "health check"}}'
)


@dataclass(frozen=True)
class Door:
    port: int
    make: fuzzing.Make
    healthy: Callable[[], Awaitable[bool]]


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Echoes WebSocket messages; answers HTTP with what it understood of the request."""
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] == "websocket.receive":
            reply = {k: v for k, v in message.items() if k in ("text", "bytes") and v is not None}
            await send({"type": "websocket.send", **reply})
        return
    body = b""
    while (message := await receive())["type"] == "http.request":
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    seen = f"{scope['method']} {scope['path']!r} {len(scope['headers'])} {len(body)}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": seen})


async def serves_well_formed_clients(server: WebServer) -> bool:
    """A plain request and a WebSocket echo still work, and no connection lingers."""
    answer = await fuzzing.exchange(
        server.port, b"POST /ok HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbody"
    )
    async with connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
        await ws.send("ping")
        echoed = await ws.recv()
    served = answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"POST '/ok' 2 4")
    return served and echoed == "ping" and await server.ctx.wait_empty(5)


class HealthChecked:
    """A Telegram consumer counting the health-check messages it is given."""

    def __init__(self) -> None:
        self.checked = asyncio.Condition()
        self.checks = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        while (event := await receive())["type"] != "telegram.disconnect":
            if event.get("text") == "health check":
                async with self.checked:
                    self.checks += 1
                    self.checked.notify_all()

    async def delivered(self, request: Callable[[], Awaitable[bytes]]) -> bytes:
        """Send a health check with ``request``; its answer once the consumer has it."""
        before = self.checks
        answer = await request()
        async with asyncio.timeout(5), self.checked:
            await self.checked.wait_for(lambda: self.checks > before)
        return answer


@asynccontextmanager
async def running_web(app: object) -> AsyncIterator[WebServer]:
    server = WebServer(app, CONFIG)  # type: ignore[arg-type]
    await server.start()
    try:
        yield server
    finally:
        await server.stop(2)


@asynccontextmanager
async def webhook_door() -> AsyncIterator[Door]:
    """The webhook of one bot on a local Bot API server; at most 32 conversations, so
    the valid updates among the inputs cannot grow memory by design."""
    consumer = HealthChecked()
    async with BotAPIServer() as api:
        token = api.add_bot("fuzz_bot")
        bot_id = token.split(":")[0].encode()
        options = ServerOptions(
            transport="webhook",
            flood_limits=FloodLimits.off(),
            channel_layer=None,
            max_instances=32,
        )
        bot = BotConfig(token, api.base_url, "http://127.0.0.1:9/unused", SECRET.decode())
        telegram = TelegramServer(consumer, [bot], options)
        await telegram.start()
        try:
            async with running_web(WebhookApp(telegram)) as web:
                check = (
                    b"POST %s/%s HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n"
                    b"X-Telegram-Bot-Api-Secret-Token: %s\r\n\r\n%s"
                    % (WEBHOOK, bot_id, len(HEALTH_CHECK), SECRET, HEALTH_CHECK)
                )

                async def healthy() -> bool:
                    answer = await consumer.delivered(lambda: fuzzing.exchange(web.port, check))
                    return answer.startswith(b"HTTP/1.1 200") and await web.ctx.wait_empty(5)

                def make(rnd: random.Random) -> tuple[bytes, bytes]:
                    return fuzzing.webhook_request(rnd, WEBHOOK, bot_id, SECRET), b""

                yield Door(web.port, make, healthy)
        finally:
            await telegram.stop(2)


@asynccontextmanager
async def door(name: str) -> AsyncIterator[Door]:
    """The door ``name`` (one of :data:`DOORS`), serving until the block ends."""
    if name == "webhook":
        async with webhook_door() as webhook:
            yield webhook
        return
    async with running_web(echo) as server:

        def make(rnd: random.Random) -> tuple[bytes, bytes]:
            if name == "http":
                return fuzzing.http_input(rnd), b""
            return fuzzing.handshake(rnd), fuzzing.websocket_frames(rnd)

        yield Door(server.port, make, lambda: serves_well_formed_clients(server))


#: The seed of the suite's campaigns (a failure replays with it).
SEED = 20261204
#: Python memory a campaign of a few batches may keep (tracemalloc).
MEMORY_BOUND = 1024 * 1024


async def knock(name: str, per_batch: int, batches: int = 3) -> fuzzing.Report:
    """The suite's campaign on door ``name``, checked to have held."""
    async with door(name) as target:
        report = await fuzzing.campaign(
            target.port,
            random.Random(SEED),
            target.make,
            target.healthy,
            per_batch=per_batch,
            batches=batches,
        )
    assert report.stats.crashes == []
    assert report.unhealthy == 0
    assert report.memory_growth < MEMORY_BOUND, report.memory_growth
    return report
