"""What the bot remembers beyond a conversation's session: alert subscriptions and the
status cards that show a command's fate."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from project.iot.models import Command, Thing


class Subscription(models.Model):
    """A chat gets the alerts of a device, for as long as its user may see the device."""

    chat_id = models.BigIntegerField()
    #: The bot's username: which bot talks to ``chat_id`` (a process may run several).
    bot = models.CharField(max_length=64)
    thing = models.ForeignKey(Thing, on_delete=models.CASCADE, related_name="chat_subscriptions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    muted_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["chat_id", "thing"], name="chatbot_one_per_chat")
        ]

    def __str__(self) -> str:
        return f"chat {self.chat_id} -> {self.thing}"


class CommandCard(models.Model):
    """A device card in a chat that shows a command sent from it: edited when it settles."""

    command = models.ForeignKey(Command, on_delete=models.CASCADE, related_name="chat_cards")
    chat_id = models.BigIntegerField()
    bot = models.CharField(max_length=64)
    message_id = models.BigIntegerField()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["chat_id", "message_id"], name="chatbot_card_message")]

    def __str__(self) -> str:
        return f"card {self.chat_id}/{self.message_id} for {self.command_id}"
