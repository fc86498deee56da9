from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from gateway.devices.models import Device


class DeviceForm(forms.ModelForm):
    new_password = forms.CharField(
        required=False,
        widget=forms.PasswordInput,
        help_text="Set a new secret (stored hashed): preferably a token from "
        "gateway.devices.credentials.generate_token(), checked far faster than a password. "
        "Leave empty to keep the current one.",
    )

    class Meta:
        model = Device
        fields = ["username", "is_active", "publish_topics", "subscribe_topics"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A device added without a secret could never connect: the secret is required
        # on add, optional on change (empty keeps the current one).
        self.fields["new_password"].required = self.instance._state.adding


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    form = DeviceForm
    list_display = ["username", "is_active", "created"]
    search_fields = ["username"]

    def save_model(self, request: HttpRequest, obj: Device, form: Any, change: bool) -> None:
        if form.cleaned_data.get("new_password"):
            obj.set_password(form.cleaned_data["new_password"])
        super().save_model(request, obj, form, change)
