"""HTTP/1.1 over real sockets: the ASGI HTTP spec as clients see it."""

from __future__ import annotations

import asyncio
import gc
import logging
import weakref
from typing import Any

import httpx
import pytest

from gateway.types import Receive, Scope, Send
from protocols.websocket import TrustedProxies
from protocols.websocket.errors import ClientDisconnected
from tests.protocols.websocket.conftest import Serve, raw, read_body, wait_until


async def echo_scope(scope: Scope, receive: Receive, send: Send) -> None:
    """Responds with the scope's interesting keys and the body it read, as JSON."""
    import json

    body = await read_body(receive)
    payload = {
        key: scope[key]
        for key in ("method", "path", "root_path", "scheme", "http_version", "client", "server")
    }
    payload["asgi"] = scope["asgi"]
    payload["query_string"] = scope["query_string"].decode()
    payload["body"] = body.decode()
    data = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-app", b"1")]})
    await send({"type": "http.response.body", "body": data})


async def test_request_and_scope(serve: Serve) -> None:
    async with serve(echo_scope) as server, httpx.AsyncClient() as client:
        response = await client.post(f"{server.url}/a%20b?x=1", content=b"hello")
    assert response.status_code == 200
    assert response.headers["x-app"] == "1"
    data = response.json()
    assert data["method"] == "POST"
    assert data["path"] == "/a b"
    assert data["query_string"] == "x=1"
    assert data["body"] == "hello"
    assert data["scheme"] == "http"
    assert data["http_version"] == "1.1"
    assert data["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert data["client"][0] == "127.0.0.1"
    assert data["server"] == ["127.0.0.1", server.port]


async def test_root_path_comes_from_configuration_only(serve: Serve) -> None:
    async with serve(echo_scope, root_path="/mount") as server, httpx.AsyncClient() as client:
        response = await client.get(f"{server.url}/x", headers={"x-script-name": "/evil"})
    assert (response.json()["root_path"], response.json()["path"]) == ("/mount", "/mount/x")


async def test_proxy_headers_from_a_trusted_proxy(serve: Serve) -> None:
    headers = {"x-forwarded-for": "6.6.6.6, 203.0.113.7", "x-forwarded-proto": "https"}
    async with (
        serve(
            echo_scope, proxy_headers=True, forwarded_allow_ips=TrustedProxies.parse("127.0.0.1")
        ) as server,
        httpx.AsyncClient() as client,
    ):
        trusted = (await client.get(server.url, headers=headers)).json()
    async with (
        serve(
            echo_scope, proxy_headers=True, forwarded_allow_ips=TrustedProxies.parse("10.0.0.1")
        ) as server,
        httpx.AsyncClient() as client,
    ):
        untrusted = (await client.get(server.url, headers=headers)).json()
    assert trusted["client"] == ["203.0.113.7", 0]
    assert trusted["scheme"] == "https"
    assert untrusted["client"][0] == "127.0.0.1"
    assert untrusted["scheme"] == "http"


async def test_request_body_is_streamed_in_chunks(serve: Serve) -> None:
    chunks: list[tuple[int, bool]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        total = 0
        while True:
            message = await receive()
            chunks.append((len(message["body"]), message["more_body"]))
            total += len(message["body"])
            if not message["more_body"]:
                break
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": str(total).encode()})

    async def body() -> Any:
        for _ in range(8):
            yield b"x" * 100_000
            await asyncio.sleep(0)

    async with serve(app, max_body_buffer=16_384) as server, httpx.AsyncClient() as client:
        response = await client.post(server.url, content=body())
    assert response.text == "800000"
    assert len(chunks) > 1
    assert all(size <= 800_000 for size, _ in chunks)
    assert chunks[-1][1] is False
    assert all(more for _, more in chunks[:-1])


async def test_streamed_response_is_chunked(serve: Serve) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200})
        for part in (b"one,", b"", b"two,", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async with serve(app) as server, httpx.AsyncClient() as client:
        response = await client.get(server.url)
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.text == "one,two,three"


async def test_keep_alive_and_pipelining_answer_in_order(serve: Serve) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/slow":
            await asyncio.sleep(0.05)  # the slow first request must still be answered first
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    async with serve(app) as server, raw(server.port) as client:
        await client.send(
            b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /second HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
            b"GET /third HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        bodies = [(await client.read_response())[2] for _ in range(3)]
        assert bodies == [b"/slow", b"/second", b"/third"]
        await client.send(b"GET /again HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await client.read_response())[2] == b"/again"


async def test_connection_close_is_honoured(serve: Serve) -> None:
    async with serve(echo_scope) as server, raw(server.port) as client:
        await client.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, headers, _ = await client.read_response()
        assert status == 200
        assert headers["connection"] == "close"
        assert await client.at_eof()


async def test_http_10_closes_after_the_response(serve: Serve) -> None:
    async with serve(echo_scope) as server, raw(server.port) as client:
        await client.send(b"GET / HTTP/1.0\r\n\r\n")
        status, _, body = await client.read_response()
        assert status == 200
        assert b'"http_version": "1.0"' in body
        assert await client.at_eof()


async def test_expect_100_continue(serve: Serve) -> None:
    async with serve(echo_scope) as server, raw(server.port) as client:
        await client.send(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        status, _ = await client.read_head()
        assert status == 100
        await client.send(b"hello")
        status, _, body = await client.read_response()
        assert status == 200
        assert b'"body": "hello"' in body


async def test_no_100_continue_when_the_app_answers_without_reading(serve: Serve) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 413})
        await send({"type": "http.response.body", "body": b"too big"})

    async with serve(app) as server, raw(server.port) as client:
        await client.send(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n"
        )
        status, _, body = await client.read_response()
        assert (status, body) == (413, b"too big")
        assert await client.at_eof()  # the unread body cannot be skipped: no reuse


async def test_head_sends_headers_without_body(serve: Serve) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]}
        )
        await send({"type": "http.response.body", "body": b"hello"})

    async with serve(app) as server, raw(server.port) as client:
        await client.send(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers = await client.read_head()
        assert (status, headers["content-length"]) == (200, "5")
        status, _, body = await client.read_response()  # the next response starts right after
        assert (status, body) == (200, b"hello")


async def test_http_disconnect_when_the_client_leaves(serve: Serve) -> None:
    received: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        received.set_result(await receive())

    async with serve(app) as server:
        async with raw(server.port) as client:
            await client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            await client.read_head()
        async with asyncio.timeout(5):
            assert await received == {"type": "http.disconnect"}


async def test_disconnect_after_the_response_completes(serve: Serve) -> None:
    received: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)
        await send({"type": "http.response.start", "status": 204})
        await send({"type": "http.response.body"})
        received.set_result(await receive())

    async with serve(app) as server, httpx.AsyncClient() as client:
        assert (await client.get(server.url)).status_code == 204
        async with asyncio.timeout(5):
            assert await received == {"type": "http.disconnect"}


