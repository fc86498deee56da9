from __future__ import annotations

from django.contrib import admin

from gateway.telegram.models import TelegramAccount


@admin.register(TelegramAccount)
class TelegramAccountAdmin(admin.ModelAdmin):
    list_display = ("telegram_id", "username", "user", "linked_at")
    search_fields = ("username", "user__username")
    raw_id_fields = ("user",)
