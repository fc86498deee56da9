"""The forms of the fleet page: adding a device."""

from __future__ import annotations

from django import forms

from project.iot.models import DEVICE_ID_MAX_LENGTH, Thing


class AddDeviceForm(forms.Form):
    """A device's name, id and the commands it accepts (comma- or space-separated)."""

    name = forms.CharField(max_length=100)
    device_id = forms.SlugField(
        max_length=DEVICE_ID_MAX_LENGTH,
        label="Device id",
        help_text="Its MQTT username and the <id> in devices/<id>/…",
    )
    commands = forms.CharField(
        required=False,
        label="Allowed commands",
        help_text="e.g. reboot, blink; empty: any name",
    )

    def clean_device_id(self) -> str:
        device_id: str = self.cleaned_data["device_id"]
        if Thing.objects.filter(device_id=device_id).exists():
            raise forms.ValidationError("A device with this id already exists.")
        return device_id

    def clean_commands(self) -> list[str]:
        commands: str = self.cleaned_data["commands"]
        return commands.replace(",", " ").split()