async def test_500_when_the_app_fails_before_responding(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/raise":
            raise ValueError("boom")
        if scope["path"] == "/wrong-order":
            await send({"type": "http.response.body", "body": b"x"})

    async with serve(app) as server, httpx.AsyncClient() as client:
        for path in ("/raise", "/silent", "/wrong-order"):
            response = await client.get(server.url + path)
            assert response.status_code == 500, path
            assert response.text == "Internal Server Error"
    assert "boom" in caplog.text
    assert "http.response.start" in caplog.text


async def test_failure_mid_response_closes_the_connection(serve: Serve) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"half", "more_body": True})
        raise RuntimeError("mid-way")

    async with serve(app) as server, raw(server.port) as client:
        await client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers = await client.read_head()
        assert status == 200
        assert headers["transfer-encoding"] == "chunked"
        assert await client.at_eof()


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"NOT HTTP AT ALL\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", 400),
        # Request smuggling: both framings at once (RFC 9112 6.1).
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431),
    ],
)
async def test_malformed_requests_get_a_status_and_a_close(
    serve: Serve, request_bytes: bytes, status: int
) -> None:
    async with serve(echo_scope, max_header_size=65_536) as server:
        async with raw(server.port) as client:
            await client.send(request_bytes)
            got, _, _ = await client.read_response()
            assert got == status
            assert await client.at_eof()
        async with httpx.AsyncClient() as client:  # nothing else disturbed
            assert (await client.get(server.url)).status_code == 200


async def test_idle_keep_alive_connection_is_closed(serve: Serve) -> None:
    async with serve(echo_scope, timeout_keep_alive=0.1) as server, raw(server.port) as client:
        await client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await client.read_response()
        assert await client.at_eof()


async def test_keep_alive_timeout_counts_from_the_last_response(serve: Serve) -> None:
    """Requests for several idle timeouts in a row keep a connection open; idle, it
    closes one timeout after its last response, not after its first."""
    timeout = 0.1
    loop = asyncio.get_running_loop()
    async with serve(echo_scope, timeout_keep_alive=timeout) as server, raw(server.port) as client:
        busy_until = loop.time() + 4 * timeout
        while loop.time() < busy_until:
            await client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await client.read_response())[0] == 200
        last_response = loop.time()
        assert await client.at_eof()
        assert loop.time() - last_response >= timeout * 0.9  # uvloop counts milliseconds


