"""The fleet page: who sees which device, adding one and its one-time login."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.devices.credentials import check_token as check_password
from project.iot.models import Thing
from project.iot.services import create_thing
from tests.project.dashboard.conftest import logged_in

pytestmark = pytest.mark.django_db


def test_the_fleet_lists_only_the_devices_a_member_may_see(staff: Any, member: Any) -> None:
    create_thing(staff, "boiler-1", "Boiler")
    create_thing(member, "fridge-1", "Fridge")
    mine = logged_in(member).get("/").content.decode()
    assert "fridge-1" in mine
    assert "boiler-1" not in mine
    everything = logged_in(staff).get("/").content.decode()
    assert "fridge-1" in everything
    assert "boiler-1" in everything


def test_adding_a_device_shows_its_secret_once_with_command_lines(
    member: Any, settings: Any
) -> None:
    settings.MQTT_PUBLIC_ADDRESS = "gw.example:1884"
    client = logged_in(member)
    page = client.post(
        "/devices/add/", {"name": "Boiler", "device_id": "boiler-7", "commands": "reboot, blink"}
    )
    assert page.status_code == 200
    assert page["Cache-Control"].startswith("max-age=0")
    secret = page.context["login"].secret
    thing = Thing.objects.select_related("credentials").get(device_id="boiler-7")
    assert (thing.owner, thing.commands) == (member, ["reboot", "blink"])
    assert check_password(secret, thing.credentials.password)
    text = page.content.decode()
    assert (
        f"mosquitto_pub -h gw.example -p 1884 -i boiler-7 -u boiler-7 -P {secret} -q 1 "
        "-t devices/boiler-7/telemetry" in text
    )
    assert "-t devices/boiler-7/commands" in text
    assert secret not in client.get("/devices/boiler-7/").content.decode()

    again = client.post("/devices/add/", {"name": "Again", "device_id": "boiler-7"})
    assert again.status_code == 400
    assert "already exists" in again.content.decode()
