"""The service layer the dashboard and the chatbot call: devices, credentials,
visibility, commands, thresholds, readings."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ValidationError
from django.db.models import ProtectedError
from django.test import override_settings
from django.utils import timezone

from gateway.devices.credentials import check_token, is_token
from gateway.devices.models import Device
from gateway.layers import get_channel_layer
from gateway.mqtt.events import PUBLISH_CHANNEL
from gateway.types import Message
from project.iot.events import ALERTS_GROUP, COMMANDS_GROUP
from project.iot.models import Alert, Command, Reading, Thing
from project.iot.services import (
    athing_for,
    avisible_things,
    create_thing,
    delete_threshold,
    expire_overdue_commands,
    open_alerts,
    recent_readings,
    reset_credentials,
    send_command,
    set_threshold,
    summaries,
    thing_for,
    visible_things,
)
from tests.project.iot.conftest import WAIT, in_thread

pytestmark = pytest.mark.django_db

Make = Callable[..., tuple[Thing, str]]


def receive(channel: str) -> Message:
    """The next message on a channel of the layer, from sync code."""

    async def next_message() -> Message:
        layer = get_channel_layer()
        assert layer is not None
        async with asyncio.timeout(WAIT):
            return await layer.receive(channel)

    return async_to_sync(next_message)()


def group_events(*groups: str) -> Callable[[], Message]:
    """Join ``groups`` with a new channel; a function returning its next event."""
    layer = get_channel_layer()
    assert layer is not None
    channel = async_to_sync(layer.new_channel)()
    for group in groups:
        async_to_sync(layer.group_add)(group, channel)
    return lambda: receive(channel)


# -- devices and credentials -------------------------------------------------------


def test_a_new_device_gets_credentials_confined_to_its_topics(owner: User, unique: str) -> None:
    thing, secret = create_thing(owner, f"boiler-{unique}", "Boiler", commands=["reboot"])
    device = Device.objects.get(pk=thing.credentials_id)
    assert device.username == thing.device_id
    assert is_token(secret)  # 256 random bits, checked fast at every connect
    assert secret not in device.password  # only the hash is stored
    assert check_token(secret, device.password)
    acl = device.acl()
    assert acl.may_publish(f"devices/{thing.device_id}/telemetry")
    assert acl.may_publish(f"devices/{thing.device_id}/commands/ack")
    assert not acl.may_publish("devices/someone-else/telemetry")
    assert acl.may_subscribe(f"devices/{thing.device_id}/commands")
    assert not acl.may_subscribe(f"devices/{thing.device_id}/#")
    assert (thing.commands, thing.owner, thing.online) == (["reboot"], owner, False)
    assert create_thing(owner, f"other-{unique}", "Other")[1] != secret


@pytest.mark.parametrize("device_id", ["", "has space", "slash/in/it", "plus+", "x" * 65])
def test_a_bad_device_id_creates_nothing(owner: User, device_id: str) -> None:
    with pytest.raises(ValidationError) as refused:
        create_thing(owner, device_id, "Bad")
    assert "device_id" in refused.value.message_dict
    assert (Thing.objects.count(), Device.objects.count()) == (0, 0)


def test_a_device_id_already_used_as_an_mqtt_username_is_refused(owner: User, thing: Thing) -> None:
    Device.objects.create_device("legacy", "pw")
    for taken in ("legacy", thing.device_id):
        with pytest.raises(ValidationError) as refused:
            create_thing(owner, taken, "Again")
        assert "device_id" in refused.value.message_dict
    assert (Thing.objects.count(), Device.objects.count()) == (1, 2)


def test_reset_credentials_replaces_the_secret(make_thing: Make) -> None:
    thing, old = make_thing()
    new = reset_credentials(thing)
    device = Device.objects.get(pk=thing.credentials_id)
    assert (check_token(new, device.password), check_token(old, device.password)) == (True, False)


def test_credentials_live_and_die_with_their_device(make_thing: Make) -> None:
    thing, _ = make_thing()
    with pytest.raises(ProtectedError):
        thing.credentials.delete()
    one, _ = make_thing("d2")
    Thing.objects.filter(pk__in=[thing.pk, one.pk]).delete()  # the admin's bulk delete
    assert Device.objects.count() == 0


# -- who sees what ----------------------------------------------------------------


def test_users_see_their_own_devices_and_staff_see_all(make_thing: Make, owner: User) -> None:
    mine, _ = make_thing("mine")
    stranger = User.objects.create_user("stranger")
    theirs, _ = make_thing("theirs", owner=stranger)
    staff = User.objects.create_user("staff", is_staff=True)
    inactive = User.objects.create_user("inactive", is_staff=True, is_active=False)

    assert list(visible_things(owner)) == [mine]
    assert list(visible_things(staff)) == sorted([mine, theirs], key=lambda t: t.device_id)
    assert list(visible_things(AnonymousUser())) == list(visible_things(inactive)) == []
    assert thing_for(owner, mine.device_id) == mine
    with pytest.raises(Thing.DoesNotExist):
        thing_for(owner, theirs.device_id)  # exactly like a device that does not exist
    with pytest.raises(Thing.DoesNotExist):
        thing_for(owner, "no-such-device")


def test_summaries_are_the_live_event_shape_with_open_alert_counts(
    make_thing: Make, owner: User
) -> None:
    thing, _ = make_thing(online=True, last_values={"t": 21.5}, bad_payloads=2)
    common = {"thing": thing, "metric": "t", "direction": "above", "limit": 1, "value": 2}
    Alert.objects.create(**common, opened_at=timezone.now())
    Alert.objects.create(**common, opened_at=timezone.now(), cleared_at=timezone.now())
    assert summaries(owner) == [
        {
            "device_id": thing.device_id,
            "name": thing.name,
            "owner_id": owner.pk,
            "online": True,
            "last_seen": None,
            "last_values": {"t": 21.5},
            "last_reading_at": None,
            "bad_payloads": 2,
            "open_alerts": 1,
        }
    ]


# -- commands ----------------------------------------------------------------------


def test_a_command_is_published_through_the_mqtt_server_channel_and_announced(
    make_thing: Make, owner: User
) -> None:
    thing, _ = make_thing(online=True, commands=["reboot", "blink"])
    events = group_events(COMMANDS_GROUP)
    command = send_command(thing, "blink", {"times": 3}, user=owner, via="api")
    assert (command.status, command.requested_by, command.via) == ("pending", owner, "api")

    published = receive(PUBLISH_CHANNEL)
    assert published == {
        "type": "mqtt.publish",
        "topic": f"devices/{thing.device_id}/commands",
        "payload": json.dumps({"id": str(command.pk), "name": "blink", "args": {"times": 3}}),
        "qos": 1,
    }
    info = events()["command"]
    assert info == {
        "id": str(command.pk),
        "device_id": thing.device_id,
        "owner_id": owner.pk,
        "name": "blink",
        "args": {"times": 3},
        "status": "pending",
        "reason": "",
        "via": "api",
        "created_at": command.created_at.isoformat(),
        "acked_at": None,
        "result": None,
    }


@pytest.mark.parametrize(
    ("online", "name", "args", "reason"),
    [
        (False, "reboot", {}, "the device is offline"),
        (True, "format-disk", {}, "'format-disk' is not one of the device's commands (reboot)"),
        (True, "re boot", {}, "a command name is 1-64 letters"),
        (True, "reboot", [1], "command arguments must be a JSON object"),
        (True, "reboot", {"at": {1, 2}}, "command arguments must be a JSON object"),
        (True, "reboot", {"pad": "x" * 5000}, "more than the limit of 4096"),
    ],
)
def test_a_command_that_cannot_be_sent_is_refused_and_nothing_published(
    make_thing: Make, online: bool, name: str, args: Any, reason: str
) -> None:
    thing, _ = make_thing(online=online, commands=["reboot"])
    refused = send_command(thing, name, args)
    assert refused.status == "refused"
    assert reason in refused.reason
    assert Command.objects.get(pk=refused.pk).status == "refused"  # recorded
    Thing.objects.filter(pk=thing.pk).update(online=True)
    thing.refresh_from_db()
    sent = send_command(thing, "reboot")
    assert json.loads(receive(PUBLISH_CHANNEL)["payload"])["id"] == str(sent.pk)


def test_an_empty_command_list_allows_any_valid_name(make_thing: Make) -> None:
    thing, _ = make_thing(online=True)
    assert send_command(thing, "anything.at_all-1").status == "pending"
    receive(PUBLISH_CHANNEL)
    with pytest.raises(ValueError, match="via must be one of"):
        send_command(thing, "reboot", via="sms")


@override_settings(
    CHANNEL_LAYERS={
        "default": {
            "BACKEND": "gateway.layers.InMemoryChannelLayer",
            "CONFIG": {"channel_capacity": {PUBLISH_CHANNEL: 1}},
        }
    }
)
def test_a_command_the_mqtt_server_channel_cannot_take_fails(make_thing: Make) -> None:
    thing, _ = make_thing(online=True)
    assert send_command(thing, "one").status == "pending"
    failed = send_command(thing, "two")  # nobody took the first one yet
    assert failed.status == "failed"
    assert failed.reason.startswith("could not hand the command to the MQTT server")


def test_overdue_commands_time_out_once(make_thing: Make) -> None:
    thing, _ = make_thing(online=True)
    events = group_events(COMMANDS_GROUP)
    old = timezone.now() - timedelta(seconds=31)
    overdue = Command.objects.create(thing=thing, name="a", created_at=old)
    Command.objects.create(thing=thing, name="b", status="acknowledged", created_at=old)
    Command.objects.create(thing=thing, name="c")  # pending, not overdue

    assert expire_overdue_commands() == [overdue]
    assert expire_overdue_commands() == []
    info = events()["command"]
    assert (info["id"], info["status"], info["reason"]) == (
        str(overdue.pk),
        "timed_out",
        "no ack within 30 s",
    )


# -- thresholds, alerts, readings ------------------------------------------------------


def test_set_threshold_validates_and_updates_in_place(thing: Thing) -> None:
    with pytest.raises(ValidationError) as refused:
        set_threshold(thing, "bad metric", "over", float("nan"), hysteresis=-1)
    assert set(refused.value.message_dict) == {"metric", "direction", "limit", "hysteresis"}
    first = set_threshold(thing, "t", "above", 30)
    second = set_threshold(thing, "t", "above", 35, hysteresis=2)
    assert first.pk == second.pk
    assert (second.limit, second.hysteresis, second.enabled) == (35, 2, True)


def open_alert_on(thing: Thing) -> Alert:
    threshold = set_threshold(thing, "t", "above", 30)
    return Alert.objects.create(
        thing=thing, threshold=threshold, metric="t", direction="above", limit=30, value=31,
        opened_at=timezone.now(),
    )  # fmt: skip


@pytest.mark.parametrize("remove", ["disable", "delete"])
def test_removing_a_threshold_clears_its_open_alert(thing: Thing, remove: str) -> None:
    alert = open_alert_on(thing)
    events = group_events(ALERTS_GROUP)
    if remove == "disable":
        set_threshold(thing, "t", "above", 30, enabled=False)
    else:
        assert delete_threshold(thing, "t", "above") is True
        assert delete_threshold(thing, "t", "above") is False
    info = events()["alert"]
    assert (info["id"], info["state"], info["value"]) == (alert.pk, "cleared", None)
    alert.refresh_from_db()
    assert alert.cleared_at is not None


def test_open_alerts_are_those_of_visible_devices(make_thing: Make, owner: User) -> None:
    mine, _ = make_thing("mine")
    theirs, _ = make_thing("theirs", owner=User.objects.create_user("stranger"))
    alert = open_alert_on(mine)
    open_alert_on(theirs)
    assert list(open_alerts(owner)) == [alert]


def test_recent_readings_are_the_last_hour_oldest_first_at_most_limit(thing: Thing) -> None:
    now = timezone.now()
    Reading.objects.bulk_create(
        [Reading(thing=thing, at=now - timedelta(minutes=m), values={"m": m}) for m in range(90)]
    )
    points = recent_readings(thing)
    assert [values["m"] for _, values in points] == list(range(59, -1, -1))
    assert points[-1][0] == now.isoformat()
    assert [v["m"] for _, v in recent_readings(thing, limit=3)] == [2, 1, 0]
    since = now - timedelta(minutes=80, seconds=30)
    assert len(recent_readings(thing, since)) == 81


@pytest.mark.django_db(transaction=True)
async def test_async_callers_use_the_a_functions(make_thing: Make, owner: User) -> None:
    thing, _ = await in_thread(make_thing)
    assert await athing_for(owner, thing.device_id) == thing
    assert await avisible_things(owner) == [thing]
