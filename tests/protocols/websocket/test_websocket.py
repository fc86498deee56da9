"""WebSocket over real sockets: the ASGI WebSocket spec as clients see it."""

from __future__ import annotations

import asyncio
import gc
import logging
import weakref
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from gateway.types import Receive, Scope, Send
from protocols.websocket.session import protocol_logger
from protocols.websocket.websocket import WebSocketProtocol
from tests.protocols.websocket.conftest import Serve, raw, wait_until

HANDSHAKE = (
    b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class Recorder:
    """An echo application that records every event it receives."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.scope: Scope = {}
        self.disconnected: asyncio.Future[dict[str, Any]] = (
            asyncio.get_running_loop().create_future()
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            self.events.append(message)
            if message["type"] == "websocket.disconnect":
                self.disconnected.set_result(message)
                return
            if message.get("text") == "close-please":
                await send({"type": "websocket.close", "code": 4002, "reason": "as asked"})
                continue
            reply = {k: v for k, v in message.items() if k in ("text", "bytes")}
            await send({"type": "websocket.send", **reply})

    async def disconnect(self) -> dict[str, Any]:
        async with asyncio.timeout(5):
            return await self.disconnected


def url(port: int, path: str = "/ws") -> str:
    return f"ws://127.0.0.1:{port}{path}"


async def test_text_binary_and_empty_frames_echo(serve: Serve) -> None:
    app = Recorder()
    async with serve(app) as server, connect(url(server.port, "/ws/caf%C3%A9?x=1")) as ws:
        for message in ("hello", "", b"\x00\x01", b"", "é" * 1000):
            await ws.send(message)
            assert await ws.recv() == message
        assert app.scope["path"] == "/ws/café"
        assert app.scope["raw_path"] == b"/ws/caf%C3%A9"
        assert app.scope["query_string"] == b"x=1"
        assert app.scope["scheme"] == "ws"


async def test_access_log_lines(serve: Serve, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gateway.web.access")
    app = Recorder()
    async with serve(app, access_log=True) as server:
        async with connect(url(server.port, "/ws/logged?token=secret")) as ws:
            await ws.close(4001)
        await app.disconnect()
    lines = [r.getMessage() for r in caplog.records if r.name == "gateway.web.access"]
    assert [line.split(" - ")[1] for line in lines] == [
        "WebSocket /ws/logged accept 101",
        "WebSocket /ws/logged disconnect 4001",
    ]
    assert "secret" not in caplog.text


async def test_a_non_ascii_handshake_field_gets_400_with_the_access_log_on(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: the refusal's access line wanted a scope not built yet; the KeyError
    escaped the upgrade and the client waited for an answer until shutdown."""
    caplog.set_level(logging.INFO, logger="gateway.web.access")
    async with serve(Recorder(), access_log=True) as server, raw(server.port) as client:
        await client.send(HANDSHAKE[:-2] + b"Sec-WebSocket-Protocol: \xe9\r\n\r\n")
        status, _ = await client.read_head()
        assert status == 400
        assert await client.at_eof()


async def test_a_client_that_half_closes_during_a_denial_response_fails_no_application(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: the denial's last body raised AssertionError (websockets had ended
    the stream on the client's EOF) into the application, logged with a traceback."""
    half_closed = asyncio.Event()
    outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.http.response.start", "status": 403})
        await half_closed.wait()
        await asyncio.sleep(0.1)  # the server reads the EOF
        try:
            await send({"type": "websocket.http.response.body", "body": b"no"})
        except Exception as exc:
            outcome.set_result(repr(exc))
            raise
        outcome.set_result("sent")

    async with serve(app) as server, raw(server.port) as client:
        await client.send(HANDSHAKE)
        client.writer.write_eof()
        half_closed.set()
        async with asyncio.timeout(5):
            assert await outcome == "sent"
    assert "Exception in ASGI application" not in caplog.text


async def test_fragmented_message_is_delivered_whole(serve: Serve) -> None:
    app = Recorder()
    async with serve(app) as server, connect(url(server.port)) as ws:
        await ws.send(["frag", "men", "ted"])
        assert await ws.recv() == "fragmented"


async def test_client_close_code_and_reason_reach_the_app(serve: Serve) -> None:
    app = Recorder()
    async with serve(app) as server:
        async with connect(url(server.port)) as ws:
            await ws.close(4001, "bye")
        assert await app.disconnect() == {
            "type": "websocket.disconnect",
            "code": 4001,
            "reason": "bye",
        }


async def test_app_close_code_and_reason_reach_the_client(serve: Serve) -> None:
    app = Recorder()
    async with serve(app) as server, connect(url(server.port)) as ws:
        await ws.send("close-please")
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4002, "as asked")
        assert (await app.disconnect())["code"] == 4002


async def test_accept_with_subprotocol_and_headers(serve: Serve) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        assert scope["subprotocols"] == ["v1", "v2"]
        await send(
            {"type": "websocket.accept", "subprotocol": "v2", "headers": [(b"x-room", b"42")]}
        )
        await receive()

    async with serve(app) as server, connect(url(server.port), subprotocols=["v1", "v2"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "v2"
        assert ws.response is not None
        assert ws.response.headers["x-room"] == "42"


async def test_close_before_accept_is_403(serve: Serve) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.close"})

    async with serve(app) as server:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url(server.port)):
                pass
    assert refused.value.response.status_code == 403


async def test_denial_response_extension(serve: Serve) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert "websocket.http.response" in scope["extensions"]
        await receive()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 401,
                "headers": [(b"www-authenticate", b"Bearer")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"who ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"are you?"})

    async with serve(app) as server:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url(server.port)):
                pass
    response = refused.value.response
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.body == b"who are you?"


@pytest.mark.parametrize("mode", ["raise", "send-first", "return"])
async def test_app_failing_before_accept_is_500(serve: Serve, mode: str) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        if mode == "raise":
            raise ValueError("boom")
        if mode == "send-first":
            await send({"type": "websocket.send", "text": "too early"})

    async with serve(app) as server:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url(server.port)):
                pass
    assert refused.value.response.status_code == 500


async def test_app_crash_after_accept_closes_with_1011(serve: Serve) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await receive()
        raise RuntimeError("consumer bug")

    async with serve(app) as server, connect(url(server.port)) as ws:
        await ws.send("trigger")
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1011


async def test_app_returning_closes_with_1000(serve: Serve) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})

    async with serve(app) as server, connect(url(server.port)) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1000


