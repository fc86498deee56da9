from django.apps import AppConfig


class DevicesConfig(AppConfig):
    name = "gateway.devices"
    label = "gateway_devices"
    verbose_name = "MQTT devices"
    default_auto_field = "django.db.models.BigAutoField"
