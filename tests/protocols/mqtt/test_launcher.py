"""``gateway mqtt``: the launcher, and a device (mosquitto_pub/sub) end to end in both roles."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core.exceptions import ImproperlyConfigured

from gateway.cli import build_parser, launcher_options, main
from gateway.routing import ProtocolTypeRouter, URLRouter
from protocols.mqtt import launcher
from protocols.mqtt.bridge import BridgeLink
from protocols.mqtt.broker import BrokerLink
from protocols.mqtt.door import DoorLimits
from protocols.mqtt.listeners import TLSFiles
from tests.protocols.mqtt import example
from tests.protocols.mqtt.conftest import WAIT, Device

ROOT = Path(__file__).resolve().parents[3]
APP = "tests.protocols.mqtt.example:application"


def parse(*argv: str) -> launcher.MqttOptions:
    """``gateway mqtt APP ARGV...``'s options, as the command line builds them."""
    options: launcher.MqttOptions = launcher_options(
        launcher, build_parser().parse_args(["mqtt", APP, *argv])
    )
    return options


def test_wanted_only_when_the_application_routes_mqtt() -> None:
    args = parse()
    assert launcher.wanted(example.application, args)
    assert not launcher.wanted(ProtocolTypeRouter({"websocket": URLRouter([])}), args)


def test_build_picks_the_role() -> None:
    broker = launcher.build(example.application, parse("--port", "1999", "--mqtt-anonymous"))
    assert isinstance(broker.link, BrokerLink)
    assert (broker.link.port, broker.link.allow_anonymous) == (1999, True)
    bridge = launcher.build(
        example.application,
        parse("--url", "mqtt://u:p@127.0.0.1:1883?client_id=gw", "--mqtt-share", "grp"),
    )
    assert isinstance(bridge.link, BridgeLink)
    assert (bridge.link.config.share_group, bridge.link.client_id) == ("grp", "gw")


def test_the_embedded_broker_has_safe_defaults_and_options(tmp_path: Path) -> None:
    broker = launcher.build(example.application, parse()).link
    assert isinstance(broker, BrokerLink)
    assert (broker.host, broker.tls, broker.door.limits) == ("127.0.0.1", None, DoorLimits())
    certfile, keyfile = tmp_path / "server.crt", tmp_path / "server.key"
    options = [
        *("--host", "0.0.0.0", "--mqtt-connect-timeout", "2.5", "--mqtt-max-connections", "7"),
        *("--mqtt-max-packet-size", "4096", "--mqtt-auth-workers", "3", "--mqtt-wss-port", "0"),
        *("--mqtt-ssl-certfile", str(certfile), "--mqtt-ssl-keyfile", str(keyfile)),
    ]
    broker = launcher.build(example.application, parse(*options)).link
    assert isinstance(broker, BrokerLink)
    assert broker.door.limits == DoorLimits(2.5, 7, 4096)
    assert (broker.host, broker.tls_port, broker.wss_port) == ("0.0.0.0", 8883, 0)
    assert broker.tls == TLSFiles(str(certfile), str(keyfile))
    assert broker.authenticator.lane.workers == 3
    with pytest.raises(ImproperlyConfigured, match="MQTT_MAX_PACKET_SIZE"):
        launcher.build(example.application, parse("--mqtt-max-packet-size", "0"))
    with pytest.raises(ImproperlyConfigured, match="both MQTT_SSL_CERTFILE and MQTT_SSL_KEYFILE"):
        launcher.build(example.application, parse("--mqtt-ssl-certfile", str(certfile)))


def test_misconfiguration_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ImproperlyConfigured, match="TopicRouter"):
        launcher.build(ProtocolTypeRouter({"mqtt": URLRouter([])}), parse())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    assert main(["mqtt", APP, "--url", "http://nowhere"]) == 2
    assert "MQTT_URL must start with mqtt://" in capsys.readouterr().err


def test_a_taken_port_says_what_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["mqtt", APP, "--port", str(port), "--mqtt-anonymous"]) == 2
    error = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port} (--mqtt-port)" in error
    assert f"pick a free port with --mqtt-port {port + 1}" in error


class Gateway:
    """``gateway mqtt`` in a child process; its log read as it comes; stopped with SIGTERM."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: asyncio.Queue[str] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stderr is not None
        async for line in self.process.stderr:  # drained always: a full pipe would block it
            self.lines.put_nowait(line.decode())
        self.lines.put_nowait("")

    async def wait_for_log(self, pattern: str) -> re.Match[str]:
        seen: list[str] = []
        async with asyncio.timeout(WAIT):
            while True:
                line = await self.lines.get()
                if not line:
                    raise AssertionError("gateway exited:\n" + "".join(seen))
                seen.append(line)
                found = re.search(pattern, line)
                if found:
                    return found

    async def stop(self) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(WAIT):
            await self.process.wait()
            await self.reader
        return self.process.returncode or 0


@pytest.fixture
async def gateway() -> AsyncIterator[Any]:
    started: list[Gateway] = []

    async def start(*argv: str) -> Gateway:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)}
        env.pop("MQTT_URL", None)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway.cli",
            "mqtt",
            APP,
            *argv,
            cwd=ROOT,
            env=env,
            stderr=asyncio.subprocess.PIPE,
        )
        started.append(Gateway(process))
        return started[-1]

    yield start
    for server in started:
        if server.process.returncode is None:
            server.process.kill()
            await server.process.wait()
        await server.reader


async def device_round_trip(port: int, device: str, devices: Callable[..., Device]) -> Any:
    """A thermostat reports with mosquitto_pub; its heater (paho) gets the command."""
    heater = devices(port)
    await heater.connect()
    assert await heater.subscribe(f"devices/{device}/cmd") == [1]
    reading = json.dumps({"seq": 1, "temperature": 17.5})
    publisher = await asyncio.create_subprocess_exec(
        "mosquitto_pub",
        "-p",
        str(port),
        "-t",
        f"devices/{device}/telemetry",
        "-q",
        "1",
        "-m",
        reading,
    )
    async with asyncio.timeout(WAIT):
        assert await publisher.wait() == 0
    command = await heater.next_message()
    return json.loads(command.payload)


@pytest.mark.mqtt
async def test_device_talks_to_the_example_through_the_embedded_broker(
    gateway: Any, unique: str, devices: Callable[..., Device]
) -> None:
    server = await gateway("--host", "127.0.0.1", "--port", "0", "--mqtt-anonymous")
    found = await server.wait_for_log(r"embedded MQTT broker listening on 127\.0\.0\.1:(\d+)")
    await server.wait_for_log("mqtt started")
    command = await device_round_trip(int(found.group(1)), unique, devices)
    assert command == {"seq": 1, "heat": True}
    assert await server.stop() == 0


@pytest.mark.mqtt
async def test_device_talks_to_the_example_through_the_bridge(
    gateway: Any, unique: str, mosquitto_url: str, devices: Callable[..., Device]
) -> None:
    server = await gateway("--url", mosquitto_url)
    await server.wait_for_log("mqtt started")
    command = await device_round_trip(urlsplit(mosquitto_url).port or 1883, unique, devices)
    assert command == {"seq": 1, "heat": True}
    assert await server.stop() == 0
