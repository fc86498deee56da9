"""TLS: the bridge with a client certificate against a private Mosquitto; the embedded
broker's own TLS and secure WebSocket listeners."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.core.exceptions import ImproperlyConfigured

from gateway.routing import TopicRouter, topic
from protocols.mqtt.bridge import BridgeLink
from protocols.mqtt.broker import BrokerLink
from protocols.mqtt.config import BridgeConfig
from protocols.mqtt.listeners import TLSFiles
from tests.ports import free_port
from tests.protocols.mqtt.conftest import WAIT, Device, Event, Recorder, next_event
from tests.protocols.mqtt.test_restart import Mosquitto

pytestmark = pytest.mark.mqtt


def issue(
    name: str, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None, *, ca: bool = False
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, issuer_key = issuer if issuer is not None else (subject, key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256()), key


def write(path: Path, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    path.with_suffix(".crt").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@dataclass
class TlsBroker:
    port: int
    files: Path

    def tls_options(self, prefix: str) -> list[str]:
        return [
            "--cafile",
            str(self.files / "ca.crt"),
            "--cert",
            str(self.files / f"{prefix}.crt"),
            "--key",
            str(self.files / f"{prefix}.key"),
        ]


@pytest.fixture
async def tls_broker(tmp_path: Path) -> AsyncIterator[TlsBroker]:
    """A private Mosquitto that speaks only TLS and requires client certificates."""
    ca_cert, ca_key = issue("gateway test CA", None, ca=True)
    authority = (ca_cert.subject, ca_key)
    write(tmp_path / "ca", ca_cert, ca_key)
    write(tmp_path / "server", *issue("127.0.0.1", authority))
    write(tmp_path / "bridge", *issue("gateway-bridge", authority))
    write(tmp_path / "device", *issue("device-1", authority))
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(
        # `user root`: when started as root, keep reading our files as root.
        f"user root\nlistener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        f"cafile {tmp_path / 'ca.crt'}\ncertfile {tmp_path / 'server.crt'}\n"
        f"keyfile {tmp_path / 'server.key'}\nrequire_certificate true\n"
        "log_dest stderr\nlog_type error\nlog_type notice\nlog_type information\n"
    )
    broker = Mosquitto(config, port)
    await broker.start()
    yield TlsBroker(port, tmp_path)
    await broker.kill()


async def test_bridge_over_tls_with_a_client_certificate(
    tls_broker: TlsBroker, unique: str, serve: Callable[..., Any]
) -> None:
    files = tls_broker.files
    url = (
        f"mqtts://127.0.0.1:{tls_broker.port}?ca={files / 'ca.crt'}"
        f"&cert={files / 'bridge.crt'}&key={files / 'bridge.key'}"
    )
    events: asyncio.Queue[Event] = asyncio.Queue()
    application = TopicRouter([topic(f"{unique}/<n>", Recorder.as_asgi(events=events))])
    server = await serve(application, BridgeLink(BridgeConfig.from_url(url)))
    assert server.link.broker_info == {"host": "127.0.0.1", "port": tls_broker.port, "tls": True}

    device = await asyncio.create_subprocess_exec(
        "mosquitto_pub",
        "-h",
        "127.0.0.1",
        "-p",
        str(tls_broker.port),
        *tls_broker.tls_options("device"),
        "-t",
        f"{unique}/1",
        "-q",
        "1",
        "-m",
        "sealed",
    )
    async with asyncio.timeout(WAIT):
        assert await device.wait() == 0
    message = await next_event(events, "message")
    assert (message.key, message.data["payload"]) == ({"n": "1"}, b"sealed")


async def test_tls_without_a_client_certificate_is_refused(
    tls_broker: TlsBroker, serve: Callable[..., Any]
) -> None:
    url = f"mqtts://127.0.0.1:{tls_broker.port}?ca={tls_broker.files / 'ca.crt'}"
    link = BridgeLink(BridgeConfig.from_url(url), start_timeout=1.0)
    with pytest.raises(ConnectionError, match=f"mqtts://127.0.0.1:{tls_broker.port}"):
        await serve(TopicRouter([]), link)


async def test_the_embedded_broker_speaks_tls_and_secure_websocket(
    tmp_path: Path, serve: Callable[..., Any]
) -> None:
    ca_cert, ca_key = issue("gateway test CA", None, ca=True)
    write(tmp_path / "ca", ca_cert, ca_key)
    write(tmp_path / "server", *issue("127.0.0.1", (ca_cert.subject, ca_key)))
    files = TLSFiles(str(tmp_path / "server.crt"), str(tmp_path / "server.key"))
    link = BrokerLink("127.0.0.1", 0, tls=files, tls_port=0, wss_port=0, allow_anonymous=True)
    events: asyncio.Queue[Event] = asyncio.Queue()
    consumer = Recorder.as_asgi(events=events)
    await serve(TopicRouter([topic("devices/<device_id>/telemetry", consumer)]), link)
    assert link.tls_port is not None
    assert link.wss_port is not None
    for port, transport in [(link.tls_port, "tcp"), (link.wss_port, "websockets")]:
        device = Device(port, f"sealed-{transport}", transport=transport)
        device.client.tls_set(ca_certs=str(tmp_path / "ca.crt"))
        try:
            assert not (await device.connect()).is_failure
            await device.publish(f"devices/{transport}/telemetry", "sealed")
            message = await next_event(events, "message")
            assert (message.key, message.data["payload"]) == ({"device_id": transport}, b"sealed")
        finally:
            await device.close()


async def test_the_embedded_broker_refuses_to_start_without_its_certificate(
    tmp_path: Path, serve: Callable[..., Any]
) -> None:
    missing = TLSFiles(str(tmp_path / "none.crt"), str(tmp_path / "none.key"))
    with pytest.raises(ImproperlyConfigured, match="--mqtt-ssl-certfile"):
        await serve(TopicRouter([]), BrokerLink("127.0.0.1", 0, tls=missing, tls_port=0))
    with pytest.raises(ImproperlyConfigured, match="needs a certificate"):
        BrokerLink("127.0.0.1", 0, wss_port=0)
