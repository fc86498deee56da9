"""Alerts reach subscribed chats through the bot's worker and the Telegram server's
fixed channel: once each, not to muted or foreign chats, and a burst under 429
storms loses nothing and keeps each chat's order."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from gateway.botapi import BotAPIServer, EnforcedLimits
from gateway.layers import get_channel_layer
from gateway.worker import Worker
from project.chatbot.models import Subscription
from project.chatbot.notify import NOTIFY_CHANNEL, ChatNotifier
from project.iot.alerts import clear_alert, open_alert
from project.iot.events import ALERTS_GROUP, alert_event, alert_info
from project.iot.hysteresis import Rule
from project.iot.live import broadcast
from project.iot.models import Direction, Threshold
from project.iot.services import expire_overdue_commands
from protocols.telegram.flood import FloodLimits, Window
from tests.project.chatbot.conftest import ALICE_CHAT, BOB_CHAT, WAIT, Chat, bot_server, buttons

pytestmark = pytest.mark.django_db(transaction=True)

#: Room for the burst, as the project's settings give these channels.
BURST = {NOTIFY_CHANNEL: 10_000, "telegram.send": 10_000}


@pytest.fixture(autouse=True)
def _notify_and_burst_room(settings: Any) -> None:
    settings.IOT_NOTIFY_CHANNELS = [NOTIFY_CHANNEL]
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "gateway.layers.InMemoryChannelLayer",
            "CONFIG": {"channel_capacity": BURST},
        }
    }


@contextlib.asynccontextmanager
async def notifier() -> AsyncIterator[Worker]:
    """The bot's worker (``gateway worker chatbot.notify``), in this process."""
    layer = get_channel_layer()
    assert layer is not None
    worker = Worker(ChatNotifier.as_asgi(), [NOTIFY_CHANNEL], layer)
    await worker.start()
    try:
        yield worker
    finally:
        await worker.stop(timeout=WAIT)
        await layer.flush()


def alert_flip(thing: Any, metric: str, opened: bool, value: float) -> dict[str, Any]:
    """Open (or clear) the device's alert on ``metric`` in the database; its event."""
    threshold, _ = Threshold.objects.get_or_create(
        thing=thing, metric=metric, direction=Direction.ABOVE, defaults={"limit": 30.0}
    )
    at = timezone.now()
    if opened:
        rule = Rule(metric=metric, direction="above", limit=30.0)
        result = open_alert(thing.pk, threshold.pk, rule, value, at)
        assert result is not None
        return alert_event(alert_info(result[0], thing, "opened"))
    alert = thing.alerts.get(threshold=threshold, cleared_at__isnull=True)
    cleared = clear_alert(alert.pk, value, at)
    assert cleared is not None
    return alert_event(alert_info(cleared, thing, "cleared"))


async def announce(event: dict[str, Any]) -> None:
    """What the IoT side does once per alert: the groups, and the notify channel."""
    layer = get_channel_layer()
    assert layer is not None
    await broadcast(layer, event, [ALERTS_GROUP])


async def test_an_alert_reaches_each_subscribed_chat_once(
    api: BotAPIServer, token: str, alice: Chat, people: dict[str, Any]
) -> None:
    alice.say("/subscribe boiler-1")
    await alice.next_sent(3)
    bob = Chat(api, token, BOB_CHAT)  # not linked, not subscribed
    async with notifier():
        await announce(await sync_to_async(alert_flip)(people["boiler"], "temperature", True, 31))
        alert = await alice.next_sent(4)
        assert alert["text"] == "\u26a0 Boiler: temperature 31 > 30"
        # The alert's button opens the device's card as a new message.
        alice.press(alert, buttons(alert)["Show device"])
        card = await alice.next_sent(5)
        assert "temperature above 30 (31)" in card["text"]
        await announce(await sync_to_async(alert_flip)(people["boiler"], "temperature", False, 25))
        assert (await alice.next_sent(6))["text"] == "\u2714 Boiler: temperature back to 25"
    assert len(alice.sent()) == 6  # one message per alert event, nothing else
    assert bob.sent() == []


