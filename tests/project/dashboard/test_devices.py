"""A device's page: hidden from other users as if missing, and its credentials reset."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.devices.credentials import check_token as check_password
from project.iot.services import create_thing
from tests.project.dashboard.conftest import logged_in

pytestmark = pytest.mark.django_db


def test_another_users_device_is_a_404_like_a_missing_one(staff: Any, member: Any) -> None:
    create_thing(staff, "boiler-1", "Boiler")
    client = logged_in(member)
    assert client.get("/devices/boiler-1/").status_code == 404
    assert client.get("/devices/nothing/").status_code == 404
    assert client.post("/devices/boiler-1/credentials/").status_code == 404
    assert logged_in(staff).get("/devices/boiler-1/").status_code == 200


def test_resetting_makes_a_new_secret(member: Any) -> None:
    thing, old = create_thing(member, "boiler-8", "Boiler")
    page = logged_in(member).post("/devices/boiler-8/credentials/")
    new = page.context["login"].secret
    thing.credentials.refresh_from_db()
    assert new != old
    assert check_password(new, thing.credentials.password)
    assert not check_password(old, thing.credentials.password)