async def test_oversized_message_closes_with_1009(serve: Serve) -> None:
    app = Recorder()
    async with serve(app, ws_max_size=1000) as server, connect(url(server.port)) as ws:
        await ws.send("x" * 1000)
        assert await ws.recv() == "x" * 1000
        await ws.send(["x" * 600, "x" * 600])  # too big only as a whole
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009
        assert (await app.disconnect())["code"] == 1009


async def test_invalid_utf8_closes_with_1007(serve: Serve) -> None:
    app = Recorder()
    async with serve(app) as server, connect(url(server.port)) as ws:
        await ws.send(b"\xff\xfe", text=True)
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1007
        assert (await app.disconnect())["code"] == 1007


async def test_send_after_client_close_raises_client_disconnected(serve: Serve) -> None:
    errors: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        assert (await receive())["type"] == "websocket.disconnect"
        try:
            await send({"type": "websocket.send", "text": "late"})
        except OSError as exc:
            errors.set_result(exc)

    async with serve(app) as server:
        async with connect(url(server.port)):
            pass
        async with asyncio.timeout(5):
            assert "closed" in str(await errors)


@pytest.mark.parametrize(
    ("handshake", "status"),
    [
        (HANDSHAKE.replace(b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", b""), 400),
        (HANDSHAKE.replace(b"Version: 13", b"Version: 8"), 400),
        (HANDSHAKE.replace(b"GET", b"POST"), 400),
    ],
)
async def test_bad_upgrade_requests(serve: Serve, handshake: bytes, status: int) -> None:
    app = Recorder()
    async with serve(app) as server, raw(server.port) as client:
        await client.send(handshake)
        got, _, _ = await client.read_response()
        assert got == status
        assert await client.at_eof()
    assert app.scope == {}  # the application never saw it


async def test_handshake_completes_over_raw_socket(serve: Serve) -> None:
    async with serve(Recorder()) as server, raw(server.port) as client:
        await client.send(HANDSHAKE)
        status, headers = await client.read_head()
        assert status == 101
        assert headers["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


async def test_app_that_never_accepts_times_out(serve: Serve) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await receive()  # never accepts; gets websocket.disconnect eventually

    async with serve(app, ws_connect_timeout=0.1) as server:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url(server.port)):
                pass
    assert refused.value.response.status_code == 504


async def test_unanswered_ping_closes_with_1011(serve: Serve) -> None:
    app = Recorder()
    options = {"ws_ping_interval": 0.05, "ws_ping_timeout": 0.05}
    async with serve(app, **options) as server, raw(server.port) as client:
        await client.send(HANDSHAKE)
        assert (await client.read_head())[0] == 101
        assert (await app.disconnect())["code"] == 1011  # we never answered the Ping
        assert await client.at_eof()


async def test_an_app_that_never_receives_is_not_fed_unboundedly(serve: Serve) -> None:
    release = asyncio.Event()
    count = 0

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal count
        await receive()
        await send({"type": "websocket.accept"})
        await release.wait()
        while (await receive())["type"] == "websocket.receive":
            count += 1

    def queued() -> int:
        return max((getattr(c, "queued", 0) for c in server.ctx.connections), default=0)

    async with (
        serve(app, ws_max_queue=8) as server,
        connect(url(server.port), compression=None, max_size=None) as ws,
    ):
        payload = b"x" * 65536

        async def flood() -> None:
            for _ in range(1000):  # 64 MiB: more than any socket buffer holds
                await ws.send(payload)

        sender = asyncio.ensure_future(flood())
        await wait_until(lambda: queued() >= 8)
        await asyncio.sleep(0.05)  # give the server a chance to over-read, if it would
        # It stops reading once the queue is full; the frames of the read that filled
        # it are queued too: one read takes up to 256 KiB (asyncio's and uvloop's).
        assert queued() <= 8 + 256 * 1024 // len(payload)
        assert not sender.done()
        release.set()
        async with asyncio.timeout(20):
            await sender
            await wait_until(lambda: count == 1000, timeout=20)


async def test_slow_reader_backpressure_on_sends(serve: Serve) -> None:
    outcome: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        sent = 0
        try:
            while sent < 1_000_000_000:
                await send({"type": "websocket.send", "bytes": b"x" * 65536})
                sent += 65536
        except OSError:
            outcome.set_result(sent)

    async with (
        serve(app, timeout_send=0.2, ws_ping_interval=None) as server,
        raw(server.port) as client,
    ):
        await client.send(HANDSHAKE)
        async with asyncio.timeout(20):
            sent = await outcome
    assert sent < 200_000_000


async def test_client_leaving_before_accept_is_quiet(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    left = asyncio.Event()
    outcome: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        assert (await receive())["type"] == "websocket.disconnect"
        left.set()
        try:
            await send({"type": "websocket.accept"})
        except OSError as exc:
            outcome.set_result(exc)
            raise

    async with serve(app) as server:
        async with raw(server.port) as client:
            await client.send(HANDSHAKE)
        async with asyncio.timeout(5):
            await left.wait()
            assert isinstance(await outcome, OSError)
    assert "Exception in ASGI application" not in caplog.text


# -- every door holds: regressions ----------------------------------------------------------


def client_frame(opcode: int, payload: bytes, fin: bool = True, rsv: int = 0) -> bytes:
    """A masked client frame (RFC 6455 5.2) with a zero mask: the payload as is."""
    assert len(payload) < 126
    return (
        bytes([(0x80 if fin else 0) | rsv << 4 | opcode, 0x80 | len(payload)]) + b"\0" * 4 + payload
    )


async def test_non_ascii_handshake_field_is_400_without_traceback(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    app = Recorder()
    async with serve(app) as server, raw(server.port) as client:
        await client.send(
            HANDSHAKE.replace(b"dGhlIHNhbXBsZSBub25jZQ==", b"dGhl\x80IHNhbXBsZSBub25jZQ==")
        )
        assert (await client.read_response())[0] == 400
    assert app.scope == {}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_frames_sent_before_the_101_wait_for_the_accept(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """RFC 6455 4.1 says a client waits for the 101; the handshake parser took early
    frames for a failed handshake and then tripped an assertion (one traceback each)."""
    app = Recorder()
    async with serve(app) as server, raw(server.port) as client:
        await client.send(HANDSHAKE + client_frame(0x1, b"early"))
        assert (await client.read_head())[0] == 101
        async with asyncio.timeout(5):
            echoed = await client.reader.readexactly(7)
    assert echoed == b"\x81\x05early"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_bad_frames_are_logged_at_info_once_then_counted(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    async def quiet(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        while (await receive())["type"] != "websocket.disconnect":
            pass

    async with serve(quiet) as server:
        for _ in range(20):
            async with raw(server.port) as client:
                await client.send(HANDSHAKE)
                await client.read_head()
                await client.send(client_frame(0x1, b"x", rsv=2))  # RSV2 without an extension
                async with asyncio.timeout(5):
                    close = await client.reader.readexactly(4)
                assert close[:4] == b"\x88\x19\x03\xea"  # Close 1002
    lines = [r for r in caplog.records if "1002" in r.getMessage()]
    assert len(lines) == 1
    assert (lines[0].levelno, lines[0].exc_info) == (logging.INFO, None)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [r for r in caplog.records if r.getMessage() == "connection open"]


async def test_an_application_that_returned_is_not_kept_after_its_client_left(
    serve: Serve,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        while (await receive())["type"] != "websocket.disconnect":
            pass

    async with serve(app) as server:
        async with raw(server.port) as client:
            await client.send(HANDSHAKE)
            await client.read_head()
            protocol = next(iter(server.ctx.connections))
            assert isinstance(protocol, WebSocketProtocol)
            assert protocol.task is not None
            task = weakref.ref(protocol.task)
            del protocol
        assert await server.ctx.wait_empty(5)
        gc.collect()
        assert task() is None


def test_errors_websockets_logs_are_one_traceback_then_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """websockets logs an unexpected parser exception at ERROR with a traceback, once
    per connection: a flood of such connections logs one traceback, then counts. Its
    INFO lines repeat the access log: they go to DEBUG."""
    caplog.set_level(logging.INFO)
    for _ in range(5):
        try:
            raise ValueError("unexpected in the parser")
        except ValueError:
            protocol_logger.error("parser failed", exc_info=True)
    protocol_logger.info("connection open")
    records = [r for r in caplog.records if r.name.startswith("gateway.web")]
    assert [(r.levelno, r.getMessage(), bool(r.exc_info)) for r in records] == [
        (logging.ERROR, "websockets: parser failed", True)
    ]
