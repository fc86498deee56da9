"""Test doubles for the MQTT tests and benchmarks: a device store without a database,
a link without a broker."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.devices.acl import DeviceACL
from gateway.devices.authenticator import StoredDevice
from gateway.devices.credentials import hash_secret
from gateway.mqtt.events import BrokerInfo, Publish, Role
from gateway.startup import Summary
from protocols.mqtt.link import LinkSink


class FakeDevices:
    """A ``find_device`` for :class:`DeviceAuthenticator` over a dict: no database.

    ``FakeDevices(d1="secret")``: device ``d1`` with the default ACL
    (``devices/d1/#``), its secret stored as ``gateway.devices`` stores it.
    """

    def __init__(self, **secrets: str) -> None:
        self.stored = {name: hash_secret(secret) for name, secret in secrets.items()}
        self.lookups = 0

    async def __call__(self, username: str) -> StoredDevice | None:
        self.lookups += 1
        stored = self.stored.get(username)
        if stored is None:
            return None
        return StoredDevice(stored, lambda: DeviceACL.from_text(username, "", ""))


class RecordingLink:
    """A :class:`~protocols.mqtt.link.Link` with no broker: it records what the server
    asks of it, answers as a broker granting everything would, and fails with
    :class:`ConnectionError` while ``down`` (for the unit tests of the server's parts)."""

    role: Role = "bridge"
    mqtt_version = "5.0"
    broker_info: BrokerInfo = {"host": "broker.test", "port": 1883, "tls": False}
    connected = True

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        #: The same calls, to await as they come.
        self.made: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.down = False
        #: The SUBACK codes to answer with (None: the QoS asked for, granted).
        self.suback: list[int] | None = None

    def _call(self, operation: str, argument: Any = None) -> None:
        if self.down:
            raise ConnectionError("the link is down")
        self._record(operation, argument)

    def _record(self, operation: str, argument: Any) -> None:
        self.calls.append((operation, argument))
        self.made.put_nowait((operation, argument))

    def open_connections(self) -> int:
        return 1

    def describe(self, summary: Summary) -> None:
        pass

    async def start(self, sink: LinkSink) -> None:
        self._call("subscribe", sink.wanted_filters())

    async def stop(self) -> None:
        pass

    async def publish(self, message: Publish) -> asyncio.Future[list[int]] | None:
        self._call("publish", message.topic)
        if message.request_id is None:
            return None
        done: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        done.set_result([0])
        return done

    async def subscribe(self, filters: dict[str, int]) -> list[int]:
        self._call("subscribe", filters)
        return self.suback if self.suback is not None else list(filters.values())

    async def unsubscribe(self, filters: list[str]) -> list[int]:
        self._call("unsubscribe", filters)
        return [0] * len(filters)

    def pause_reading(self) -> None:
        self._record("pause", None)

    def resume_reading(self) -> None:
        self._record("resume", None)
