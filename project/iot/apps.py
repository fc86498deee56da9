from django.apps import AppConfig


class IotConfig(AppConfig):
    """The IoT bridge: devices, their telemetry, presence, alerts and commands."""

    name = "project.iot"
    label = "iot"
    verbose_name = "IoT"
