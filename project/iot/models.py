"""The IoT app's data: devices (``Thing``), their readings, thresholds, alerts, commands.

A ``Thing`` is the product's device; its MQTT login is a ``gateway.devices.Device``
(``credentials``), created with it (``project.iot.credentials``) and deleted with it,
so a device without credentials, or credentials left behind by a deleted device,
cannot exist. ``Thing.device_id`` is the credentials' username and the
``<device_id>`` level of the device's topics ``devices/<device_id>/...``.

Live state (``online``, ``last_values``, ...) is written by the ingest side in
batches (``project.iot.writer``); readers may see it up to ``IOT_WRITE_INTERVAL``
late. The schema is portable: PostgreSQL in the test suite, SQLite on the appliance.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.utils import timezone

from gateway.devices.models import Device

#: ``iot.device.<device_id>`` must stay a valid group name (< 100 characters).
DEVICE_ID_MAX_LENGTH = 64
NAME_MAX_LENGTH = 64


class Direction(models.TextChoices):
    ABOVE = "above"
    BELOW = "below"


class Thing(models.Model):
    device_id = models.SlugField(
        max_length=DEVICE_ID_MAX_LENGTH,
        unique=True,
        # Plain text: the admin renders help text as HTML.
        help_text="The MQTT username, also the middle of its topics: devices/ID/telemetry",
    )
    name = models.CharField(max_length=100)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="things"
    )
    credentials = models.OneToOneField(
        Device,
        on_delete=models.PROTECT,
        related_name="thing",
        help_text="The MQTT login, created with the device and deleted with it.",
    )
    online = models.BooleanField(default=False)
    last_seen = models.DateTimeField(null=True, blank=True)
    presence_changed = models.DateTimeField(null=True, blank=True)
    last_values = models.JSONField(default=dict, blank=True)
    last_reading_at = models.DateTimeField(null=True, blank=True)
    bad_payloads = models.PositiveIntegerField(default=0)
    last_bad_sample = models.TextField(blank=True)
    last_bad_reason = models.CharField(max_length=200, blank=True)
    last_bad_at = models.DateTimeField(null=True, blank=True)
    commands = models.JSONField(
        default=list,
        blank=True,
        help_text='Accepted command names, e.g. ["reboot"]; empty: any name.',
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["device_id"]
        verbose_name = "device"

    def __str__(self) -> str:
        return self.name or self.device_id

    def clean(self) -> None:
        """A new device's id must be free as an MQTT username too."""
        taken = Device.objects.filter(username=self.device_id)
        if self._state.adding and self.device_id and taken.exists():
            raise ValidationError(
                {"device_id": "MQTT credentials with this username already exist."}
            )
        if not isinstance(self.commands, list) or not all(
            isinstance(name, str) for name in self.commands
        ):
            raise ValidationError({"commands": 'A list of command names, e.g. ["reboot"].'})


@receiver(post_delete, sender=Thing)
def _delete_credentials(sender: type[Thing], instance: Thing, **kwargs: Any) -> None:
    """Deleting a device revokes its MQTT login (also for bulk deletes in the admin)."""
    Device.objects.filter(pk=instance.credentials_id).delete()


class Reading(models.Model):
    thing = models.ForeignKey(Thing, on_delete=models.CASCADE, related_name="readings")
    at = models.DateTimeField()
    values = models.JSONField()

    class Meta:
        indexes = [
            models.Index(fields=["thing", "at"], name="iot_reading_thing_at"),
            models.Index(fields=["at"], name="iot_reading_at"),  # retention pruning
        ]


class Threshold(models.Model):
    thing = models.ForeignKey(Thing, on_delete=models.CASCADE, related_name="thresholds")
    metric = models.CharField(max_length=NAME_MAX_LENGTH)
    direction = models.CharField(max_length=5, choices=Direction.choices)
    limit = models.FloatField()
    hysteresis = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0)],
        help_text="Alerts clear once the value is this far back within the limit.",
    )
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["thing", "metric", "direction"]
        constraints = [
            models.UniqueConstraint(
                fields=["thing", "metric", "direction"], name="iot_threshold_unique"
            ),
            models.CheckConstraint(
                condition=models.Q(hysteresis__gte=0), name="iot_threshold_hysteresis_gte_0"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.thing_id}: {self.metric} {self.direction} {self.limit}"


class Alert(models.Model):
    thing = models.ForeignKey(Thing, on_delete=models.CASCADE, related_name="alerts")
    threshold = models.ForeignKey(
        Threshold, on_delete=models.SET_NULL, null=True, blank=True, related_name="alerts"
    )
    metric = models.CharField(max_length=NAME_MAX_LENGTH)
    direction = models.CharField(max_length=5, choices=Direction.choices)
    limit = models.FloatField()
    value = models.FloatField(help_text="The value that opened the alert.")
    opened_at = models.DateTimeField()
    cleared_at = models.DateTimeField(null=True, blank=True)
    clear_value = models.FloatField(
        null=True, blank=True, help_text="The value that cleared it (empty: threshold removed)."
    )

    class Meta:
        ordering = ["-opened_at"]
        indexes = [models.Index(fields=["thing", "cleared_at"], name="iot_alert_thing_cleared")]
        constraints = [
            # At most one open alert per threshold, whichever process evaluates it:
            # the database, not a process's memory, makes "opened exactly once" hold.
            models.UniqueConstraint(
                fields=["threshold"],
                condition=models.Q(cleared_at__isnull=True),
                name="iot_alert_one_open_per_threshold",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.metric} {self.direction} {self.limit} ({self.value})"


class CommandStatus(models.TextChoices):
    PENDING = "pending"
    ACKNOWLEDGED = "acknowledged"
    TIMED_OUT = "timed_out"
    REFUSED = "refused"
    FAILED = "failed"


class Via(models.TextChoices):
    DASHBOARD = "dashboard"
    TELEGRAM = "telegram"
    API = "api"


class Command(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    thing = models.ForeignKey(Thing, on_delete=models.CASCADE, related_name="sent_commands")
    name = models.CharField(max_length=NAME_MAX_LENGTH)
    args = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=12, choices=CommandStatus.choices, default=CommandStatus.PENDING
    )
    reason = models.TextField(blank=True)
    result = models.JSONField(null=True, blank=True, help_text="What the device's ack said.")
    created_at = models.DateTimeField(default=timezone.now)
    acked_at = models.DateTimeField(null=True, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    via = models.CharField(max_length=9, choices=Via.choices, default=Via.DASHBOARD)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "created_at"], name="iot_command_status_at")]

    def __str__(self) -> str:
        return f"{self.name} -> {self.thing_id} ({self.status})"
