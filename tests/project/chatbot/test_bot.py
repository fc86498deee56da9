"""The bot's conversations through the Telegram server and the local Bot API server:
linking, every command, cards edited in place, buttons, other users' devices, and a
conversation step that survives a restart."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from gateway.botapi import BotAPIServer
from gateway.layers import get_channel_layer
from project.chatbot.menu import COMMANDS
from project.chatbot.models import Subscription
from project.iot.models import Command
from protocols.telegram.server import TelegramServer
from tests.project.chatbot.conftest import (
    ALICE_CHAT,
    BOB_CHAT,
    Chat,
    bot_server,
    buttons,
    link_code,
)

pytestmark = pytest.mark.django_db(transaction=True)


async def test_the_command_menu_is_set_when_the_server_starts(
    api: BotAPIServer, token: str, bot: TelegramServer
) -> None:
    (call,) = api.calls(token, "setMyCommands")
    assert [entry["command"] for entry in call["commands"]] == list(COMMANDS)


async def test_help_and_unknown_input(
    api: BotAPIServer, token: str, bot: TelegramServer, people: dict[str, Any]
) -> None:
    chat = Chat(api, token, ALICE_CHAT)
    chat.say("/start")
    assert "/devices" in (await chat.next_sent(1))["text"]
    chat.say("/frobnicate")
    assert "/help" in (await chat.next_sent(2))["text"]
    chat.say("hello there")
    assert "/devices" in (await chat.next_sent(3))["text"]


async def test_linking_refuses_wrong_expired_and_reused_codes(
    api: BotAPIServer, token: str, bot: TelegramServer, people: dict[str, Any]
) -> None:
    chat = Chat(api, token, ALICE_CHAT)
    chat.say("/devices")
    assert "not linked" in (await chat.next_sent(1))["text"]
    chat.say("/link not-a-code")
    assert "not valid" in (await chat.next_sent(2))["text"]
    expired = await link_code(people["alice"], datetime.timedelta(seconds=-1))
    chat.say(f"/link {expired}")
    assert "expired" in (await chat.next_sent(3))["text"]
    code = await link_code(people["alice"])
    chat.say(f"/link {code}")
    assert (await chat.next_sent(4))["text"].startswith("Linked to alice")
    other = Chat(api, token, BOB_CHAT)
    other.say(f"/link {code}")  # used once already
    assert "not valid" in (await other.next_sent(1))["text"]
    other.say("/devices")
    assert "not linked" in (await other.next_sent(2))["text"]


async def test_devices_list_and_card_are_edited_in_place(alice: Chat) -> None:
    alice.say("/devices")
    listing = await alice.next_sent(2)
    assert "Boiler" in listing["text"]
    assert "Pump" in listing["text"]
    assert "Fridge" not in listing["text"]  # bob's
    alice.press(listing, buttons(listing)["Boiler"])
    await alice.until(lambda: "boiler-1" in alice.sent()[1]["text"])
    card = alice.sent()[1]
    assert card["message_id"] == listing["message_id"]
    assert len(alice.sent()) == 2
    assert "online" in card["text"]
    assert "temperature 21.5" in card["text"]
    assert {"\u25b6 reboot", "\u25b6 purge", "Subscribe to alerts"} <= set(buttons(card))
    alice.press(card, buttons(card)["\u00ab Devices"])
    await alice.until(lambda: alice.sent()[1]["text"].startswith("Your devices"))
    assert len(alice.sent()) == 2


async def test_another_users_device_looks_like_none(alice: Chat, people: dict[str, Any]) -> None:
    alice.say("/status fridge-1")
    assert "not yours" in (await alice.next_sent(2))["text"]
    alice.say("/devices")
    listing = await alice.next_sent(3)
    fridge = people["fridge"].pk
    for forged in (f"dev:{fridge}", f"cmd:{fridge}:0", f"sub:{fridge}"):
        alice.press(listing, forged)
    answers = await alice.answers(3)
    assert all("not yours" in answer.get("text", "") for answer in answers)
    assert await sync_to_async(Command.objects.count)() == 0
    assert await sync_to_async(Subscription.objects.count)() == 0


async def test_a_command_button_sends_the_command_and_shows_it_on_the_card(
    alice: Chat, people: dict[str, Any]
) -> None:
    alice.say("/status Boiler")
    card = await alice.next_sent(2)
    alice.press(card, buttons(card)["\u25b6 reboot"])
    await alice.until(lambda: "Last command: reboot" in alice.sent()[1]["text"])
    assert "waiting for the device" in alice.sent()[1]["text"]
    assert (await alice.answers(1))[0]["text"] == "reboot: sent, waiting for the device"
    command = await sync_to_async(Command.objects.get)()
    assert (command.name, command.via, command.requested_by_id) == (
        "reboot",
        "telegram",
        people["alice"].pk,
    )
    layer = get_channel_layer()
    assert layer is not None
    published = await layer.receive("mqtt.publish")
    assert published["topic"] == "devices/boiler-1/commands"


async def test_subscribe_mute_and_unsubscribe(alice: Chat, people: dict[str, Any]) -> None:
    alice.say("/subscribe boiler-1")
    assert (await alice.next_sent(2))["text"] == "Alerts of Boiler come here now."
    card = await alice.next_sent(3)
    assert "Alerts come to this chat" in card["text"]
    alice.press(card, buttons(card)["Mute 1 h"])
    await alice.until(lambda: "muted until" in alice.sent()[2]["text"])
    subscription = await sync_to_async(Subscription.objects.get)()
    assert subscription.chat_id == ALICE_CHAT
    assert subscription.muted_until is not None
    alice.say("/unsubscribe Boiler")
    assert (await alice.next_sent(4))["text"] == "No more alerts of Boiler."
    assert "Subscribe to alerts" in buttons(await alice.next_sent(5))
    assert await sync_to_async(Subscription.objects.count)() == 0
    alice.say("/unlink")
    assert "Unlinked" in (await alice.next_sent(6))["text"]
    alice.say("/devices")
    assert "not linked" in (await alice.next_sent(7))["text"]


async def test_a_conversation_step_survives_a_restart(
    api: BotAPIServer, token: str, bot: TelegramServer, alice: Chat
) -> None:
    alice.say("/status pump-1")
    card = await alice.next_sent(2)
    alice.press(card, buttons(card)["\u25b6 Send a command\u2026"])
    assert "Type the command for Pump" in (await alice.next_sent(3))["text"]
    await bot.stop(2)  # the process goes away; the step is in the conversation's session
    async with bot_server(api, token):
        alice.say("flush")
        await alice.until(lambda: "Last command: flush" in alice.sent()[1]["text"])
        assert alice.sent()[3]["text"].startswith("flush: sent")
        alice.say("anything else")
        assert "/devices" in (await alice.next_sent(5))["text"]  # the step is over
