"""gateway.devices: per-device ACLs (pure) and hashed credentials (database)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.devices.acl import DeviceACL, filter_covers, parse_rules
from gateway.devices.authenticator import DeviceAuthenticator, Refusal
from gateway.devices.credentials import check_slowly, generate_token
from gateway.devices.models import Device
from gateway.topics import InvalidTopic, filter_matches
from tests.protocols.mqtt.strategies import names_for, topic_filters, topic_names, widened


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


@given(st.data())
def test_a_covering_rule_matches_every_topic_the_filter_matches(data: st.DataObject) -> None:
    requested = data.draw(topic_filters())
    rule = data.draw(widened(requested) | topic_filters())
    name = data.draw(names_for(requested) | topic_names)
    if filter_covers(rule, requested) and filter_matches(requested, name):
        assert filter_matches(rule, name)


@given(topic_filters())
def test_every_filter_covers_itself_and_hash_covers_no_dollar_filter(requested: str) -> None:
    assert filter_covers(requested, requested)
    if requested.startswith("$"):
        assert not filter_covers("#", requested)  # §4.7.2: '#' never matches '$' topics


@given(st.lists(topic_filters(), min_size=1, max_size=3), topic_filters(), topic_names)
def test_a_device_receives_what_it_may_subscribe_to(
    rules: list[str], requested: str, name: str
) -> None:
    acl = DeviceACL.from_text("d1", "", "\n".join(rules))
    if acl.may_subscribe(requested) and filter_matches(requested, name):
        assert acl.may_receive(name)


@given(st.text(max_size=40), st.text(max_size=8))
def test_rules_parse_or_are_invalid_topics(text: str, username: str) -> None:
    try:
        rules = parse_rules(text, username)
    except InvalidTopic:
        return
    assert all(rule and "{username}" not in rule for rule in rules)


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


@pytest.mark.django_db(transaction=True)
async def test_devices_log_in_with_tokens_or_hashed_passwords() -> None:
    token = generate_token()
    await asyncio.to_thread(Device.objects.create_device, "d1", token)
    device = await asyncio.to_thread(Device.objects.create_device, "d2", "s3cret")
    assert token not in (await Device.objects.aget(username="d1")).password
    assert "s3cret" not in device.password
    authenticator = DeviceAuthenticator()
    try:
        login = authenticator.authenticate
        assert await login("d1", token.encode(), "a") == DeviceACL.from_text("d1", "", "")
        assert await login("d2", b"s3cret", "a") == DeviceACL.from_text("d2", "", "")
        assert await login("d1", generate_token().encode(), "a") is Refusal.BAD_CREDENTIALS
        assert await login("d2", b"wrong", "a") is Refusal.BAD_CREDENTIALS
        assert await login("nobody", b"s3cret", "a") is Refusal.BAD_CREDENTIALS
        device.is_active = False
        await device.asave()
        assert await login("d2", b"s3cret", "a") is Refusal.BAD_CREDENTIALS
    finally:
        authenticator.close()


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
    stored = Device.objects.get(username="d9").password
    assert "pw9" not in stored
    assert check_slowly("pw9", stored)
