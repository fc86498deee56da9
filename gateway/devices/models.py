"""A device: MQTT credentials (password hashed like Django users') and topic rules."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.hashers import check_password, make_password
from django.db import models

from gateway.devices.acl import DEFAULT_RULE, DeviceACL


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
    password = models.CharField(max_length=128, help_text="A Django password hash.")
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
        self.password = make_password(raw_password)

    def check_password(self, raw_password: str) -> bool:
        return check_password(raw_password, self.password)

    def acl(self) -> DeviceACL:
        return DeviceACL.from_text(self.username, self.publish_topics, self.subscribe_topics)


def authenticate_device(username: str | None, password: str | None) -> DeviceACL | None:
    """The ACL of the active device with these credentials, else None (sync: ORM)."""
    if not username or password is None:
        return None
    device = Device.objects.filter(username=username, is_active=True).first()
    if device is None:
        make_password(password)  # same cost whether or not the device exists
        return None
    return device.acl() if device.check_password(password) else None