async def test_a_head_after_requests_still_has_its_own_timeout(serve: Serve) -> None:
    """The head timeout, shorter than the keep-alive one, holds on a reused connection."""
    async with (
        serve(echo_scope, timeout_request_head=0.1, timeout_keep_alive=30) as server,
        raw(server.port) as client,
    ):
        await client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await client.read_response())[0] == 200
        await client.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
        assert (await client.read_response())[0] == 408  # read_head waits 5 s at most
        assert await client.at_eof()


async def test_a_slow_app_does_not_stall_other_connections(serve: Serve) -> None:
    release = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/slow":
            await release.wait()
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    async with serve(app) as server, httpx.AsyncClient() as client:
        slow = asyncio.ensure_future(client.get(server.url + "/slow"))
        fast = await client.get(server.url + "/fast")
        assert fast.text == "/fast"
        assert not slow.done()
        release.set()
        async with asyncio.timeout(5):
            assert (await slow).text == "/slow"


async def test_a_client_that_never_reads_is_dropped(serve: Serve) -> None:
    outcome: asyncio.Future[tuple[int, BaseException]] = asyncio.get_running_loop().create_future()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200})
        sent = 0
        try:
            while sent < 1_000_000_000:
                await send({"type": "http.response.body", "body": b"x" * 65536, "more_body": True})
                sent += 65536
        except ClientDisconnected as exc:
            outcome.set_result((sent, exc))

    async with serve(app, timeout_send=0.2) as server, raw(server.port) as client:
        await client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(20):
            sent, exc = await outcome
    # The server buffered at most its high-water mark beyond what the kernel took.
    assert sent < 200_000_000
    assert "read nothing" in str(exc)


async def test_connection_limit_answers_503(serve: Serve) -> None:
    release = asyncio.Event()
    started = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        started.set()
        await release.wait()
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body"})

    async with serve(app, limit_concurrency=1) as server, raw(server.port) as first:
        await first.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(5):
            await started.wait()
        async with raw(server.port) as second:
            await second.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, _ = await second.read_response()
            assert (status, headers["connection"]) == (503, "close")
            assert await second.at_eof()
        release.set()
        status, _, _ = await first.read_response()
        assert status == 200


async def test_access_log_line(serve: Serve, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gateway.web.access")
    async with serve(echo_scope, access_log=True) as server, httpx.AsyncClient() as client:
        await client.get(server.url + "/logged?secret=1")
    line = next(r.getMessage() for r in caplog.records if r.name == "gateway.web.access")
    assert '"GET /logged HTTP/1.1" 200' in line
    assert "secret" not in line


async def test_half_closed_client_still_gets_its_response(serve: Serve) -> None:
    async with serve(echo_scope) as server, raw(server.port) as client:
        await client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        client.writer.write_eof()
        status, _, body = await client.read_response()
        assert status == 200
        assert b'"body": "hi"' in body
        assert await client.at_eof()


async def test_chunked_request_body(serve: Serve) -> None:
    async with serve(echo_scope) as server, raw(server.port) as client:
        await client.send(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )
        status, _, body = await client.read_response()
        assert status == 200
        assert b'"body": "hello world"' in body


# -- every door holds: regressions ----------------------------------------------------------


async def test_content_length_and_connection_close_from_the_app_are_sent_once(
    serve: Serve,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-length", b"2"), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    async with serve(app) as server, raw(server.port) as client:
        await client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(5):
            head = (await client.reader.readuntil(b"\r\n\r\n")).lower()
            assert await client.reader.read() == b"ok"
    assert head.count(b"content-length:") == 1
    assert head.count(b"connection:") == 1


@pytest.mark.parametrize(
    "headers",
    [
        [(b"x-split", b"a\r\nset-cookie: stolen=1")],  # response splitting
        [(b"bad name", b"1")],
        [(b"content-length", b"2"), (b"content-length", b"2")],
        [(b"content-length", b"-1")],
    ],
)
async def test_invalid_response_heads_become_500(
    serve: Serve, headers: list[tuple[bytes, bytes]]
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    async with serve(app) as server, raw(server.port) as client:
        await client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, received, _ = await client.read_response()
    assert status == 500
    assert "set-cookie" not in received


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", 400),  # RFC 9112 3.2: Host is required in HTTP/1.1
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
        (b"GET / HTTP/1.0\r\n\r\n", 200),  # HTTP/1.0 may omit it
        (b"GET / HTTP/1.1\r\nHost: [::1]:8000\r\n\r\n", 200),
        (b"GET / HTTP/1.1\r\nHost:\r\n\r\n", 200),  # empty is allowed (RFC 9110 7.2)
    ],
)
async def test_host_header_rules(serve: Serve, request_bytes: bytes, status: int) -> None:
    async with serve(echo_scope) as server, raw(server.port) as client:
        await client.send(request_bytes)
        assert (await client.read_response())[0] == status


async def test_websocket_upgrade_without_host_is_400(serve: Serve) -> None:
    async with serve(echo_scope) as server, raw(server.port) as client:
        await client.send(
            b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        assert (await client.read_response())[0] == 400


async def test_request_body_dripping_between_pieces_times_out_with_408(serve: Serve) -> None:
    received: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while (message := await receive())["type"] == "http.request":
            pass
        received.set_result(message)

    async with serve(app, timeout_body=0.2) as server, raw(server.port) as client:
        await client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
        status, headers, body = await client.read_response()
        assert (status, headers["connection"], body) == (408, "close", b"Request Timeout")
        assert await client.at_eof()
        async with asyncio.timeout(5):
            assert (await received)["type"] == "http.disconnect"


async def test_request_body_below_the_minimum_rate_times_out_with_408(serve: Serve) -> None:
    """Pieces every 50 ms never trip the 1 s gap, but 20 B/s is below the 1,000 B/s
    asked after the first second: the deadline is 1 s + received/1000 s."""
    async with (
        serve(echo_scope, timeout_body=1.0, body_min_rate=1000) as server,
        raw(server.port) as client,
    ):
        await client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        answer = asyncio.ensure_future(client.read_response())
        sent = 0
        while not answer.done() and sent < 100:
            await client.send(b"x")  # a slow client: pacing is what it does
            sent += 1
            await asyncio.wait({answer}, timeout=0.05)
        assert (await answer)[0] == 408
        assert sent < 100


async def test_body_timeout_waits_while_the_server_does_not_read(serve: Serve) -> None:
    """Backpressure is the server's doing: the client cannot be late while paused."""
    paused = asyncio.Event()
    go = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        paused.set()
        await go.wait()
        body = await read_body(receive)
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"%d" % len(body)})

    async with (
        serve(app, timeout_body=0.1, max_body_buffer=1024) as server,
        raw(server.port) as client,
    ):
        await client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n")
        client.writer.write(b"x" * 300_000)  # more than the buffers hold: the server pauses
        async with asyncio.timeout(5):
            await paused.wait()
        await asyncio.sleep(0.3)  # three body timeouts pass while the server is paused
        go.set()
        await client.writer.drain()
        status, _, body = await client.read_response()
    assert (status, body) == (200, b"300000")


