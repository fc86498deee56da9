"""Showing a device's MQTT secret, once: the page answered to the POST that made it.

Only the secret's hash is stored, so this page is the one moment it exists in
clear: it is never cached, and reloading it re-posts the form, which adds
nothing twice (the id is taken) and resets nothing by accident (the browser asks).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from gateway.conf import setting
from project.iot.models import Thing

#: The broker address devices use, when ``MQTT_PUBLIC_ADDRESS`` does not say it: the
#: dashboard's own host name on MQTT's registered port (the appliance's default).
MQTT_PORT = 1883


@dataclass(frozen=True)
class DeviceLogin:
    """What a device needs to connect, and the command lines that prove it."""

    thing: Thing
    secret: str
    host: str
    port: int

    def _client(self, tool: str, client_id: str) -> str:
        quoted = shlex.quote
        return (
            f"{tool} -h {quoted(self.host)} -p {self.port} -i {quoted(client_id)} "
            f"-u {quoted(self.thing.device_id)} -P {quoted(self.secret)} -q 1"
        )

    @property
    def topics(self) -> str:
        return f"devices/{self.thing.device_id}"

    @property
    def publish(self) -> str:
        return (
            f"{self._client('mosquitto_pub', self.thing.device_id)} "
            f"-t {self.topics}/telemetry -m '{{\"temperature\": 21.5}}'"
        )

    @property
    def subscribe(self) -> str:
        return (
            f"{self._client('mosquitto_sub', self.thing.device_id + '-cmd')} "
            f"-t {self.topics}/commands"
        )

    @property
    def acknowledge(self) -> str:
        return (
            f"{self._client('mosquitto_pub', self.thing.device_id + '-ack')} "
            f'-t {self.topics}/commands/ack -m \'{{"id": "<id>", "ok": true}}\''
        )


def broker_address(request: HttpRequest) -> tuple[str, int]:
    """``MQTT_PUBLIC_ADDRESS`` (``host:port``, ``host`` or ``:port``) filled in with the
    page's host name and port 1883: where the devices of this appliance connect."""
    host, _, port = str(setting("MQTT_PUBLIC_ADDRESS", "")).rpartition(":")
    if not host and not port.isdigit():
        host, port = port, ""
    return host or request.get_host().rsplit(":", 1)[0], int(port or MQTT_PORT)


@never_cache
def show_secret(request: HttpRequest, thing: Thing, secret: str, *, new: bool) -> HttpResponse:
    host, port = broker_address(request)
    login = DeviceLogin(thing, secret, host, port)
    return render(
        request, "dashboard/credentials.html", {"login": login, "new": new, "page": "fleet"}
    )
