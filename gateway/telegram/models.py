"""Telegram accounts linked to Django users, link codes, and conversation sessions."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class TelegramAccount(models.Model):
    """A Telegram user (``User.id`` in the Bot API) linked to one Django user."""

    telegram_id = models.BigIntegerField(unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="telegram_accounts"
    )
    username = models.CharField(max_length=64, blank=True)
    linked_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"@{self.username or self.telegram_id} -> {self.user}"


class LinkCode(models.Model):
    """A one-time code a signed-in web user sends to the bot (``/start <code>``) to link."""

    code = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"link code for {self.user}"


class ConversationSession(models.Model):
    """Which Django session belongs to a Telegram conversation (spec §1 conversation key)."""

    conversation = models.CharField(max_length=128, unique=True)
    session_key = models.CharField(max_length=40)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.conversation
