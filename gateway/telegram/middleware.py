"""Django session and user for Telegram scopes (docs/specs/telegram.md §1).

:class:`TelegramSessionMiddleware` gives each conversation a Django session
(``SESSION_ENGINE``), found again through :class:`~gateway.telegram.models.ConversationSession`
by the conversation key, so state survives restarts and is shared by every process
(python-telegram-bot's persistence is per process). A modified session is saved
after each event (when the consumer asks for the next one) and when the scope
ends; consumers may also call ``scope["session"].save()`` themselves.

:class:`TelegramAuthMiddleware` sets ``scope["user"]`` to the Django user linked to
``scope["telegram_user"]`` (see :mod:`gateway.telegram.accounts`), else
``AnonymousUser``; the Telegram user stays in ``scope["telegram_user"]``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.base import SessionBase

from gateway.db import database_sync_to_async
from gateway.middleware import BaseMiddleware
from gateway.telegram.accounts import linked_user
from gateway.telegram.models import ConversationSession
from gateway.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["TelegramAuthMiddleware", "TelegramMiddlewareStack", "TelegramSessionMiddleware"]


def conversation_name(scope: Scope) -> str:
    """``telegram:chat:<bot>:<chat>:<thread>``, the stable name of the scope's conversation."""
    kind, bot_id, ident, thread = scope["conversation"]
    return f"telegram:{kind}:{bot_id}:{ident}:{thread if thread is not None else '-'}"


def _open_session(name: str) -> SessionBase:
    store: type[SessionBase] = import_module(settings.SESSION_ENGINE).SessionStore
    row = ConversationSession.objects.filter(conversation=name).first()
    return store(session_key=row.session_key if row is not None else None)


def _save_session(name: str, session: SessionBase) -> None:
    had_key = session.session_key
    session.save()
    session.modified = False
    if session.session_key != had_key:
        ConversationSession.objects.update_or_create(
            conversation=name, defaults={"session_key": session.session_key}
        )


class TelegramSessionMiddleware:
    """Adds ``scope["session"]``, saved after every event that modified it."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "telegram":
            raise ValueError("TelegramSessionMiddleware serves telegram scopes only")
        name = conversation_name(scope)
        session = await database_sync_to_async(_open_session)(name)
        scope = {**scope, "session": session}

        async def save_if_modified() -> None:
            if session.modified:
                await database_sync_to_async(_save_session)(name, session)

        async def receive_after_saving() -> Message:
            await save_if_modified()  # the previous event is handled
            return await receive()

        try:
            await self.inner(scope, receive_after_saving, send)
        finally:
            await save_if_modified()


class TelegramAuthMiddleware(BaseMiddleware):
    """Sets ``scope["user"]`` from the linked account (else ``AnonymousUser``)."""

    async def resolve_scope(self, scope: Scope) -> None:
        telegram_user: Any = scope.get("telegram_user")
        user = None
        if isinstance(telegram_user, dict) and isinstance(telegram_user.get("id"), int):
            user = await database_sync_to_async(linked_user)(telegram_user["id"])
        scope["user"] = user if user is not None else AnonymousUser()


def TelegramMiddlewareStack(inner: ASGIApp) -> TelegramSessionMiddleware:
    """Session, then user: the Telegram counterpart of ``AuthMiddlewareStack``."""
    return TelegramSessionMiddleware(TelegramAuthMiddleware(inner))
