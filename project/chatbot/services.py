"""What the bot does with the database (sync ORM code: call it through
``database_sync_to_async``).

Every device a chat sees or commands is looked up through
:func:`project.iot.services.visible_things` of the Django user linked to the sender,
so a chat only ever reaches the devices of its user; another user's device looks
exactly like one that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone

from gateway.telegram.accounts import linked_user, redeem_link_code, unlink
from gateway.telegram.models import LinkCode
from project.chatbot.models import CommandCard, Subscription
from project.iot.models import Command, Thing, Via
from project.iot.services import send_command, visible_things, with_open_alert_counts

MUTE_FOR = timedelta(hours=1)


class NoSuchDevice(LookupError):
    """Not a device of this user (or not a device at all: the two look the same)."""


@dataclass(frozen=True)
class ChatRef:
    """Where a card lives: the bot, the chat and (once sent) the message."""

    bot: str
    chat_id: int
    message_id: int | None = None


@dataclass(frozen=True)
class CardData:
    """Everything a device's status card shows, read in one go."""

    thing: Thing
    open_alerts: list[str]
    subscribed: bool
    muted_until: datetime | None
    last_command: Command | None


# -- linking ---------------------------------------------------------------------------


def link_chat(code: str, telegram_user: dict[str, Any]) -> tuple[Any, str | None]:
    """``(user, None)`` once linked, else ``(None, why)``: unknown, used or expired."""
    user = redeem_link_code(code, telegram_user)
    if user is not None:
        return user, None
    if LinkCode.objects.filter(code=code).exists():
        return None, "That code has expired. Get a new one on the dashboard."
    return None, "That code is not valid (codes work once). Get a new one on the dashboard."


def unlink_chat(telegram_id: int, chat_id: int) -> bool:
    """Forget the sender's link and the subscriptions it made in this chat; True if
    there was a link."""
    user = linked_user(telegram_id)
    if user is not None:
        Subscription.objects.filter(chat_id=chat_id, user=user).delete()
    return unlink(telegram_id)


# -- devices ---------------------------------------------------------------------------


def devices_of(user: Any) -> list[Thing]:
    """The user's devices with their open alert counts (``open_alert_count``), by name."""
    return list(with_open_alert_counts(visible_things(user)).order_by("name", "device_id"))


def device_of(user: Any, pk: int) -> Thing:
    try:
        return visible_things(user).get(pk=pk)
    except Thing.DoesNotExist:
        raise NoSuchDevice(pk) from None


def find_device(user: Any, ref: str) -> Thing:
    """The user's device whose id or name is ``ref`` (ignoring case)."""
    things = visible_things(user)
    match = things.filter(device_id__iexact=ref).first() or things.filter(name__iexact=ref).first()
    if match is None:
        raise NoSuchDevice(ref)
    return match


def card_data(user: Any, pk: int, chat_id: int) -> CardData:
    thing = device_of(user, pk)
    alerts = [
        f"{alert.metric} {alert.direction} {alert.limit:g} ({alert.value:g})"
        for alert in thing.alerts.filter(cleared_at__isnull=True).order_by("opened_at")
    ]
    subscription = Subscription.objects.filter(chat_id=chat_id, thing=thing).first()
    card = (
        CommandCard.objects.filter(chat_id=chat_id, command__thing=thing)
        .select_related("command")
        .order_by("-created_at", "-pk")
        .first()
    )
    muted = subscription.muted_until if subscription is not None else None
    return CardData(
        thing=thing,
        open_alerts=alerts,
        subscribed=subscription is not None,
        muted_until=muted if muted is not None and muted > timezone.now() else None,
        last_command=card.command if card is not None else None,
    )


# -- subscriptions ---------------------------------------------------------------------


def subscribe(user: Any, pk: int, where: ChatRef) -> Thing:
    thing = device_of(user, pk)
    Subscription.objects.update_or_create(
        chat_id=where.chat_id, thing=thing, defaults={"user": user, "bot": where.bot}
    )
    return thing


def unsubscribe(user: Any, pk: int, chat_id: int) -> tuple[Thing, bool]:
    thing = device_of(user, pk)
    deleted, _ = Subscription.objects.filter(chat_id=chat_id, thing=thing).delete()
    return thing, deleted > 0


def mute(user: Any, pk: int, chat_id: int, *, until: datetime | None) -> bool:
    """Mute the chat's alerts of a device until ``until`` (None: unmute); False if the
    chat is not subscribed to it."""
    thing = device_of(user, pk)
    return bool(Subscription.objects.filter(chat_id=chat_id, thing=thing).update(muted_until=until))


def recipients(device_id: str) -> list[Subscription]:
    """The subscriptions an alert of ``device_id`` goes to now: not muted, and whose
    user still may see the device."""
    now = timezone.now()
    subscriptions = (
        Subscription.objects.filter(thing__device_id=device_id)
        .filter(Q(muted_until__isnull=True) | Q(muted_until__lte=now))
        .select_related("user", "thing")
    )
    return [
        subscription
        for subscription in subscriptions
        if visible_things(subscription.user).filter(pk=subscription.thing_id).exists()
    ]


# -- commands --------------------------------------------------------------------------


def command(user: Any, pk: int, name: str, where: ChatRef) -> Command:
    """Send command ``name`` to the device, remembered on the card it was sent from."""
    thing = device_of(user, pk)
    sent = send_command(thing, name, user=user, via=Via.TELEGRAM)
    if where.message_id is not None:
        CommandCard.objects.create(
            command=sent,
            chat_id=where.chat_id,
            bot=where.bot,
            message_id=where.message_id,
            user=user,
        )
    return sent


def cards_of(command_id: str) -> list[CommandCard]:
    """The cards showing a command (to edit when its status changes)."""
    return list(CommandCard.objects.filter(command_id=command_id).select_related("user", "command"))
