from django.apps import AppConfig


class ChatbotConfig(AppConfig):
    name = "project.chatbot"
    label = "chatbot"
    verbose_name = "Chatbot"
    default_auto_field = "django.db.models.BigAutoField"
