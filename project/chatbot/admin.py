from django.contrib import admin

from project.chatbot.models import Subscription


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ("thing", "chat_id", "user", "muted_until", "created_at")
    list_filter = ("bot",)
    search_fields = ("thing__device_id", "thing__name", "user__username")
