from django.apps import AppConfig


class TelegramConfig(AppConfig):
    name = "gateway.telegram"
    label = "gateway_telegram"
    verbose_name = "Telegram accounts"
    default_auto_field = "django.db.models.BigAutoField"
