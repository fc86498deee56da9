"""A device: MQTT credentials (a token or a password, stored hashed) and topic rules.

Give devices generated tokens (:func:`gateway.devices.credentials.generate_token`):
they are checked in a microsecond, where a chosen password costs a run of Django's
password hasher at every connect (see :mod:`gateway.devices.credentials`).
"""

from __future__ import annotations

from typing import Any

from django.db import models

from gateway.devices.acl import DEFAULT_RULE, DeviceACL
from gateway.devices.credentials import hash_secret


class DeviceManager(models.Manager["Device"]):
    def create_device(self, username: str, password: str, **fields: Any) -> Device:
        device = self.model(username=username, **fields)
        device.set_password(password)
        device.save()
        return device


class Device(models.Model):
    username = models.CharField(
        max_length=150, unique=True, help_text="The MQTT username the device connects with."
    )
    password = models.CharField(
        max_length=128, help_text="A token hash (token_sha256$...) or a Django password hash."
    )
    is_active = models.BooleanField(default=True)
    publish_topics = models.TextField(
        blank=True,
        help_text=f"Topic filters the device may publish to, one per line; "
        f"{{username}} is replaced. Empty: {DEFAULT_RULE}",
    )
    subscribe_topics = models.TextField(
        blank=True,
        help_text=f"Topic filters the device may subscribe to, one per line. Empty: {DEFAULT_RULE}",
    )
    created = models.DateTimeField(auto_now_add=True)

    objects = DeviceManager()

    class Meta:
        ordering = ["username"]

    def __str__(self) -> str:
        return self.username

    def set_password(self, raw_password: str) -> None:
        self.password = hash_secret(raw_password)

    def acl(self) -> DeviceACL:
        return DeviceACL.from_text(self.username, self.publish_topics, self.subscribe_topics)
