"""Test doubles for the MQTT tests and benchmarks: a device store without a database."""

from __future__ import annotations

from gateway.devices.acl import DeviceACL
from gateway.devices.authenticator import StoredDevice
from gateway.devices.credentials import hash_secret


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
