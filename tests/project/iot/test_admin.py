"""The admin: adding a device creates its credentials and shows the secret once."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from gateway.devices.credentials import check_token
from gateway.devices.models import Device
from project.iot.models import Alert, Thing
from project.iot.services import set_threshold

pytestmark = pytest.mark.django_db

SECRET = re.compile(r"password <code>(gwd_[\w-]+)</code>")


@pytest.fixture
def admin_client(owner: User) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", password="pw"))
    return client


def test_adding_a_device_creates_credentials_and_shows_the_secret_once(
    admin_client: Client, owner: User
) -> None:
    form = {"device_id": "pump-7", "name": "Pump", "owner": owner.pk, "commands": '["stop"]'}
    response = admin_client.post(reverse("admin:iot_thing_add"), form, follow=True)
    assert response.status_code == 200
    found = SECRET.search(response.content.decode())
    assert found is not None, response.content.decode()[:2000]

    thing = Thing.objects.get(device_id="pump-7")
    assert (thing.name, thing.owner, thing.commands) == ("Pump", owner, ["stop"])
    device = Device.objects.get(pk=thing.credentials_id)
    assert device.username == "pump-7"
    assert check_token(found[1], device.password)

    page = admin_client.get(reverse("admin:iot_thing_change", args=[thing.pk]))
    assert found[1] not in page.content.decode()  # never shown again


def test_the_add_form_explains_the_device_id_in_full(admin_client: Client) -> None:
    page = admin_client.get(reverse("admin:iot_thing_add")).content.decode()
    assert "The MQTT username, also the middle of its topics: devices/ID/telemetry" in page


def test_a_device_id_taken_by_other_credentials_is_a_form_error(
    admin_client: Client, owner: User
) -> None:
    Device.objects.create_device("taken", "pw")
    form = {"device_id": "taken", "name": "X", "owner": owner.pk, "commands": "[]"}
    response = admin_client.post(reverse("admin:iot_thing_add"), form)
    assert response.status_code == 200  # the form again, with the error
    assert "MQTT credentials with this username already exist." in response.content.decode()
    assert not Thing.objects.exists()


def test_the_reset_action_shows_a_new_secret(
    admin_client: Client, make_thing: Callable[..., Any]
) -> None:
    thing, old = make_thing()
    response = admin_client.post(
        reverse("admin:iot_thing_changelist"),
        {"action": "reset_mqtt_password", "_selected_action": [thing.pk]},
        follow=True,
    )
    found = SECRET.search(response.content.decode())
    assert found is not None
    password = Device.objects.get(pk=thing.credentials_id).password
    assert (check_token(found[1], password), check_token(old, password)) == (True, False)


def test_deleting_a_threshold_in_the_admin_clears_its_alert(
    admin_client: Client, thing: Thing
) -> None:
    threshold = set_threshold(thing, "t", "above", 1)
    alert = Alert.objects.create(
        thing=thing, threshold=threshold, metric="t", direction="above", limit=1, value=2,
        opened_at=timezone.now(),
    )  # fmt: skip
    url = reverse("admin:iot_threshold_delete", args=[threshold.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    alert.refresh_from_db()
    assert alert.cleared_at is not None


def test_alerts_and_commands_are_read_only_records(admin_client: Client) -> None:
    assert admin_client.get(reverse("admin:iot_alert_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:iot_command_add")).status_code == 403
