"""Linking Telegram accounts to Django users (synchronous ORM; wrap in database_sync_to_async).

The flow: a signed-in web user asks for a code (:func:`issue_link_code`) and sends
``/start <code>`` to the bot, whose consumer calls :func:`redeem_link_code` with the
sender; from then on that Telegram user's ``scope["user"]`` is the Django user.
"""

from __future__ import annotations

import datetime
import secrets
from typing import Any

from django.db import transaction
from django.utils import timezone

from gateway.telegram.models import LinkCode, TelegramAccount

DEFAULT_CODE_TTL = datetime.timedelta(minutes=10)


def issue_link_code(user: Any, ttl: datetime.timedelta = DEFAULT_CODE_TTL) -> str:
    """A new one-time code linking the next Telegram account that sends it to ``user``."""
    code = secrets.token_urlsafe(16)
    LinkCode.objects.create(code=code, user=user, expires_at=timezone.now() + ttl)
    return code


def redeem_link_code(code: str, telegram_user: dict[str, Any]) -> Any:
    """Link ``telegram_user`` (a Bot API ``User`` dict) to the code's user; None if invalid."""
    with transaction.atomic():
        link = (
            LinkCode.objects.select_for_update()
            .select_related("user")
            .filter(code=code, expires_at__gt=timezone.now())
            .first()
        )
        if link is None:
            return None
        link.delete()
        TelegramAccount.objects.update_or_create(
            telegram_id=int(telegram_user["id"]),
            defaults={"user": link.user, "username": telegram_user.get("username") or ""},
        )
        return link.user


def linked_user(telegram_id: int) -> Any:
    """The Django user linked to a Telegram user id, or None."""
    account = TelegramAccount.objects.select_related("user").filter(telegram_id=telegram_id).first()
    return account.user if account is not None and account.user.is_active else None


def unlink(telegram_id: int) -> bool:
    """Forget the link of a Telegram user; True if there was one."""
    deleted, _ = TelegramAccount.objects.filter(telegram_id=telegram_id).delete()
    return deleted > 0
