"""The IoT app in the Django admin.

Adding a device creates its MQTT credentials with a generated secret, shown once
in a message (only its hash is stored); an action resets it. Readings are not
here (too many rows for the admin); alerts and commands are read-only records.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from project.iot.models import Alert, Command, Thing, Threshold
from project.iot.services import (
    clear_threshold_alerts,
    delete_threshold,
    provision,
    reset_credentials,
)

EDITABLE_FIELDS = ("device_id", "name", "owner", "commands")
LIVE_FIELDS = (
    "credentials",
    "online",
    "last_seen",
    "presence_changed",
    "last_values",
    "last_reading_at",
    "bad_payloads",
    "last_bad_sample",
    "last_bad_reason",
    "last_bad_at",
    "created_at",
)


def _show_secret(
    model_admin: admin.ModelAdmin, request: HttpRequest, thing: Thing, secret: str
) -> None:
    model_admin.message_user(
        request,
        format_html(
            "MQTT login of {}: username <code>{}</code>, password <code>{}</code>. "
            "Copy the password now: it is not shown again.",
            thing,
            thing.device_id,
            secret,
        ),
        messages.WARNING,
    )


@admin.register(Thing)
class ThingAdmin(admin.ModelAdmin):
    list_display = ["device_id", "name", "owner", "online", "last_seen", "bad_payloads"]
    list_select_related = ["owner"]
    list_filter = ["online"]
    search_fields = ["device_id", "name"]
    actions = ["reset_mqtt_password"]

    def get_fields(self, request: HttpRequest, obj: Thing | None = None) -> tuple[str, ...]:
        return EDITABLE_FIELDS if obj is None else (*EDITABLE_FIELDS, *LIVE_FIELDS)

    def get_readonly_fields(
        self, request: HttpRequest, obj: Thing | None = None
    ) -> tuple[str, ...]:
        # The device id is the MQTT username and in its topics: fixed once created.
        return () if obj is None else ("device_id", *LIVE_FIELDS)

    def save_model(self, request: HttpRequest, obj: Thing, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        _show_secret(self, request, obj, provision(obj))

    @admin.action(description="Reset the MQTT password of the selected devices")
    def reset_mqtt_password(self, request: HttpRequest, queryset: QuerySet[Thing]) -> None:
        for thing in queryset.select_related("credentials"):
            _show_secret(self, request, thing, reset_credentials(thing))


@admin.register(Threshold)
class ThresholdAdmin(admin.ModelAdmin):
    list_display = ["thing", "metric", "direction", "limit", "hysteresis", "enabled"]
    list_filter = ["direction", "enabled"]
    search_fields = ["thing__device_id", "metric"]

    def save_model(self, request: HttpRequest, obj: Threshold, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if not obj.enabled:
            clear_threshold_alerts(obj)

    def delete_model(self, request: HttpRequest, obj: Threshold) -> None:
        delete_threshold(obj.thing, obj.metric, obj.direction)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Threshold]) -> None:
        for threshold in queryset.select_related("thing"):
            self.delete_model(request, threshold)


class RecordAdmin(admin.ModelAdmin):
    """Records written by the IoT app itself: viewable, deletable, never edited here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Alert)
class AlertAdmin(RecordAdmin):
    list_display = ["thing", "metric", "direction", "limit", "value", "opened_at", "cleared_at"]
    list_filter = ["direction", "metric"]
    search_fields = ["thing__device_id", "metric"]
    date_hierarchy = "opened_at"


@admin.register(Command)
class CommandAdmin(RecordAdmin):
    list_display = ["thing", "name", "status", "via", "requested_by", "created_at", "acked_at"]
    list_filter = ["status", "via"]
    search_fields = ["thing__device_id", "name"]
    date_hierarchy = "created_at"
