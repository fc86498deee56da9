"""The server as a service: lifespan, graceful shutdown, binding, TLS, the thread runner."""

from __future__ import annotations

import asyncio
import datetime
import os
import socket
import ssl
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from gateway.startup import Summary
from gateway.types import Receive, Scope, Send
from protocols.websocket import Config, ServerThread, WebServer
from protocols.websocket.lifespan import LifespanFailed
from tests.protocols.websocket.conftest import Serve


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        raise ValueError(f"unsupported scope {scope['type']!r}")
    await send({"type": "http.response.start", "status": 200})
    await send({"type": "http.response.body", "body": b"hello"})


class LifespanApp:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.events: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                self.events.append(message["type"])
                if message["type"] == "lifespan.startup":
                    if self.fail:
                        await send({"type": "lifespan.startup.failed", "message": "no db"})
                        return
                    scope["state"]["greeting"] = "from lifespan"
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": scope["state"]["greeting"].encode()})


async def test_lifespan_state_reaches_every_scope(serve: Serve) -> None:
    app = LifespanApp()
    async with serve(app, lifespan="on") as server, httpx.AsyncClient() as client:
        assert (await client.get(server.url)).text == "from lifespan"
    assert app.events == ["lifespan.startup", "lifespan.shutdown"]


async def test_lifespan_startup_failure_fails_start() -> None:
    server = WebServer(LifespanApp(fail=True), Config(port=0, lifespan="auto"))
    with pytest.raises(LifespanFailed, match="no db"):
        await server.start()
    await server.stop(1.0)


async def test_lifespan_on_requires_support() -> None:
    server = WebServer(hello, Config(port=0, lifespan="on"))
    with pytest.raises(LifespanFailed, match="unsupported scope"):
        await server.start()
    await server.stop(1.0)


async def test_apps_without_lifespan_still_run(serve: Serve) -> None:
    async with serve(hello, lifespan="auto") as server, httpx.AsyncClient() as client:
        assert (await client.get(server.url)).text == "hello"


async def test_graceful_shutdown_closes_websockets_with_1001_and_finishes_http() -> None:
    disconnects: list[dict[str, Any]] = []
    in_flight = asyncio.Event()
    release = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            disconnects.append(await receive())
            return
        in_flight.set()
        await release.wait()
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"finished"})

    server = WebServer(app, Config(port=0, access_log=False, lifespan="off"))
    await server.start()
    async with connect(f"ws://127.0.0.1:{server.port}/") as ws, httpx.AsyncClient() as client:
        request = asyncio.ensure_future(client.get(server.url))
        async with asyncio.timeout(5):
            await in_flight.wait()
        stopping = asyncio.ensure_future(server.stop(5.0))
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1001
        release.set()
        async with asyncio.timeout(5):
            response = await request
            await stopping
    assert response.text == "finished"
    assert response.headers["connection"] == "close"
    assert disconnects == [
        {"type": "websocket.disconnect", "code": 1001, "reason": "server shutting down"}
    ]
    with pytest.raises(ConnectionRefusedError):  # no longer accepting
        await asyncio.open_connection("127.0.0.1", server.port)


async def test_shutdown_is_bounded_for_apps_that_never_finish() -> None:
    cancelled = asyncio.Event()
    started = asyncio.Event()

    async def stuck(scope: Scope, receive: Receive, send: Send) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    server = WebServer(stuck, Config(port=0, access_log=False, lifespan="off"))
    await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    async with asyncio.timeout(5):
        await started.wait()
        await server.stop(0.2)
    assert cancelled.is_set()
    assert await reader.read() == b""
    writer.close()


async def test_unix_socket() -> None:
    servers: list[Any] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        servers.append(scope["server"])
        await hello(scope, receive, send)

    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "web.sock")
        server = WebServer(app, Config(uds=path, access_log=False, lifespan="off"))
        await server.start()
        try:
            transport = httpx.AsyncHTTPTransport(uds=path)
            async with httpx.AsyncClient(transport=transport) as client:
                assert (await client.get("http://local/")).text == "hello"
            assert servers == [(path, None)]
        finally:
            await server.stop(1.0)
        assert not await asyncio.to_thread(os.path.exists, path)


async def test_inherited_file_descriptor() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    server = WebServer(hello, Config(fd=sock.detach(), access_log=False))
    await server.start()
    try:
        assert server.port == port
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{port}/")).text == "hello"
    finally:
        await server.stop(1.0)


def self_signed(directory: Path) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(certfile), str(keyfile)


async def test_tls_serves_https_and_wss(tmp_path: Path) -> None:
    certfile, keyfile = self_signed(tmp_path)
    schemes: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        schemes.append(scope["scheme"])
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await receive()
            return
        await hello(scope, receive, send)

    config = Config(
        host="localhost", port=0, ssl_certfile=certfile, ssl_keyfile=keyfile, access_log=False
    )
    server = WebServer(app, config)
    await server.start()
    client_context = ssl.create_default_context(cafile=certfile)
    try:
        async with httpx.AsyncClient(verify=client_context) as client:
            assert (await client.get(f"https://localhost:{server.port}/")).text == "hello"
        async with connect(f"wss://localhost:{server.port}/", ssl=client_context):
            pass
    finally:
        await server.stop(1.0)
    assert schemes == ["https", "wss"]


def test_server_thread_for_synchronous_callers() -> None:
    config = Config(port=0, access_log=False, lifespan="off")
    with ServerThread(hello, config) as running:
        url = f"http://127.0.0.1:{running.port}/"
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.read() == b"hello"


def test_server_thread_reports_startup_failure() -> None:
    thread = ServerThread(LifespanApp(fail=True), Config(port=0, lifespan="on"))
    with pytest.raises(LifespanFailed):
        thread.start()


@pytest.mark.parametrize(
    ("host", "warned"), [("127.0.0.1", False), ("0.0.0.0", True)], ids=["loopback", "everywhere"]
)
async def test_the_summary_names_the_sites_url_and_warns_of_logins_in_clear(
    serve: Serve, host: str, warned: bool
) -> None:
    async with serve(hello, host=host) as server:
        summary = Summary("test")
        server.describe(summary)
    assert summary.web_url == f"http://127.0.0.1:{server.port}"
    assert [w.split(":")[0] for w in summary.warnings] == (
        ["the web server listens on 0.0.0.0 without TLS"] if warned else []
    )
