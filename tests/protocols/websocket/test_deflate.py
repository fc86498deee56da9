"""permessage-deflate as browsers get it (RFC 7692), over real sockets: no context
takeover either way, small messages sent plain, and broadcast frames shared only
between sockets that encode alike."""

from __future__ import annotations

import asyncio
import zlib
from typing import Any

from websockets.asyncio.client import connect

from gateway.types import Receive, Scope, Send
from tests.protocols.websocket.conftest import RawClient, Serve

#: What Chrome and Firefox send.
BROWSER_OFFER = "permessage-deflate; client_max_window_bits"
LARGE = '{"readings": [' + ", ".join(f'{{"device": "boiler-{i}", "v": 21.5}}' for i in range(40))
LARGE += "]}"


def handshake(offer: str | None) -> bytes:
    extension = f"Sec-WebSocket-Extensions: {offer}\r\n" if offer else ""
    return (
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"{extension}\r\n"
    ).encode()


async def read_frame(client: RawClient) -> tuple[bool, bytes, bytes]:
    """One unmasked server frame: (RSV1 set, payload, the frame's bytes)."""
    async with asyncio.timeout(5):
        head = await client.reader.readexactly(2)
        length = head[1] & 0x7F
        extra = b""
        if length == 126:
            extra = await client.reader.readexactly(2)
            length = int.from_bytes(extra, "big")
        elif length == 127:
            extra = await client.reader.readexactly(8)
            length = int.from_bytes(extra, "big")
        payload = await client.reader.readexactly(length)
    assert head[0] & 0x8F == 0x81  # FIN, text
    return bool(head[0] & 0x40), payload, head + extra + payload


def inflate(payload: bytes) -> str:
    """Decompress with a fresh decompressor: only possible without context takeover."""
    return zlib.decompressobj(wbits=-15).decompress(payload + b"\x00\x00\xff\xff").decode()


def sender(messages: list[str], sent: asyncio.Event | None = None) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        for text in messages:
            await send({"type": "websocket.send", "text": text})
        if sent is not None:
            sent.set()
        await receive()

    return app


async def open_raw(port: int, offer: str | None) -> tuple[RawClient, dict[str, str]]:
    client = await RawClient.connect(port)
    await client.send(handshake(offer))
    status, headers = await client.read_head()
    assert status == 101
    return client, headers


async def test_a_browser_offer_gets_no_context_takeover_and_small_windows(serve: Serve) -> None:
    async with serve(sender(["hi", LARGE, LARGE])) as server:
        client, headers = await open_raw(server.port, BROWSER_OFFER)
        try:
            params = [p.strip() for p in headers["sec-websocket-extensions"].split(";")]
            assert params[0] == "permessage-deflate"
            assert {"server_no_context_takeover", "client_no_context_takeover"} <= set(params)
            assert "server_max_window_bits=12" in params
            small = await read_frame(client)
            assert small[:2] == (False, b"hi")  # under ws_compress_min_size: plain
            first, second = await read_frame(client), await read_frame(client)
            assert first[0]
            assert second[0]
            # Each message decompresses on its own, and the same message is the same
            # bytes every time: nothing carries over from one message to the next.
            assert inflate(first[1]) == LARGE == inflate(second[1])
            assert first[2] == second[2]
            assert len(first[1]) < len(LARGE) / 3
        finally:
            client.writer.close()


async def test_compress_min_size_is_configurable(serve: Serve) -> None:
    async with serve(sender(["hi"]), ws_compress_min_size=0) as server:
        client, _ = await open_raw(server.port, BROWSER_OFFER)
        try:
            compressed, payload, _ = await read_frame(client)
            assert compressed
            assert inflate(payload) == "hi"
        finally:
            client.writer.close()


async def test_compression_off_ignores_the_offer(serve: Serve) -> None:
    async with serve(sender([LARGE]), ws_per_message_deflate=False) as server:
        client, headers = await open_raw(server.port, BROWSER_OFFER)
        try:
            assert "sec-websocket-extensions" not in headers
            assert (await read_frame(client))[:2] == (False, LARGE.encode())
        finally:
            client.writer.close()


async def test_compressed_client_messages_of_every_size_round_trip(serve: Serve) -> None:
    async def echo(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": message["text"]})

    messages = [LARGE[:size] for size in (0, 1, 127, 128, 129, 1000, len(LARGE))] * 3
    async with serve(echo) as server, connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
        for text in messages:
            await ws.send(text)
        async with asyncio.timeout(5):
            assert [await ws.recv() for _ in messages] == messages


async def test_one_message_to_sockets_with_different_encodings(serve: Serve) -> None:
    """The same str sent in turn on sockets that compress, don't, or use another
    threshold: each gets the frame its own negotiation asks for."""
    text = LARGE
    connected: list[asyncio.Event] = [asyncio.Event() for _ in range(2)]
    go = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        connected[int(scope["query_string"] or b"0")].set()
        await go.wait()
        for _ in range(3):
            await send({"type": "websocket.send", "text": text})
            await asyncio.sleep(0)  # interleave the three sockets' sends
        await receive()

    async with serve(app) as server:
        plain = await RawClient.connect(server.port)
        deflated = await RawClient.connect(server.port)
        both = [plain, deflated]
        try:
            for index, (client, offer) in enumerate(((plain, None), (deflated, BROWSER_OFFER))):
                head = handshake(offer).replace(b"/ws ", f"/ws?{index} ".encode())
                await client.send(head)
                assert (await client.read_head())[0] == 101
            async with asyncio.timeout(5):
                await asyncio.gather(connected[0].wait(), connected[1].wait())
            go.set()
            for _ in range(3):
                assert (await read_frame(plain))[:2] == (False, text.encode())
                compressed, payload, _ = await read_frame(deflated)
                assert compressed
                assert inflate(payload) == text
        finally:
            for client in both:
                client.writer.close()