async def test_a_muted_or_foreign_subscription_gets_nothing(
    api: BotAPIServer, token: str, alice: Chat, people: dict[str, Any]
) -> None:
    def subscribe() -> None:
        Subscription.objects.create(
            chat_id=ALICE_CHAT,
            bot="devices_bot",
            thing=people["boiler"],
            user=people["alice"],
            muted_until=timezone.now() + timedelta(hours=1),
        )
        Subscription.objects.create(
            chat_id=ALICE_CHAT, bot="devices_bot", thing=people["pump"], user=people["alice"]
        )
        # Left over from when bob could see alice's pump: he no longer may.
        Subscription.objects.create(
            chat_id=BOB_CHAT, bot="devices_bot", thing=people["pump"], user=people["bob"]
        )

    await sync_to_async(subscribe)()
    bob = Chat(api, token, BOB_CHAT)
    async with notifier():
        for thing in ("boiler", "pump"):  # the worker handles them in this order
            await announce(await sync_to_async(alert_flip)(people[thing], "t", True, 40))
        assert (await alice.next_sent(2))["text"] == "\u26a0 Pump: t 40 > 30"
    assert len(alice.sent()) == 2  # the link confirmation, and the pump's alert only
    assert bob.sent() == []


async def burst(
    people: dict[str, Any], chats: range, alerts: int, limits: EnforcedLimits, **options: Any
) -> tuple[BotAPIServer, str, list[str]]:
    """``alerts`` alert events of the boiler, each to every chat in ``chats``, against a
    Bot API enforcing ``limits``; returns once every chat has them all."""

    def subscribe_all() -> None:
        Subscription.objects.bulk_create(
            Subscription(chat_id=c, bot="devices_bot", thing=people["boiler"], user=people["alice"])
            for c in chats
        )

    await sync_to_async(subscribe_all)()
    async with BotAPIServer(limits=limits) as api:
        token = api.add_bot("devices_bot")
        for chat in chats:  # the chats exist on the server (the bot ignores this update)
            member = {"user": api.make_user(chat), "status": "member"}
            update: dict[str, Any] = {
                "chat": {"id": chat, "type": "private"},
                "from": api.make_user(chat),
            }
            update.update(date=0, old_chat_member=member, new_chat_member=member)
            api.inject(token, "my_chat_member", update)
        # The chats' membership updates are not the bot's business here.
        async with notifier(), bot_server(api, token, allowed_updates=["message"], **options):
            events = [
                await sync_to_async(alert_flip)(
                    people["boiler"], "temperature", flip % 2 == 0, 31 + flip
                )
                for flip in range(alerts)
            ]
            for event in events:
                await announce(event)

            def delivered() -> bool:
                return all(len(api.sent(token, chat)) >= alerts for chat in chats)

            await api.wait_for(token, delivered, timeout=60)
        expected = [
            f"\u26a0 Boiler: temperature {31 + n} > 30"
            if n % 2 == 0
            else f"\u2714 Boiler: temperature back to {31 + n}"
            for n in range(alerts)
        ]
        for chat in chats:
            assert [m["text"] for m in api.sent(token, chat)] == expected
        assert len(api.calls(token, "sendMessage")) == len(chats) * alerts  # no duplicates
        return api, token, expected


async def test_a_burst_of_1000_alert_messages_to_200_chats_keeps_within_the_limits(
    people: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Telegram's limits scaled tenfold (300/s overall), 2/s per chat, enforced by the
    Bot API; the server paces at two thirds of them (200/s, 1/s per chat), headroom
    that absorbs network jitter: no 429 at all, nothing lost, each chat's order kept."""
    pacing = FloodLimits(overall=Window(200, 1.0), per_chat=Window(1, 1.0), per_group=None)
    enforced = EnforcedLimits(per_chat_per_second=2, per_second=300, retry_after=1)
    await burst(people, range(1, 201), 5, enforced, flood_limits=pacing, max_attempts=1)
    assert "429" not in caplog.text


async def test_429_storms_during_a_burst_lose_nothing(
    people: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """No pacing on our side: every chat's burst meets 429s every 50 ms while its second
    is full, far more than the 5 attempts a call gets; none of them is lost."""
    storm = EnforcedLimits(per_chat_per_second=5, per_second=1000, retry_after=0.05)
    await burst(people, range(1, 6), 20, storm)
    assert "429" in caplog.text


async def test_a_command_that_times_out_shows_it_on_its_card(
    api: BotAPIServer, token: str, alice: Chat, people: dict[str, Any]
) -> None:
    alice.say("/status boiler-1")
    card = await alice.next_sent(2)
    async with notifier():
        alice.press(card, buttons(card)["\u25b6 reboot"])
        await alice.until(lambda: "waiting for the device" in alice.sent()[1]["text"])
        # What the IoT side's sweep does once IOT_COMMAND_TIMEOUT has passed.
        later = timezone.now() + timedelta(minutes=5)
        await sync_to_async(expire_overdue_commands)(later)
        await alice.until(lambda: "timed out" in alice.sent()[1]["text"])
    assert alice.sent()[1]["message_id"] == card["message_id"]  # edited, not re-sent
    assert len(alice.sent()) == 2
