"""gateway.devices.admin: a device cannot be added without a secret."""

from __future__ import annotations

import pytest

from gateway.devices.admin import DeviceForm
from gateway.devices.models import Device

pytestmark = pytest.mark.django_db


def test_adding_a_device_without_a_secret_is_refused() -> None:
    form = DeviceForm(data={"username": "thermostat-1", "is_active": True})
    assert not form.is_valid()
    assert "new_password" in form.errors


def test_changing_a_device_may_keep_its_secret() -> None:
    device = Device.objects.create_device("thermostat-2", "s3cret")
    stored = device.password
    form = DeviceForm(data={"username": "thermostat-2", "is_active": True}, instance=device)
    assert form.is_valid(), form.errors
    form.save()
    device.refresh_from_db()
    assert device.password == stored
