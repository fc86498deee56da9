"""gateway.devices: per-device ACLs (pure) and hashed credentials (database)."""

from __future__ import annotations

import pytest

from gateway.devices.acl import DeviceACL, filter_covers, parse_rules
from gateway.devices.models import Device, authenticate_device
from gateway.topics import InvalidTopic


@pytest.mark.parametrize(
    ("rule", "requested", "expected"),
    [
        ("devices/d1/#", "devices/d1/#", True),
        ("devices/d1/#", "devices/d1/cmd", True),
        ("devices/d1/#", "devices/+/cmd", False),
        ("devices/d1/#", "#", False),
        ("devices/+/cmd", "devices/d1/cmd", True),
        ("devices/+/cmd", "devices/+/cmd", True),
        ("devices/+/cmd", "devices/#", False),
        ("a/b", "a/b/c", False),
    ],
)
def test_filter_covers(rule: str, requested: str, expected: bool) -> None:
    assert filter_covers(rule, requested) is expected


def test_default_acl_is_the_devices_own_subtree() -> None:
    acl = DeviceACL.from_text("d1", "", "")
    assert acl.may_publish("devices/d1/telemetry")
    assert not acl.may_publish("devices/d2/telemetry")
    assert acl.may_subscribe("devices/d1/cmd/#")
    assert not acl.may_subscribe("devices/+/cmd")
    assert acl.may_receive("devices/d1/cmd")
    assert not acl.may_receive("devices/d2/cmd")


def test_custom_rules_expand_username() -> None:
    acl = DeviceACL.from_text("d1", "sensors/{username}/+\n# a comment\n", "broadcast/#")
    assert acl.publish == ("sensors/d1/+",)
    assert acl.may_subscribe("broadcast/all")
    with pytest.raises(InvalidTopic):
        parse_rules("a/#/b", "d1")
    with pytest.raises(InvalidTopic):
        parse_rules("devices/{username}/#", "evil/#")


@pytest.mark.django_db
def test_passwords_are_hashed_and_checked() -> None:
    device = Device.objects.create_device("d1", "s3cret")
    assert "s3cret" not in device.password
    assert authenticate_device("d1", "s3cret") == DeviceACL.from_text("d1", "", "")
    assert authenticate_device("d1", "wrong") is None
    assert authenticate_device("nobody", "s3cret") is None
    assert authenticate_device(None, None) is None
    device.is_active = False
    device.save()
    assert authenticate_device("d1", "s3cret") is None


@pytest.mark.django_db
def test_admin_sets_hashed_passwords() -> None:
    from django.contrib import admin

    from gateway.devices.admin import DeviceAdmin, DeviceForm

    assert isinstance(admin.site._registry[Device], DeviceAdmin)
    form = DeviceForm(
        data={"username": "d9", "is_active": True, "new_password": "pw9", "publish_topics": ""}
    )
    assert form.is_valid(), form.errors
    device = form.save(commit=False)
    admin.site._registry[Device].save_model(None, device, form, change=False)  # type: ignore[arg-type]
    assert authenticate_device("d9", "pw9") is not None
    assert "pw9" not in Device.objects.get(username="d9").password
