"""Telegram in Django: linked accounts and per-conversation sessions (app ``gateway.telegram``).

Add ``"gateway.telegram"`` to ``INSTALLED_APPS`` and wrap the Telegram consumer in
:func:`gateway.telegram.middleware.TelegramMiddlewareStack` to get
``scope["session"]`` (a Django session per conversation, in the database, shared
by every process) and ``scope["user"]`` (the Django user linked to the Telegram
account, else ``AnonymousUser``). :mod:`gateway.telegram.events` is the pure
translation of docs/specs/telegram.md, shared by the server and the test tools.
"""
