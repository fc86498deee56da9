"""The Telegram page: a one-time link code shown once, linked chats and their unlinking."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User

from gateway.telegram.accounts import redeem_link_code
from gateway.telegram.models import LinkCode, TelegramAccount
from project.chatbot.models import Subscription
from project.iot.services import create_thing
from tests.project.dashboard.conftest import logged_in

pytestmark = pytest.mark.django_db


def test_a_link_code_is_shown_once_and_links_a_chat(member: Any) -> None:
    client = logged_in(member)
    assert b"No chat is linked yet" in client.get("/telegram/").content
    assert client.get("/telegram/link/").status_code == 405  # codes are made by a POST
    response = client.post("/telegram/link/")
    assert response.status_code == 302
    assert response["Location"] == "/telegram/"
    page = client.get("/telegram/").content.decode()
    match = re.search(r"/link ([A-Za-z0-9_-]+)", page)
    assert match is not None
    assert "link-command" not in client.get("/telegram/").content.decode()  # shown once
    code = match.group(1)
    assert LinkCode.objects.get(code=code).user == member
    assert redeem_link_code(code, {"id": 555, "username": "bob_tg"}) == member
    page = client.get("/telegram/").content.decode()
    assert "@bob_tg" in page


def test_unlinking_ends_the_link_and_its_subscriptions_for_its_user_only(
    member: Any, staff: Any
) -> None:
    other = User.objects.create_user("carol", password="pw")
    thing, _ = create_thing(member, "lamp-1", "Lamp")
    mine = TelegramAccount.objects.create(telegram_id=555, user=member, username="m")
    theirs = TelegramAccount.objects.create(telegram_id=777, user=other, username="c")
    Subscription.objects.create(chat_id=555, bot="b", thing=thing, user=member)
    client = logged_in(member)
    page = client.get("/telegram/").content.decode()
    assert "@m" in page
    assert "@c" not in page  # someone else's link
    assert client.post(f"/telegram/{theirs.pk}/unlink/").status_code == 404
    assert client.post(f"/telegram/{mine.pk}/unlink/").status_code == 302
    assert not TelegramAccount.objects.filter(pk=mine.pk).exists()
    assert Subscription.objects.count() == 0
    staff_page = logged_in(staff).get("/telegram/").content.decode()
    assert "@c" in staff_page  # staff see every user's links
    assert "carol" in staff_page