async def test_incomplete_head_gets_408(serve: Serve) -> None:
    async with serve(echo_scope, timeout_request_head=0.1) as server, raw(server.port) as client:
        await client.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
        assert (await client.read_response())[0] == 408
        assert await client.at_eof()


async def test_websocket_over_the_connection_limit_gets_503(serve: Serve) -> None:
    async with serve(echo_scope, limit_concurrency=1) as server, raw(server.port) as first:
        await first.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await first.read_response()  # the first connection stays open (keep-alive)
        async with raw(server.port) as second:
            await second.send(
                b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            assert (await second.read_response())[0] == 503


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET http://[/x HTTP/1.1\r\nHost: h\r\n\r\n",  # urlsplit raised "Invalid IPv6 URL"
        b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-Port: \xc2\xb2\r\n\r\n",  # "²".isdigit()
        b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-Port: " + b"9" * 5000 + b"\r\n\r\n",
    ],
)
async def test_strange_targets_and_proxy_headers_are_served(
    serve: Serve, caplog: pytest.LogCaptureFixture, request_bytes: bytes
) -> None:
    async with (
        serve(
            echo_scope, proxy_headers=True, forwarded_allow_ips=TrustedProxies.parse("*")
        ) as server,
        raw(server.port) as client,
    ):
        await client.send(request_bytes)
        assert (await client.read_response())[0] == 200
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_client_leaving_before_the_response_logs_no_error(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    left = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert (await receive())["type"] == "http.request"
        assert (await receive())["type"] == "http.disconnect"
        left.set()
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"late"})

    async with serve(app) as server:
        async with raw(server.port) as client:
            await client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(5):
            await left.wait()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_bad_requests_are_logged_once_then_counted(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.web")
    async with serve(echo_scope) as server:
        for _ in range(20):
            async with raw(server.port) as client:
                await client.send(b"GARBAGE\r\n\r\n")
                assert (await client.read_response())[0] == 400
    lines = [r for r in caplog.records if "Invalid HTTP request" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].levelno == logging.INFO
    assert lines[0].exc_info is None


async def test_an_application_that_returned_is_not_kept_after_its_client_left(
    serve: Serve,
) -> None:
    """The timer that would cancel a lingering application held it (and its connection)
    for ``app_close_timeout`` even after it returned: ~1.5 KiB per connection for 10 s."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    async with serve(app) as server:
        async with raw(server.port) as client:
            await client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            await wait_until(lambda: bool(server.ctx.connections))
            connection = weakref.ref(next(iter(server.ctx.connections)))
        assert await server.ctx.wait_empty(5)
        gc.collect()
        assert connection() is None
