"""The chatbot backend: a Telegram bot to watch and command the IoT devices (docs/chatbot.md)."""
